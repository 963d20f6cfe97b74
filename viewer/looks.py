"""How the Gaussians look in the browser: base colour, selection tint, dimming, hiding, cluster and PCA colours.

A look is a pure function of (view mode, selection, colour source) → RGBA [N, 4] uint8; `ChunkedSplats` then resends
only the chunks whose RGBA changed. Keeping the look deterministic and per-Gaussian is what makes a selection change
touch only the chunks the selected object lies in: an unselected Gaussian's colour does not depend on which object is
selected, only on whether anything is. Dimming the rest does make the first selection (and clearing it) resend every
chunk; with "Dim the rest" off, a selection change resends only the chunks the selected objects lie in.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

from ._layer_kernels import count_per_chunk

ViewMode = Literal["highlight", "isolate", "hide", "clusters", "pca"]
VIEW_MODES: dict[str, ViewMode] = {
    "Highlight selection": "highlight",
    "Isolate selection": "isolate",
    "Hide selection": "hide",
    "Clusters (segment everything)": "clusters",
    "Feature PCA": "pca",
}
"""Dropdown labels → modes."""

TINT = np.array([255, 166, 0], dtype=np.float32)
"""Selection highlight: a saturated orange no synthetic or typical capture colour is close to."""


@dataclasses.dataclass(frozen=True)
class LookStyle:
    tint_strength: float = 0.6
    """How far a selected Gaussian's colour moves toward TINT."""
    dim: float = 0.35
    """Brightness of unselected Gaussians while something is selected (1 = no dimming)."""


def base_rgba(
    dc_colors: torch.Tensor,  # [N, 3] in [0, 1]
    opacities: torch.Tensor,  # [N] in (0, 1)
) -> np.ndarray:  # [N, 4] uint8
    rgb = (dc_colors.detach().cpu().numpy() * 255.0).clip(0, 255)
    a = (opacities.detach().cpu().numpy() * 255.0).clip(0, 255)
    return np.concatenate([rgb, a[:, None]], axis=1).round().astype(np.uint8)


def compute_rgba(
    base: np.ndarray,  # [N, 4] uint8: the scene's own colours and opacities
    mode: ViewMode,
    selection: np.ndarray,  # [N] bool
    *,
    colors: np.ndarray | None = None,  # [N, 3] uint8: replaces the base colour (clusters, PCA)
    style: LookStyle = LookStyle(),
    dim_rest: bool = True,
) -> np.ndarray:  # [N, 4] uint8; alpha 0 = hidden
    """The RGBA every Gaussian shows in `mode` (the reference `LookCache` is checked against)."""
    out = base.copy()
    if colors is not None and mode in ("clusters", "pca"):
        out[:, :3] = colors
    any_selected = bool(selection.any())
    if mode == "isolate":
        if any_selected:
            out[~selection, 3] = 0
        return out
    if mode == "hide":
        out[selection, 3] = 0
        return out
    if not any_selected:
        return out
    rgb = out[:, :3].astype(np.float32)
    sel = selection
    rgb[sel] = rgb[sel] * (1 - style.tint_strength) + TINT * style.tint_strength
    if dim_rest:
        rgb[~sel] *= style.dim
    out[:, :3] = rgb.round().clip(0, 255).astype(np.uint8)
    return out


class Look(np.ndarray):
    """A highlight look [N, 4] uint8 that says how it was made: `rest` where `selection` is False, `tinted` where it
    is True (both [N, 4] uint8 arrays of the `LookCache`, compared by identity; `selection` None = nothing).

    `ChunkedSplats.update` reads these to find the chunks a selection change touches from the selections alone (an
    XOR of two masks) instead of comparing every Gaussian's colour; anything else is a plain array and takes the full
    comparison. Slices and results of arithmetic are plain `Look`s with no parts (`parts` is None): only the whole
    array made by `LookCache` vouches for its parts.
    """

    _parts: tuple[np.ndarray | None, np.ndarray, np.ndarray] | None
    _counts: tuple[np.ndarray, np.ndarray] | None
    shared: dict[str, object]
    """What a browser made from this look for the next browser shown it (see `LookParts.shared`)."""

    def __array_finalize__(self, obj: object) -> None:
        self._parts = None
        self._counts = None
        self.shared = {}

    @property
    def parts(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray] | None:  # (selection, rest, tinted)
        return self._parts

    def chunk_counts(self, chunk_of: np.ndarray, num_chunks: int) -> np.ndarray:  # [N] uint16/int32 → [C] int64
        """`selected_per_chunk` of this look's selection, made once (see `LookParts.chunk_counts`)."""
        if self._counts is None or self._counts[0] is not chunk_of:
            selection = None if self._parts is None else self._parts[0]
            self._counts = (chunk_of, selected_per_chunk(selection, chunk_of, num_chunks))
        return self._counts[1]


def _as_look(
    rgba: np.ndarray,  # [N, 4] uint8
    selection: np.ndarray | None,  # [N] bool, a private copy, or None for nothing selected
    rest: np.ndarray,  # [N, 4] uint8
    tinted: np.ndarray,  # [N, 4] uint8
) -> Look:
    look = rgba.view(Look)
    look._parts = (selection, rest, tinted)
    return look


class LookParts:
    """A highlight look not yet made into its [N, 4] array: `tinted` where `selection` is True, `rest` elsewhere.

    A browser that keeps the rest and tinted looks as prefetched layers needs only these parts and the Gaussians'
    per-chunk selected counts after a click; making the whole array (a select over every Gaussian and a fresh
    4-bytes-a-Gaussian allocation, a few ms at 1M) is left to whoever asks for `rgba()`.
    """

    __slots__ = ("_counts", "_rgba", "rest", "selection", "shared", "tinted")

    def __init__(
        self,
        selection: np.ndarray | None,  # [N] bool, a private copy; None = nothing selected
        rest: np.ndarray,  # [N, 4] uint8
        tinted: np.ndarray,  # [N, 4] uint8
    ) -> None:
        self.selection, self.rest, self.tinted = selection, rest, tinted
        self._rgba: Look | None = None
        self._counts: tuple[np.ndarray, np.ndarray] | None = None
        self.shared: dict[str, object] = {}
        """What a browser made from this look that the next browser shown it can reuse as it is (the mixed
        chunks' buffers, `LayeredSplats`), keyed by what made it; the session hands every browser the same parts."""

    @property
    def parts(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        return self.selection, self.rest, self.tinted

    def rgba(self) -> Look:  # [N, 4] uint8, made once
        if self._rgba is None:
            if self.selection is None:
                words = _words(self.rest)
            else:
                words = np.where(self.selection, _words(self.tinted), _words(self.rest))
            self._rgba = _as_look(words.view(np.uint8).reshape(-1, 4), self.selection, self.rest, self.tinted)
        return self._rgba

    def chunk_counts(self, chunk_of: np.ndarray, num_chunks: int) -> np.ndarray:  # [N] uint16/int32 → [C] int64
        """Selected Gaussians per chunk (`selected_per_chunk`), made once per look and kept for the next caller.

        The session hands every browser the same parts for a selection, and the browsers share the chunk layout
        (`SplatChunks.chunk_ids`, compared by identity), so the one pass over the whole selection a click costs
        (~0.35 ms at 1M Gaussians) is paid once however many browsers are connected.
        Two browsers asking at once may both make it: the result is the same."""
        counts = self._counts
        if counts is None or counts[0] is not chunk_of:
            counts = (chunk_of, selected_per_chunk(self.selection, chunk_of, num_chunks))
            self._counts = counts
        return counts[1]


def selected_per_chunk(
    selection: np.ndarray | None,  # [N] bool, None = nothing selected
    chunk_of: np.ndarray,  # [N] uint16 or int32: each Gaussian's chunk
    num_chunks: int,
) -> np.ndarray:  # [C] int64
    """How many Gaussians of each chunk `selection` holds: one compiled pass over the selection and the chunk ids
    (`count_per_chunk`; ~0.35 ms at 1M Gaussians with uint16 ids where `selected_per_chunk_reference` takes ~1)."""
    counts = np.zeros(num_chunks, np.int64)
    if selection is not None:
        if len(selection) != len(chunk_of):  # the kernel reads chunk_of at every selection index, unchecked
            raise ValueError(f"a selection of {len(selection)} Gaussians for a layout of {len(chunk_of)}")
        if selection.dtype != np.bool_:  # its bytes are the kernel's flags: another type has more bytes than flags
            raise ValueError(f"a selection is a bool mask, not {selection.dtype}")
        count_per_chunk(selection.view(np.uint8), chunk_of, counts)
    return counts


def selected_per_chunk_reference(
    selection: np.ndarray | None,  # [N] bool, None = nothing selected
    chunk_of: np.ndarray,  # [N] int
    num_chunks: int,
) -> np.ndarray:  # [C] int64
    """`selected_per_chunk` in NumPy: the selection's ids, their chunks, counted."""
    if selection is None:
        return np.zeros(num_chunks, np.int64)
    return np.bincount(np.take(chunk_of, np.flatnonzero(selection)), minlength=num_chunks)


def look_parts(rgba: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray] | None:
    """(selection [N] bool or None, rest [N, 4], tinted [N, 4]) when `rgba` is a `Look` made by `LookCache`."""
    if isinstance(rgba, LookParts):
        return rgba.parts
    return rgba.parts if isinstance(rgba, Look) else None


class LookCache:
    """`compute_rgba` at the cost of one `np.where`: the tinted and dimmed versions of the current colours are made
    once per colour source, so a click at 1M Gaussians spends ~3 ms here instead of ~20."""

    def __init__(self, base: np.ndarray, *, style: LookStyle = LookStyle()) -> None:  # base [N, 4] uint8
        self.base = base
        self.style = style
        self._key: object = None
        self._plain = self._tinted = self._dimmed = base
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        """(tinted, rest, selection, words) of the last highlight look, to update it incrementally."""

    def _prepare(self, mode: ViewMode, colors: np.ndarray | None, colors_key: object) -> None:
        use_colors = colors is not None and mode in ("clusters", "pca")
        key = (colors_key if use_colors else None, use_colors)
        if key == self._key:
            return
        plain = self.base.copy()
        if use_colors:
            plain[:, :3] = colors
        rgb = plain[:, :3].astype(np.float32)
        tinted, dimmed = plain.copy(), plain.copy()
        s = self.style.tint_strength
        tinted[:, :3] = (rgb * (1 - s) + TINT * s).round().clip(0, 255).astype(np.uint8)
        dimmed[:, :3] = (rgb * self.style.dim).round().clip(0, 255).astype(np.uint8)
        self._plain, self._tinted, self._dimmed, self._key = plain, tinted, dimmed, key

    def layers(
        self, mode: ViewMode, *, colors: np.ndarray | None = None, colors_key: object = None
    ) -> tuple[np.ndarray, np.ndarray]:  # (plain [N, 4], dimmed [N, 4]) uint8
        """The looks with nothing selected and with everything dimmed: what the browser keeps ready per chunk."""
        self._prepare(mode, colors, colors_key)
        return self._plain, self._dimmed

    def tinted(self, mode: ViewMode, *, colors: np.ndarray | None = None, colors_key: object = None) -> np.ndarray:
        """Everything tinted [N, 4] uint8: a selected Gaussian's colour, the third look a browser keeps ready."""
        self._prepare(mode, colors, colors_key)
        return self._tinted

    def rgba(
        self,
        mode: ViewMode,
        selection: np.ndarray,  # [N] bool
        *,
        colors: np.ndarray | None = None,  # [N, 3] uint8
        colors_key: object = None,  # identifies `colors` (e.g. ("clusters", level)) without comparing arrays
        dim_rest: bool = True,
    ) -> np.ndarray:  # [N, 4] uint8
        self._prepare(mode, colors, colors_key)
        if mode == "isolate":
            if not selection.any():
                return self._plain
            out = self._plain.copy()
            out[~selection, 3] = 0
            return out
        if mode == "hide":
            out = self._plain.copy()
            out[selection, 3] = 0
            return out
        if not selection.any():
            return _as_look(self._plain, None, self._plain, self._tinted)
        rest = self._dimmed if dim_rest else self._plain
        last = self._last
        if last is not None and last[0] is self._tinted and last[1] is rest and last[2].shape == selection.shape:
            # A click changes few Gaussians: copy the previous look and redo only those (a copy is a quarter of
            # the select below). A fresh array each time: clients may still be reading the previous one.
            changed = np.flatnonzero(last[2] != selection)
            words = last[3].copy()
            words[changed] = np.where(selection[changed], _words(self._tinted)[changed], _words(rest)[changed])
        else:
            # On 32-bit words: one select per Gaussian instead of four (3 ms at 1M Gaussians instead of 15).
            words = np.where(selection, _words(self._tinted), _words(rest))
        kept = selection.copy()
        self._last = (self._tinted, rest, kept, words)
        return _as_look(words.view(np.uint8).reshape(-1, 4), kept, rest, self._tinted)

    def parts(
        self,
        mode: ViewMode,
        selection: np.ndarray,  # [N] bool
        *,
        colors: np.ndarray | None = None,  # [N, 3] uint8
        colors_key: object = None,
        dim_rest: bool = True,
    ) -> LookParts | np.ndarray:  # highlight looks as parts (made on demand), isolate and hide as [N, 4] uint8
        """The look `rgba` would return, as `LookParts` where it is a highlight look (equal once made)."""
        if mode in ("isolate", "hide"):
            return self.rgba(mode, selection, colors=colors, colors_key=colors_key, dim_rest=dim_rest)
        self._prepare(mode, colors, colors_key)
        if not selection.any():
            return LookParts(None, self._plain, self._tinted)
        return LookParts(selection.copy(), self._dimmed if dim_rest else self._plain, self._tinted)


def _words(rgba: np.ndarray) -> np.ndarray:  # [N, 4] uint8 → [N] uint32 view
    return np.ascontiguousarray(rgba).view(np.uint32).reshape(-1)


def label_colors(labels: np.ndarray) -> np.ndarray:  # [N] int, -1 = none → [N, 3] uint8
    """A distinct, stable colour per label (golden-ratio hues); unlabelled Gaussians grey."""
    labels = np.asarray(labels)
    uniq, inverse = np.unique(labels, return_inverse=True)
    hues = (np.arange(len(uniq)) * 0.618033988749895) % 1.0
    sat = np.where(np.arange(len(uniq)) % 2 == 0, 0.75, 0.55)
    val = np.where(np.arange(len(uniq)) % 3 == 0, 0.95, 0.8)
    palette = _hsv_to_rgb(hues, sat, val)
    palette[uniq < 0] = 0.5
    return (palette[inverse] * 255).round().astype(np.uint8)


def pca_colors(features: torch.Tensor, *, sample: int = 100_000, seed: int = 0) -> np.ndarray:  # [N, D] → [N, 3] u8
    """The first three principal components of the features as RGB, each stretched over its 1st–99th percentile.

    The basis is fitted on a random subsample so a 1M-Gaussian scene costs a fraction of a second.
    """
    f = features.detach().float().cpu()
    n = f.shape[0]
    if n == 0:
        return np.zeros((0, 3), np.uint8)
    g = torch.Generator().manual_seed(seed)
    fit = f[torch.randperm(n, generator=g)[:sample]] if n > sample else f
    mean = fit.mean(0)
    k = min(3, f.shape[1])
    _, _, v = torch.linalg.svd(fit - mean, full_matrices=False)
    proj = (f - mean) @ v[:k].T  # [N, k]
    if k < 3:
        proj = torch.cat([proj, proj.new_zeros(n, 3 - k)], 1)
    lo = torch.quantile(proj[: min(n, sample)], 0.01, dim=0)
    hi = torch.quantile(proj[: min(n, sample)], 0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
    return (rgb.numpy() * 255).round().astype(np.uint8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:  # [K] each → [K, 3] in [0, 1]
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], 1),
            np.stack([q, v, p], 1),
            np.stack([p, v, t], 1),
            np.stack([p, q, v], 1),
            np.stack([t, p, v], 1),
            np.stack([v, p, q], 1),
        ],
        0,
    )  # [6, K, 3]
    return table[i, np.arange(len(h))]

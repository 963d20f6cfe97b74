"""Selections: a boolean mask over the model's Gaussians, in the model file's order.

On disk a selection is a `.npy` bool vector [N] (read and written by `backend.io.selection`). In the viewer it is
a `SelectionState` (the mask with undo/redo) edited by clicks and by `select_in_rect` box drags.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .camera import Camera

# ---- editing state -------------------------------------------------------------------------------------------------

SelectOp = Literal["add", "subtract", "replace", "intersect"]
"""How a new set of Gaussians combines with the current selection (SuperSplat's and Photoshop's modes)."""

SELECT_OPS: tuple[str, ...] = ("replace", "add", "subtract", "intersect")


def combine(current: np.ndarray, new: np.ndarray, op: SelectOp) -> np.ndarray:  # [N] bool, [N] bool → [N] bool
    """`current` ∘ `new` under `op`; always a fresh array."""
    if op == "replace":
        return new.copy()
    if op == "add":
        return current | new
    if op == "subtract":
        return current & ~new
    if op == "intersect":
        return current & new
    raise ValueError(f"unknown selection op {op!r}; choose one of {', '.join(SELECT_OPS)}")


@dataclasses.dataclass(frozen=True)
class _Entry:
    packed: np.ndarray  # [ceil(N / 8)] uint8: np.packbits of the mask (8× smaller history at 1M Gaussians)
    label: str
    merge_key: object


class SelectionState:
    """The selection being edited: a bool mask [N] with an undo/redo history.

    Every change pushes a history entry, so undo steps back one click. A change carrying the same `merge_key` as the
    entry on top replaces it instead: dragging the threshold slider refines the last click rather than flooding the
    history. Masks are stored bit-packed (125 kB an entry at 1M Gaussians). Not thread-safe on its own: the viewer's
    session serialises the callers.
    """

    def __init__(self, num_gaussians: int, *, max_history: int = 100) -> None:
        if num_gaussians < 0:
            raise ValueError(f"num_gaussians must be ≥ 0, got {num_gaussians}")
        self.num_gaussians = num_gaussians
        """N: the length of every mask."""
        self.max_history = max(1, max_history)
        """Entries kept for undo (the oldest are dropped first)."""
        self._mask = np.zeros(num_gaussians, dtype=bool)
        self._history: list[_Entry] = [_Entry(np.packbits(self._mask), "start", None)]
        self._cursor = 0  # index of the entry that is the current mask
        self.version = 0
        """Bumped on every change (including undo/redo), so observers can tell whether they are up to date."""

    # ---- reading -----------------------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:  # [N] bool, read-only view
        view = self._mask.view()
        view.flags.writeable = False
        return view

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self._mask))

    @property
    def can_undo(self) -> bool:
        return self._cursor > 0

    @property
    def can_redo(self) -> bool:
        return self._cursor < len(self._history) - 1

    @property
    def last_label(self) -> str:
        """What made the current mask ("click", "rect", "invert", ...): shown beside undo."""
        return self._history[self._cursor].label

    # ---- editing -----------------------------------------------------------------------------------------------
    def set(self, mask: np.ndarray, *, label: str = "set", merge_key: object = None) -> bool:
        """Make `mask` [N] the selection; returns whether it changed."""
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape[0] != self.num_gaussians:
            raise ValueError(f"mask has {mask.shape[0]} entries for {self.num_gaussians} Gaussians")
        top = self._history[self._cursor]
        merging = merge_key is not None and top.merge_key == merge_key and self._cursor > 0
        if np.array_equal(mask, self._mask) and not merging:
            return False
        del self._history[self._cursor + 1 :]  # a new edit forgets the redo branch
        entry = _Entry(np.packbits(mask), label, merge_key)
        if merging:
            self._history[self._cursor] = entry
        else:
            self._history.append(entry)
            if len(self._history) > self.max_history + 1:
                del self._history[0]
            self._cursor = len(self._history) - 1
        changed = not np.array_equal(mask, self._mask)
        self._mask = mask.copy()
        self.version += 1
        return changed

    def apply(
        self,
        new: np.ndarray,  # [N] bool
        op: SelectOp,
        *,
        base: np.ndarray | None = None,  # [N] bool
        label: str = "",
        merge_key: object = None,
    ) -> bool:
        """Combine `new` [N] with `base` (default: the current selection) under `op`; returns whether it changed.

        `base` lets a refined prompt (a second click on the same object) recombine with the selection as it was
        before the prompt began, rather than with its own previous result.
        """
        new = np.asarray(new, dtype=bool).reshape(-1)
        start = self._mask if base is None else np.asarray(base, dtype=bool)
        return self.set(combine(start, new, op), label=label or op, merge_key=merge_key)

    def invert(self) -> bool:
        return self.set(~self._mask, label="invert")

    def clear(self) -> bool:
        return self.set(np.zeros(self.num_gaussians, dtype=bool), label="clear")

    def undo(self) -> bool:
        if not self.can_undo:
            return False
        self._cursor -= 1
        self._restore()
        return True

    def redo(self) -> bool:
        if not self.can_redo:
            return False
        self._cursor += 1
        self._restore()
        return True

    def _restore(self) -> None:
        packed = self._history[self._cursor].packed
        self._mask = np.unpackbits(packed, count=self.num_gaussians).astype(bool)
        self.version += 1


# ---- rectangle selection -------------------------------------------------------------------------------------------

_OCCLUDER_OPACITY = 0.5
"""Only Gaussians at least this opaque hide what is behind them in the rectangle's depth test."""


def select_in_rect(
    means: Tensor,  # [N, 3] world positions
    camera: Camera,
    rect: tuple[float, float, float, float],  # (x0, y0, x1, y1) pixel positions in `camera`
    *,
    opacities: Tensor | None = None,  # [N] in (0, 1): who may occlude (default: everyone)
    sigma_max: Tensor | None = None,  # [N] largest standard deviation: footprint size and depth tolerance
    front_only: bool = True,
) -> np.ndarray:  # [N] bool
    """The Gaussians whose centres project inside `rect`; with `front_only`, only those on the visible surface.

    A box drag must not grab the back of a mug or the table under it (SuperSplat's "selection depth"). Rendering a
    depth map on the CPU costs seconds, so the front surface comes from a z-buffer of the opaque Gaussians' centres
    on a grid of cells about one splat footprint wide, min-pooled over 3×3 cells to close the gaps between centres:
    a Gaussian is in front when its depth is within a footprint-sized tolerance of the nearest depth around it.
    """
    x0, x1 = sorted((float(rect[0]), float(rect[2])))
    y0, y1 = sorted((float(rect[1]), float(rect[3])))
    n = means.shape[0]
    out = np.zeros(n, dtype=bool)
    if n == 0 or x1 - x0 <= 0 or y1 - y0 <= 0:
        return out
    viewmat = camera.viewmat(means.device)
    p = means.float() @ viewmat[:3, :3].T + viewmat[:3, 3]  # [N, 3] camera space
    z = p[:, 2]
    zs = torch.where(z > 1e-6, z, torch.ones_like(z))
    u = camera.fx * p[:, 0] / zs + camera.cx
    v = camera.fy * p[:, 1] / zs + camera.cy
    inside = (z > 0.01) & (u >= x0) & (u < x1) & (v >= y0) & (v < y1)
    ids = torch.nonzero(inside).squeeze(1)
    if ids.numel() == 0:
        return out
    if not front_only:
        out[ids.cpu().numpy()] = True
        return out

    sig = sigma_max[ids].float() if sigma_max is not None else torch.zeros(ids.numel(), device=means.device)
    f = min(camera.fx, camera.fy)
    zi, ui, vi = z[ids], u[ids], v[ids]
    occluder = opacities[ids] >= _OCCLUDER_OPACITY if opacities is not None else torch.ones_like(zi, dtype=torch.bool)
    footprint_px = 2.0 * sig * f / zi  # ≈ diameter of a splat on screen
    typical = footprint_px[occluder].median().item() if occluder.any() else 2.0
    cell = float(min(max(typical, 1.0), 32.0))
    gw = math.ceil((x1 - x0) / cell) + 1
    gh = math.ceil((y1 - y0) / cell) + 1
    cu = ((ui - x0) / cell).long().clamp(0, gw - 1)
    cv = ((vi - y0) / cell).long().clamp(0, gh - 1)
    flat = cv * gw + cu
    zbuf = torch.full((gh * gw,), float("inf"), device=means.device)
    zbuf.scatter_reduce_(0, flat[occluder], zi[occluder], reduce="amin")
    pooled = -torch.nn.functional.max_pool2d(-zbuf.view(1, 1, gh, gw), 3, stride=1, padding=1).view(-1)
    # The surface may tilt away within one cell; allow a cell's width of depth plus the splat's own thickness.
    tolerance = 2.0 * cell * zi / f + 3.0 * sig
    front = zi <= pooled[flat] + tolerance
    out[ids[front].cpu().numpy()] = True
    return out

"""The Gaussians as browser-side splats, split into spatially coherent chunks.

viser sends a splat node's whole 32-byte-a-Gaussian buffer whenever any of it changes. One node for the scene would
resend the scene on every click; one node per chunk of neighbouring Gaussians resends only the chunks the selection
touches (viser sorts the Gaussians of all nodes together, so chunks blend correctly). Chunks are the leaves of a
k-d tree with median splits along the longest axis: equal counts, compact boxes, so an object lands in few chunks.

Geometry (centres, covariances) never changes after the scene opens; only the RGBA word of each Gaussian does
(highlight tint, dimming, hiding, cluster colours). Each chunk keeps ready the two looks most chunks have (the
scene's colours and the dimmed ones), so a chunk the selection does not touch only switches which node is visible;
a chunk that is entirely hidden is switched off rather than resent with zero opacity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch

from backend.core.scene import GaussianScene
from backend.render.projection import covariances

from .looks import look_parts

BYTES_PER_GAUSSIAN = 32
"""viser's splat layout: centre 3×f32, a reserved word, covariance 6×f16, RGBA 4×u8."""

DEFAULT_CHUNK_SIZE = 1024
"""Gaussians per chunk: small enough that an object touches little more than its own share of the scene (a tabletop
object is ~10% of its Gaussians; at 128 chunks selecting one resends ~16% of the buffer), large enough that the
browser's per-node work (one transform per node and frame) stays small."""

MAX_CHUNKS = 512


def chunk_count(num_gaussians: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """A power of two between 1 and MAX_CHUNKS with about `chunk_size` Gaussians a chunk."""
    want = max(1, -(-num_gaussians // chunk_size))
    count = 1
    while count < want and count < MAX_CHUNKS:
        count *= 2
    return count


def spatial_chunks(
    means: np.ndarray,  # [N, 3]
    num_chunks: int,
) -> tuple[np.ndarray, np.ndarray]:  # order [N] int64, bounds [C + 1] int64
    """A permutation that groups Gaussians into `num_chunks` compact boxes, and where each chunk starts.

    Chunk c is `order[bounds[c]:bounds[c + 1]]`. Median splits along each box's longest axis (a k-d tree) keep the
    counts equal to within one and the boxes close to cubes.
    """
    n = means.shape[0]
    num_chunks = max(1, min(num_chunks, max(n, 1)))
    pieces = [np.arange(n, dtype=np.int64)]
    while len(pieces) < num_chunks:
        # Split the largest piece; with a power-of-two count this is a balanced tree.
        k = max(range(len(pieces)), key=lambda i: len(pieces[i]))
        ids = pieces.pop(k)
        pts = means[ids]
        axis = int(np.argmax(pts.max(0) - pts.min(0))) if len(ids) else 0
        half = len(ids) // 2
        part = np.argpartition(pts[:, axis], half) if len(ids) > 1 else np.arange(len(ids))
        pieces[k:k] = [ids[part[:half]], ids[part[half:]]]
    order = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    bounds = np.zeros(len(pieces) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([len(p) for p in pieces])
    return order, bounds


def pack_geometry(scene: GaussianScene) -> np.ndarray:  # [N, 8] uint32, RGBA word zero
    """The static part of viser's splat buffer (same layout as `SceneApi.add_gaussian_splats`)."""
    n = len(scene)
    buffer = np.zeros((n, 8), dtype=np.uint32)
    buffer[:, 0:3] = np.ascontiguousarray(scene.means.detach().cpu().numpy(), dtype=np.float32).view(np.uint32)
    with torch.no_grad():
        cov = covariances(scene.to("cpu")).numpy().reshape(n, 9)
    triu = np.ascontiguousarray(cov[:, [0, 1, 2, 4, 5, 8]], dtype=np.float16)
    buffer[:, 4:7] = triu.view(np.uint32)
    return buffer


def rgba_words(rgba: np.ndarray) -> np.ndarray:  # [N, 4] uint8 → [N] uint32 (the buffer's last word)
    return np.ascontiguousarray(rgba, dtype=np.uint8).view(np.uint32).reshape(-1)


def _unpack(buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Buffer [n, 8] → (centres [n, 3], covariances [n, 3, 3], rgb [n, 3] u8, opacity [n, 1] u8), exactly: viser packs
    them back into the same words (f16 → f32 → f16 and u8 → u8 are lossless)."""
    centers = buffer[:, 0:3].view(np.float32)
    triu = buffer[:, 4:7].copy().view(np.float16)  # [n, 6]; kept float16 so viser's cast back is free
    cov = triu[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(-1, 3, 3)
    rgba = buffer[:, 7:8].copy().view(np.uint8).reshape(-1, 4)
    return centers, cov, rgba[:, :3], rgba[:, 3:4]


class _SplatHandle(Protocol):
    buffer: np.ndarray
    visible: bool

    def remove(self) -> None: ...


class _SceneApi(Protocol):
    def add_gaussian_splats(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclasses.dataclass
class UpdateStats:
    """What one look change cost on the wire for one client."""

    bytes_sent: int = 0
    """Splat buffer bytes resent (32 per Gaussian of every resent chunk)."""
    chunks_resent: int = 0
    chunks_toggled: int = 0
    """Chunks that only switched which node shows, or on or off (a few bytes, no buffer)."""
    full_bytes: int = 0
    """The whole scene's buffer: what a single-node viewer would resend."""

    @property
    def share(self) -> float:
        return self.bytes_sent / self.full_bytes if self.full_bytes else 0.0


class SplatChunks:
    """The chunk layout of one scene, shared by every client: order, bounds and the packed geometry."""

    def __init__(self, scene: GaussianScene, *, num_chunks: int | None = None) -> None:
        n = len(scene)
        self.num_gaussians = n
        count = chunk_count(n) if num_chunks is None else num_chunks
        order, self.bounds = spatial_chunks(scene.means.detach().cpu().numpy(), count)
        self.order = order.astype(np.int32) if n < 2**31 else order
        """[N] chunk order → model order; int32: half the server's bytes (12 MB at 3M Gaussians), and the int32
        gathers every browser's `LayeredSplats` reads without a copy of its own."""
        self.geometry = pack_geometry(scene)[self.order]  # [N, 8] uint32 in chunk order
        """The static buffer words, already in chunk order: a chunk's buffer is a contiguous slice."""
        self._chunk_of: np.ndarray | None = None
        self._chunk_ids: np.ndarray | None = None

    @property
    def num_chunks(self) -> int:
        return len(self.bounds) - 1

    def chunk_slice(self, c: int) -> slice:
        return slice(int(self.bounds[c]), int(self.bounds[c + 1]))

    def chunk_of(self) -> np.ndarray:  # [N] int: the chunk each Gaussian (model order) belongs to
        out = np.empty(self.num_gaussians, dtype=np.int64)
        out[self.order] = np.repeat(np.arange(self.num_chunks), np.diff(self.bounds))
        return out

    def chunk_of_int32(self) -> np.ndarray:  # [N] int32, kept: what a selection change looks its chunks up in
        if self._chunk_of is None:
            self._chunk_of = self.chunk_of().astype(np.int32)
        return self._chunk_of

    def chunk_ids(self) -> np.ndarray:  # [N] uint16 (int32 past 65536 chunks), kept: what a look counts chunks with
        """`chunk_of` in the narrowest type that holds it: counting a selection per chunk reads it whole, so uint16
        halves that pass's bytes (`looks.selected_per_chunk`)."""
        if self._chunk_ids is None:
            small = self.num_chunks <= np.iinfo(np.uint16).max + 1
            self._chunk_ids = self.chunk_of_int32().astype(np.uint16) if small else self.chunk_of_int32()
        return self._chunk_ids

    def in_chunk_order(self, words: np.ndarray) -> np.ndarray:  # [N] in model order → [N] in chunk order
        return words[self.order]


Layer = Literal["base", "dim", "mix"]
LAYERS: tuple[Layer, ...] = ("base", "dim", "mix")


class ChunkedSplats:
    """One client's splat nodes: up to three per chunk, so most selection changes are visibility toggles.

    Highlighting dims everything that is not selected, which would make the first selection (and every clear)
    resend the whole scene. Instead each chunk keeps a `base` node (the scene's colours), a `dim` node (the same,
    dimmed; sent once, hidden, after the first frame) and, only while it holds selected Gaussians, a `mix` node with
    its exact look. A selection change then resends only the chunks the old or new selection touches; the others
    switch between `base` and `dim` with a few bytes. A chunk with nothing to show is switched off.
    """

    def __init__(
        self,
        scene_api: _SceneApi,
        chunks: SplatChunks,
        rgba: np.ndarray,  # [N, 4] uint8 in model order: the first look (drawn by the `base` nodes)
        *,
        prefix: str = "/splats",
    ) -> None:
        self.scene_api = scene_api
        self.chunks = chunks
        self.prefix = prefix
        c = chunks.num_chunks
        self._handles: dict[Layer, list[_SplatHandle | None]] = {layer: [None] * c for layer in LAYERS}
        # The words each layer's node holds, for all chunks at once ([N] in chunk order; valid where `_has`), so
        # that an update compares every chunk in three vectorised passes instead of one comparison per chunk.
        self._stored: dict[Layer, np.ndarray] = {layer: np.zeros(chunks.num_gaussians, np.uint32) for layer in LAYERS}
        self._has: dict[Layer, np.ndarray] = {layer: np.zeros(c, dtype=bool) for layer in LAYERS}
        self._shown: list[Layer | None] = [None] * c
        self._reordered_cache: list[tuple[np.ndarray, np.ndarray]] = []
        self.incremental = True
        """Take the incremental path for `Look`s (False: always compare every chunk, the reference)."""
        self._last_look: tuple[tuple[np.ndarray | None, np.ndarray, np.ndarray], np.ndarray, np.ndarray] | None = None
        self._flag_cache: dict[tuple[str, int, int] | tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._holds_cache: dict[Layer, tuple[np.ndarray, np.ndarray]] = {}
        words = chunks.in_chunk_order(rgba_words(rgba))
        for i in range(c):
            sl = chunks.chunk_slice(i)
            if sl.stop > sl.start:
                visible = bool((_alpha(words[sl]) > 0).any())
                self._send("base", i, words[sl], visible=visible)
                self._shown[i] = "base" if visible else None

    @property
    def handles(self) -> list[_SplatHandle]:
        """The `base` node of every chunk (what a client starts with)."""
        return [h for h in self._handles["base"] if h is not None]

    def node_count(self) -> int:
        return sum(h is not None for layer in LAYERS for h in self._handles[layer])

    def _buffer(self, i: int, words: np.ndarray) -> np.ndarray:  # → [n_c, 8] uint32
        buffer = self.chunks.geometry[self.chunks.chunk_slice(i)].copy()
        buffer[:, 7] = words
        return buffer

    def _send(self, layer: Layer, i: int, words: np.ndarray, *, visible: bool) -> int:
        """Create or refill a node; returns the bytes sent."""
        handle = self._handles[layer][i]
        if handle is None:
            centers, covs, rgbs, opacities = _unpack(self._buffer(i, words))
            self._handles[layer][i] = self.scene_api.add_gaussian_splats(
                f"{self.prefix}/{layer}/chunk_{i:03d}",
                centers=centers,
                covariances=covs,
                rgbs=rgbs,
                opacities=opacities,
                visible=visible,
            )
        else:
            handle.buffer = self._buffer(i, words)
        sl = self.chunks.chunk_slice(i)
        self._stored[layer][sl] = words
        self._has[layer][i] = True
        hit = self._holds_cache.get(layer)
        if hit is not None:
            hit[1][i] = np.array_equal(words, hit[0][sl])
        return len(words) * BYTES_PER_GAUSSIAN

    def prefetch_dim(self, dimmed: np.ndarray) -> int:  # dimmed [N, 4] uint8 → bytes sent
        """Send the hidden `dim` nodes ahead of the first selection (after the first frame: it doubles the load)."""
        words = self.chunks.in_chunk_order(rgba_words(dimmed))
        sent = 0
        for i in range(self.chunks.num_chunks):
            sl = self.chunks.chunk_slice(i)
            held = self._has["dim"][i] and np.array_equal(self._stored["dim"][sl], words[sl])
            if sl.stop > sl.start and not held:
                sent += self._send("dim", i, words[sl], visible=False)
        return sent

    def update(
        self,
        rgba: np.ndarray,  # [N, 4] uint8 in model order: the look to show
        *,
        plain: np.ndarray | None = None,  # [N, 4] uint8: the look with nothing selected (what `base` draws)
        dimmed: np.ndarray | None = None,  # [N, 4] uint8: everything dimmed (what `dim` draws)
    ) -> UpdateStats:
        """Bring the browser to this look; returns what it cost.

        When `rgba` and the previous look are `Look`s of the same colouring (a click in highlight mode), only the
        chunks holding Gaussians whose state changed are compared and resent (`_update_incremental`); the rest of
        the scene at most switches between its `base` and `dim` nodes. Otherwise every chunk is compared
        (`_update_full`, the reference the incremental path is tested against)."""
        stats = UpdateStats(full_bytes=self.chunks.num_gaussians * BYTES_PER_GAUSSIAN)
        parts = look_parts(rgba)
        previous = self._last_look
        self._last_look = None
        if self.incremental and parts is not None and previous is not None and dimmed is not None:
            done = self._update_incremental(rgba, parts, previous, plain, dimmed, stats)
        else:
            done = False
        if not done:
            self._update_full(rgba, plain, dimmed, stats)
        if parts is not None and plain is not None and dimmed is not None:
            self._last_look = (parts, plain, dimmed)
        return stats

    def _update_full(
        self, rgba: np.ndarray, plain: np.ndarray | None, dimmed: np.ndarray | None, stats: UpdateStats
    ) -> None:
        chunks = self.chunks
        sizes = np.diff(chunks.bounds)
        idx = np.flatnonzero(sizes > 0)
        words = chunks.in_chunk_order(rgba_words(rgba))
        self._settle_words(idx, None, words, self._reordered(plain), self._reordered(dimmed), stats)

    def _update_incremental(
        self,
        rgba: np.ndarray,  # [N, 4] uint8, a `Look`
        parts: tuple[np.ndarray | None, np.ndarray, np.ndarray],
        previous: tuple[tuple[np.ndarray | None, np.ndarray, np.ndarray], np.ndarray, np.ndarray],
        plain: np.ndarray | None,
        dimmed: np.ndarray,
        stats: UpdateStats,
    ) -> bool:  # False: not applicable, nothing done
        selection, rest, tinted = parts
        (old_selection, old_rest, old_tinted), old_plain, old_dimmed = previous
        if plain is None or old_plain is not plain or old_dimmed is not dimmed or old_tinted is not tinted:
            return False
        if not all(r is plain or r is dimmed for r in (rest, old_rest)):
            return False
        n = self.chunks.num_gaussians
        if (selection is not None and len(selection) != n) or (old_selection is not None and len(old_selection) != n):
            return False
        # Gaussians whose word may have changed: those whose selection flipped and, when the rest switched between
        # the plain and the dimmed look, every selected one before or after (their chunks mix the two).
        if rest is old_rest:
            if selection is None and old_selection is None:
                changed = np.zeros(0, np.int64)
            elif selection is None or old_selection is None:
                changed = np.flatnonzero(selection if old_selection is None else old_selection)
            else:
                changed = np.flatnonzero(selection != old_selection)
        else:
            if selection is None or old_selection is None:
                either = selection if old_selection is None else old_selection
            else:
                either = selection | old_selection
            changed = np.flatnonzero(either) if either is not None else np.zeros(0, np.int64)
        chunks = self.chunks
        touched = np.zeros(chunks.num_chunks, dtype=bool)
        touched[chunks.chunk_of_int32()[changed]] = True
        touched &= np.diff(chunks.bounds) > 0
        idx = np.flatnonzero(touched)
        plain_words, dim_words = self._reordered(plain), self._reordered(dimmed)
        if idx.size:
            starts, stops = chunks.bounds[idx], chunks.bounds[idx + 1]
            pos = _ranges(starts, stops)
            words = rgba_words(rgba)[chunks.order[pos]]
            self._settle_words(idx, pos, words, plain_words, dim_words, stats)
        if rest is not old_rest:
            # Every other chunk is all `rest`: it shows `base` or `dim` (or nothing), decided per chunk from flags
            # kept per look, and is resent only when that node does not hold it yet.
            others = np.flatnonzero(~touched & (np.diff(chunks.bounds) > 0))
            rest_words = plain_words if rest is plain else dim_words
            assert plain_words is not None and dim_words is not None and rest_words is not None
            is_plain = (
                np.ones(others.size, bool) if rest is plain else self._chunk_flags(plain_words, dim_words)[others]
            )
            targets = np.where(is_plain, "base", "dim").astype(object)
            targets[self._zero_alpha(rest_words)[others]] = None
            current = {
                "base": self._holds("base", plain_words)[others],
                "dim": self._holds("dim", dim_words)[others],
                "mix": np.zeros(others.size, bool),
            }
            self._settle(others, targets, current, lambda k: rest_words[self.chunks.chunk_slice(int(others[k]))], stats)
        return True

    def _settle_words(
        self,
        idx: np.ndarray,  # [K] nonempty chunk indices, ascending
        pos: np.ndarray | None,  # [M] their positions in chunk order, concatenated (None: all, idx = every chunk)
        words: np.ndarray,  # [M] the look's words at `pos`
        plain_words: np.ndarray | None,  # [N] in chunk order
        dim_words: np.ndarray | None,  # [N] in chunk order
        stats: UpdateStats,
    ) -> None:
        """Decide each chunk's layer from its words and bring the nodes there (the comparisons over `pos` only)."""
        sizes = np.diff(self.chunks.bounds)[idx]
        local = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=local[1:])

        def at(arr: np.ndarray) -> np.ndarray:
            return arr if pos is None else arr[pos]

        def chunk_all(flags: np.ndarray) -> np.ndarray:  # [M] bool → [K] bool: all True within the chunk
            return np.logical_and.reduceat(flags, local[:-1]) if idx.size else np.zeros(0, bool)

        visible = ~chunk_all(_alpha(words) == 0)
        as_plain = chunk_all(words == at(plain_words)) if plain_words is not None else None
        as_dim = chunk_all(words == at(dim_words)) if dim_words is not None else None
        targets = np.full(idx.size, "mix", dtype=object)
        if as_dim is not None:
            targets[as_dim] = "dim"
        targets[as_plain if as_plain is not None else slice(None)] = "base"
        targets[~visible] = None
        current = {layer: self._has[layer][idx] & chunk_all(words == at(self._stored[layer])) for layer in LAYERS}
        self._settle(idx, targets, current, lambda k: words[local[k] : local[k + 1]], stats)

    def _settle(
        self,
        idx: np.ndarray,  # [K] chunk indices
        targets: np.ndarray,  # [K] object: the layer each should show, None = off
        current: dict[Layer, np.ndarray],  # layer → [K] bool: that layer's node holds the chunk's look
        words_of: Callable[[int], np.ndarray],  # k → the words of chunk idx[k]
        stats: UpdateStats,
    ) -> None:
        shown = np.array([self._shown[int(i)] for i in idx], dtype=object)
        up_to_date = np.zeros(idx.size, dtype=bool)
        for layer in LAYERS:
            up_to_date |= (targets == layer) & current[layer]
        # A chunk already showing an up-to-date target needs nothing (its nodes' visibility is already right);
        # so does one that stays switched off.
        settled = (shown == targets) & (up_to_date | (targets == None))  # noqa: E711 (elementwise on objects)
        # Plain Python values from here: the loop runs once per switched chunk (hundreds when dimming switches).
        todo = np.flatnonzero(~settled).tolist()
        chunk_ids = idx.tolist()
        stale = {layer: (~current[layer]).tolist() for layer in LAYERS}
        handles = self._handles
        for k in todo:
            i = chunk_ids[k]
            target: Layer | None = targets[k]
            resent = False
            if target is not None and stale[target][k]:
                stats.bytes_sent += self._send(target, i, words_of(k), visible=True)
                stats.chunks_resent += 1
                resent = True
            if target != self._shown[i] and not resent:
                stats.chunks_toggled += 1
            for layer in LAYERS:
                handle = handles[layer][i]
                if handle is None:
                    continue
                if layer == "mix" and target != "mix":
                    handle.remove()  # only selected chunks keep a third copy for the browser to sort
                    handles["mix"][i] = None
                    self._has["mix"][i] = False
                elif bool(handle.visible) != (layer == target):
                    handle.visible = layer == target
            self._shown[i] = target

    def _chunk_all(self, flags: np.ndarray) -> np.ndarray:  # [N] bool in chunk order → [C] bool
        starts, sizes = self.chunks.bounds[:-1], np.diff(self.chunks.bounds)
        out = np.zeros(self.chunks.num_chunks, dtype=bool)
        nonempty = sizes > 0
        if len(flags):
            out[nonempty] = np.logical_and.reduceat(flags, starts[nonempty])
        return out

    def _chunk_flags(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [N] words, [N] words → [C] all equal
        """Per chunk, whether two of the kept looks agree everywhere (cached per pair, by identity)."""
        key = ("eq", id(a), id(b))
        hit = self._flag_cache.get(key)
        if hit is None or hit[0] is not a or hit[1] is not b:
            hit = (a, b, self._chunk_all(a == b))
            self._flag_cache[key] = hit
        return hit[2]

    def _zero_alpha(self, words: np.ndarray) -> np.ndarray:  # [N] words in chunk order → [C] all hidden
        key = ("zero", id(words))
        hit = self._flag_cache.get(key)
        if hit is None or hit[0] is not words:
            hit = (words, words, self._chunk_all(_alpha(words) == 0))
            self._flag_cache[key] = hit
        return hit[2]

    def _holds(self, layer: Layer, ref: np.ndarray) -> np.ndarray:  # ref [N] words in chunk order → [C] bool
        """Per chunk, whether `layer`'s node holds exactly `ref`'s words; computed once per look and kept current
        by `_send`, so a dim switch does not compare the whole scene."""
        hit = self._holds_cache.get(layer)
        if hit is None or hit[0] is not ref:
            hit = (ref, self._has[layer] & self._chunk_all(self._stored[layer] == ref))
            self._holds_cache[layer] = hit
        return hit[1]

    def _reordered(self, rgba: np.ndarray | None) -> np.ndarray | None:  # [N, 4] → [N] words in chunk order
        """The plain and dimmed looks change only with the colouring, so their reordered words are kept."""
        if rgba is None:
            return None
        for source, words in self._reordered_cache:
            if source is rgba:
                return words
        words = self.chunks.in_chunk_order(rgba_words(rgba))
        self._reordered_cache = [*self._reordered_cache[-1:], (rgba, words)]
        return words

    def remove(self) -> None:
        for layer in LAYERS:
            for i, handle in enumerate(self._handles[layer]):
                if handle is not None:
                    handle.remove()
                    self._handles[layer][i] = None
                    self._has[layer][i] = False
        self._holds_cache.clear()
        self._last_look = None


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:  # [K], [K] → concatenated aranges
    sizes = stops - starts
    total = int(sizes.sum())
    offsets = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    return offsets + np.arange(total, dtype=np.int64)


def _alpha(words: np.ndarray) -> np.ndarray:  # [n] uint32 → [n] uint8
    return (words >> 24).astype(np.uint8)  # little-endian RGBA: A is the high byte

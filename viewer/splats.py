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
from typing import Any, Literal, Protocol

import numpy as np
import torch

from backend.core.scene import GaussianScene
from backend.render.projection import covariances

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
        self.order, self.bounds = spatial_chunks(scene.means.detach().cpu().numpy(), count)
        self.geometry = pack_geometry(scene)[self.order]  # [N, 8] uint32 in chunk order
        """The static buffer words, already in chunk order: a chunk's buffer is a contiguous slice."""

    @property
    def num_chunks(self) -> int:
        return len(self.bounds) - 1

    def chunk_slice(self, c: int) -> slice:
        return slice(int(self.bounds[c]), int(self.bounds[c + 1]))

    def chunk_of(self) -> np.ndarray:  # [N] int: the chunk each Gaussian (model order) belongs to
        out = np.empty(self.num_gaussians, dtype=np.int64)
        out[self.order] = np.repeat(np.arange(self.num_chunks), np.diff(self.bounds))
        return out

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
        self._stored[layer][self.chunks.chunk_slice(i)] = words
        self._has[layer][i] = True
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
        """Bring the browser to this look; returns what it cost."""
        chunks = self.chunks
        words = chunks.in_chunk_order(rgba_words(rgba))
        stats = UpdateStats(full_bytes=chunks.num_gaussians * BYTES_PER_GAUSSIAN)
        starts, sizes = chunks.bounds[:-1], np.diff(chunks.bounds)
        nonempty = sizes > 0

        def chunk_all(flags: np.ndarray) -> np.ndarray:  # [N] bool → [C] bool: all True within the chunk
            out = np.zeros(chunks.num_chunks, dtype=bool)
            if len(flags):
                out[nonempty] = np.logical_and.reduceat(flags, starts[nonempty])
            return out

        visible = ~chunk_all(_alpha(words) == 0) & nonempty
        plain_words = self._reordered(plain)
        dim_words = self._reordered(dimmed)
        as_plain = chunk_all(words == plain_words) if plain_words is not None else None
        as_dim = chunk_all(words == dim_words) if dim_words is not None else None

        # Which layer each chunk should show, and whether that layer already holds these words.
        targets = np.full(chunks.num_chunks, "mix", dtype=object)
        if as_dim is not None:
            targets[as_dim] = "dim"
        targets[as_plain if as_plain is not None else slice(None)] = "base"
        targets[~visible] = None
        current = {layer: self._has[layer] & chunk_all(words == self._stored[layer]) for layer in LAYERS}
        shown = np.array(self._shown, dtype=object)
        up_to_date = np.zeros(chunks.num_chunks, dtype=bool)
        for layer in LAYERS:
            up_to_date |= (targets == layer) & current[layer]
        # A chunk already showing an up-to-date target needs nothing (its nodes' visibility is already right);
        # so does one that stays switched off.
        settled = (shown == targets) & (up_to_date | (targets == None))  # noqa: E711 (elementwise on objects)
        for i in np.flatnonzero(~settled):
            i = int(i)
            sl = chunks.chunk_slice(i)
            target: Layer | None = targets[i]
            resent = False
            if target is not None and not current[target][i]:
                stats.bytes_sent += self._send(target, i, words[sl], visible=True)
                stats.chunks_resent += 1
                resent = True
            if target != self._shown[i] and not resent:
                stats.chunks_toggled += 1
            for layer in LAYERS:
                handle = self._handles[layer][i]
                if handle is None:
                    continue
                if layer == "mix" and target != "mix":
                    handle.remove()  # only selected chunks keep a third copy for the browser to sort
                    self._handles["mix"][i] = None
                    self._has["mix"][i] = False
                    continue
                want = layer == target
                if bool(handle.visible) != want:
                    handle.visible = want
            self._shown[i] = target
        return stats

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


def _alpha(words: np.ndarray) -> np.ndarray:  # [n] uint32 → [n] uint8
    return (words >> 24).astype(np.uint8)  # little-endian RGBA: A is the high byte

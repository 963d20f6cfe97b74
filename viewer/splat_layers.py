"""The browser's splats as look layers under parent frames: a click costs messages for the chunks it touches only.

`ChunkedSplats` (splats.py, the reference) keeps per chunk a `base` and a `dim` node and switches each chunk's own
node visibility: the first selection and every clear switch every chunk (~480 visibility messages and as many Python
steps at 1M Gaussians). Here each layer's chunk nodes hang under one parent frame (`/splats/base`, `/splats/dim`,
`/splats/tint`, `/splats/mix`); viser's splat renderer draws a node only when its whole parent chain is visible (the
scene tree's `effectiveVisibility`), so dimming the scene is two frame messages. A chunk node's own visibility only
has to be right while its frame is visible, so it is corrected lazily, when the frame is shown: the chunks that differ
from the layer's default are those the previous and the current selection touch.

A third prefetched layer, `tint` (every Gaussian tinted), lets a chunk that lies wholly inside the selection switch
to it instead of being resent: only the chunks on the selection's boundary travel, with their exact look, in a few
`mix` batch nodes. Selecting another object therefore sends the boundary chunks only (~4% of the buffer at 1M
Gaussians and 512 chunks instead of the object's own ~10%). The cost is a third copy of the scene in the browser's
memory and sort, sent once after the first frame like the dimmed one.

Which layer draws a chunk follows from how many of its Gaussians are selected (none: the rest's layer, all: tint,
some: mix), so the look's [N, 4] array is never made (`LookParts`). Those counts, the one pass over the whole
selection a click costs, are made once per look and read by every browser shown it (`LookParts.chunk_counts`);
browsers in step also send the same mixed rows, made once (`LookParts.shared`). A chunk that stays mixed keeps its
batch when its words are unchanged, checked on its own rows.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from ._layer_kernels import blend_runs
from ._layer_kernels import warm_up as warm_up_kernels
from .looks import LookParts, look_parts, selected_per_chunk_reference
from .splats import BYTES_PER_GAUSSIAN, SplatChunks, UpdateStats, _alpha, _unpack, rgba_words

Runs = tuple[np.ndarray, np.ndarray]
"""Chunk-order row ranges [lo, hi) as two [K] int64 arrays (a chunk's rows are one run)."""
LayerName = Literal["base", "dim", "tint", "mix"]
LAYER_NAMES: tuple[LayerName, ...] = ("base", "dim", "tint", "mix")
BASE, DIM, TINT, MIX = 0, 1, 2, 3
OFF = -1
"""A chunk's target: the layer whose node draws it, or OFF when nothing in it has any opacity."""
KEPT = (BASE, DIM, TINT)
"""The layers that hold a whole colouring (prefetched, reused); `mix` holds the mixed chunks' exact looks."""
MIX_BATCH_CHUNKS = 8
"""Mixed chunks per `mix` node: one node per chunk costs a Python step and a message each (~20 per click at 1M);
one node per click would resend every mixed chunk on any later change. Chunk indices follow the k-d tree, so a batch
holds neighbours and a local edit dirties few batches."""
_EMPTY_SPLATS = (
    np.zeros((0, 3), np.float32),
    np.zeros((0, 3, 3), np.float32),
    np.zeros((0, 3), np.uint8),
    np.zeros((0, 1), np.uint8),
)
"""Centres, covariances, colours and opacities of no Gaussians: a node created before its buffer is set."""
DEFAULT_CHILD_VISIBLE = {BASE: True, DIM: True, TINT: False, MIX: True}
"""A new node's own visibility while its frame is hidden: most chunks show the rest of the scene (base or dim); only
the selected ones show tint."""


class _Handle(Protocol):
    visible: bool

    def remove(self) -> None: ...


class _SceneApi(Protocol):
    def add_gaussian_splats(self, name: str, *args: Any, **kwargs: Any) -> Any: ...

    def add_frame(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


class LayeredSplats:
    """One client's splat nodes: per chunk up to one node per kept layer, mixed chunks in batch nodes, each layer
    under its own frame.

    `update` decides per chunk which layer draws it (its target), sends the nodes that do not hold their layer's
    words yet, replaces `mix` batches no longer right, shows the frames of the layers in use and hides the others,
    and corrects the own visibility of the nodes under visible frames where it differs from the target.
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
        c, n = chunks.num_chunks, chunks.num_gaussians
        self._sizes = np.diff(chunks.bounds)
        self._frames = [scene_api.add_frame(f"{prefix}/{name}", show_axes=False, visible=False) for name in LAYER_NAMES]
        self._frame_visible = [False] * len(LAYER_NAMES)
        self._handles: list[list[_Handle | None]] = [[None] * c for _ in LAYER_NAMES]
        self._child_visible = [np.zeros(c, bool) for _ in LAYER_NAMES]
        self._stored = [np.zeros(n, np.uint32) for _ in LAYER_NAMES]
        """The words each layer's nodes hold, in chunk order (valid where `_has`)."""
        self._has = [np.zeros(c, bool) for _ in LAYER_NAMES]
        self._refs: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(KEPT)
        """Per kept layer: (the look it should hold, its words in chunk order, per chunk whether the node holds it)."""
        self._zero_cache: list[tuple[np.ndarray, np.ndarray]] = []
        self._step_cache: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._target = np.full(c, OFF, np.int8)
        self._mix_ok = np.zeros(c, bool)
        """Whether chunk c's words in its `mix` batch are the current look's."""
        self._mix_batch = np.full(c, -1, np.int64)
        """The `mix` node (batch) holding chunk c's exact look, -1 = none."""
        self._mix_nodes: dict[int, _Handle] = {}
        self._batches = 0
        self._last: tuple[tuple[np.ndarray | None, np.ndarray, np.ndarray], tuple[Any, Any, Any]] | None = None
        self._mix_pending: list[tuple[Runs, np.ndarray]] = []
        """Mixed chunks' words sent but not yet written into `_stored[MIX]` (chunk-order runs, their words
        concatenated): written only when read (`_flush_mix`), so a click after a clear never pays for it."""
        self._order32 = chunks.order if chunks.order.dtype == np.int32 else chunks.order.astype(np.int32)
        """The chunk-order permutation as int32 (the chunks' own, shared by every browser): half the bytes to read
        when mixed chunks gather their selection."""
        self.incremental = True
        """Take the selection-aware path for `Look`s (False: compare every chunk)."""
        self.compiled = True
        """Count and pack with the compiled kernels (`_layer_kernels`); False: their NumPy references."""
        words = chunks.in_chunk_order(rgba_words(rgba))
        targets = np.where(self._chunk_all(_alpha(words) == 0), OFF, BASE).astype(np.int8)
        for i in np.flatnonzero(self._sizes > 0).tolist():
            sl = chunks.chunk_slice(i)
            self._send(BASE, i, words[sl], visible=bool(targets[i] == BASE))
        self._set_frame(BASE, True)
        self._set_frame(MIX, True)
        self._target = targets

    # ---- what the browser holds --------------------------------------------------------------------------------
    @property
    def handles(self) -> list[Any]:
        """The `base` node of every chunk (what a client starts with)."""
        return [h for h in self._handles[BASE] if h is not None]

    def node_count(self) -> int:
        return sum(h is not None for layer in self._handles for h in layer) + len(self._mix_nodes)

    def _set_frame(self, layer: int, visible: bool) -> None:
        if self._frame_visible[layer] != visible:
            self._frames[layer].visible = visible
            self._frame_visible[layer] = visible

    def _send(self, layer: int, i: int, words: np.ndarray, *, visible: bool) -> int:
        """Create or refill chunk i's node of `layer` with `words`; returns the bytes sent."""
        sl = self.chunks.chunk_slice(i)
        buffer = self.chunks.geometry[sl].copy()
        buffer[:, 7] = words
        handle = self._handles[layer][i]
        if handle is None:
            centers, covs, rgbs, opacities = _unpack(buffer)
            self._handles[layer][i] = self.scene_api.add_gaussian_splats(
                f"{self.prefix}/{LAYER_NAMES[layer]}/chunk_{i:03d}",
                centers=centers,
                covariances=covs,
                rgbs=rgbs,
                opacities=opacities,
                visible=visible,
            )
            self._child_visible[layer][i] = visible
        else:
            handle.buffer = buffer  # type: ignore[attr-defined]
            if bool(self._child_visible[layer][i]) != visible:
                handle.visible = visible
                self._child_visible[layer][i] = visible
        self._stored[layer][sl] = words
        self._has[layer][i] = True
        if layer in KEPT:
            ref = self._refs[layer]
            if ref is not None:
                ref[2][i] = np.array_equal(words, ref[1][sl])
        return len(words) * BYTES_PER_GAUSSIAN

    def _new_node(self, name: str, buffer: np.ndarray, *, visible: bool = True) -> _Handle:  # buffer [n, 8] uint32
        """A splat node holding `buffer` as it is: created empty, then given the buffer (viser's `buffer` property),
        so the words are neither unpacked here nor packed again by `add_gaussian_splats`."""
        handle = self.scene_api.add_gaussian_splats(name, *_EMPTY_SPLATS, visible=visible)
        handle.buffer = buffer
        return handle  # type: ignore[no-any-return]

    def _chunk_all(self, flags: np.ndarray) -> np.ndarray:  # [N] bool in chunk order → [C] bool
        out = np.zeros(self.chunks.num_chunks, dtype=bool)
        nonempty = self._sizes > 0
        if len(flags):
            out[nonempty] = np.logical_and.reduceat(flags, self.chunks.bounds[:-1][nonempty])
        return out

    def _ref(self, layer: int, look: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(look, its words in chunk order, [C] whether the layer's node holds them); computed once per look."""
        if look is None:
            return None
        ref = self._refs[layer]
        if ref is None or ref[0] is not look:
            words = self.chunks.in_chunk_order(rgba_words(look))
            ref = (look, words, self._has[layer] & self._chunk_all(self._stored[layer] == words))
            self._refs[layer] = ref
        return ref

    def _tint_step(self, rest: np.ndarray, tint: np.ndarray) -> np.ndarray:  # [N] words each → [N] uint32
        """`tint - rest` wrapping (`blend_words`), made once per pair of layer words (two kept: dim on and off)."""
        for r, t, step in self._step_cache:
            if r is rest and t is tint:
                return step
        step = tint - rest
        self._step_cache = [*self._step_cache[-1:], (rest, tint, step)]
        return step

    def _zero_alpha(self, words: np.ndarray) -> np.ndarray:  # [N] words in chunk order → [C] nothing to draw
        for source, flags in self._zero_cache:
            if source is words:
                return flags
        flags = self._chunk_all(_alpha(words) == 0)
        self._zero_cache = [*self._zero_cache[-3:], (words, flags)]
        return flags

    # ---- updates -----------------------------------------------------------------------------------------------
    def prefetch(self, dimmed: np.ndarray, tinted: np.ndarray | None = None) -> int:  # [N, 4] uint8 each → bytes
        """Send the `dim` (and `tint`) nodes ahead of the first selection, hidden (after the first frame), and compile
        the click's kernels (or load them from numba's cache) and the chunk ids they count with, so that the first
        click does not."""
        if self.compiled:
            warm_up_kernels()
            self.chunks.chunk_ids()
        sent = 0
        for layer, look in ((DIM, dimmed), (TINT, tinted)):
            ref = self._ref(layer, look)
            if ref is None:
                continue
            for i in np.flatnonzero(~ref[2] & (self._sizes > 0)).tolist():
                visible = bool(self._target[i] == layer) if self._frame_visible[layer] else DEFAULT_CHILD_VISIBLE[layer]
                sent += self._send(layer, i, ref[1][self.chunks.chunk_slice(i)], visible=visible)
        return sent

    def prefetch_dim(self, dimmed: np.ndarray) -> int:
        """`prefetch` of the dimmed layer alone (the interface `ChunkedSplats` has)."""
        return self.prefetch(dimmed)

    def update(
        self,
        rgba: np.ndarray | LookParts,  # [N, 4] uint8 in model order, or a highlight look's parts: the look to show
        *,
        plain: np.ndarray | None = None,  # [N, 4] uint8: the look with nothing selected (what `base` draws)
        dimmed: np.ndarray | None = None,  # [N, 4] uint8: everything dimmed (what `dim` draws)
        tinted: np.ndarray | None = None,  # [N, 4] uint8: everything tinted (default: the look's own)
    ) -> UpdateStats:
        """Bring the browser to this look; returns what it cost.

        For a highlight look (`LookParts` or a `Look`) of the same colouring as the previous one (a click) the
        targets come from the selected Gaussians' per-chunk counts and the look's array is never made; otherwise
        every chunk's words are compared with each kept layer (`_targets_full`, the path the first is tested
        against)."""
        stats = UpdateStats(full_bytes=self.chunks.num_gaussians * BYTES_PER_GAUSSIAN)
        parts = look_parts(rgba)
        if tinted is None and parts is not None:
            tinted = parts[2]
        layers = (plain, dimmed, tinted)
        refs = [self._ref(layer, look) for layer, look in zip(KEPT, layers, strict=True)]
        last, self._last = self._last, None
        planned = None
        if self.incremental and parts is not None and last is not None:
            planned = self._targets_incremental(rgba, parts, last, layers, refs)
        if planned is None:
            planned = self._targets_full(rgba.rgba() if isinstance(rgba, LookParts) else rgba, parts, refs)
        targets, mix_words, source = planned
        self._apply((rgba, source), targets, refs, mix_words, stats)
        if parts is not None and plain is not None:
            self._last = (parts, layers)
        return stats

    def _targets_full(self, rgba: np.ndarray, parts: Any, refs: list[Any]) -> tuple[np.ndarray, Any, tuple[Any, Any]]:
        words = self.chunks.in_chunk_order(rgba_words(rgba))
        targets = np.full(self.chunks.num_chunks, MIX, np.int8)
        held = np.zeros(self.chunks.num_chunks, bool)
        for layer in (TINT, DIM, BASE):  # the last match wins: base before dim before tint, a held node first
            ref = refs[layer]
            if ref is None:
                continue
            same = self._chunk_all(words == ref[1])
            targets[same & ~held] = layer
            now_held = same & ref[2]
            targets[now_held] = layer
            held |= now_held
        targets[self._chunk_all(_alpha(words) == 0)] = OFF
        self._flush_mix()
        self._mix_ok = self._has[MIX] & self._chunk_all(self._stored[MIX] == words)
        return targets, MixedWords(words, None, None, self._order32), (None, None)

    def _targets_incremental(
        self, look: Any, parts: Any, last: Any, layers: tuple[Any, Any, Any], refs: list[Any]
    ) -> tuple[np.ndarray, Any, tuple[Any, Any]] | None:
        selection, rest, tinted = parts
        (_, old_rest, old_tinted), old_layers = last
        plain, dimmed, _ = layers
        if any(a is not b for a, b in zip(layers, old_layers, strict=True)) or old_tinted is not tinted:
            return None
        if not all(r is plain or r is dimmed for r in (rest, old_rest)) or refs[BASE] is None:
            return None
        if (rest is dimmed and refs[DIM] is None) or refs[TINT] is None:
            return None
        n, c = self.chunks.num_gaussians, self.chunks.num_chunks
        if selection is not None and len(selection) != n:
            return None
        # Selected Gaussians per chunk: made once per look and shared by every browser (`LookParts.chunk_counts`).
        if self.compiled:
            counts = look.chunk_counts(self.chunks.chunk_ids(), c)
        else:
            counts = selected_per_chunk_reference(selection, self.chunks.chunk_of_int32(), c)
        rest_layer = BASE if rest is plain else DIM
        rest_words, tint_words = refs[rest_layer][1], refs[TINT][1]
        whole = counts == self._sizes
        targets = np.where(counts == 0, rest_layer, np.where(whole, TINT, MIX)).astype(np.int8)
        zero_rest, zero_tint = self._zero_alpha(rest_words), self._zero_alpha(tint_words)
        targets[((counts == 0) | ~whole) & zero_rest & ((counts == 0) | zero_tint)] = OFF
        targets[whole & (counts > 0) & zero_tint] = OFF
        step = None if selection is None else self._tint_step(rest_words, tint_words)
        mix_words = MixedWords(rest_words, selection, step, self._order32)
        if rest is not old_rest:
            self._mix_ok[:] = False  # every mix node mixes in the rest's colours
        # A chunk mixed before and now keeps its batch when its words are unchanged: they are remade for those
        # chunks only and compared with what the batch holds (no pass over the whole selection per browser).
        kept = np.flatnonzero((targets == MIX) & self._mix_ok)
        if kept.size:
            self._flush_mix()
            runs = self._chunk_runs(kept)
            words = mix_words.words(runs) if self.compiled else mix_words.words_reference(runs)
            changed = np.add.reduceat(words != _runs(self._stored[MIX], runs), _run_offsets(runs)) > 0
            self._mix_ok[kept[changed]] = False
        return targets, mix_words, (rest, layers[2])

    def _apply(
        self,
        look: tuple[Any, tuple[Any, Any]],
        targets: np.ndarray,
        refs: list[Any],
        mix_words: Any,
        stats: UpdateStats,
    ) -> None:
        """Bring the nodes and frames to `targets` ([C] int8 layer per chunk, OFF = nothing)."""
        nonempty = self._sizes > 0
        targets = np.where(nonempty, targets, OFF).astype(np.int8)
        previous = self._target
        resent = np.zeros(len(targets), bool)
        # 1. Kept layers' nodes that must be (re)sent: a chunk showing a layer whose node does not hold it yet.
        for layer in KEPT:
            ref = refs[layer]
            if ref is None:
                continue
            for i in np.flatnonzero((targets == layer) & ~ref[2]).tolist():
                stats.bytes_sent += self._send(layer, i, ref[1][self.chunks.chunk_slice(i)], visible=True)
                stats.chunks_resent += 1
                resent[i] = True
        # 2. Mixed chunks travel in batches of up to MIX_BATCH_CHUNKS neighbouring chunks (one node each), so a click
        # costs a few messages however many chunks its boundary crosses. A batch with a chunk no longer mixed (or
        # mixed differently) is refilled in place with the next batch to send (one message, its still-valid chunks
        # travel again), or goes when there is none left to send.
        want = targets == MIX
        batch = self._mix_batch
        dirty = np.unique(batch[(batch >= 0) & (~want | ~self._mix_ok)]).tolist()
        spare = [(b, self._mix_nodes.pop(b)) for b in dirty]  # refilled below, in place; the rest are removed
        if dirty:
            freed = np.isin(batch, dirty)
            batch[freed] = -1
            self._has[MIX][freed] = False
        todo = np.flatnonzero(want & (batch < 0))
        if todo.size:
            # All mixed chunks' rows at once, copied run by run (each chunk is a contiguous run in chunk order, and
            # each batch a contiguous slice of the result).
            runs, words, rows = self._mixed_rows(look, todo, mix_words)
            ends = np.cumsum(self._sizes[todo]).tolist()
            if not self._has[MIX].any():
                self._mix_pending.clear()  # no mix node left: the words written before are nobody's
            self._mix_pending.append((runs, words))
            if len(self._mix_pending) > 16:
                self._flush_mix()
            self._has[MIX][todo] = True
            stats.bytes_sent += len(words) * BYTES_PER_GAUSSIAN
            stats.chunks_resent += int(todo.size)
            resent[todo] = True
            for first in range(0, todo.size, MIX_BATCH_CHUNKS):
                last = min(first + MIX_BATCH_CHUNKS, todo.size) - 1
                buffer = rows[(ends[first - 1] if first else 0) : ends[last]]
                if spare:  # one message that swaps the node's Gaussians, instead of a removal and a new node
                    b, handle = spare.pop()
                    handle.buffer = buffer  # type: ignore[attr-defined]
                else:
                    b, self._batches = self._batches, self._batches + 1
                    handle = self._new_node(f"{self.prefix}/mix/batch_{b:06d}", buffer)
                self._mix_nodes[b] = handle
                batch[todo[first : last + 1]] = b
        for _, handle in spare:
            handle.remove()
        self._mix_ok = self._has[MIX].copy()
        # 3. Under each frame that will be visible, each node's own visibility says whether its chunk shows it.
        shown_frames = [bool((targets == layer).any()) for layer in range(len(LAYER_NAMES))]
        shown_frames[MIX] = True
        for layer in KEPT:
            if not shown_frames[layer]:
                continue
            shows = targets == layer
            wrong = np.flatnonzero(self._has[layer] & (self._child_visible[layer] != shows))
            handles = self._handles[layer]
            for i, visible in zip(wrong.tolist(), shows[wrong].tolist(), strict=True):
                handles[i].visible = visible  # type: ignore[union-attr]  # `_has`: the node exists
            self._child_visible[layer][wrong] = shows[wrong]
        # 4. Frames last: a frame shown after its nodes are right never flashes the wrong chunks.
        for layer in range(len(LAYER_NAMES)):
            self._set_frame(layer, shown_frames[layer])
        stats.chunks_toggled += int(((targets != previous) & ~resent).sum())
        self._target = targets

    def _mixed_rows(
        self,
        look: tuple[Any, tuple[Any, Any]],  # (the look, the (rest, tinted) looks its mixed words blend; None: its own)
        todo: np.ndarray,  # [K] chunk ids
        mix_words: Any,
    ) -> tuple[Runs, np.ndarray, np.ndarray]:  # (runs, [M] words, [M, 8] rows)
        """The buffer rows of the mixed chunks `todo` (geometry and the look's words, concatenated in chunk order).

        Made once per look and chunk set: a browser that sends the same mixed chunks from the same looks as the
        previous one shown this look (browsers in step after a click do) reuses its rows as they are; nobody writes
        into them once made."""
        runs = self._chunk_runs(todo)
        shared = getattr(look[0], "shared", None)
        key = (self.chunks, *look[1])
        name = "mixed_rows" if self.compiled else "mixed_rows_reference"
        if shared is not None:
            made: Any = shared.get(name)
            if (
                made is not None
                and all(a is b for a, b in zip(made[0], key, strict=True))
                and made[1] == todo.tobytes()
            ):
                return runs, made[2], made[3]
        if self.compiled:
            words, rows = mix_words.rows(self.chunks.geometry, runs)
        else:
            words, rows = mix_words.rows_reference(self.chunks.geometry, runs)
        if shared is not None:
            shared[name] = (key, todo.tobytes(), words, rows)
        return runs, words, rows

    def _chunk_runs(self, chunks: np.ndarray) -> Runs:  # [K] chunk ids → their [lo, hi) runs in chunk order
        bounds = self.chunks.bounds
        return bounds[chunks], bounds[chunks + 1]

    def _flush_mix(self) -> None:
        """Write the mixed chunks' words sent since the last flush into `_stored[MIX]`, oldest first."""
        stored = self._stored[MIX]
        for (los, his), words in self._mix_pending:
            end = 0
            for lo, hi in zip(los.tolist(), his.tolist(), strict=True):
                stored[lo:hi] = words[end : end + hi - lo]
                end += hi - lo
        self._mix_pending.clear()

    def remove(self) -> None:
        for layer, handles in enumerate(self._handles):
            for i, handle in enumerate(handles):
                if handle is not None:
                    handle.remove()
                    handles[i] = None
            self._has[layer][:] = False
        for handle in self._mix_nodes.values():
            handle.remove()
        self._mix_nodes.clear()
        self._mix_batch[:] = -1
        self._mix_ok[:] = False
        self._mix_pending.clear()
        for frame in self._frames:
            frame.remove()
        self._refs = [None] * len(KEPT)
        self._last = None


def blend_words(
    selected: np.ndarray,  # [M] bool
    rest: np.ndarray,  # [M] uint32: the words where not selected
    step: np.ndarray,  # [M] uint32: tint - rest, wrapping
) -> np.ndarray:  # [M] uint32: the tinted words where selected, the rest's elsewhere
    """`blend_words_reference` as `rest + step × selected` in wrapping uint32 arithmetic: a multiply and an add
    the CPU runs without branching, where `np.where` on a holey selection mispredicts (~5× slower at 100k words)."""
    out = np.multiply(step, selected, dtype=np.uint32)
    out += rest
    return out


def blend_words_reference(selected: np.ndarray, rest: np.ndarray, tint: np.ndarray) -> np.ndarray:  # [M] each
    return np.where(selected, tint, rest)


def _runs(array: np.ndarray, runs: Runs) -> np.ndarray:  # [N, ...] → [sum of run lengths, ...]
    """The rows of `array` in the runs [a, b), concatenated: one copy per run (a gather through an index array
    reads the index too and copies element by element)."""
    los, his = runs
    if not len(los):
        return array[:0].copy()
    return np.concatenate([array[a:b] for a, b in zip(los.tolist(), his.tolist(), strict=True)])


def _run_offsets(runs: Runs) -> np.ndarray:  # [K] where each run starts in the concatenation
    los, his = runs
    return np.concatenate([[0], np.cumsum(his - los)[:-1]]).astype(np.int64)


class MixedWords:
    """What the mixed chunks' words are made from: the rest's words, and where `selection` holds a Gaussian, the
    tinted word (`rest + step`, wrapping: `blend_words`). The incremental path's source; the full comparison's is the
    look's own words with nothing to blend (`selection` None).

    `words` gathers the selection and blends in one compiled pass over the runs (`blend_runs`), `rows` adds the
    geometry (a copy per run); `words_reference` and `rows_reference` are the NumPy path (slices concatenated, a
    gather of the selection, the blend) they are tested against."""

    __slots__ = ("order", "rest", "selection", "step")

    def __init__(
        self,
        rest: np.ndarray,  # [N] uint32 in chunk order
        selection: np.ndarray | None,  # [N] bool in model order; None = the rest's words everywhere
        step: np.ndarray | None,  # [N] uint32 in chunk order: tint - rest, wrapping (None with `selection`)
        order: np.ndarray,  # [N] int32: chunk order → model order
    ) -> None:
        # `blend_runs` reads the selection's bytes at every `order` entry unchecked (numba does no bounds checks).
        if selection is not None and (selection.dtype != np.bool_ or selection.shape != order.shape):
            raise ValueError(f"a selection {selection.shape} {selection.dtype} for a layout of {order.shape}")
        self.rest, self.selection, self.step, self.order = rest, selection, step, order

    def rows(self, geometry: np.ndarray, runs: Runs) -> tuple[np.ndarray, np.ndarray]:  # → [M] words, [M, 8] rows
        words = self.words(runs)
        rows = _runs(geometry, runs)  # a memcpy per run
        rows[:, 7] = words
        return words, rows

    def words(self, runs: Runs) -> np.ndarray:  # [M] uint32: the runs' words, concatenated
        if self.selection is None or self.step is None:
            return _runs(self.rest, runs)
        los, his = runs
        words = np.empty(int((his - los).sum()), np.uint32)
        blend_runs(los, his, self.order, self.selection.view(np.uint8), self.rest, self.step, words)
        return words

    def words_reference(self, runs: Runs) -> np.ndarray:  # [M] uint32
        if self.selection is None or self.step is None:
            return _runs(self.rest, runs)
        # np.take: several times faster than fancy indexing for the one scattered gather (the selection).
        selected = np.take(self.selection, _runs(self.order, runs))
        return blend_words(selected, _runs(self.rest, runs), _runs(self.step, runs))

    def rows_reference(self, geometry: np.ndarray, runs: Runs) -> tuple[np.ndarray, np.ndarray]:
        words = self.words_reference(runs)
        rows = _runs(geometry, runs)
        rows[:, 7] = words
        return words, rows

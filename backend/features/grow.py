"""Part selection that grows from the clicked Gaussians through feature-alike 3D neighbours.

A global threshold on the similarity to the clicked feature selects every Gaussian that looks like the click.
At the part level that is too much where parts touch: a mug's handle spills into the body where they meet, a
book into the book lying on it, a plant's stem into its leaves, because the features blend there (the spatial
smoothness loss and the blended training pixels make the Gaussians at a seam look like both parts). The floater
filter (floaters.py) cannot cut there: its cells are coarse, and the two parts really are connected. Growing
from the clicked Gaussians over the k-nearest-neighbour graph instead keeps a selected Gaussian only when a
chain of selected neighbours, each pair of which agrees (feature cosine above `edge_cos`), links it to the click:
a seam whose Gaussians disagree with their neighbours stops the growth, and the far side of the part, reached
around the part's own surface, stays.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from torch import Tensor

from ..core.jit import compile_now
from ._graph_kernels import backbone_first_in_place, both_ways, symmetric_components
from ._grow_kernels import reach, search_buffers, strongest_links

if TYPE_CHECKING:
    from .pruned import PrunedBank

LENIENT_QUANTILE = 0.2
"""Share of a field's neighbour pairs that the edge cut may fail at most (`NeighbourGrowth.edge_cut`)."""
ROWS = 1 << 16
"""Gaussians per slice when the symmetric graph is laid out (`NeighbourGrowth._symmetric`)."""


BACKBONE = 3
"""Per Gaussian, its most agreeing neighbours (by feature cosine) that a click's first search reads. With the nodes
that count it among theirs, ~4.3 entries per node where the whole agreeing graph has ~7.4 (1M latency benchmark);
on its clicks that search leaves a median 0.08% (at most 0.7%) of what the whole graph reaches to the second one,
since the most agreeing pairs are the likeliest to be selected together. Measured there (the growth alone, CPU
p50, one process): 2 → 3.6 ms (3.1 entries, 1.2% left, up to 15%), 3 → 3.4 ms, 4 → 3.9 ms (5.4 entries); each
node's own 3 only, not made symmetric, leave 25%. Any value is exact: the second search reads whole rows."""


class AgreeingGraph(NamedTuple):
    """The agreeing k-NN edges of one cut in both directions, as a CSR whose rows list their backbone first."""

    cut: float
    indptr: np.ndarray  # [N + 1] row p is indices[indptr[p] : indptr[p + 1]]
    backbone_end: np.ndarray  # [N] its backbone entries are indices[indptr[p] : backbone_end[p]]
    indices: np.ndarray  # [E] int32 nodes
    component: np.ndarray  # [N] int32 connected component of each node
    sizes: np.ndarray  # [K] nodes per component
    down: np.ndarray | None  # [N] int32 each node's most agreeing neighbour numbered before it, −1 none
    up: np.ndarray | None  # [N] int32 its most agreeing neighbour numbered after it (both: _grow_kernels.py)


def _both_ways(
    forward_ptr: np.ndarray,  # [N + 1] int64
    forward: np.ndarray,  # [F] int nodes, grouped by source
    n: int,
) -> csr_matrix:  # [N, N] int8: each edge in both directions, once per row, rows sorted
    """The directed edges and their reverses in one CSR, a mutual pair once per row."""
    reverse = csr_matrix((np.ones(forward.size, dtype=np.int8), forward, forward_ptr), shape=(n, n)).tocsc()
    indptr, indices = _concat_rows(forward_ptr, forward, reverse.indptr, reverse.indices, n)  # column j: j's sources
    del reverse
    graph = csr_matrix((np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(n, n))
    graph.sum_duplicates()  # a mutual pair once per row: a third fewer entries to read per click
    return graph


def _concat_rows(
    a_ptr: np.ndarray,  # [N + 1]
    a: np.ndarray,  # [A] entries of the first CSR
    b_ptr: np.ndarray,  # [N + 1]
    b: np.ndarray,  # [B] entries of the second
    n: int,
) -> tuple[np.ndarray, np.ndarray]:  # indptr [N + 1] int64, indices [A + B] int32: row i = a's row i, then b's
    """Two CSRs' rows one after the other. Entry e of a's row r goes to e + b_ptr[r] and entry j of b's row r to
    j + a_ptr[r + 1]; a slice of rows at a time, so no [E] int64 temporary is made."""
    a_ptr, b_ptr = a_ptr.astype(np.int64), b_ptr.astype(np.int64)
    indices = np.empty(a.size + b.size, dtype=np.int32)
    for s in range(0, n, ROWS):
        t = min(n, s + ROWS)
        for ptr, other, values in ((a_ptr, b_ptr[s:t], a), (b_ptr, a_ptr[s + 1 : t + 1], b)):
            first, last = int(ptr[s]), int(ptr[t])
            shift = np.repeat(other, np.diff(ptr[s : t + 1]))
            indices[np.arange(first, last) + shift] = values[first:last]
    return a_ptr + b_ptr, indices


def backbone_first_reference(
    graph: csr_matrix,  # [N, N] the agreeing graph, rows sorted
    backbone: csr_matrix,  # [N, N] its backbone, a sub-graph, rows sorted
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # indptr [N + 1], backbone_end [N], indices [E] int32
    """`_graph_kernels.backbone_first` with SciPy: the entries outside the backbone as the matrices' difference, then
    the two CSRs' rows one after the other."""
    n = graph.shape[0]
    graph, backbone = graph.copy(), backbone.copy()
    graph.data[:] = 1
    backbone.data[:] = 1
    rest = graph - backbone  # the entries outside the backbone (a subset of the graph: none is negative)
    indptr, indices = _concat_rows(backbone.indptr, backbone.indices, rest.indptr, rest.indices, n)
    index = np.int32 if indices.size < 2**31 else np.int64  # a click reads int32 offsets where they fit
    return indptr.astype(index), (backbone.indptr[1:] + rest.indptr[:-1]).astype(index), indices


def _symmetric_scipy(
    edge_cos: float,
    n: int,
    forward_ptr: np.ndarray,  # [N + 1] int64
    forward: np.ndarray,  # [F] int32 agreeing neighbours (nodes), grouped by node
    backbone_ptr: np.ndarray,  # [N + 1] int64
    strong: np.ndarray,  # [B] int32 each node's backbone among them
) -> AgreeingGraph:  # without the compiled search's links
    """`NeighbourGrowth._symmetric`'s graph with SciPy: each CSR made symmetric by a transpose (`_both_ways`), the
    components by `connected_components`, the rows put backbone first as the matrices' difference. The path of a
    field that never warmed up (no numba import), and the reference the compiled one is compared with."""
    graph = _both_ways(forward_ptr, forward, n)
    backbone = _both_ways(backbone_ptr, strong, n)
    _, component = connected_components(graph, directed=True, connection="strong")  # symmetric: components
    component = component.astype(np.int32)
    graph.data[:] = 1
    backbone.data[:] = 1
    rest = graph - backbone  # the entries outside the backbone (a subset of the graph: none is negative)
    del graph
    # Row p: its backbone entries, then the rest; backbone_end[p] is where the backbone part ends.
    indptr, indices = _concat_rows(backbone.indptr, backbone.indices, rest.indptr, rest.indices, n)
    index = np.int32 if indices.size < 2**31 else np.int64  # a click reads int32 offsets where they fit
    backbone_end = (backbone.indptr[1:] + rest.indptr[:-1]).astype(index)
    sizes = np.bincount(component)
    return AgreeingGraph(edge_cos, indptr.astype(index), backbone_end, indices, component, sizes, None, None)


class NeighbourGrowth:
    """The k-nearest-neighbour graph of one scene with each edge's feature cosine at one level.

    A click keeps the selected Gaussians reachable from the clicked ones through agreeing selected neighbours. The
    agreeing edges are made symmetric and labelled by connected component once per edge cut (`_symmetric`), each
    row listing its backbone first (`BACKBONE`: the node's most agreeing neighbours and the nodes that count it
    among theirs). Once `prepare` has compiled it (the field's warm-up), a selection in ascending order is searched
    by one kernel (`_grow_kernels.reach`, over each node's strongest links before and after it, then whole rows
    only where those leave nodes; `compiled`). Otherwise (the previous path), per click, a seed's component that
    the selection holds whole is kept as it is and a component without a seed is dropped; the seeds' partly held
    components are searched in two breadth-first searches
    (SciPy's `breadth_first_order`, in C, each from a virtual root): one over the selected members' backbone
    entries from the seeds, which reaches nearly all of what the whole graph would, then one over the whole rows of
    the members it left, from everything it reached. Any path the second search follows is a path of the agreeing
    graph, and any path of the agreeing graph from a seed to a member left passes through a reached member last,
    so the answer is exactly the whole graph's. The rows are read in runs when the graph is laid out in the order
    the selection comes in (`order`), and `keep_nodes` takes the selection in that numbering (a `PrunedBank`
    selection's ascending positions): nothing is sorted, transposed or gathered by Gaussian id per click.
    `fast = False` runs `grow_components`, the path before it (weakly connected components of the whole selected
    subgraph), kept for the benchmark's before/after; `grow_reference` is the plain version the tests compare
    both with.
    """

    def __init__(
        self,
        neighbors: np.ndarray,  # [N, k] int nearest 3D neighbours
        features: Tensor | PrunedBank,  # [N, D] unit features of the level, or with `rank` the field's PrunedBank
        *,
        order: np.ndarray | None = None,  # [N] int: the Gaussians in the order the search lays its graph out
        rank: np.ndarray | None = None,  # [N] int32: order's inverse; given, `features` is that order's bank
        chunk: int = 1 << 16,
    ) -> None:
        self.neighbors = np.ascontiguousarray(neighbors, dtype=np.int32)  # int32: half the bytes of int64 to gather
        n, k = self.neighbors.shape
        self.order = None if order is None else np.asarray(order, dtype=np.int64)
        """Node p of the search's graph is Gaussian order[p]. `FeatureField` passes its `PrunedBank`'s order: a
        selection then reads the graph's rows in runs (ascending block positions), and agreeing neighbours, alike
        in feature, sit close to each other there, so the per-click gathers stay in cache."""
        in_order = rank is not None
        """`features` is then the field's `PrunedBank` (its only copy of the bank), whose row p (`rows`) is Gaussian
        order[p]: read through `rank`."""
        if in_order and (self.order is None or len(rank) != n or rank.dtype != np.int32):
            raise ValueError("NeighbourGrowth: `rank` is the int32 inverse of `order`")
        self.rank = rank
        if self.order is not None and rank is None:
            self.rank = np.empty(n, dtype=np.int32)  # [N] Gaussian id → node
            self.rank[self.order] = np.arange(n, dtype=np.int32)
        cos = np.empty((n, k), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, n, chunk):
                ids = self.neighbors[s : s + chunk].reshape(-1)
                if in_order:  # the same values as the Gaussian-order bank's rows, gathered from the blocked copy
                    f = torch.from_numpy(features.rows(self.rank[s : s + chunk]))  # [C, D]
                    g = torch.from_numpy(features.rows(self.rank[ids])).reshape(f.shape[0], k, -1)
                else:
                    f = features[s : s + chunk].float()  # [C, D]
                    g = features.index_select(0, torch.from_numpy(ids).long()).float().reshape(f.shape[0], k, -1)
                cos[s : s + chunk] = torch.einsum("cd,ckd->ck", f, g).numpy()
        self.cos = cos  # [N, k]
        flat = cos.reshape(-1)
        cut = int(LENIENT_QUANTILE * (flat.size - 1))
        self.lenient_cos = float(np.partition(flat, cut)[cut]) if flat.size else 1.0
        """The `LENIENT_QUANTILE` quantile of the neighbour cosines: `edge_cut` never asks for more than this."""
        self.fast = True
        """Search from the seeds (`compiled`, or over the backbone, then the rest: `_reached`); False runs
        `grow_components`."""
        self.compiled = True
        """Once `prepare` has compiled it, a selection in ascending order is searched by one compiled kernel
        (`_grow_kernels.reach`: the strongest links first, then whole rows only where they leave nodes). Before that
        (a CLI click, which never warms up: numba's import and loading would cost it ~0.7 s CPU) and with False, the
        two SciPy searches of `_reached` run, the previous path, kept for the benchmark's before/after."""
        self._prepared = False  # `prepare` compiled the search: the graphs carry their links from then on
        self._buffers: tuple[np.ndarray, ...] | None = None  # `reach`'s reused [N] arrays, made on first use
        # Reused per click: Gaussian → index in the current selection, −1 outside it; slot n stands for "no edge".
        self._inside_ids: np.ndarray | None = None  # made on first use (`_inside`): block-position clicks never read it
        self._node = np.zeros(n, dtype=np.int32)  # reused by `_reached`: node → 1 + index in the search, 0 outside
        self._lock = threading.Lock()  # guards the reused buffers (the viewer clicks from several threads)
        self._agreeing: tuple[float, np.ndarray] | None = None  # (cut, [N, k] int32 neighbour or n where cos ≤ cut)
        self._graph: AgreeingGraph | None = None
        self._arange = np.arange(0, dtype=np.int32)  # 0, 1, ..., grown as needed (`_count`)

    def edge_cut(self, edge_cos: float) -> float:
        """The cosine a neighbour pair must pass: `edge_cos`, or less on a field whose neighbours agree less than
        that (features trained briefly, or on a hard scene), so that growth never cuts more than the weakest
        `LENIENT_QUANTILE` of its pairs there. On the accuracy benchmark's trained fields (shelf, tabletop) 84–89%
        of the pairs pass 0.99 and this changes nothing; after 80 training steps on a tiny scene, 0.99 would cut
        a part into specks."""
        return min(float(edge_cos), self.lenient_cos)

    def __call__(
        self,
        selected: np.ndarray,  # [S] int Gaussian ids
        seeds: np.ndarray,  # [T] int Gaussian ids that were clicked
        *,
        edge_cos: float,
    ) -> np.ndarray:  # [S'] the ids linked to a selected seed through agreeing selected neighbours
        """Keep what is connected to the seeds; everything when no seed was selected (nothing to grow from)."""
        selected = np.asarray(selected, dtype=np.int64)
        if selected.size == 0:
            return selected
        if not self.fast:
            return self.grow_components(selected, seeds, edge_cos=edge_cos)
        seeds = np.asarray(seeds, dtype=np.int64)
        nodes = selected if self.rank is None else self.rank[selected]  # [S] in the graph's numbering
        if self.rank is not None:
            seeds = self.rank[seeds]
        with self._lock:
            inside = self._inside()
            inside[nodes] = np.arange(selected.size, dtype=np.int32)
            try:
                start = inside[seeds]
            finally:
                inside[nodes] = -1
        ascending = nodes.size < 2 or bool((nodes[1:] > nodes[:-1]).all())
        keep = self._keep(nodes, start[start >= 0], edge_cos, ascending)
        return selected if keep is None else selected[keep]

    def _inside(self) -> np.ndarray:  # [N + 1] int32, −1 between clicks (under the lock)
        if self._inside_ids is None:
            self._inside_ids = np.full(self.neighbors.shape[0] + 1, -1, dtype=np.int32)
        return self._inside_ids

    def prepare(self, edge_cos: float) -> NeighbourGrowth:
        """Make the agreeing graph of the cut a click at `edge_cos` uses (`edge_cut`, then `_symmetric`) now, not in
        that click: the field's warm-up calls it, since at 1M Gaussians it took the first fine click 1.3 s. With
        `compiled`, also the graph's links (0.5 s at 1M) and the compiled search (numba: seconds the first time on a
        machine, then loaded from its cache), which the clicks take from then on."""
        self._prepared = self._prepared or self.compiled  # from now on the graphs carry the compiled search's links
        self._symmetric(self.edge_cut(edge_cos))
        if self._prepared:  # compile (or load from numba's cache) the click's kernel now, for this graph's types
            compile_now((self._search_compiled, (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))))
        return self

    def keep_nodes(
        self,
        nodes: np.ndarray,  # [S] int ascending: the selection in the graph's numbering (positions in `order`)
        seeds: np.ndarray,  # [T] int Gaussian ids that were clicked
        *,
        edge_cos: float,
        ascending: bool = False,
    ) -> np.ndarray | None:  # [S] bool: linked to a selected seed; None when every node is (or no seed is selected)
        """`__call__` for a selection that comes as ascending positions in `order` (a `PrunedBank` selection, when
        `order` is that bank's `perm`): no gather of the selection's ranks, the seeds found by binary search, and the
        answer a mask the caller applies to whatever it holds aligned with the selection (its floater cells).
        `ascending`: the caller vouches that `nodes` strictly ascend (`PrunedBank.select_positions` lists them so),
        so they are not checked (a pass over the selection, ~30 µs at 1M Gaussians); else they are, and nodes out of
        order take the plain path."""
        nodes = np.asarray(nodes)
        if nodes.size == 0:
            return None
        if not self.fast or not (ascending or (nodes[1:] > nodes[:-1]).all()):  # the plain path (ids): any order
            ids = nodes if self.order is None else self.order[nodes]
            return np.isin(ids, self(ids, seeds, edge_cos=edge_cos))
        seeds = np.asarray(seeds, dtype=np.int64)
        if self.rank is not None:
            seeds = self.rank[seeds]
        at = np.minimum(np.searchsorted(nodes, seeds), nodes.size - 1)
        return self._keep(nodes, at[nodes[at] == seeds], edge_cos, ascending=True)

    def _keep(
        self,
        nodes: np.ndarray,  # [S] int nodes of the graph: the selection
        start: np.ndarray,  # [T'] int positions in `nodes` of the selected seeds
        edge_cos: float,
        ascending: bool,  # `nodes` strictly ascending: the compiled search can take them
    ) -> np.ndarray | None:  # [S] bool, None: all kept
        if start.size == 0:
            return None
        graph = self._symmetric(edge_cos)
        if self.compiled and self._prepared and ascending:
            return self._search_compiled(nodes, start, graph)
        labels, sizes = graph.component, graph.sizes
        # A component of the whole agreeing graph that the selection holds entirely is reached whole from a seed in
        # it (nothing links it to the rest), and one without a seed is never reached: only the seeds' components
        # that the selection holds in part need a search, over their selected members only.
        label = labels[nodes]  # [S]
        seed_comps = np.unique(label[start])
        if seed_comps.size == 1:  # the usual click: one seed, or seeds on one piece
            near = label == seed_comps[0]  # [S] bool
            search = np.flatnonzero(near)  # positions in the selection, ascending
            if search.size == sizes[seed_comps[0]]:
                return near
            if search.size == nodes.size:  # the whole selection is on the seeds' piece: no compress, no scatter
                return self._reached(nodes, start, graph)
            keep = np.zeros(nodes.size, dtype=bool)
            keep[search] = self._reached(nodes[search], np.searchsorted(search, start), graph)
            return keep
        member = np.zeros(sizes.size, dtype=bool)
        member[seed_comps] = True
        near = np.flatnonzero(member[label])  # [S'] positions in the selection
        held = np.bincount(label[near], minlength=sizes.size)
        partial = seed_comps[held[seed_comps] < sizes[seed_comps]]
        keep = np.zeros(nodes.size, dtype=bool)
        keep[near] = True
        if partial.size == 0:
            return keep
        member[:] = False
        member[partial] = True
        search = near[member[label[near]]]  # positions of the partly held components' selected members
        seeded = start[member[label[start]]]
        keep[search] = self._reached(nodes[search], np.searchsorted(search, seeded), graph)
        return keep

    def _search_compiled(
        self,
        nodes: np.ndarray,  # [M] int ascending nodes of the graph (it is restricted to them)
        start: np.ndarray,  # [T] int positions in `nodes` of the seeds
        graph: AgreeingGraph | None = None,  # None: the current graph (warm-up: compiles on a tiny one)
    ) -> np.ndarray | None:  # [M] bool: linked to a seed among `nodes`; None when all are
        """`_grow_kernels.reach` with this growth's reused buffers (made on first use, under the lock)."""
        if graph is None:  # warm-up: a one-node graph of the same types as the real one
            graph = self._graph
            index = np.int32 if graph is None else graph.indptr.dtype
            none = np.full(1, -1, dtype=np.int32)
            graph = AgreeingGraph(
                0.0, np.zeros(2, dtype=index), none, np.zeros(0, dtype=np.int32), none, none, none, none
            )
        nodes = nodes.astype(np.int64, copy=False)  # the types warm-up compiled for (a no-op on a click's positions)
        start = start.astype(np.int64, copy=False)
        keep = np.empty(nodes.size, dtype=bool)
        with self._lock:
            if self._buffers is None:
                self._buffers = search_buffers(self.neighbors.shape[0])
            count = reach(nodes, start, graph.down, graph.up, graph.indptr, graph.indices, *self._buffers, keep)
        return None if count == nodes.size else keep

    def _reached(
        self,
        nodes: np.ndarray,  # [M] int nodes of the graph (it is restricted to them)
        start: np.ndarray,  # [T] int positions in `nodes` of the seeds
        graph: AgreeingGraph,
    ) -> np.ndarray:  # [M] bool: linked to a seed among `nodes`
        """Two breadth-first searches: over the nodes' backbone entries from the seeds, then over the rows of the
        nodes that one did not reach from everything it did (each a virtual root)."""
        start = np.unique(start).astype(np.int32) + 1
        with self._lock:
            node = self._node
            node[nodes] = np.arange(1, nodes.size + 1, dtype=np.int32)  # node → 1 + index among the nodes
            try:
                reached = self._search(start, *self._rows(nodes, graph.indptr, graph.backbone_end, graph.indices))
                rest = np.flatnonzero(~reached[1:])  # [R] positions among the nodes
                if rest.size:
                    # Whatever a node left links to among the nodes is reached (the root) or left (its index
                    # among them); a neighbour outside the nodes is nobody. The root lists the nodes left that
                    # link to a reached one, and the rows come out in order: the CSR is built directly.
                    ends, dst = self._rows(nodes[rest], graph.indptr, graph.indptr[1:], graph.indices)
                    inside = dst > 0
                    hit = inside.copy()
                    hit[inside] = reached[dst[inside]]
                    left = inside & ~hit
                    row = np.repeat(np.arange(rest.size, dtype=np.int32), np.diff(ends, prepend=0))  # [E_R]
                    first = np.unique(row[hit]) + 1  # the nodes left next to a reached one
                    dst = np.searchsorted(rest, dst[left] - 1).astype(np.int32) + 1
                    ends = np.cumsum(np.bincount(row[left], minlength=rest.size))
                    again = self._search(first, ends, dst)
                    reached[1 + rest] = again[1:]
            finally:
                node[nodes] = 0
        return reached[1:]

    def _search(
        self,
        start: np.ndarray,  # [T] int32 rows the root links to (1-based: row 0 is the root)
        ends: np.ndarray,  # [M] cumulative entry counts of rows 1..M
        entries: np.ndarray,  # [E] int32 rows they link to, 0 = the root (already visited)
    ) -> np.ndarray:  # [M + 1] bool: reached from the root (row 0 included)
        """One breadth-first search from a virtual root (row 0) linked to `start`, over rows 1..M given as CSR
        (SciPy's `breadth_first_order`, in C)."""
        m = ends.size
        total = start.size + (int(ends[-1]) if m else 0)
        row_ptr = np.empty(m + 2, dtype=np.int32 if total < 2**31 else np.int64)
        row_ptr[0] = 0
        row_ptr[1:] = start.size
        row_ptr[2:] += ends
        edges = np.empty(total, dtype=np.int32)
        edges[: start.size] = start
        edges[start.size :] = entries
        # The weights are never read: one 1.0 seen through a zero stride, which SciPy keeps as it is (a slice of a
        # larger buffer it would copy, a fresh array costs a fill).
        ones = np.broadcast_to(np.float64(1.0), (total,))
        graph = csr_matrix((ones, edges, row_ptr), shape=(m + 1, m + 1))
        order = breadth_first_order(graph, 0, directed=True, return_predecessors=False)
        reached = np.zeros(m + 1, dtype=bool)
        reached[order] = True
        return reached

    def _rows(
        self,
        nodes: np.ndarray,  # [M] int nodes of the graph
        indptr: np.ndarray,  # [N + 1] (or [N]) where each node's entries to read start
        stop: np.ndarray,  # [N] where they stop
        indices: np.ndarray,  # [E]
    ) -> tuple[np.ndarray, np.ndarray]:  # ends [M] (cumulative entry counts), entries [E_M] int32
        """The nodes' entries indices[indptr[p] : stop[p]], one row after another, each as `_node` numbers it (1 +
        index among the nodes, 0 outside them): one gather of the entries at `at` and one of their numbers,
        index-typed throughout (int32 below 2³¹ entries). Under the lock, with `_node` set."""
        lo = indptr[nodes]
        degree = stop[nodes]
        degree -= lo
        ends = np.cumsum(degree, dtype=lo.dtype)
        lo -= ends
        lo += degree  # the shift from a row's place among the nodes' entries to its place in `indices`
        at = np.repeat(lo, degree)
        at += self._count(int(ends[-1]) if ends.size else 0, at.dtype)
        return ends, np.take(self._node, np.take(indices, at))

    def _count(self, count: int, dtype: np.dtype) -> np.ndarray:  # [count] 0, 1, ... (read only; under the lock)
        """A slice of a kept arange: a click's edge offsets without making one."""
        if self._arange.size < count or self._arange.dtype != dtype:
            self._arange = np.arange(max(count, 2 * self._arange.size), dtype=dtype)
        return self._arange[:count]

    def grow_components(
        self,
        selected: np.ndarray,  # [S] int Gaussian ids
        seeds: np.ndarray,  # [T] int Gaussian ids that were clicked
        *,
        edge_cos: float,
    ) -> np.ndarray:  # [S'] the ids linked to a selected seed (`__call__`'s answer)
        """The previous path: weakly connected components of the whole selected subgraph of the directed
        agreeing-neighbour table (SciPy sorts and transposes it per click), then the seeds' components."""
        selected = np.asarray(selected, dtype=np.int64)
        if selected.size == 0:
            return selected
        agreeing = self._agreeing_neighbours(edge_cos)
        with self._lock:
            inside = self._inside()
            inside[selected] = np.arange(selected.size, dtype=np.int32)
            try:
                start = inside[np.asarray(seeds, dtype=np.int64)]
                start = start[start >= 0]
                if start.size == 0:
                    return selected
                # One gather per edge: a neighbour whose features disagree was replaced by the sentinel slot (−1).
                dst = inside[agreeing[selected]]  # [S, k] index in the selection, −1 outside it or disagreeing
            finally:
                inside[selected] = -1
        ok = dst >= 0
        indptr = np.zeros(selected.size + 1, dtype=np.int32)
        np.cumsum(ok.sum(1), out=indptr[1:])
        edges = dst[ok]
        graph = csr_matrix((np.ones(edges.size, dtype=np.int8), edges, indptr), shape=(selected.size, selected.size))
        count, comp = connected_components(graph, directed=True, connection="weak")
        linked = np.zeros(count, dtype=bool)
        linked[comp[start]] = True
        return selected[linked[comp]]

    def _symmetric(self, edge_cos: float) -> AgreeingGraph:
        """The agreeing edges (cosine above `edge_cos`) in both directions, as one CSR over every node (`order`),
        made once per cut: row p lists p's agreeing neighbours and the nodes that have p as an agreeing neighbour,
        each once, its backbone entries first (`AgreeingGraph`), and every node's connected component in it."""
        if self._graph is None or self._graph.cut != edge_cos:
            self._graph = None  # the previous cut's arrays go before the new ones are made
            n, k = self.neighbors.shape
            keep = max(0, min(BACKBONE, k))
            forward_ptr = np.zeros(n + 1, dtype=np.int64)
            backbone_ptr = np.zeros(n + 1, dtype=np.int64)
            # Written slice by slice, then cut to length (not a list of parts concatenated: a second copy of them).
            forward, strong = np.empty(n * k, dtype=np.int32), np.empty(n * keep, dtype=np.int32)
            for a in range(0, n, ROWS):  # node p's agreeing neighbours, as nodes, and its backbone among them
                rows = slice(a, a + ROWS) if self.order is None else self.order[a : a + ROWS]
                cos = self.cos[rows]  # [R, k]
                agree = cos > edge_cos
                ends = self.neighbors[rows]
                ends = ends if self.rank is None else self.rank[ends]  # [R, k] nodes
                stop = a + len(agree)
                forward_ptr[a + 1 : stop + 1] = forward_ptr[a] + np.cumsum(agree.sum(1))
                forward[forward_ptr[a] : forward_ptr[stop]] = ends[agree]
                # The BACKBONE most agreeing of them (ties by column): a stable sort of −cos, agreeing ones only.
                best = np.zeros_like(agree)
                if keep:
                    rank = np.argsort(np.where(agree, -cos, np.inf), axis=1, kind="stable")[:, :keep]
                    np.put_along_axis(best, rank, True, axis=1)
                    best &= agree
                backbone_ptr[a + 1 : stop + 1] = backbone_ptr[a] + np.cumsum(best.sum(1))
                strong[backbone_ptr[a] : backbone_ptr[stop]] = ends[best]
            forward, strong = forward[: forward_ptr[n]], strong[: backbone_ptr[n]]
            if self._prepared:
                # Compiled (warm-up made them ready): the graph and its backbone written once each (`both_ways`),
                # the rows put backbone first in place, the components labelled by a search, where SciPy's
                # transposes, copies and float64 data (`_symmetric_scipy`, the reference) set the field's peak
                # memory at 3M Gaussians (`_graph_kernels.py`).
                indptr, indices = both_ways(forward_ptr, forward)
                del forward
                b_ptr, b_indices = both_ways(backbone_ptr, strong)
                del strong
                backbone_end = backbone_first_in_place(indptr, indices, b_ptr, b_indices)
                del b_ptr, b_indices
                _, component = symmetric_components(indptr, indices)
                sizes = np.bincount(component)
                self._graph = AgreeingGraph(edge_cos, indptr, backbone_end, indices, component, sizes, None, None)
            else:  # never warmed up (a CLI click): SciPy, no numba import
                self._graph = _symmetric_scipy(edge_cos, n, forward_ptr, forward, backbone_ptr, strong)
        if self._prepared and self._graph.down is None:  # the compiled search's links (`_grow_kernels.py`)
            n = self.neighbors.shape[0]
            down, up = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
            rank = np.arange(n, dtype=np.int32) if self.rank is None else self.rank
            scratch = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
            strongest_links(self.neighbors, self.cos, rank, np.float32(edge_cos), down, up, *scratch)
            self._graph = self._graph._replace(down=down, up=up)
        return self._graph

    def _agreeing_neighbours(self, edge_cos: float) -> np.ndarray:  # [N, k] int32
        """The neighbour table with every edge at or below `edge_cos` pointing at the sentinel slot N, made once per
        cut: a click then reads one int32 per edge instead of an index and a cosine (`grow_components`)."""
        if self._agreeing is None or self._agreeing[0] != edge_cos:
            n = self.neighbors.shape[0]
            table = np.where(self.cos > edge_cos, self.neighbors, n).astype(np.int32)
            self._agreeing = (edge_cos, table)
        return self._agreeing[1]


def grow_reference(
    neighbors: np.ndarray,  # [N, k]
    features: Tensor,  # [N, D] unit
    selected: np.ndarray,  # [S]
    seeds: np.ndarray,  # [T]
    *,
    edge_cos: float,
) -> np.ndarray:  # [S'] sorted ids
    """`NeighbourGrowth` written plainly (breadth-first search over Python sets), for the test."""
    chosen = set(np.asarray(selected).tolist())
    frontier = [int(s) for s in np.asarray(seeds).tolist() if int(s) in chosen]
    if not frontier:
        return np.array(sorted(chosen), dtype=np.int64)
    adjacent: dict[int, set[int]] = {i: set() for i in chosen}
    for i in chosen:
        for j in neighbors[i].tolist():
            if j in chosen and float(features[i] @ features[j]) > edge_cos:
                adjacent[i].add(j)
                adjacent[j].add(i)
    reached = set(frontier)
    while frontier:
        i = frontier.pop()
        for j in adjacent[i] - reached:
            reached.add(j)
            frontier.append(j)
    return np.array(sorted(reached), dtype=np.int64)

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

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from torch import Tensor

LENIENT_QUANTILE = 0.2
"""Share of a field's neighbour pairs that the edge cut may fail at most (`NeighbourGrowth.edge_cut`)."""
ROWS = 1 << 16
"""Gaussians per slice when the symmetric graph is laid out (`NeighbourGrowth._symmetric`)."""


class NeighbourGrowth:
    """The k-nearest-neighbour graph of one scene with each edge's feature cosine at one level.

    A click keeps the selected Gaussians reachable from the clicked ones through agreeing selected neighbours. The
    agreeing edges are made symmetric and labelled by connected component once per edge cut (`_symmetric`). Per
    click, a seed's component that the selection holds whole is kept as it is and a component without a seed is
    dropped; the seeds' partly held components get one breadth-first search from a virtual root linked to the seeds
    (SciPy's `breadth_first_order`, in C: a tenth of the time of its connected components on the same graph at 1M
    Gaussians) over their selected members' rows, read in runs when the graph is laid out in the order the selection
    comes in (`order`). Nothing is sorted or transposed per click. `fast = False` runs `grow_components`, the path
    before it (weakly connected components of the whole selected subgraph), kept for the benchmark's before/after;
    `grow_reference` is the plain version the tests compare both with.
    """

    def __init__(
        self,
        neighbors: np.ndarray,  # [N, k] int nearest 3D neighbours
        features: Tensor,  # [N, D] unit features of the level
        *,
        order: np.ndarray | None = None,  # [N] int: the Gaussians in the order the search lays its graph out
        chunk: int = 1 << 16,
    ) -> None:
        self.neighbors = np.ascontiguousarray(neighbors, dtype=np.int32)  # int32: half the bytes of int64 to gather
        n, k = self.neighbors.shape
        self.order = None if order is None else np.asarray(order, dtype=np.int64)
        """Node p of the search's graph is Gaussian order[p]. `FeatureField` passes its `PrunedBank`'s order: a
        selection then reads the graph's rows in runs (ascending block positions), and agreeing neighbours, alike
        in feature, sit close to each other there, so the per-click gathers stay in cache."""
        self.rank = None
        if self.order is not None:
            self.rank = np.empty(n, dtype=np.int32)  # [N] Gaussian id → node
            self.rank[self.order] = np.arange(n, dtype=np.int32)
        cos = np.empty((n, k), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, n, chunk):
                f = features[s : s + chunk].float()  # [C, D]
                rows = torch.from_numpy(self.neighbors[s : s + chunk].reshape(-1)).long()
                g = features.index_select(0, rows).float().reshape(f.shape[0], k, -1)
                cos[s : s + chunk] = torch.einsum("cd,ckd->ck", f, g).numpy()
        self.cos = cos  # [N, k]
        flat = cos.reshape(-1)
        cut = int(LENIENT_QUANTILE * (flat.size - 1))
        self.lenient_cos = float(np.partition(flat, cut)[cut]) if flat.size else 1.0
        """The `LENIENT_QUANTILE` quantile of the neighbour cosines: `edge_cut` never asks for more than this."""
        self.fast = True
        """Search from the seeds over the symmetric agreeing graph; False runs `grow_components`."""
        # Reused per click: Gaussian → index in the current selection, −1 outside it; slot n stands for "no edge".
        self._inside = np.full(n + 1, -1, dtype=np.int32)
        self._node = np.zeros(n, dtype=np.int32)  # reused by `_reached`: node → 1 + index in the search, 0 outside
        self._lock = threading.Lock()  # guards the reused buffers (the viewer clicks from several threads)
        self._agreeing: tuple[float, np.ndarray] | None = None  # (cut, [N, k] int32 neighbour or n where cos ≤ cut)
        self._graph: tuple | None = None  # (cut, indptr [N + 1], indices [E], component [N], component sizes [K])
        self._ones = np.ones(0)  # float64 edge weights, grown as needed (read only: a slice per click)

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
        indptr, indices, labels, sizes = self._symmetric(edge_cos)
        seeds = np.asarray(seeds, dtype=np.int64)
        nodes = selected if self.rank is None else self.rank[selected]  # [S] in the graph's numbering
        if self.rank is not None:
            seeds = self.rank[seeds]
        with self._lock:
            inside = self._inside
            inside[nodes] = np.arange(selected.size, dtype=np.int32)
            try:
                start = inside[seeds]
            finally:
                inside[nodes] = -1
        start = start[start >= 0]
        if start.size == 0:
            return selected
        # A component of the whole agreeing graph that the selection holds entirely is reached whole from a seed in
        # it (nothing links it to the rest), and one without a seed is never reached: only the seeds' components
        # that the selection holds in part need a search, over their selected members only.
        label = labels[nodes]  # [S]
        seed_comps = np.unique(label[start])
        member = np.zeros(sizes.size, dtype=bool)
        member[seed_comps] = True
        near = np.flatnonzero(member[label])  # [S'] positions in the selection
        held = np.bincount(label[near], minlength=sizes.size)
        partial = seed_comps[held[seed_comps] < sizes[seed_comps]]
        if partial.size == 0:
            return selected[near]
        member[:] = False
        member[partial] = True
        search = near[member[label[near]]]  # positions of the partly held components' selected members
        keep = np.zeros(selected.size, dtype=bool)
        keep[near] = True
        keep[search] = self._reached(nodes[search], seeds, indptr, indices)
        return selected[keep]

    def _reached(
        self,
        nodes: np.ndarray,  # [M] int nodes of the graph (it is restricted to them)
        seeds: np.ndarray,  # [T] int nodes
        indptr: np.ndarray,  # [N + 1] the symmetric agreeing graph (`_symmetric`)
        indices: np.ndarray,  # [E]
    ) -> np.ndarray:  # [M] bool: linked to a seed among `nodes`
        """One breadth-first search from a virtual root linked to the seeds, over the nodes' rows of the graph."""
        with self._lock:
            node = self._node
            node[nodes] = np.arange(1, nodes.size + 1, dtype=np.int32)
            try:
                start = node[seeds]
                start = np.unique(start[start > 0])
                # The nodes' rows of the symmetric graph, their ends as 1 + index among the nodes, 0 elsewhere.
                lo = indptr[nodes]
                degree = indptr[nodes + 1] - lo
                ends = np.cumsum(degree)
                at = np.repeat(lo - (ends - degree), degree) + np.arange(int(ends[-1]), dtype=lo.dtype)
                dst = node[indices[at]]  # [E_M]
            finally:
                node[nodes] = 0
        # Row 0 is the root, linked to the seeds; an edge leaving the nodes points back at it, which the search has
        # visited first, so nothing is filtered out, and the rows come out in order: the CSR is built directly.
        row_ptr = np.empty(nodes.size + 2, dtype=np.int32)
        row_ptr[0] = 0
        row_ptr[1:] = start.size
        row_ptr[2:] += ends
        edges = np.concatenate([start.astype(np.int32), dst])
        with self._lock:
            if self._ones.size < edges.size:
                self._ones = np.ones(max(edges.size, 2 * self._ones.size))
            ones = self._ones[: edges.size]
        size = nodes.size + 1
        graph = csr_matrix((ones, edges, row_ptr), shape=(size, size))
        reached = breadth_first_order(graph, 0, directed=True, return_predecessors=False)
        keep = np.zeros(size, dtype=bool)
        keep[reached] = True
        return keep[1:]

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
            inside = self._inside
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

    def _symmetric(
        self, edge_cos: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # indptr [N + 1], indices [E], component [N], sizes
        """The agreeing edges (cosine above `edge_cos`) in both directions, as one CSR over every node (`order`),
        made once per cut: row p lists p's agreeing neighbours and the nodes that have p as an agreeing neighbour,
        each once, and every node's connected component in it."""
        if self._graph is None or self._graph[0] != edge_cos:
            self._graph = None  # the previous cut's arrays go before the new ones are made
            n = self.neighbors.shape[0]
            forward_ptr = np.zeros(n + 1, dtype=np.int64)
            parts = []
            for a in range(0, n, ROWS):  # node p's agreeing neighbours, as nodes
                rows = slice(a, a + ROWS) if self.order is None else self.order[a : a + ROWS]
                agree = self.cos[rows] > edge_cos  # [R, k]
                forward_ptr[a + 1 : a + 1 + len(agree)] = agree.sum(1)
                ends = self.neighbors[rows][agree]
                parts.append(ends if self.rank is None else self.rank[ends])
            np.cumsum(forward_ptr, out=forward_ptr)
            forward = np.concatenate(parts)  # [E] grouped by source
            del parts
            reverse = csr_matrix(
                (np.ones(forward.size, dtype=np.int8), forward, forward_ptr), shape=(n, n)
            ).tocsc()  # column j lists the sources pointing at j
            back_ptr = reverse.indptr.astype(np.int64)
            indptr = forward_ptr + back_ptr
            indices = np.empty(2 * forward.size, dtype=np.int32)
            # Row i's forward entries go to indptr[i] onwards and its reverse ones after them, i.e. forward entry e
            # of row r to e + back_ptr[r] and reverse entry j of row r to j + forward_ptr[r + 1]; a slice of rows
            # at a time, so no [E] int64 temporary is made.
            for a in range(0, n, ROWS):
                b = min(n, a + ROWS)
                for ptr, other, values in (
                    (forward_ptr, back_ptr[a:b], forward),
                    (back_ptr, forward_ptr[a + 1 : b + 1], reverse.indices),
                ):
                    first, last = int(ptr[a]), int(ptr[b])
                    shift = np.repeat(other, np.diff(ptr[a : b + 1]))
                    indices[np.arange(first, last) + shift] = values[first:last]
            graph = csr_matrix((np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(n, n))
            del indices, indptr, reverse
            graph.sum_duplicates()  # a mutual pair once per row: a third fewer entries to read per click
            indptr, indices = graph.indptr, graph.indices
            _, component = connected_components(graph, directed=True, connection="strong")  # symmetric: components
            component = component.astype(np.int32)
            self._graph = (edge_cos, indptr, indices, component, np.bincount(component))
        return self._graph[1:]

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

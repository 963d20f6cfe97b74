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

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

LENIENT_QUANTILE = 0.2
"""Share of a field's neighbour pairs that the edge cut may fail at most (`NeighbourGrowth.edge_cut`)."""


class NeighbourGrowth:
    """The k-nearest-neighbour graph of one scene with each edge's feature cosine at one level."""

    def __init__(
        self,
        neighbors: np.ndarray,  # [N, k] int nearest 3D neighbours
        features: Tensor,  # [N, D] unit features of the level
        *,
        chunk: int = 1 << 16,
    ) -> None:
        self.neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
        n, k = self.neighbors.shape
        cos = np.empty((n, k), dtype=np.float32)
        nb = torch.from_numpy(self.neighbors)
        with torch.no_grad():
            for s in range(0, n, chunk):
                f = features[s : s + chunk].float()  # [C, D]
                g = features.index_select(0, nb[s : s + chunk].reshape(-1)).float().reshape(f.shape[0], k, -1)
                cos[s : s + chunk] = torch.einsum("cd,ckd->ck", f, g).numpy()
        self.cos = cos  # [N, k]
        flat = cos.reshape(-1)
        cut = int(LENIENT_QUANTILE * (flat.size - 1))
        self.lenient_cos = float(np.partition(flat, cut)[cut]) if flat.size else 1.0
        """The `LENIENT_QUANTILE` quantile of the neighbour cosines: `edge_cut` never asks for more than this."""
        # Reused per click: Gaussian → index in the current selection, −1 outside it; slot n stands for "no edge".
        self._inside = np.full(n + 1, -1, dtype=np.int32)
        self._agreeing: tuple[float, np.ndarray] | None = None  # (cut, [N, k] int32 neighbour or n where cos ≤ cut)

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
        agreeing = self._agreeing_neighbours(edge_cos)
        inside = self._inside
        inside[selected] = np.arange(selected.size, dtype=np.int32)
        try:
            start = inside[np.asarray(seeds, dtype=np.int64)]
            start = start[start >= 0]
            if start.size == 0:
                return selected
            # One gather per edge: a neighbour whose features disagree was replaced by the sentinel slot (−1).
            dst = inside[agreeing[selected]]  # [S, k] index in the selection, −1 outside it or disagreeing
            ok = dst >= 0
            # Rows come out in order, so the CSR is built directly (no sort); one direction per neighbour pair is
            # enough for weakly connected components.
            indptr = np.zeros(selected.size + 1, dtype=np.int32)
            np.cumsum(ok.sum(1), out=indptr[1:])
            edges = dst[ok]
            graph = csr_matrix(
                (np.ones(edges.size, dtype=np.int8), edges, indptr), shape=(selected.size, selected.size)
            )
            count, comp = connected_components(graph, directed=True, connection="weak")
            linked = np.zeros(count, dtype=bool)
            linked[comp[start]] = True
            keep = linked[comp]
        finally:
            inside[selected] = -1
        return selected[keep]

    def _agreeing_neighbours(self, edge_cos: float) -> np.ndarray:  # [N, k] int32
        """The neighbour table with every edge at or below `edge_cos` pointing at the sentinel slot N, made once per
        cut: a click then reads one int32 per edge instead of an index and a cosine."""
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

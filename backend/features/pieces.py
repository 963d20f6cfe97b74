"""A part in several pieces: the selected pieces that do not touch the grown one but are the same thing.

Growth from the click (grow.py) and the floater filter (floaters.py) keep one connected piece at the part level,
which is what stops a part click from spilling into what it touches. Some parts are several pieces, though: a
car's four wheels, a table's four legs, a pair of handles are one part in the masks (one label, one mask per view),
and the click keeps only the wheel it hit. Measured on the accuracy benchmark's tabletop (seed 0, labels noise 1):
the threshold selected two wheels, 110 and 105 Gaussians, with features at cosine 0.996 to the clicked wheel's
mean, and growth kept the clicked one (wheels 3D IoU 0.25).

So after growth, the selected Gaussians that growth dropped are split into pieces (connected through their k
nearest neighbours), and a piece is added back when it
- touches nothing grown (none of its Gaussians has a grown one among its k nearest neighbours: what touches the
  grown piece and still was cut off is a spill across a seam, the case growth exists for; the grown side's
  neighbour lists are not read, so the work is proportional to what growth dropped, not to the part),
- has a feature as alike to the grown piece's mean as growth asks of two neighbours (`piece_cos`, the same cut:
  the piece would have been grown into had it touched), and
- lies mostly (≥ `MIN_CLUSTER_SHARE`) in the clicked Gaussians' global cluster (clusters.py: what all views' masks
  agree is one thing), where the field has clusters.
After the field's warm-up the work is proportional to what growth dropped (`after_growth`: growth's mask says what
it dropped, and a binary search among the selection's nodes what each neighbour is; one small compiled kernel,
`_pieces_kernels.py`); the previous path (`__call__`) marks the grown ids in reused [N] buffers, never cleared in
whole, and takes SciPy's connected components over what growth dropped.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from ..core.jit import compile_now
from ._pieces_kernels import dropped_pieces

if TYPE_CHECKING:
    from .pruned import PrunedBank

SAMPLE_RUN = 16
"""By node (`after_growth`), the mean's sample is MEAN_SAMPLE / this runs of consecutive selected nodes spread over
the selection: neighbours in the bank's block order share its 16-column tiles, so the sample reads ~2 tiles a run
instead of a tile per column (0.13 → 0.04 ms at 1M Gaussians), and still spans the whole part."""


def _runs_sample(
    nodes: np.ndarray,  # [S] ascending selected nodes
    grown: np.ndarray,  # [S] bool: growth kept it
) -> np.ndarray:  # [≤ MEAN_SAMPLE] grown nodes: runs of SAMPLE_RUN consecutive selected ones, evenly spaced
    size = nodes.size
    runs = MEAN_SAMPLE // SAMPLE_RUN
    if size <= MEAN_SAMPLE:
        at = np.arange(size)
    else:
        at = (np.arange(runs)[:, None] * (size // runs) + np.arange(SAMPLE_RUN)[None, :]).reshape(-1)
    at = at[grown[at]]
    if at.size == 0:  # none of the runs' nodes was grown: the first grown one (growth keeps at least the seeds)
        at = np.flatnonzero(grown)[:1]
    return nodes[at]


MIN_CLUSTER_SHARE = 0.5
"""Share of a piece's Gaussians that must be in the clicked Gaussians' global cluster."""
MEAN_SAMPLE = 512
"""The grown piece's mean feature is taken over every ⌈G / this⌉-th grown Gaussian: a fixed sample rather than a
gather of the whole part's features (tens of thousands of scattered columns at 1M Gaussians). The features of one
part agree to a cosine of ~0.99, so 512 unit vectors fix their mean's direction to ~1e-3, far inside the cut; 4096
cost 0.67 ms of a 1M fine click's 2.1 ms in this step (a gather of 24 rows at 4k scattered columns)."""


class SeparatePieces:
    """The k-nearest-neighbour graph, the unit features of one level and the global clusters of one field."""

    def __init__(
        self,
        neighbors: np.ndarray,  # [N, k] int nearest 3D neighbours
        bank: Tensor | np.ndarray | PrunedBank,  # [D, N] unit features of the level, one column per Gaussian, or
        # the field's PrunedBank (its `columns`)
        clusters: np.ndarray | None = None,  # [N] int global cluster per Gaussian, −1 = none; None = no check
        *,
        columns: np.ndarray | None = None,  # [N] int: Gaussian i's column of `bank` (None: column i)
    ) -> None:
        self.neighbors = np.ascontiguousarray(neighbors, dtype=np.int32)  # int32: half the bytes of int64 (grow.py)
        # [D, N] as the field stores it: a set of columns is D sequential gathers, where rows of the transposed
        # view would be one strided read per Gaussian and feature (10× slower at 300k Gaussians).
        if isinstance(bank, Tensor):
            bank = bank.detach().float().cpu().numpy()
        self.bank = bank if hasattr(bank, "columns") else np.ascontiguousarray(bank)
        self.columns = columns
        """The field passes its `PrunedBank`'s blocked copy (its only copy of the bank) and that bank's `rank`."""
        self.clusters = None if clusters is None else np.asarray(clusters, dtype=np.int64)
        n = self.neighbors.shape[0]
        self._index = np.full(n, -1, dtype=np.int32)  # reused: Gaussian → index among the dropped ones, −1 outside
        self._grown = np.zeros(n, dtype=bool)  # reused: marks the grown piece
        self._lock = threading.Lock()
        self.fast = True
        """Once `prepare` has compiled its kernel, `after_growth` works from growth's mask over the selection's
        ascending nodes; before that (a CLI click, which never warms up) and with False, it runs `__call__` over the
        ids (the previous path, kept for the benchmark's before/after)."""
        self._prepared = False

    def __call__(
        self,
        selected: np.ndarray,  # [S] int ids the threshold selected
        grown: np.ndarray,  # [G] int ids growth kept (a subset of `selected`)
        seeds: np.ndarray,  # [T] int ids that were clicked
        *,
        piece_cos: float,
    ) -> np.ndarray:  # [P] ids of the pieces to add, in the selection's order (none of them in `grown`)
        selected = np.asarray(selected, dtype=np.int64)
        grown = np.asarray(grown, dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        if grown.size == 0 or grown.size >= selected.size:
            return empty
        target = self._target(np.asarray(seeds, dtype=np.int64))
        if target is not None and target < 0:
            return empty
        k = self.neighbors.shape[1]
        with self._lock:
            index, mark = self._index, self._grown
            rest = selected[:0]
            try:
                mark[grown] = True
                rest = selected[~mark[selected]]  # what growth dropped, in the selection's order
                index[rest] = np.arange(rest.size, dtype=np.int32)
                ends = self.neighbors[rest]  # [R, k]
                touch = mark[ends].any(1)  # a neighbour of the piece is grown
                dst = index[ends.reshape(-1)]  # [R·k] index among the dropped ones, −1 outside
            finally:
                index[rest] = -1
                mark[grown] = False
        src = np.repeat(np.arange(rest.size), k)
        inside = dst >= 0
        graph = csr_matrix(
            (np.ones(int(inside.sum()), dtype=np.int8), (src[inside], dst[inside])), shape=(rest.size, rest.size)
        )
        count, comp = connected_components(graph, directed=True, connection="weak")
        return self._choose(rest, touch, comp, count, grown, target, piece_cos)

    def prepare(self) -> SeparatePieces:
        """Compile (or load from numba's cache) `after_growth`'s kernel now, on a one-Gaussian selection of the types a
        click passes (`FeatureField.warm_up`), so that it never compiles inside a click."""
        one, no = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        args = (one, np.zeros(1, dtype=bool), no, no, self.neighbors, np.zeros(1, dtype=np.int32))
        compile_now((dropped_pieces, (*args, np.zeros(0, dtype=bool), no)))
        self._prepared = True
        return self

    def after_growth(
        self,
        selected: np.ndarray | None,  # [S] int ids the threshold selected (None with `block_bank`: its `perm`)
        keep: np.ndarray,  # [S] bool: growth kept it (`NeighbourGrowth.keep_nodes`)
        grown: np.ndarray | None,  # [G] int ids growth kept: selected[keep] (None with `block_bank`: not read)
        nodes: np.ndarray,  # [S] int ascending: the selection in the growth's numbering (PrunedBank positions)
        rank: np.ndarray,  # [N] int the node of each Gaussian id
        seeds: np.ndarray,  # [T] int ids that were clicked
        *,
        piece_cos: float,
        block_bank: PrunedBank | None = None,  # this finder's bank, column p (`columns`) Gaussian order[p]
    ) -> np.ndarray:  # [P] ids of the pieces to add, in the selection's order (`__call__`'s answer)
        """`__call__` for a selection that growth handed over as its mask over ascending nodes: what growth dropped
        is where the mask is off, and whether a neighbour is selected, grown or dropped is a binary search of its node
        among the selection's (`_pieces_kernels.dropped_pieces`, with the pieces' union-find), so nothing is marked or
        cleared over the grown part (tens of thousands of scattered ids at 1M Gaussians); the work is proportional to
        what growth dropped. With `block_bank` (the `PrunedBank`'s columns, in the nodes' numbering: the same
        values) the features are read at the nodes, ascending, rather than at scattered ids: the grown part's mean
        sample, 512 columns × D rows, measured 0.26 ms of a 1M fine click gathered by id and 0.06–0.15 ms so."""
        fast = self.fast and self._prepared
        if (selected is None or grown is None) and (not fast or block_bank is None):  # paths that read the ids
            if block_bank is None:
                raise ValueError("after_growth: the selected and grown ids, or the bank whose order gives them")
            selected = block_bank.perm[nodes] if selected is None else selected
            grown = selected[keep] if grown is None else grown
        if not fast:
            return self(selected, grown, seeds, piece_cos=piece_cos)
        if len(keep) != len(nodes) or (selected is not None and len(selected) != len(nodes)):  # read unchecked
            raise ValueError(f"after_growth: {len(keep)} flags for {len(nodes)} nodes")
        empty = np.zeros(0, dtype=np.int64)
        dropped = np.flatnonzero(~keep)  # [R] positions in the selection
        if dropped.size == 0 or dropped.size == len(nodes):
            return empty
        target = self._target(np.asarray(seeds, dtype=np.int64))
        if target is not None and target < 0:
            return empty
        # [R] ids, in the selection's order: only what growth dropped is mapped to ids
        rest = block_bank.perm[nodes[dropped]] if selected is None else np.asarray(selected[dropped], dtype=np.int64)
        touch = np.empty(rest.size, dtype=bool)
        comp = np.empty(rest.size, dtype=np.int64)
        count = dropped_pieces(nodes, keep, dropped, rest, self.neighbors, rank, touch, comp)
        if block_bank is None:
            return self._choose(rest, touch, comp, count, np.asarray(grown, dtype=np.int64), target, piece_cos)
        # The same columns by node: grown[i] is the Gaussian at the i-th kept node, rest[j] at the j-th dropped one.
        columns = (block_bank, nodes, keep, dropped)
        return self._choose(rest, touch, comp, count, None, target, piece_cos, columns)

    def _choose(
        self,
        rest: np.ndarray,  # [R] int ids growth dropped
        touch: np.ndarray,  # [R] bool: one of its neighbours is grown
        comp: np.ndarray,  # [R] int its piece: connected to the others through neighbours growth dropped
        count: int,  # how many pieces
        grown: np.ndarray | None,  # [G] int ids growth kept (None with `columns`: not read)
        target: int | None,  # the clicked Gaussians' global cluster (`_target`), None: no check
        piece_cos: float,
        columns: tuple[np.ndarray, ...] | None = None,  # the bank by node, the nodes, growth's mask, rest's positions
    ) -> np.ndarray:  # [P] ids: the pieces that touch nothing grown and are the clicked part
        sizes = np.bincount(comp, minlength=count).astype(np.float64)
        touching = np.zeros(count, dtype=bool)
        touching[comp[touch]] = True
        keep = ~touching
        if target is not None:
            same = np.bincount(comp, weights=self.clusters[rest] == target, minlength=count) / sizes
            keep &= same >= MIN_CLUSTER_SHARE
        if not keep.any():  # most clicks: every dropped piece touches the part; the features need not be read
            return np.zeros(0, dtype=np.int64)
        if columns is None:  # by Gaussian id (through the blocked bank's rank when the bank is blocked)
            sample, rest_f = self._columns(grown[:: -(-grown.size // MEAN_SAMPLE)]), self._columns(rest)
        else:  # made only when some piece is left to compare: the same columns read by node, ascending
            bank, nodes, grown_mask, dropped = columns
            sample = bank.columns(_runs_sample(nodes, grown_mask))
            rest_f = bank.columns(nodes[dropped])
        mean = sample.sum(1)  # [D]
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        keep &= np.bincount(comp, weights=mean @ rest_f, minlength=count) / sizes >= piece_cos
        return rest[keep[comp]]

    def _columns(self, ids: np.ndarray) -> np.ndarray:  # [S] int Gaussian ids → [D, S] their features
        at = ids if self.columns is None else self.columns[ids]
        return self.bank[:, at] if isinstance(self.bank, np.ndarray) else self.bank.columns(at)

    def _target(self, seeds: np.ndarray) -> int | None:
        """The clicked Gaussians' most common global cluster; None without clusters, −1 when no seed has one."""
        if self.clusters is None:
            return None
        labels = self.clusters[seeds]
        labels = labels[labels >= 0]
        return int(np.bincount(labels).argmax()) if labels.size else -1


def pieces_reference(
    neighbors: np.ndarray,  # [N, k]
    features: np.ndarray,  # [N, D] unit
    clusters: np.ndarray | None,  # [N]
    selected: np.ndarray,  # [S]
    grown: np.ndarray,  # [G]
    seeds: np.ndarray,  # [T]
    *,
    piece_cos: float,
) -> np.ndarray:  # [P] sorted ids
    """`SeparatePieces` written plainly (breadth-first search over Python sets), for the test."""
    grown_set = set(np.asarray(grown).tolist())
    rest = set(np.asarray(selected).tolist()) - grown_set
    target = None
    if clusters is not None:
        labels = [int(clusters[s]) for s in np.asarray(seeds).tolist() if clusters[s] >= 0]
        if not labels:
            return np.zeros(0, dtype=np.int64)
        target = max(set(labels), key=lambda c: (labels.count(c), -c))
    adjacent: dict[int, set[int]] = {i: set() for i in rest}
    touching: set[int] = set()
    for i in range(len(neighbors)):
        for j in neighbors[i].tolist():
            if i in rest and j in rest:
                adjacent[i].add(j)
                adjacent[j].add(i)
            if i in rest and j in grown_set:
                touching.add(i)
    if not grown_set:
        return np.zeros(0, dtype=np.int64)
    grown = np.asarray(grown)
    mean = np.asarray(features)[grown[:: -(-grown.size // MEAN_SAMPLE)]].sum(0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    out: set[int] = set()
    done: set[int] = set()
    for start in sorted(rest):
        if start in done:
            continue
        piece, frontier = {start}, [start]
        while frontier:
            for j in adjacent[frontier.pop()] - piece:
                piece.add(j)
                frontier.append(j)
        done |= piece
        members = sorted(piece)
        if piece & touching:
            continue
        if float(np.mean(np.asarray(features)[members] @ mean)) < piece_cos:
            continue
        if target is not None and np.mean([clusters[i] == target for i in members]) < MIN_CLUSTER_SHARE:
            continue
        out |= piece
    return np.array(sorted(out), dtype=np.int64)

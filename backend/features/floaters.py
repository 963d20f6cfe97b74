"""The floater filter: keep the part of a selection that is spatially connected to what was clicked.

A feature threshold selects every Gaussian that looks like the click, including stray ones elsewhere (a splat
under the table whose feature nobody trained, a speck on the wall; SAGA #47, #107). Connectivity must follow the
scene's sampling density, which varies thirty-fold between a mug and a wall, so Gaussians are binned once into
cells whose size adapts to their neighbourhood (a power of two of about four times the distance to the 8th nearest
neighbour), and two cells are adjacent when two of their Gaussians are mutual k-nearest neighbours (an isolated
speck has nearest neighbours, far away, but is nobody's). Per selection, the selected cells (optionally only
those holding `min_support` selected Gaussians) are grouped into connected components, and the components that
hold a clicked Gaussian, or are at least `keep_ratio` (2%) as big as the largest such, are kept: specks and
weakly supported scraps go, a table's legs (separate but substantial pieces) stay. That costs a bincount and a
small connected-components call per click.
"""

from __future__ import annotations

import threading

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ._floater_kernels import filter_selection
from .neighbors import knn_neighbors

ROWS = 1 << 16
"""Gaussians per slice when building the cells: the float64 and int64 temporaries stay a few MB at any scene size
(whole-scene ones cost +293 MB of peak memory at 1M Gaussians; `cells_and_adjacency_reference`)."""


def _cells_and_adjacency(
    means: np.ndarray,  # [N, 3] float32 or float64
    neighbors: np.ndarray,  # [N, k] int
    cell_factor: float,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:  # cell_of [N] int32, cells, adj_indptr [C + 1], adj_indices
    """`cells_and_adjacency_reference` computed in slices of `ROWS` Gaussians: the same float64 and int64
    element-wise arithmetic row by row (every value is the reference's, bit for bit), without any [N, k] int64 or
    [N, 3] float64 array. The neighbours stay in their own integer type (int32 as stored)."""
    n = len(means)
    nb = np.asarray(neighbors)
    if not np.issubdtype(nb.dtype, np.integer):
        nb = nb.astype(np.int64)
    origin = means.min(0).astype(np.float64)  # the float64 minimum of float32 values is their minimum, exactly
    reach = np.empty(n)  # [N] distance to the farthest kept neighbour
    for s in range(0, n, ROWS):
        here = means[s : s + ROWS].astype(np.float64)
        reach[s : s + ROWS] = np.linalg.norm(here - means[nb[s : s + ROWS, -1]].astype(np.float64), axis=1)
    positive = reach[reach > 0]
    floor = float(np.min(positive)) if positive.size else 1.0
    del positive
    keys = np.empty(n, dtype=np.int64)
    for s in range(0, n, ROWS):
        exponent = np.ceil(np.log2(np.maximum(cell_factor * reach[s : s + ROWS], floor))).astype(np.int64)
        size = np.exp2(exponent.astype(np.float64))
        rel = means[s : s + ROWS].astype(np.float64) - origin
        cells = np.floor(rel / size[:, None]).astype(np.int64) & ((1 << 18) - 1)
        keys[s : s + ROWS] = ((exponent + 64) << 54) | (cells[:, 0] << 36) | (cells[:, 1] << 18) | cells[:, 2]
    del reach
    _, cell_of = np.unique(keys, return_inverse=True)
    del keys
    cell_of = cell_of.reshape(-1).astype(np.int32)
    num_cells = int(cell_of.max()) + 1
    # Mutual neighbours only, one slice of rows at a time: nb[nb[rows]] is k times the size of its input.
    found: list[np.ndarray] = []
    for s in range(0, n, ROWS):
        rows = nb[s : s + ROWS]  # [R, k]
        own = np.arange(s, s + len(rows))
        mutual = (nb[rows] == own[:, None, None]).any(axis=2)  # [R, k]
        a = cell_of[np.repeat(own, mutual.sum(1))].astype(np.int64)
        b = cell_of[rows[mutual]].astype(np.int64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        found.append(np.unique(lo[lo != hi] * num_cells + hi[lo != hi]))
    pairs = np.unique(np.concatenate(found))
    src, dst = pairs // num_cells, pairs % num_cells
    # Symmetric adjacency in CSR form, so a selection only touches the edges of the cells it occupies; each row's
    # neighbours ascending, so a click's graph over its occupied cells (numbered in ascending cell order) comes out
    # in SciPy's canonical form, which its connected components would otherwise sort first (0.7 ms a click at 1M).
    both_src = np.concatenate([src, dst])
    both_dst = np.concatenate([dst, src])
    order = np.lexsort((both_dst, both_src))
    adj_indices = both_dst[order].astype(np.int32)
    adj_indptr = np.zeros(num_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(both_src, minlength=num_cells), out=adj_indptr[1:])
    return cell_of, num_cells, adj_indptr, adj_indices


def cells_and_adjacency_reference(
    means: np.ndarray,  # [N, 3]
    neighbors: np.ndarray,  # [N, k] int
    cell_factor: float = 4.0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:  # cell_of [N] int32, cells, adj_indptr [C + 1], adj_indices
    """The cells and their adjacency over whole-scene float64 / int64 arrays (`FloaterFilter`'s build before
    `_cells_and_adjacency`), for the test that compares them."""
    means = np.asarray(means, dtype=np.float64)
    nb = np.asarray(neighbors, dtype=np.int64)
    n = len(means)
    reach = np.linalg.norm(means - means[nb[:, -1]], axis=1)  # [N] distance to the farthest kept neighbour
    positive = reach[reach > 0]
    floor = float(np.min(positive)) if positive.size else 1.0
    exponent = np.ceil(np.log2(np.maximum(cell_factor * reach, floor))).astype(np.int64)  # [N]
    size = np.exp2(exponent.astype(np.float64))
    cells = np.floor((means - means.min(0)) / size[:, None]).astype(np.int64) & ((1 << 18) - 1)
    keys = ((exponent + 64) << 54) | (cells[:, 0] << 36) | (cells[:, 1] << 18) | cells[:, 2]
    _, cell_of = np.unique(keys, return_inverse=True)
    cell_of = cell_of.reshape(-1).astype(np.int32)
    num_cells = int(cell_of.max()) + 1
    src = np.repeat(np.arange(n, dtype=np.int64), nb.shape[1])
    dst = nb.reshape(-1)
    mutual = (nb[dst] == src[:, None]).any(axis=1)
    a, b = cell_of[src[mutual]].astype(np.int64), cell_of[dst[mutual]].astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(lo[lo != hi] * num_cells + hi[lo != hi])
    src, dst = pairs // num_cells, pairs % num_cells
    both_src = np.concatenate([src, dst])
    both_dst = np.concatenate([dst, src])
    order = np.lexsort((both_dst, both_src))  # rows by source, each row's neighbours ascending
    adj_indptr = np.zeros(num_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(both_src, minlength=num_cells), out=adj_indptr[1:])
    return cell_of, num_cells, adj_indptr, both_dst[order].astype(np.int32)


class FloaterFilter:
    """Density-adaptive cells over one scene's Gaussian centres and the cells' adjacency."""

    def __init__(
        self,
        means: np.ndarray,  # [N, 3]
        neighbors: np.ndarray | None = None,  # [N, k] int nearest neighbours (computed when not given)
        *,
        cell_factor: float = 4.0,
        min_support: int = 1,
        keep_ratio: float = 0.02,
    ) -> None:
        means = np.asarray(means)
        n = len(means)
        self.num_gaussians = n
        self.min_support = min_support
        self.keep_ratio = keep_ratio
        self.keep_by_cell = True
        """A click's kept Gaussians come from one per-cell flag table; False maps each through its occupied-cell index
        first (the path before it, the benchmark's previous)."""
        self.compiled = True
        """A click's filter runs as one compiled kernel (`_floater_kernels.filter_selection`: a count, a breadth-first
        search over the occupied cells, a pass over the selection); False runs the NumPy/SciPy path (the reference
        the tests compare it with, and the benchmark's previous path)."""
        if neighbors is None:
            neighbors = knn_neighbors(means, 8).numpy()
        if n == 0:
            self.cell_of = np.zeros(0, np.int32)
            self.num_cells = 0
            self.adj_indptr = np.zeros(1, np.int64)
            self.adj_indices = np.zeros(0, np.int32)
            self._local = np.zeros(0, np.int32)
            self._keep = np.zeros(0, bool)
            self._counts = np.zeros(0, np.int32)
            self._lock = threading.Lock()
            return
        self.cell_of, self.num_cells, self.adj_indptr, self.adj_indices = _cells_and_adjacency(
            means, neighbors, cell_factor
        )
        self._local = np.full(self.num_cells, -1, dtype=np.int32)  # reused: cell → index among occupied cells
        self._keep = np.zeros(self.num_cells, dtype=bool)  # reused: cell → kept (False outside a call)
        self._counts = np.zeros(self.num_cells, dtype=np.int32)  # reused by the kernel: selected per cell (0 outside)
        self._lock = threading.Lock()  # guards `_local` and `_keep` (the viewer clicks from several threads)

    def __call__(
        self,
        selected: np.ndarray,  # [S] int Gaussian ids of the selection
        seeds: np.ndarray,  # [T] int Gaussian ids that were clicked (the rays' main contributors)
        *,
        keep_ratio: float | None = None,
        cells: np.ndarray | None = None,  # [S] int32 `cell_of[selected]`, when the caller has it in hand
    ) -> np.ndarray:  # [S'] the ids kept
        """`keep_ratio` overrides the filter's own for this call (inf = only the components touching the click).
        `cells` spares the gather at scattered ids, a third of the call at 1M Gaussians (`FeatureField` keeps
        `cell_of` in its `PrunedBank`'s order and reads it in ascending order)."""
        if selected.size == 0:
            return selected
        with self._lock:
            if self.compiled:
                return self._kernel(
                    np.ascontiguousarray(selected, dtype=np.int64),
                    self._none,
                    self._no_cells if cells is None else np.ascontiguousarray(cells, dtype=np.int32),
                    seeds,
                    keep_ratio,
                    self._no_mask,
                )
            return self._filter(selected, seeds, keep_ratio, cells)

    def into_mask(
        self,
        positions: np.ndarray,  # [S] int64 ascending block positions of the selection
        perm: np.ndarray,  # [N] int64 block position → Gaussian id (the `PrunedBank`'s)
        block_cells: np.ndarray,  # [N] int32 `cell_of[perm]`
        seeds: np.ndarray,  # [T] int Gaussian ids that were clicked
        mask: np.ndarray,  # [N] bool all False: set True at the kept Gaussians
        *,
        keep_ratio: float | None = None,
    ) -> np.ndarray:  # `mask`
        """`__call__` for a selection held as block positions, writing the click's [N] mask directly (the compiled
        kernel only): neither the selection's ids and cells are gathered nor its kept ids made, which at 1M Gaussians
        cost as much as the filter itself."""
        if positions.size:
            with self._lock:
                self._kernel(positions, perm, block_cells, seeds, keep_ratio, mask)
        return mask

    def _kernel(self, selected, perm, cells, seeds, keep_ratio, mask) -> np.ndarray:  # holding the lock
        ratio = self.keep_ratio if keep_ratio is None else float(keep_ratio)
        seeds = np.ascontiguousarray(seeds, dtype=np.int64).reshape(-1)
        # The kernel reads cell_of at each seed unchecked (numba does no bounds checks); a few ids: checked here.
        if seeds.size and (int(seeds.min()) < 0 or int(seeds.max()) >= self.num_gaussians):
            raise ValueError(f"floater filter: a clicked id outside the {self.num_gaussians} Gaussians")
        return filter_selection(
            selected,
            perm,
            cells,
            self.cell_of,
            self.adj_indptr,
            self.adj_indices,
            seeds,
            int(self.min_support),
            float(ratio),
            self._counts,
            self._local,
            mask,
        )

    _no_cells = np.zeros(0, np.int32)
    _none = np.zeros(0, np.int64)
    _no_mask = np.zeros(0, bool)

    def warm_up(self) -> FloaterFilter:
        """Compile the per-click kernel (or load it from numba's cache) now, so that the first click does not."""
        if self.num_gaussians:
            one = np.zeros(1, np.int64)
            self(one, one)
            self(one, one, cells=self.cell_of[:1])
            self.into_mask(one, one, self.cell_of[:1], one, np.zeros(1, bool))
        return self

    def _filter(
        self, selected: np.ndarray, seeds: np.ndarray, keep_ratio: float | None, cells: np.ndarray | None
    ) -> np.ndarray:  # `__call__`'s work, holding the lock
        ratio = self.keep_ratio if keep_ratio is None else float(keep_ratio)
        cell = self.cell_of[selected] if cells is None else cells  # [S]
        counts = np.bincount(cell, minlength=self.num_cells)
        occupied = np.flatnonzero(counts >= self.min_support)  # [O] cells with support
        if occupied.size == 0:
            return selected[:0]
        local = self._local
        local[occupied] = np.arange(occupied.size)
        try:
            # Edges among occupied cells only: gather each occupied cell's adjacency row.
            start, stop = self.adj_indptr[occupied], self.adj_indptr[occupied + 1]
            degree = stop - start
            offsets = np.repeat(start - (np.cumsum(degree) - degree), degree) + np.arange(int(degree.sum()))
            dst = local[self.adj_indices[offsets]]
            ok = dst >= 0
            o = occupied.size
            # Rows come out in order, so the CSR is built directly (no sort); the graph is symmetric, so its
            # strongly connected components are its components and no transpose is needed.
            ends = np.cumsum(degree)
            kept_before = np.concatenate([[0], np.cumsum(ok)])
            indptr = np.concatenate([[0], kept_before[ends]]).astype(np.int64)
            edges = dst[ok]
            graph = csr_matrix((np.ones(edges.size, dtype=np.int8), edges, indptr), shape=(o, o))
            _, comp = connected_components(graph, directed=True, connection="strong")  # [O]
            comp_size = np.bincount(comp, weights=counts[occupied])
            seed_cells = local[self.cell_of[np.asarray(seeds, dtype=np.int64)]] if len(seeds) else np.zeros(0, int)
            seed_cells = seed_cells[seed_cells >= 0]
            if seed_cells.size:
                seed_comps = np.unique(comp[seed_cells])
                main = comp_size[seed_comps].max()
            else:  # the click's own Gaussians were not selected: keep the biggest component
                seed_comps = np.zeros(0, np.int64)
                main = comp_size.max()
            keep_comp = comp_size >= ratio * main
            keep_comp[seed_comps] = True
            if keep_comp.all() and occupied.size == np.count_nonzero(counts):
                return selected  # every selected cell is supported and every component stays: nothing to drop
            if self.keep_by_cell:  # one gather from a per-cell flag table (a bit per cell stays in cache)
                self._keep[occupied] = keep_comp[comp]  # unsupported cells stay False
                keep = self._keep[cell]
            else:  # the previous path: each selected Gaussian's local index, then its component's flag
                keep_local = keep_comp[comp]  # [O]
                where = local[cell]  # [S] −1 for unsupported cells
                keep = (where >= 0) & keep_local[np.maximum(where, 0)]
        finally:
            local[occupied] = -1
            self._keep[occupied] = False
        return selected[keep]


def floater_filter_reference(
    filt: FloaterFilter,
    selected: np.ndarray,  # [S] int Gaussian ids of the selection
    seeds: np.ndarray,  # [T] int Gaussian ids that were clicked
    *,
    keep_ratio: float | None = None,
) -> np.ndarray:  # [S'] the ids kept
    """`FloaterFilter.__call__` written plainly (a breadth-first search over the occupied cells, Python sets), for
    tests: the fast path builds one sparse graph over the occupied cells and labels its components with SciPy."""
    selected = np.asarray(selected, dtype=np.int64)
    counts: dict[int, int] = {}
    for i in selected.tolist():
        c = int(filt.cell_of[i])
        counts[c] = counts.get(c, 0) + 1
    occupied = {c for c, k in counts.items() if k >= filt.min_support}
    component: dict[int, int] = {}
    sizes: list[int] = []
    for start in sorted(occupied):
        if start in component:
            continue
        label, frontier, size = len(sizes), [start], 0
        component[start] = label
        while frontier:
            c = frontier.pop()
            size += counts[c]
            for d in filt.adj_indices[filt.adj_indptr[c] : filt.adj_indptr[c + 1]].tolist():
                if d in occupied and d not in component:
                    component[d] = label
                    frontier.append(d)
        sizes.append(size)
    if not sizes:
        return selected[:0]
    seed_cells = {int(filt.cell_of[s]) for s in np.asarray(seeds, dtype=np.int64).tolist()}
    seed_comps = {component[c] for c in seed_cells if c in component}
    main = max(sizes[c] for c in seed_comps) if seed_comps else max(sizes)
    ratio = filt.keep_ratio if keep_ratio is None else keep_ratio
    keep = {c for c, size in enumerate(sizes) if size >= ratio * main} | seed_comps
    return np.array([i for i in selected.tolist() if component.get(int(filt.cell_of[i])) in keep], dtype=np.int64)

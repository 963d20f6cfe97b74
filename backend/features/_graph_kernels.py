"""Compiled kernels that lay out the growth's agreeing graph (`grow.py` `NeighbourGrowth._symmetric`) in O(N) extra
memory: the field's warm-up builds it once, and at 3M Gaussians SciPy's steps set the server's peak memory.

`symmetric_components`: connected components of a symmetric CSR graph as a breadth-first search. SciPy's
`connected_components` first converts the graph to float64 data (8 bytes an edge: ~0.3 GB for the fine level's
agreeing graph at 3M Gaussians, on top of the graph itself). A graph whose every edge is stored in both directions
needs no weak / strong distinction: a search from each unlabelled node, in node order, labels each component in
turn. The labels are numbered in order of each component's smallest node (SciPy's numbering differs; the partition
is the same, and the tests compare partitions). `connected_components_reference` is the SciPy path.

`backbone_first`: each row's backbone entries, then the row's other entries, from the whole graph and its backbone
(a sub-graph), by merging their sorted rows; the SciPy path (`grow.py` `backbone_first_reference`: the difference of
the two sparse matrices, which SciPy allocates for the sum of both sizes, then the two CSRs' rows concatenated) made
three copies of the graph's entries where this writes one.

`both_ways` writes the symmetric graph itself (each edge and its reverse, once per row, rows ascending) by a count
and a fill, one copy of its entries where SciPy's transpose, concatenation and `sum_duplicates` (`grow.py`
`_both_ways`, the reference) made three, each with an int8 data array: at 3M Gaussians that assembly was the
field's peak memory. `backbone_first_in_place` then reorders its rows backbone first where they are (`backbone_first`,
which writes a second copy, is its reference in the tests).

All but `backbone_first` run inside `NeighbourGrowth.prepare`, which the field's warm-up calls: they compile (or
load from numba's cache) there, not in a click.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

from ..core.jit import kernel


@kernel
def _label_components(
    indptr: np.ndarray,  # [N + 1] int: row p is indices[indptr[p] : indptr[p + 1]]
    indices: np.ndarray,  # [E] int32 nodes
    labels: np.ndarray,  # [N] int32 out, filled with -1
    queue: np.ndarray,  # [N] int32 scratch
) -> int:  # the number of components
    n = labels.shape[0]
    count = 0
    for start in range(n):
        if labels[start] >= 0:
            continue
        labels[start] = count
        queue[0] = start
        head, tail = 0, 1
        while head < tail:
            p = queue[head]
            head += 1
            for e in range(indptr[p], indptr[p + 1]):
                q = indices[e]
                if labels[q] < 0:
                    labels[q] = count
                    queue[tail] = q
                    tail += 1
        count += 1
    return count


def symmetric_components(
    indptr: np.ndarray,  # [N + 1] int
    indices: np.ndarray,  # [E] int nodes; every edge p → q also stored as q → p
) -> tuple[int, np.ndarray]:  # (count, [N] int32 labels)
    """The connected components of a graph stored in both directions: (count, labels), as SciPy returns them."""
    n = len(indptr) - 1
    labels = np.full(n, -1, dtype=np.int32)
    queue = np.empty(n, dtype=np.int32)
    count = _label_components(np.asarray(indptr), np.asarray(indices), labels, queue)
    return int(count), labels


@kernel
def _merge_backbone_first(
    graph_ptr: np.ndarray,  # [N + 1] int
    graph: np.ndarray,  # [E] int32, sorted within each row
    backbone_ptr: np.ndarray,  # [N + 1] int
    backbone: np.ndarray,  # [B] int32, sorted within each row, each row a subset of the graph's
    indptr: np.ndarray,  # [N + 1] out
    backbone_end: np.ndarray,  # [N] out
    indices: np.ndarray,  # [E] int32 out
) -> int:  # entries written (E when the backbone is a sub-graph; -1 when there would be more)
    n = backbone_end.shape[0]
    m = 0
    for p in range(n):
        indptr[p] = m
        lo, hi = backbone_ptr[p], backbone_ptr[p + 1]
        for e in range(lo, hi):
            if m == indices.shape[0]:
                return -1  # more entries than the graph has: the backbone is not a sub-graph
            indices[m] = backbone[e]
            m += 1
        backbone_end[p] = m
        j = lo
        for e in range(graph_ptr[p], graph_ptr[p + 1]):
            q = graph[e]
            while j < hi and backbone[j] < q:
                j += 1
            if j < hi and backbone[j] == q:
                continue
            if m == indices.shape[0]:
                return -1
            indices[m] = q
            m += 1
    indptr[n] = m
    return m


def backbone_first(
    graph_ptr: np.ndarray,  # [N + 1] int
    graph: np.ndarray,  # [E] int32 sorted rows
    backbone_ptr: np.ndarray,  # [N + 1] int
    backbone: np.ndarray,  # [B] int32 sorted rows, a sub-graph of `graph`
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # indptr [N + 1], backbone_end [N], indices [E] int32
    """Row p of the result: p's backbone entries, then its other entries of the graph (both ascending);
    indptr and backbone_end int32 where the entries' offsets fit, else int64."""
    n = len(graph_ptr) - 1
    index = np.int32 if len(graph) < 2**31 else np.int64
    indptr, backbone_end = np.empty(n + 1, dtype=index), np.empty(n, dtype=index)
    indices = np.empty(len(graph), dtype=np.int32)
    written = _merge_backbone_first(graph_ptr, graph, backbone_ptr, backbone, indptr, backbone_end, indices)
    if written != len(graph):
        raise ValueError("the backbone is not a sub-graph of the graph")
    return indptr, backbone_end, indices


@kernel
def _walk_both_ways(
    forward_ptr: np.ndarray,  # [N + 1] int: row p's out-edges are forward[forward_ptr[p] : forward_ptr[p + 1]]
    forward: np.ndarray,  # [F] int32 nodes
    cursor: np.ndarray,  # [N] int64: advanced by one per entry of each row of the symmetric graph
    indices: np.ndarray,  # [E] int32 out, written at `cursor` when `write`
    write: bool,
) -> None:
    """One walk, run twice: with `write` False and `cursor` zeroed it counts each row's entries; with `write` and
    `cursor` at each row's start it writes them there (the same order, so the fill lands where the count said)."""
    n = cursor.shape[0]
    for p in range(n):
        lo, hi = forward_ptr[p], forward_ptr[p + 1]
        for e in range(lo, hi):
            q = forward[e]
            seen = False  # a repeated out-edge (a padded neighbour table) counts once
            for f in range(lo, e):
                if forward[f] == q:
                    seen = True
                    break
            if seen:
                continue
            if write:
                indices[cursor[p]] = q
            cursor[p] += 1  # q in row p
            if q == p:
                continue  # a self-loop is one entry
            mutual = False  # p in row q: already there when q → p is an out-edge of q
            for f in range(forward_ptr[q], forward_ptr[q + 1]):
                if forward[f] == p:
                    mutual = True
                    break
            if not mutual:
                if write:
                    indices[cursor[q]] = p
                cursor[q] += 1


@kernel
def _sort_rows(indptr: np.ndarray, indices: np.ndarray) -> None:  # [N + 1], [E]: each row sorted in place
    for p in range(indptr.shape[0] - 1):
        indices[indptr[p] : indptr[p + 1]].sort()


def both_ways(
    forward_ptr: np.ndarray,  # [N + 1] int
    forward: np.ndarray,  # [F] int32 nodes in 0..N-1, grouped by source
) -> tuple[np.ndarray, np.ndarray]:  # indptr [N + 1] (int32 where the entries fit, else int64), indices [E] int32
    """Each directed edge and its reverse in one CSR, each entry once per row, rows ascending: what `grow.py`
    `_both_ways` makes with SciPy (a CSC transpose, the two concatenated, `sum_duplicates`: three copies of the
    entries and an int8 data array beside each), written once: a count, then a fill, in O(N) scratch."""
    n = len(forward_ptr) - 1
    # numba checks no bounds: a node outside 0..N-1 or offsets past `forward` would be read and counted outside
    # the arrays (one pass over the entries, a few ms at 1M Gaussians, once per graph).
    if n < 0 or (n and (forward_ptr[0] != 0 or np.any(np.diff(forward_ptr) < 0) or forward_ptr[-1] > forward.size)):
        raise ValueError("both_ways: forward_ptr is not an ascending offset table into forward")
    used = forward[: int(forward_ptr[-1])] if n else forward[:0]
    if used.size and (int(used.min()) < 0 or int(used.max()) >= n):
        raise ValueError(f"both_ways: a node outside 0..{n - 1}")
    cursor = np.zeros(n, dtype=np.int64)
    _walk_both_ways(forward_ptr, forward, cursor, np.empty(0, dtype=np.int32), False)  # count
    total = int(cursor.sum())
    indptr = np.zeros(n + 1, dtype=np.int32 if total < 2**31 else np.int64)
    np.cumsum(cursor, out=indptr[1:])
    indices = np.empty(total, dtype=np.int32)
    cursor[:] = indptr[:-1]
    _walk_both_ways(forward_ptr, forward, cursor, indices, True)  # fill, where the count said
    _sort_rows(indptr, indices)
    return indptr, indices


@kernel
def _backbone_first_in_place(
    indptr: np.ndarray,  # [N + 1] int
    indices: np.ndarray,  # [E] int32, sorted within each row; rewritten: each row's backbone entries first
    backbone_ptr: np.ndarray,  # [N + 1] int
    backbone: np.ndarray,  # [B] int32, sorted within each row, each row a subset of the graph's
    backbone_end: np.ndarray,  # [N] out
    scratch: np.ndarray,  # [longest row] int32
) -> int:  # 0, or -1 when the backbone is not a sub-graph
    n = backbone_end.shape[0]
    for p in range(n):
        lo, hi = indptr[p], indptr[p + 1]
        j, b_hi = backbone_ptr[p], backbone_ptr[p + 1]
        w = lo
        m = 0
        for e in range(lo, hi):
            q = indices[e]
            while j < b_hi and backbone[j] < q:
                j += 1
            if j < b_hi and backbone[j] == q:
                indices[w] = q  # w ≤ e: the entries still to read are not overwritten
                w += 1
            else:
                scratch[m] = q
                m += 1
        if w - lo != b_hi - backbone_ptr[p]:
            return -1
        backbone_end[p] = w
        for i in range(m):
            indices[w + i] = scratch[i]
    return 0


def backbone_first_in_place(
    indptr: np.ndarray,  # [N + 1] int
    indices: np.ndarray,  # [E] int32 sorted rows; reordered in place
    backbone_ptr: np.ndarray,  # [N + 1] int
    backbone: np.ndarray,  # [B] int32 sorted rows, a sub-graph
) -> np.ndarray:  # backbone_end [N], indptr's dtype
    """`backbone_first` without a second copy of the entries: each row of `indices` is reordered in place, its
    backbone entries first (ascending), then its others (ascending)."""
    n = len(indptr) - 1
    backbone_end = np.empty(n, dtype=indptr.dtype)
    longest = int(np.diff(indptr).max()) if n else 0
    if _backbone_first_in_place(indptr, indices, backbone_ptr, backbone, backbone_end, np.empty(longest, np.int32)):
        raise ValueError("the backbone is not a sub-graph of the graph")
    return backbone_end


def connected_components_reference(graph) -> tuple[int, np.ndarray]:  # scipy CSR → (count, [N] labels)
    count, labels = connected_components(graph, directed=True, connection="strong")
    return int(count), labels

"""The growth's agreeing graph written by the compiled builders (`_graph_kernels.both_ways`,
`backbone_first_in_place`) equals SciPy's assembly (`grow._both_ways`; `grow._symmetric_scipy`, what an unprepared
growth builds) array for array: random neighbour tables, self-loops, repeated neighbours (a padded table), mutual
pairs, isolated nodes, k = 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features._graph_kernels import backbone_first, backbone_first_in_place, both_ways
from backend.features.grow import NeighbourGrowth, _both_ways


def _forward(n: int, k: int, rng, *, adversarial: bool) -> tuple[np.ndarray, np.ndarray]:  # ptr [N + 1], [F] int32
    table = rng.integers(0, n, (n, k))
    if adversarial:
        table[::7, 0] = np.arange(0, n, 7)  # self-loops
        table[::5, -1] = table[::5, 0]  # a neighbour listed twice
        table[1::9] = np.roll(np.arange(n), 1)[1::9, None]  # mutual pairs: p → p − 1 …
        table[0::9] = np.roll(np.arange(n), -1)[0::9, None]  # … and p − 1 → p
    keep = rng.random((n, k)) < 0.7
    keep[::11] = False  # nodes with no out-edge
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keep.sum(1), out=ptr[1:])
    return ptr, table[keep].astype(np.int32)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 1), (50, 3), (3000, 8), (2000, 1)])
@pytest.mark.parametrize("adversarial", [False, True])
def test_both_ways_equals_scipys_transpose_and_sum(n, k, adversarial) -> None:
    rng = np.random.default_rng(n * 10 + k + adversarial)
    ptr, forward = _forward(n, k, rng, adversarial=adversarial)
    indptr, indices = both_ways(ptr, forward)
    expected = _both_ways(ptr, forward, n)
    assert indptr.dtype == np.int32 and indices.dtype == np.int32
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)


@pytest.mark.parametrize("adversarial", [False, True])
def test_backbone_first_in_place_equals_the_copying_merge(adversarial) -> None:
    rng = np.random.default_rng(4 + adversarial)
    n = 2000
    ptr, forward = _forward(n, 6, rng, adversarial=adversarial)
    indptr, indices = both_ways(ptr, forward)
    sub = rng.random(forward.size) < 0.4  # a sub-graph: some of the out-edges, made symmetric
    sub_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.add.reduceat(sub, ptr[:-1]) * (np.diff(ptr) > 0), out=sub_ptr[1:])
    b_ptr, b_indices = both_ways(sub_ptr, forward[sub])
    ref_ptr, ref_end, ref_indices = backbone_first(indptr, indices, b_ptr, b_indices)
    end = backbone_first_in_place(indptr, indices, b_ptr, b_indices)
    np.testing.assert_array_equal(indptr, ref_ptr)
    np.testing.assert_array_equal(end, ref_end)
    np.testing.assert_array_equal(indices, ref_indices)
    with pytest.raises(ValueError, match="sub-graph"):  # a backbone entry the graph lacks
        wrong = b_indices.copy()
        row = int(np.flatnonzero(np.diff(b_ptr))[0])
        wrong[b_ptr[row]] = np.setdiff1d(np.arange(n), indices[indptr[row] : indptr[row + 1]])[0]
        backbone_first_in_place(indptr, indices.copy(), b_ptr, np.sort(wrong))


@pytest.mark.parametrize(("n", "k", "ordered"), [(4000, 8, True), (3000, 5, False), (300, 1, True)])
def test_the_growths_compiled_graph_equals_the_scipy_one(n, k, ordered) -> None:
    rng = np.random.default_rng(n + k)
    neighbors = rng.integers(0, n, (n, k)).astype(np.int32)
    neighbors[::13, -1] = neighbors[::13, 0]  # repeated neighbours
    neighbors[::17, 0] = np.arange(0, n, 17)  # self-loops
    features = torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(n)), dim=1)
    order = rng.permutation(n) if ordered else None
    compiled = NeighbourGrowth(neighbors, features, order=order).prepare(0.2)
    plain = NeighbourGrowth(neighbors, features, order=order)
    plain.compiled = False  # never prepared: the SciPy assembly
    for cut in (compiled.edge_cut(0.2), -1.0, 0.5):
        got = compiled._symmetric(cut)
        expected = plain._symmetric(cut)
        for name in ("indptr", "backbone_end", "indices", "component"):
            a, b = getattr(got, name), getattr(expected, name)
            assert a.dtype == b.dtype, name
            if name == "component":  # the same partition (the numbering may differ: `_graph_kernels.py`)
                a, b = _canonical(a), _canonical(b)
            np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_array_equal(np.sort(got.sizes), np.sort(expected.sizes))
        assert got.down is not None and expected.down is None  # the compiled search's links come with it


def _canonical(labels: np.ndarray) -> np.ndarray:  # relabelled by first appearance
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


def test_the_compiled_build_holds_less_than_half_of_scipys_peak() -> None:
    """The point of the compiled builders: the graph's assembly peaks (NumPy's allocations, traced) well below
    SciPy's, and within a few times the graph it leaves (at 3M Gaussians this step set the server's peak RSS)."""
    import tracemalloc

    from backend.features.neighbors import knn_neighbors

    n = 100_000
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g)
    neighbors = knn_neighbors(means, 8).numpy()
    lab = (means[:, 0] > 0).long() + 2 * (means[:, 1] > 0).long()
    noise = 0.3 * torch.randn(n, 16, generator=g)
    features = torch.nn.functional.normalize(torch.randn(4, 16, generator=g)[lab] + noise, dim=1)
    order = np.random.default_rng(0).permutation(n)
    peaks, held = {}, {}
    for compiled in (True, False):
        growth = NeighbourGrowth(neighbors, features, order=order)
        if compiled:
            growth.prepare(0.99)  # compiles the builders on this cut, so the traced build below is the build alone
        else:
            growth.compiled = False
        cut = float(np.quantile(growth.cos, 0.15))  # a new cut: the graph is built again
        tracemalloc.start()
        try:
            graph = growth._symmetric(cut)
            peaks[compiled] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        held[compiled] = sum(a.nbytes for a in graph[1:] if a is not None)
    assert graph.indices.size > 5 * n  # a real graph (most of the 8 neighbours agree)
    assert peaks[True] < 0.6 * peaks[False]
    assert peaks[True] < 3.5 * held[True]


def test_both_ways_refuses_nodes_and_offsets_outside_the_graph() -> None:
    """numba reads and counts past an array's end silently: a node past N or below 0, or offsets past the entries,
    must raise instead."""
    ptr = np.array([0, 2, 3, 4], np.int64)
    for forward in (np.array([1, 3, 0, 1], np.int32), np.array([1, -1, 0, 1], np.int32)):
        with pytest.raises(ValueError, match="outside"):
            both_ways(ptr, forward)
    for bad_ptr in (np.array([0, 2, 3, 9], np.int64), np.array([0, 3, 2, 4], np.int64), np.array([1, 2, 3, 4])):
        with pytest.raises(ValueError, match="offset table"):
            both_ways(bad_ptr, np.array([1, 2, 0, 1], np.int32))
    indptr, indices = both_ways(ptr, np.array([1, 2, 0, 1], np.int32))  # the same shape, in range: fine
    assert indptr[-1] == indices.size

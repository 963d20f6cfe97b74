"""The compiled component labelling (backend/features/_graph_kernels.py) against SciPy's: the same partition of
the nodes on random symmetric graphs (isolated nodes, one big component, many small ones, int32 and int64 row
pointers), and on the agreeing graph `NeighbourGrowth` builds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from backend.features._graph_kernels import connected_components_reference, symmetric_components


def _canonical(labels: np.ndarray) -> np.ndarray:  # relabel by first appearance: equal iff the partitions are
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


def _symmetric(n: int, edges: int, rng) -> csr_matrix:
    a = rng.integers(0, n, edges)
    b = rng.integers(0, n, edges)
    keep = a != b
    a, b = a[keep], b[keep]
    g = csr_matrix((np.ones(2 * a.size, np.int8), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))
    g.sum_duplicates()
    return g


@pytest.mark.parametrize(("n", "edges"), [(1, 0), (50, 0), (2000, 300), (2000, 1500), (2000, 20000)])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_the_partition_equals_scipys(n: int, edges: int, index) -> None:
    rng = np.random.default_rng(n + edges)
    g = _symmetric(n, edges, rng)
    count, labels = symmetric_components(g.indptr.astype(index), g.indices.astype(np.int32))
    ref_count, ref = connected_components_reference(g)
    assert labels.dtype == np.int32 and labels.shape == (n,)
    assert count == ref_count
    np.testing.assert_array_equal(_canonical(labels), _canonical(ref))
    # Numbered by each component's smallest node: label 0 holds node 0, labels first appear in increasing order.
    assert labels[0] == 0 and np.array_equal(
        np.unique(labels, return_index=True)[1], np.sort(np.unique(labels, return_index=True)[1])
    )


def test_the_growth_graphs_components_equal_scipys() -> None:
    """`NeighbourGrowth._symmetric` labels its agreeing graph with the kernel: the same partition SciPy finds."""
    import torch

    from backend.features.grow import NeighbourGrowth

    rng = np.random.default_rng(3)
    n, k = 3000, 6
    neighbors = rng.integers(0, n, (n, k)).astype(np.int32)
    features = torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    growth = NeighbourGrowth(neighbors, features, order=rng.permutation(n))
    graph = growth._symmetric(0.2)
    csr = csr_matrix((np.ones(graph.indices.size, np.int8), graph.indices, graph.indptr), shape=(n, n))
    count, ref = connected_components_reference(csr)
    np.testing.assert_array_equal(_canonical(graph.component), _canonical(ref))
    assert graph.sizes.size == count and graph.sizes.sum() == n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backbone_first_equals_the_scipy_path(seed: int) -> None:
    """Each row's backbone entries, then its others, exactly as the sparse difference and row concatenation make
    them (rows with no backbone, rows all backbone, empty rows)."""
    from backend.features._graph_kernels import backbone_first
    from backend.features.grow import backbone_first_reference

    rng = np.random.default_rng(seed)
    n = 1500
    graph = _symmetric(n, 6000, rng)
    graph.data[:] = rng.integers(1, 3, graph.data.size)  # mutual pairs summed: the data is not all ones
    pick = rng.random(graph.indices.size) < [0.0, 0.4, 1.0][seed]
    rows = np.repeat(np.arange(n), np.diff(graph.indptr))
    backbone = csr_matrix((np.ones(pick.sum(), np.int8), (rows[pick], graph.indices[pick])), shape=(n, n))
    backbone.sum_duplicates()
    got = backbone_first(graph.indptr, graph.indices, backbone.indptr, backbone.indices)
    want = backbone_first_reference(graph, backbone)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert got[0][-1] == graph.indices.size


def test_backbone_first_refuses_a_backbone_outside_the_graph() -> None:
    from backend.features._graph_kernels import backbone_first

    ptr = np.array([0, 1, 1], np.int32)
    with pytest.raises(ValueError, match="sub-graph"):
        backbone_first(ptr, np.array([1], np.int32), ptr, np.array([0], np.int32))

"""The growth's search over the backbone, then the rest (grow.py `NeighbourGrowth.keep_nodes`), against the plain
reference, and the field's fine click taking it with the selection in block order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features import grow
from backend.features.grow import NeighbourGrowth, grow_reference
from backend.features.neighbors import knn_neighbors


def _random_graph(seed: int, n: int = 500, k: int = 6) -> tuple[np.ndarray, torch.Tensor]:
    """A directed neighbour table that is not a k-NN one (repeats, self-loops, one-way edges, a hub)."""
    rng = np.random.default_rng(seed)
    nb = rng.integers(0, n, (n, k))
    nb[rng.random((n, k)) < 0.1] = 7
    feats = F.normalize(torch.from_numpy(rng.normal(size=(n, 4))).float(), dim=1)
    return nb, feats


@pytest.mark.parametrize("graph_seed", range(3))
@pytest.mark.parametrize("backbone", [0, 1, 3])
@pytest.mark.parametrize("compiled", [False, True])
def test_keep_nodes_matches_the_reference(
    monkeypatch: pytest.MonkeyPatch, graph_seed: int, backbone: int, compiled: bool
) -> None:
    # Backbone 0: the first search reaches only the seeds and the second does everything; 1: it leaves much to the
    # second; 3: the default. Each must give the plain reference's answer, with the SciPy searches (compiled off,
    # the previous path) and with the compiled kernel (which does not read the backbone).
    monkeypatch.setattr(grow, "BACKBONE", backbone)
    monkeypatch.setattr(grow, "ROWS", 41)
    nb, feats = _random_graph(graph_seed)
    n = len(nb)
    rng = np.random.default_rng(100 + graph_seed)
    order = rng.permutation(n)
    growth = NeighbourGrowth(nb, feats, order=order)
    growth.compiled = compiled
    growth.prepare(0.0)  # compiles the search (compiled) or only makes the graph (not)
    for trial in range(8):
        positions = np.flatnonzero(rng.random(n) < rng.uniform(0.2, 0.95))  # ascending, as a PrunedBank gives them
        seeds = rng.choice(n, int(rng.integers(1, 6)), replace=True)
        for edge in (-1.0, 0.0, 0.6, 0.95):
            ref = grow_reference(nb, feats, order[positions], seeds, edge_cos=edge)
            keep = growth.keep_nodes(positions, seeds, edge_cos=edge)
            got = order[positions] if keep is None else order[positions[keep]]
            assert np.array_equal(np.sort(got), ref), (trial, edge)
            assert np.array_equal(np.sort(growth(order[positions], seeds, edge_cos=edge)), ref), (trial, edge)


def test_keep_nodes_on_a_knn_graph_whose_backbone_misses_some() -> None:
    # A k-NN graph with noisy features: the backbone alone leaves Gaussians that only their other agreeing
    # neighbours link to the click; the second search finds them.
    rng = np.random.default_rng(3)
    n = 4000
    means = rng.uniform(-1, 1, (n, 3))
    nb = knn_neighbors(means, 8).numpy()
    feats = F.normalize(
        torch.tensor([[1.0, 0.0, 0.0]]) + 0.4 * torch.randn(n, 3, generator=torch.Generator().manual_seed(3)), dim=1
    )
    growth = NeighbourGrowth(nb, feats, order=rng.permutation(n))
    growth.compiled = False  # the two SciPy searches: the second one has work to do
    edge = float(np.quantile(growth.cos, 0.3))
    graph = growth._symmetric(edge)
    backbone_only = np.zeros(n + 1, dtype=np.int64)  # the backbone as its own CSR, to search it alone
    backbone_only[1:] = np.cumsum(graph.backbone_end - graph.indptr[:-1])
    rows = [graph.indices[graph.indptr[p] : graph.backbone_end[p]] for p in range(n)]
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    missed = 0
    for _ in range(6):
        positions = np.flatnonzero(rng.random(n) < 0.75)
        seeds = growth.order[positions[:2]]
        ref = grow_reference(nb, feats, growth.order[positions], seeds, edge_cos=edge)
        keep = growth.keep_nodes(positions, seeds, edge_cos=edge)
        got = growth.order[positions] if keep is None else growth.order[positions[keep]]
        assert np.array_equal(np.sort(got), ref)
        # What the backbone alone reaches inside the selection: less than the answer on some trials.
        inside = np.zeros(n, dtype=bool)
        inside[positions] = True
        sub = [r[inside[r]] for r in rows]
        ptr = np.concatenate([[0], np.cumsum([len(r) for r in sub])])
        g = csr_matrix((np.ones(ptr[-1]), np.concatenate(sub), ptr), shape=(n, n))
        reached: set[int] = set()
        for s in positions[:2]:
            reached |= set(breadth_first_order(g, int(s), directed=True, return_predecessors=False).tolist())
        missed += ref.size - len(reached)
    assert missed > 0  # the second search had work to do


def test_the_backbone_is_each_nodes_most_agreeing_neighbours_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grow, "BACKBONE", 2)
    rng = np.random.default_rng(5)
    n, k = 300, 5
    nb = rng.integers(0, n, (n, k))
    growth = NeighbourGrowth(nb, F.normalize(torch.from_numpy(rng.normal(size=(n, 3))).float(), dim=1))
    graph = growth._symmetric(0.1)
    expected: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        agreeing = [c for c in range(k) if growth.cos[i, c] > 0.1]
        best = sorted(agreeing, key=lambda c: (-growth.cos[i, c], c))[:2]
        for c in best:
            expected[i].add(int(nb[i, c]))
            expected[int(nb[i, c])].add(i)
    for p in range(n):
        backbone = graph.indices[graph.indptr[p] : graph.backbone_end[p]].tolist()
        whole = graph.indices[graph.indptr[p] : graph.indptr[p + 1]].tolist()
        assert sorted(backbone) == sorted(expected[p])  # each once
        assert len(whole) == len(set(whole)) and set(backbone) <= set(whole)


def test_keep_nodes_out_of_order_takes_the_plain_path() -> None:
    nb, feats = _random_graph(8)
    n = len(nb)
    rng = np.random.default_rng(8)
    order = rng.permutation(n)
    growth = NeighbourGrowth(nb, feats, order=order)
    positions = rng.permutation(n)[:300]  # not ascending
    seeds = order[positions[:3]]
    keep = growth.keep_nodes(positions, seeds, edge_cos=0.3)
    got = order[positions] if keep is None else order[positions[keep]]
    assert np.array_equal(np.sort(got), grow_reference(nb, feats, order[positions], seeds, edge_cos=0.3))
    assert growth.keep_nodes(np.zeros(0, dtype=np.int64), seeds, edge_cos=0.3) is None


def test_the_fine_click_grows_over_its_block_order_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    # The field hands the growth the selection's PrunedBank positions (no gather by id) and keeps the floater
    # cells in block order; its mask equals the one the components path (the previous one) gives.
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=20_000)
    g = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(int(synth.part_labels.max()) + 1, 12, generator=g), dim=1)
    coarse = F.normalize(torch.randn(int(synth.object_labels.max()) + 1, 12, generator=g), dim=1)
    feats = torch.cat(
        [
            F.normalize(
                coarse[synth.object_labels] + 0.1 * torch.randn(len(synth.object_labels), 12, generator=g), dim=1
            ),
            F.normalize(centres[synth.part_labels] + 0.4 * torch.randn(len(synth.part_labels), 12, generator=g), dim=1),
        ],
        dim=1,
    )
    field = FeatureField(synth.scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)})
    calls = []
    real = NeighbourGrowth.keep_nodes

    def counted(self, nodes, seeds, *, edge_cos, ascending=False):
        assert not ascending or (np.diff(nodes) > 0).all()  # the field vouches for the order: it holds
        keep = real(self, nodes, seeds, edge_cos=edge_cos, ascending=ascending)
        calls.append(0 if keep is None else int((~keep).sum()))
        return keep

    monkeypatch.setattr(NeighbourGrowth, "keep_nodes", counted)
    cam = orbit_cameras(synth, views=1, resolution=120, seed=0)[0]
    rng = np.random.default_rng(0)
    for x, y in zip(rng.uniform(0.2, 0.8, 8) * cam.width, rng.uniform(0.2, 0.8, 8) * cam.height, strict=True):
        fast = field.segment(cam, [(float(x), float(y))], level="fine").mask
        growth = field._growths[("fine", None)][1]
        growth.fast = False
        previous = field.segment(cam, [(float(x), float(y))], level="fine").mask
        growth.fast = True
        assert np.array_equal(fast, previous)
    assert len(calls) == 8 and max(calls) > 0  # every click grew over positions, and some dropped Gaussians

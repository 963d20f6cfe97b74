"""Part selection grown from the click through feature-alike 3D neighbours (grow.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.core.camera import look_at
from backend.core.scene import GaussianScene
from backend.features.click import ClickMethod
from backend.features.field import FeatureField
from backend.features.grow import NeighbourGrowth, grow_reference
from backend.features.neighbors import knn_neighbors


def _touching_parts(seed: int = 0) -> tuple[GaussianScene, np.ndarray]:
    """Two halves of one slab that touch along x = 0 (labels 0 and 1): one object, two parts."""
    rng = np.random.default_rng(seed)
    means = rng.uniform([-0.3, -0.1, -0.1], [0.3, 0.1, 0.1], (1500, 3)).astype(np.float32)
    labels = (means[:, 0] > 0).astype(np.int64)
    n = len(means)
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(means),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.015),
        opacities=torch.full((n,), 0.9),
        colors=torch.full((n, 3), 0.5),
    )
    return scene, labels


def test_growth_matches_the_reference() -> None:
    rng = np.random.default_rng(1)
    means = rng.uniform(-1, 1, (600, 3))
    nb = knn_neighbors(means, 6).numpy()
    feats = F.normalize(torch.from_numpy(means[:, :2] + 0.3 * rng.normal(size=(600, 2))).float(), dim=1)
    growth = NeighbourGrowth(nb, feats)
    for trial in range(6):
        selected = np.flatnonzero(rng.random(600) < 0.7)
        seeds = rng.choice(600, 3, replace=False)
        for edge in (-1.0, 0.5, 0.9):
            fast = np.sort(growth(selected, seeds, edge_cos=edge))
            ref = grow_reference(nb, feats, selected, seeds, edge_cos=edge)
            assert np.array_equal(fast, ref), (trial, edge)
    # No selected seed: nothing to grow from, the selection is kept as it is.
    selected = np.arange(10, 600)
    assert np.array_equal(growth(selected, np.arange(5), edge_cos=0.5), selected)


def test_growth_stops_at_a_seam_where_the_parts_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parts touch (one piece for the floater filter) and both pass a low threshold; their fine halves are at
    # cosine 0.8, so the fine feature (coarse ⊕ fine) is at 0.9 across the seam and 1 inside each part.
    scene, labels = _touching_parts()
    n = len(labels)
    coarse = torch.zeros(n, 12)
    coarse[:, 0] = 1.0
    fine = torch.zeros(n, 12)
    fine[labels == 0, 0] = 1.0
    fine[labels == 1, 0], fine[labels == 1, 1] = 0.8, 0.6
    field = FeatureField(
        scene, "click", {"features": torch.cat([coarse, fine], 1), "coarse_centroids": torch.zeros(0, 12)}
    )
    cam = look_at(
        "front", np.array([0.0, -2.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=64, height=64, fov_y_deg=40
    )
    p = cam.world_to_camera[:3, :3] @ np.array([-0.2, 0.0, 0.0]) + cam.world_to_camera[:3, 3]
    on_left = (cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy)

    monkeypatch.setattr(ClickMethod, "FINE_GROW_EDGE", None)
    plain = field.segment(cam, [on_left], level="fine", threshold=0.8).mask
    assert plain.all()  # the threshold takes both parts, and they are one connected piece
    monkeypatch.setattr(ClickMethod, "FINE_GROW_EDGE", 0.95)
    grown = field.segment(cam, [on_left], level="fine", threshold=0.8).mask
    assert np.array_equal(grown, labels == 0)
    # Only the fine level grows; the coarse level and an unfiltered click are untouched.
    assert field.segment(cam, [on_left], level="coarse", threshold=0.8).mask.all()
    assert field.segment(cam, [on_left], level="fine", threshold=0.8, filter_floaters=False).mask.all()


def test_the_edge_cut_relaxes_on_features_whose_neighbours_agree_less() -> None:
    # Features that have not converged (one direction plus noise: neighbour cosines around 0.9): an absolute
    # 0.99 would cut the selection into specks; the cut follows the field's weakest 20% of pairs instead.
    rng = np.random.default_rng(2)
    means = rng.uniform(-1, 1, (800, 3))
    nb = knn_neighbors(means, 8).numpy()
    noisy = F.normalize(torch.tensor([[1.0] + [0.0] * 11]) + 0.15 * torch.randn(800, 12), dim=1)
    growth = NeighbourGrowth(nb, noisy)
    assert growth.lenient_cos == pytest.approx(float(np.quantile(growth.cos, 0.2)), abs=1e-3)
    assert growth.edge_cut(0.99) == growth.lenient_cos < 0.99
    everything, seeds = np.arange(800), np.arange(4)
    assert growth(everything, seeds, edge_cos=0.99).size < 100
    assert growth(everything, seeds, edge_cos=growth.edge_cut(0.99)).size > 600
    # Converged features (every pair agrees): the cut is the one asked for.
    assert NeighbourGrowth(nb, noisy[:1].repeat(800, 1)).edge_cut(0.99) == 0.99


def test_warm_up_builds_the_fine_levels_neighbour_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    scene, labels = _touching_parts()
    feats = F.normalize(torch.ones(len(labels), 24), dim=1)
    monkeypatch.setattr(ClickMethod, "FINE_GROW_EDGE", 0.95)
    field = FeatureField(scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)})
    field.warm_up()
    assert [key for key in field._growths] == [("fine", None)]  # not the coarse level, which does not grow
    growth = field._growths[("fine", None)][1]
    # and its agreeing graph at the cut a click uses, so the first fine click does not make it (1.3 s at 1M)
    assert growth._graph is not None and growth._graph.cut == growth.edge_cut(0.95)
    monkeypatch.setattr(ClickMethod, "FINE_GROW_EDGE", None)
    plain = FeatureField(scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)})
    assert not plain.warm_up()._growths


@pytest.mark.parametrize("graph_seed", range(4))
@pytest.mark.parametrize("laid_out", [False, True])
def test_the_search_from_the_seeds_matches_the_reference_on_random_graphs(
    monkeypatch: pytest.MonkeyPatch, graph_seed: int, laid_out: bool
) -> None:
    # Arbitrary directed neighbour tables (not k-NN: repeated neighbours, self-loops, one-way edges, hubs), random
    # features, selections and seeds: the search (`__call__`), the components path before it (`grow_components`)
    # and the plain reference agree on every one.
    from backend.features import grow

    monkeypatch.setattr(grow, "ROWS", 37)  # the symmetric graph laid out in many uneven slices
    rng = np.random.default_rng(graph_seed)
    n, k = 500, 5
    nb = rng.integers(0, n, (n, k))
    nb[rng.random((n, k)) < 0.1] = 7  # a hub many point at
    feats = F.normalize(torch.from_numpy(rng.normal(size=(n, 4))).float(), dim=1)
    growth = NeighbourGrowth(nb, feats, order=rng.permutation(n) if laid_out else None)
    for trial in range(8):
        selected = np.flatnonzero(rng.random(n) < rng.uniform(0.2, 0.95))
        seeds = rng.choice(n, int(rng.integers(1, 6)), replace=True)
        for edge in (-1.0, 0.0, 0.6, 0.95):
            ref = grow_reference(nb, feats, selected, seeds, edge_cos=edge)
            assert np.array_equal(np.sort(growth(selected, seeds, edge_cos=edge)), ref), (trial, edge)
            assert np.array_equal(np.sort(growth.grow_components(selected, seeds, edge_cos=edge)), ref), (trial, edge)
    # The answer keeps the selection's order, as the components path did.
    selected = rng.permutation(n)
    assert np.array_equal(
        growth(selected, selected[:3], edge_cos=0.0), growth.grow_components(selected, selected[:3], edge_cos=0.0)
    )


def test_the_symmetric_graph_lists_each_edge_both_ways() -> None:
    rng = np.random.default_rng(5)
    n, k = 300, 4
    nb = rng.integers(0, n, (n, k))
    growth = NeighbourGrowth(nb, F.normalize(torch.from_numpy(rng.normal(size=(n, 3))).float(), dim=1))
    indptr, _, indices, component, sizes = growth._symmetric(0.2)[1:6]
    rows = [sorted(indices[indptr[i] : indptr[i + 1]].tolist()) for i in range(n)]
    expected: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for c in range(k):
            if growth.cos[i, c] > 0.2:
                expected[i].append(int(nb[i, c]))
                expected[int(nb[i, c])].append(i)
    assert rows == [sorted(set(r)) for r in expected]  # each neighbour once
    # Its components: every edge inside one, and as many as SciPy finds on the edge list.
    assert all(component[i] == component[j] for i in range(n) for j in rows[i])
    assert sizes.sum() == n and sizes.size == component.max() + 1


def test_whole_components_are_kept_or_dropped_without_a_search() -> None:
    # Everything selected: each seed's component is held whole (kept as it is), the others dropped; the same with
    # a selection that leaves out part of one seed's component (a search there only).
    rng = np.random.default_rng(9)
    n = 400
    means = rng.uniform(-1, 1, (n, 3))
    nb = knn_neighbors(means, 6).numpy()
    feats = F.normalize(torch.from_numpy(np.sign(means[:, :1]) + 0.05 * rng.normal(size=(n, 3))).float(), dim=1)
    growth = NeighbourGrowth(nb, feats)
    everything = np.arange(n)
    for selected in (everything, everything[rng.random(n) < 0.8]):
        seeds = selected[:2]
        ref = grow_reference(nb, feats, selected, seeds, edge_cos=0.9)
        assert np.array_equal(np.sort(growth(selected, seeds, edge_cos=0.9)), ref)
        assert 0 < ref.size < selected.size


def test_clicks_from_several_threads_get_their_own_answers() -> None:
    # The viewer's callbacks run on several threads; the growth's reused buffers are guarded.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    n = 3000
    means = rng.uniform(-1, 1, (n, 3))
    nb = knn_neighbors(means, 8).numpy()
    feats = F.normalize(torch.from_numpy(means[:, :2] + 0.2 * rng.normal(size=(n, 2))).float(), dim=1)
    growth = NeighbourGrowth(nb, feats, order=rng.permutation(n))
    jobs = [(np.flatnonzero(rng.random(n) < 0.6), rng.choice(n, 3)) for _ in range(24)]
    expected = [growth(sel, seeds, edge_cos=0.8) for sel, seeds in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: growth(job[0], job[1], edge_cos=0.8), jobs * 3))
    assert all(np.array_equal(g, e) for g, e in zip(got, expected * 3))

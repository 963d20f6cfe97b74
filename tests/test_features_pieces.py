"""A part in several pieces: the selected pieces that growth dropped come back when they are the same thing
(pieces.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.core.camera import look_at
from backend.core.scene import GaussianScene
from backend.features.click import ClickMethod
from backend.features.field import FeatureField
from backend.features.neighbors import knn_neighbors
from backend.features.pieces import SeparatePieces, pieces_reference


@pytest.mark.parametrize("with_clusters", [False, True])
def test_the_pieces_match_the_reference_on_random_graphs(with_clusters: bool) -> None:
    rng = np.random.default_rng(3)
    n = 500
    means = rng.uniform(-1, 1, (n, 3))
    nb = knn_neighbors(means, 6).numpy()
    # Features in three groups with noise, so some pieces pass the cut and some do not.
    group = rng.integers(0, 3, n)
    noise = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    feats = F.normalize(torch.eye(4)[group] + 0.2 * noise, dim=1)
    clusters = np.where(rng.random(n) < 0.8, group, -1) if with_clusters else None
    finder = SeparatePieces(nb, feats.T, clusters)
    for trial in range(8):
        selected = np.flatnonzero(rng.random(n) < 0.5)
        grown = selected[rng.random(selected.size) < 0.3]
        seeds = grown[:3]
        for cut in (0.0, 0.6, 0.9):
            fast = np.sort(finder(selected, grown, seeds, piece_cos=cut))
            ref = pieces_reference(nb, feats.numpy(), clusters, selected, grown, seeds, piece_cos=cut)
            assert np.array_equal(fast, ref), (trial, cut)
            assert not np.isin(fast, grown).any() and np.isin(fast, selected).all()


def _slabs() -> tuple[GaussianScene, np.ndarray]:
    """Four slabs along x: A [-0.6, -0.4] and B [0.1, 0.3] are one part in two pieces (label 0), C [-0.4, -0.2]
    touches A and D [0.4, 0.6] stands alone (label 1)."""
    rng = np.random.default_rng(0)
    spans = {"A": (-0.6, -0.4), "C": (-0.4, -0.2), "B": (0.1, 0.3), "D": (0.4, 0.6)}
    means, slab = [], []
    for name, (lo, hi) in spans.items():
        means.append(rng.uniform([lo, -0.1, -0.1], [hi, 0.1, 0.1], (500, 3)))
        slab += [name] * 500
    m = torch.from_numpy(np.concatenate(means).astype(np.float32))
    k = len(m)
    scene = GaussianScene.from_activated(
        means=m,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(k, 1),
        scales=torch.full((k, 3), 0.015),
        opacities=torch.full((k, 1), 0.9).squeeze(1),
        colors=torch.full((k, 3), 0.5),
    )
    return scene, np.array(slab)


def test_a_click_keeps_the_parts_other_piece_and_not_what_it_touches(monkeypatch: pytest.MonkeyPatch) -> None:
    scene, slab = _slabs()
    n = len(slab)
    part = np.isin(slab, ["A", "B"])
    coarse = torch.zeros(n, 12)
    coarse[:, 0] = 1.0
    fine = torch.zeros(n, 12)
    fine[part, 0] = 1.0
    fine[~part, 0], fine[~part, 1] = 0.8, 0.6  # fine cosine 0.8 between the parts: 0.9 for coarse ⊕ fine
    feats = torch.cat([coarse, fine], 1)
    labels = torch.from_numpy(np.where(part, 0, 1).astype(np.int32))
    tensors = {
        "features": feats,
        "coarse_centroids": torch.zeros(0, 12),
        "coarse_labels": torch.zeros(n, dtype=torch.int32),
        "fine_labels": labels,
        "neighbors": knn_neighbors(scene.means, 8),
    }
    cam = look_at(
        "front", np.array([0.0, -2.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=96, height=64, fov_y_deg=40
    )
    p = cam.world_to_camera[:3, :3] @ np.array([-0.5, 0.0, 0.0]) + cam.world_to_camera[:3, 3]
    on_a = (cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy)
    monkeypatch.setattr(ClickMethod, "FINE_GROW_EDGE", 0.95)

    def click(fields: dict) -> np.ndarray:
        return FeatureField(scene, "click", fields).segment(cam, [on_a], level="fine", threshold=0.8).mask

    assert np.array_equal(click(tensors), part)  # A and B; not C (touching, cut by growth), nor D (unlike)
    monkeypatch.setattr(ClickMethod, "FINE_PIECES", False)
    assert np.array_equal(click(tensors), slab == "A")  # growth and the floater filter keep the clicked piece
    monkeypatch.setattr(ClickMethod, "FINE_PIECES", True)
    # B in another global cluster than the click: not the same thing.
    other = labels.clone()
    other[torch.from_numpy(slab == "B")] = 2
    assert np.array_equal(click({**tensors, "fine_labels": other}), slab == "A")
    # D as alike as B and in the clicked cluster: a second piece too (what the features and clusters say).
    alike = fine.clone()
    alike[torch.from_numpy(slab == "D")] = fine[0]
    both = torch.from_numpy(np.where(np.isin(slab, ["A", "B", "D"]), 0, 1).astype(np.int32))
    assert np.array_equal(
        click({**tensors, "features": torch.cat([coarse, alike], 1), "fine_labels": both}),
        np.isin(slab, ["A", "B", "D"]),
    )


def test_the_mean_sample_is_grown_nodes_in_runs_spread_over_the_selection() -> None:
    from backend.features.pieces import MEAN_SAMPLE, SAMPLE_RUN, _runs_sample

    rng = np.random.default_rng(0)
    nodes = np.sort(rng.choice(1_000_000, 40_000, replace=False))
    grown = rng.random(nodes.size) < 0.9
    sample = _runs_sample(nodes, grown)
    assert 0 < sample.size <= MEAN_SAMPLE
    assert np.isin(sample, nodes[grown]).all()  # only grown nodes
    at = np.searchsorted(nodes, sample)
    assert at.min() < nodes.size // 16 and at.max() > nodes.size - nodes.size // 16  # spans the selection
    runs = np.unique(at // (nodes.size // (MEAN_SAMPLE // SAMPLE_RUN)))
    assert runs.size == MEAN_SAMPLE // SAMPLE_RUN  # every run contributes
    assert (np.diff(at) == 1).mean() > 0.5  # consecutive selected nodes (they share the bank's tiles)
    small = nodes[:100]
    np.testing.assert_array_equal(_runs_sample(small, grown[:100]), small[grown[:100]])  # a small part: all of it
    only = np.zeros(nodes.size, bool)
    only[12_345] = True  # no run holds a grown node: the first grown one
    np.testing.assert_array_equal(_runs_sample(nodes, only), nodes[[12_345]])


def test_after_growth_from_the_bank_order_equals_after_growth_from_the_ids() -> None:
    from backend.features.pruned import PrunedBank

    n = 3000
    g = torch.Generator().manual_seed(4)
    neighbors = knn_neighbors(torch.randn(n, 3, generator=g), 6).numpy()
    bank = F.normalize(torch.randn(n, 12, generator=g), dim=1).T.contiguous()
    pruned = PrunedBank(bank, blocks=16, sample=1000)
    pieces = SeparatePieces(neighbors, pruned, None, columns=pruned.rank).prepare()
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(20):
        nodes = np.sort(rng.choice(n, size=rng.integers(100, 2000), replace=False))
        keep = rng.random(nodes.size) < 0.7
        ids = pruned.perm[nodes]
        seeds = ids[keep][:2]
        for cut in (-1.0, 0.0, 0.5):
            by_ids = pieces.after_growth(
                ids, keep, ids[keep], nodes, pruned.rank, seeds, piece_cos=cut, block_bank=pruned
            )
            by_order = pieces.after_growth(
                None, keep, None, nodes, pruned.rank, seeds, piece_cos=cut, block_bank=pruned
            )
            np.testing.assert_array_equal(by_order, by_ids)
            compared += by_ids.size
    assert compared > 0

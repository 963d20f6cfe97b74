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

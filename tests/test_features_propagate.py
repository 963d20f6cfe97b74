"""Filling the features of Gaussians no training pixel saw (backend/features/propagate.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from backend.features import losses
from backend.features.propagate import colour_affinity, fill_unseen, fill_unseen_reference


def test_fill_unseen_matches_the_direct_solve_and_keeps_seen_rows() -> None:
    g = torch.Generator().manual_seed(0)
    n, k, d = 60, 4, 5
    feats = torch.randn(n, d, generator=g)
    neighbors = torch.randint(0, n, (n, k), generator=g)
    seen = torch.rand(n, generator=g) < 0.4
    weights = torch.rand(n, k, generator=g)
    # A Gaussian with no weight to anyone (itself not anyone's neighbour either) keeps its feature.
    weights[3] = 0.0
    neighbors[neighbors == 3] = 4
    seen[3] = seen[4] = False
    out = fill_unseen(feats, neighbors, seen, weights, iterations=200, tolerance=1e-9)
    ref = fill_unseen_reference(feats.numpy(), neighbors.numpy(), seen.numpy(), weights.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out[seen], feats[seen])
    assert torch.allclose(out[3], feats[3])
    assert not torch.allclose(out[~seen], feats[~seen], atol=1e-2)
    # Few steps: not converged yet, but on its way.
    early = fill_unseen(feats, neighbors, seen, weights, iterations=3).numpy()
    assert np.abs(early - ref).max() < np.abs(feats.numpy() - ref).max()


def _two_hidden_faces_in_one_plane() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two parts (colours A and B) whose hidden faces interleave on one line of Gaussians, each seen only at
    its own end: Gaussian 0 (A, seen) … unseen 1..10 alternating A/B … Gaussian 11 (B, seen). Every unseen
    Gaussian's neighbours are the two on either side (the other colour) and the two beyond (its own)."""
    n = 12
    colors = torch.zeros(n, 3)
    colors[0::2] = torch.tensor([0.9, 0.5, 0.1])  # A at even positions
    colors[1::2] = torch.tensor([0.2, 0.3, 0.7])  # B at odd positions
    idx = torch.arange(n)
    neighbors = torch.stack([(idx - 1).clamp(0, n - 1), (idx + 1).clamp(0, n - 1), (idx - 2).clamp(0, n - 1),
                             (idx + 2).clamp(0, n - 1)], dim=1)  # fmt: skip
    seen = torch.zeros(n, dtype=torch.bool)
    seen[0] = seen[11] = True
    feats = torch.zeros(n, 2)
    feats[0] = torch.tensor([1.0, 0.0])  # part A's feature
    feats[11] = torch.tensor([0.0, 1.0])  # part B's
    feats[1:11] = F.normalize(torch.randn(10, 2, generator=torch.Generator().manual_seed(1)), dim=1)
    return feats, neighbors, seen, colors


def test_colour_weights_keep_interleaved_hidden_faces_apart() -> None:
    feats, neighbors, seen, colors = _two_hidden_faces_in_one_plane()
    a = torch.arange(12) % 2 == 0
    coloured = F.normalize(fill_unseen(feats, neighbors, seen, colour_affinity(neighbors, colors), iterations=100))
    assert (coloured[a & ~seen] @ torch.tensor([1.0, 0.0]) > 0.99).all()
    assert (coloured[~a & ~seen] @ torch.tensor([0.0, 1.0]) > 0.99).all()
    # Plain neighbour averaging blends the two parts along the line.
    plain = F.normalize(fill_unseen(feats, neighbors, seen, torch.ones(12, 4), iterations=100))
    assert (plain[~seen] @ torch.tensor([1.0, 0.0]) < 0.99).sum() >= 4


def test_colour_affinity() -> None:
    colors = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 1.0, 1.0]])
    neighbors = torch.tensor([[1, 2], [0, 0], [0, 1]])
    w = colour_affinity(neighbors, colors, sigma=0.1)
    assert w.shape == (3, 2)
    assert abs(w[0, 0].item() - np.exp(-0.5)) < 1e-6
    assert w[0, 1].item() < 1e-30
    assert w[1, 0].item() == w[0, 0].item()
    colors[2, 0] = float("nan")  # a broken colour weighs nothing, rather than spreading NaN through the fill
    w = colour_affinity(neighbors, colors, sigma=0.1)
    assert torch.isfinite(w).all() and w[2].tolist() == [0.0, 0.0] and w[0, 1].item() == 0.0


def test_weighted_knn_smoothness() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    neighbors = torch.tensor([[1, 2], [2, 0], [1, 0]])
    sample = torch.tensor([0, 1, 2])
    plain = losses.knn_smoothness(feats, neighbors, sample)
    assert losses.knn_smoothness(feats, neighbors, sample, torch.ones(3, 2)).item() == plain.item()
    # Cutting the edges between the two features (0 ↔ 1, 0 ↔ 2) leaves nothing to smooth.
    cut = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert losses.knn_smoothness(feats, neighbors, sample, cut).item() == 0.0
    assert plain.item() > 0.0


def test_click_training_fills_the_unseen_gaussians_and_weighs_smoothness_by_colour() -> None:
    """End to end on a tiny scene: the Gaussians no cached pixel reaches get the colour-weighted harmonic fill of
    the trained features, the seen ones keep them, and the cache carries the colours the weights come from."""
    from backend.features.click import ClickConfig, train_click, unit_halves
    from backend.features.contrib_cache import build_cache
    from backend.features.neighbors import knn_neighbors
    from backend.masks.maskset import ViewMasks
    from tests.conftest import front_camera, random_scene

    scene, cam = random_scene(n=400, seed=3), front_camera(32)
    m = np.zeros((2, 32, 32), bool)
    m[0, 4:20, 4:20] = True
    m[1, 10:28, 12:30] = True
    view = ViewMasks(cam.name, m, np.ones(2, np.float32), np.full(2, np.nan, np.float32))
    cache = build_cache(scene, [cam], [view], pixels_per_view=200)
    assert torch.equal(cache.colors, scene.dc_colors.float())
    seen = cache.visibility() > 0
    assert (~seen).sum() > 20 and seen.sum() > 20
    neighbors = knn_neighbors(scene.means, 4)
    base = ClickConfig(iterations=6, coarse_dim=4, fine_dim=4, fill_min_seen=0.0, fill_min_iterations=0)
    plain = train_click(cache, neighbors, dataclasses.replace(base, fill_unseen=False), progress=False).features
    filled = train_click(cache, neighbors, base, progress=False).features
    torch.testing.assert_close(filled[seen], plain[seen])
    expected = unit_halves(fill_unseen(plain, neighbors, seen, colour_affinity(neighbors, cache.colors)), 4)
    torch.testing.assert_close(filled, expected)
    assert not torch.allclose(filled[~seen], plain[~seen], atol=1e-3)
    # The smoothness weights change what training learns (colours differ between neighbours here).
    uniform = train_click(cache, neighbors, dataclasses.replace(base, knn_colour_sigma=None), progress=False)
    assert not torch.allclose(uniform.features[seen], filled[seen])
    short = train_click(cache, neighbors, dataclasses.replace(base, fill_min_iterations=7), progress=False)
    torch.testing.assert_close(short.features, plain)
    # Too few Gaussians seen: the features stay as trained.
    share = float(seen.float().mean())
    kept = train_click(cache, neighbors, dataclasses.replace(base, fill_min_seen=share + 0.01), progress=False)
    torch.testing.assert_close(kept.features, plain)

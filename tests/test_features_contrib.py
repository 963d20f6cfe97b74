"""Precomputed contributions: the fast sparse-pixel path agrees with the reference, and a cache reproduces the
rendered feature map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features.contrib_cache import build_cache, sample_pixels, sparse_contributions
from backend.masks.maskset import ViewMasks
from backend.render import contributions, render
from tests.conftest import front_camera, random_scene


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(size * size, generator=g)[:n]
    return torch.stack([flat % size, flat // size], dim=1)


@pytest.mark.parametrize("tile", [4, 8, 16])
def test_sparse_contributions_match_the_reference(tile: int) -> None:
    scene, camera = random_scene(1500, seed=1), front_camera(48)
    px = _pixels(400, 48)
    ref_ids, ref_w = contributions(scene, camera, px, 12)
    ids, w = sparse_contributions(scene, camera, px, 12, tile=tile)
    assert torch.allclose(w, ref_w, atol=1e-6)
    # Same (id, weight) sets per pixel; ties may come in another order.
    feats = torch.randn(len(scene) + 1, 5)
    blend = lambda i, ww: (ww[..., None] * feats[torch.where(i >= 0, i, len(scene))]).sum(1)  # noqa: E731
    assert torch.allclose(blend(ids, w), blend(ref_ids, ref_w), atol=1e-5)


def test_sparse_contributions_split_into_bands_give_the_same_answer() -> None:
    scene, camera = random_scene(1500, seed=2), front_camera(48)
    px = _pixels(500, 48, seed=3)
    ids, w = sparse_contributions(scene, camera, px, 8)
    ids_b, w_b = sparse_contributions(scene, camera, px, 8, pair_budget=2000)
    assert torch.allclose(w, w_b) and torch.equal(ids[w > 0], ids_b[w_b > 0])


def test_cache_reproduces_the_rendered_feature_map() -> None:
    scene, camera = random_scene(1200, seed=4), front_camera(40)
    feats = torch.randn(len(scene), 6)
    out = render(scene, camera, features=feats, backend="torch")
    covered = out.alpha.numpy() > 0.05
    masks = np.stack([covered, np.zeros_like(covered)])
    masks[1, :20] = covered[:20]
    view = ViewMasks(camera.name, masks, np.ones(2, np.float32), np.array([1.0, 0.5], np.float32))
    cache = build_cache(scene, [camera], [view], pixels_per_view=300, k=64)
    rows = cache.rows(0)
    rendered = cache.render(feats, rows, normalize_weights=False)  # [P, 6]
    px = cache.pixels[rows].long()
    expected = out.features[px[:, 1], px[:, 0]]
    assert torch.allclose(rendered, expected, atol=2e-3)
    # Labels: the coarse level is the larger mask, the fine one the smaller where both cover.
    top = px[:, 1] < 20
    inside = torch.from_numpy(covered)[px[:, 1], px[:, 0]]
    assert torch.all(cache.coarse[rows][inside] == 0)
    assert torch.all(cache.fine[rows][inside & top] == 1)
    assert torch.all(cache.fine[rows][~inside] == -1)  # an opaque pixel no mask covers
    assert cache.memory_bytes() > 0 and cache.num_masks == 2


def test_sampling_covers_small_masks_and_only_covered_pixels() -> None:
    h = w = 64
    big = np.zeros((h, w), bool)
    big[:, :48] = True
    small = np.zeros((h, w), bool)
    small[60:62, 60:62] = True  # 4 pixels: uniform sampling would almost never pick them
    view = ViewMasks("v", np.stack([big, small]), np.ones(2, np.float32), np.ones(2, np.float32))
    covered, uncovered = sample_pixels(view, 500, np.random.default_rng(0))
    inside = (big | small)[covered[:, 1], covered[:, 0]]
    assert inside.all()
    assert small[covered[:, 1], covered[:, 0]].sum() == 4
    assert len(np.unique(covered[:, 1] * w + covered[:, 0])) == len(covered)
    assert not (big | small)[uncovered[:, 1], uncovered[:, 0]].any()


def test_build_cache_keeps_a_view_without_masks_and_training_runs_on_it() -> None:
    """A view where the mask source found nothing (an empty sky) is a view like any other: its rows carry no mask
    labels, and training over a cache holding it runs. It used to crash on reshaping a [0, H, W] stack."""
    from backend.features.click import ClickConfig, train_click
    from backend.features.neighbors import knn_neighbors

    scene, cam, other = random_scene(n=400, seed=3), front_camera(32), front_camera(32, name="empty", distance=3.5)
    m = np.zeros((2, 32, 32), bool)
    m[0, 4:20, 4:20] = True
    m[1, 10:28, 12:30] = True
    full = ViewMasks(cam.name, m, np.ones(2, np.float32), np.full(2, np.nan, np.float32))
    empty = ViewMasks("empty", np.zeros((0, 32, 32), bool), np.ones(0, np.float32), np.full(0, np.nan, np.float32))
    cache = build_cache(scene, [cam, other], [full, empty], pixels_per_view=300)
    assert cache.views == [cam.name, "empty"] and cache.num_masks == 2
    rows = cache.rows(1)
    assert (cache.coarse[rows] == -1).all() and (cache.fine[rows] == -1).all()
    assert cache.mask_area.tolist() == [float(m[0].sum()), float(m[1].sum())]
    config = ClickConfig(iterations=4, coarse_dim=4, fine_dim=4)
    result = train_click(cache, knn_neighbors(scene.means, 4), config, progress=False)
    assert torch.isfinite(result.features).all()

"""SAGA's 3D mask scale: back-projection, erosion and 2·‖std‖ against closed forms, and on a rendered plane."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.core.camera import look_at
from backend.core.scene import GaussianScene
from backend.masks.scale import backproject, erode_masks, mask_scales, view_mask_scales
from backend.render import render


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tensors are tiny: a second intra-op thread only adds spin-waits (35× slower on a busy 2-core CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


D = 2.0  # camera height above the plane z = 0


def _top_camera(size: int):
    return look_at("top", np.array([0.0, 0.0, D]), np.zeros(3), np.array([0.0, 1.0, 0.0]),
                   width=size, height=size, fov_y_deg=50.0)  # fmt: skip


def _rect_scale(rows: int, cols: int, pixel: float) -> float:
    """2·‖std‖ (unbiased) of the centres of a rows × cols block of pixels of side `pixel`."""
    n = rows * cols
    var = pixel**2 * ((rows**2 - 1) + (cols**2 - 1)) / 12 * n / (n - 1)
    return 2 * math.sqrt(var)


def test_backproject_puts_pixels_on_the_plane():
    cam = _top_camera(32)
    points = backproject(np.full((32, 32), D), cam)  # [H, W, 3]
    np.testing.assert_allclose(points[..., 2], 0.0, atol=1e-12)
    # The ray through pixel centre (u + 0.5, v + 0.5) meets the plane at the back-projected point.
    for u, v in [(0, 0), (31, 5), (16, 16)]:
        origin, direction = cam.ray((u + 0.5, v + 0.5))
        t = -origin[2] / direction[2]
        np.testing.assert_allclose(points[v, u], origin + t * direction, atol=1e-12)


def test_scale_of_a_rectangle_matches_the_closed_form():
    cam = _top_camera(40)
    points = backproject(np.full((40, 40), D), cam)
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 5:25, 10:20] = True  # 20 × 10 pixels, eroded by 2 px → 16 × 6
    got = mask_scales(masks, points, np.ones((40, 40), bool), erode_px=2)
    assert got[0] == pytest.approx(_rect_scale(16, 6, D / cam.fx), rel=1e-6)
    got_raw = mask_scales(masks, points, np.ones((40, 40), bool), erode_px=0)
    assert got_raw[0] == pytest.approx(_rect_scale(20, 10, D / cam.fx), rel=1e-6)


def test_thin_masks_are_eroded_less_and_tiny_ones_are_nan():
    cam = _top_camera(40)
    points = backproject(np.full((40, 40), D), cam)
    masks = np.zeros((4, 40, 40), bool)
    masks[0, 10:13, 5:30] = True  # 3 px tall: 2 px of erosion empties it, 1 px leaves 1 × 23
    masks[1, 20:23, 5:15] = True  # 1 px of erosion leaves 8 < 10 pixels: measured as it is
    masks[2, 0:3, 0:3] = True  # 9 pixels < 10
    got = mask_scales(masks, points, np.ones((40, 40), bool), erode_px=2)
    pixel = D / cam.fx
    assert got[0] == pytest.approx(_rect_scale(1, 23, pixel), rel=1e-6)
    assert got[1] == pytest.approx(_rect_scale(3, 10, pixel), rel=1e-6)
    assert np.isnan(got[2]) and np.isnan(got[3])


def test_only_valid_pixels_count():
    cam = _top_camera(40)
    depth = np.full((40, 40), D)
    alpha = np.ones((40, 40))
    alpha[:, 20:] = 0.2  # right half: uncovered, its depth is meaningless
    depth[:, 20:] = 50.0
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 10:30, 10:30] = True
    got = view_mask_scales(masks, depth, alpha, cam, erode_px=2)
    assert got[0] == pytest.approx(_rect_scale(16, 8, D / cam.fx), rel=1e-6)  # rows 12:28, cols 12:20


def test_erosion_is_per_mask_and_spares_the_image_frame():
    masks = np.zeros((2, 10, 10), bool)
    masks[0] = True
    masks[1, 2:8, 2:8] = True
    eroded = erode_masks(masks, 1)
    assert eroded[0].all()  # touches the frame on all sides: nothing to erode
    assert eroded[1].sum() == 16


def test_many_masks_are_chunked_with_the_same_result(monkeypatch):
    import backend.masks.scale as scale_module

    rng = np.random.default_rng(0)
    cam = _top_camera(24)
    points = backproject(rng.uniform(1.0, 3.0, (24, 24)), cam)
    masks = rng.random((7, 24, 24)) < 0.5
    whole = mask_scales(masks, points, np.ones((24, 24), bool))
    monkeypatch.setattr(scale_module, "_CHUNK_ELEMENTS", 24 * 24 * 2)  # 2 masks a chunk
    np.testing.assert_allclose(mask_scales(masks, points, np.ones((24, 24), bool)), whole, rtol=1e-12)


def test_scale_from_a_rendered_plane_of_gaussians():
    """A 1 × 1 square of flat Gaussians seen from above: rendered depth gives the scale exact depth gives, and
    both are close to the continuous value 2·L/√6 (uniform square: std L/√12 per axis)."""
    n = 120
    g = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    means = torch.stack([xx.ravel(), yy.ravel(), torch.zeros(n * n)], dim=1)
    spacing = 1.0 / n
    scene = GaussianScene.from_activated(
        means=means,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(n * n, 4),
        scales=torch.tensor([spacing, spacing, spacing * 0.1]).expand(n * n, 3),
        opacities=torch.full((n * n,), 0.95),
        colors=torch.full((n * n, 3), 0.5),
    )
    cam = _top_camera(96)
    out = render(scene, cam, backend="torch")
    depth, alpha = out.depth.numpy(), out.alpha.numpy()
    # The mask: pixel centres whose ray lands inside the square.
    exact_points = backproject(np.full((96, 96), D), cam)
    mask = (np.abs(exact_points[..., 0]) < 0.5) & (np.abs(exact_points[..., 1]) < 0.5)
    np.testing.assert_allclose(depth[mask & (alpha > 0.5)], D, rtol=2e-3)  # depth is camera z
    rendered = view_mask_scales(mask[None], depth, alpha, cam)[0]
    exact = mask_scales(mask[None], exact_points, np.ones_like(mask))[0]
    assert rendered == pytest.approx(exact, rel=0.01)
    pixels_across = mask[48].sum()
    eroded_side = 1.0 * (pixels_across - 4) / pixels_across  # erosion trims 2 px a side
    assert rendered == pytest.approx(2 * eroded_side / math.sqrt(6), rel=0.02)

"""Which views see a cluster, and the camera that frames it: checked against the renderer itself."""

from __future__ import annotations

import numpy as np
import torch

from backend.core.camera import look_at
from backend.language.views import (
    CropBox,
    best_views,
    cluster_visibility,
    crop_box,
    crop_camera,
    in_frame_counts,
    visibility_by_render,
)
from backend.render import render
from tests.conftest import front_camera, random_scene


def test_fragment_visibility_equals_the_one_hot_render() -> None:
    scene = random_scene(1500, seed=3)
    camera = front_camera(48)
    rng = np.random.default_rng(0)
    coarse = rng.integers(-1, 4, len(scene))  # 4 clusters and some unclustered Gaussians
    fine = rng.integers(-1, 40, len(scene))  # more clusters than one one-hot chunk
    fast = cluster_visibility(scene, camera, [coarse, fine], [4, 40], backend="torch")
    ref = visibility_by_render(scene, camera, [coarse, fine], [4, 40], backend="torch")
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    # All clusters together cover what the scene covers, minus the unclustered Gaussians' share.
    alpha = render(scene, camera, backend="torch").alpha.sum().item()
    assert fast[0].sum() <= alpha + 1e-3 and fast[0].sum() > 0.5 * alpha


def test_occluded_cluster_is_less_visible() -> None:
    # Two identical blobs on the camera's axis: the near one hides the far one.
    g = torch.Generator().manual_seed(0)
    from backend.core.scene import GaussianScene

    n = 400
    offsets = torch.randn(n, 3, generator=g) * 0.05
    eye = torch.tensor([0.0, -3.0, 0.8])  # front_camera's position; it looks at the origin
    means = torch.cat([offsets + 0.5 * eye, offsets - 0.5 * eye])  # on its axis, before and beyond the origin
    scene = GaussianScene.from_activated(
        means=means,
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(2 * n, 1),
        scales=torch.full((2 * n, 3), 0.03),
        opacities=torch.full((2 * n,), 0.9),
        colors=torch.rand(2 * n, 3, generator=g),
    )
    labels = np.repeat([0, 1], n)
    camera = front_camera(48)
    near, far = cluster_visibility(scene, camera, [labels], [2], backend="torch")[0]
    assert near > 5 * far
    framed = in_frame_counts(scene.means.numpy(), camera, [labels], [2])[0]
    assert framed.tolist() == [n, n]  # both are framed: framing is only the tie-break


def test_best_views_prefers_visibility_then_framing_and_skips_useless_views() -> None:
    visibility = np.array([[0.0, 5.0], [3.0, 0.0], [3.0, 0.0], [0.0, 0.0]])  # [V=4, C=2]
    framed = np.array([[0, 9], [1, 0], [7, 0], [4, 0]])
    got = best_views(visibility, framed, 3)
    assert got[0].tolist() == [2, 1, 3]  # tie on visibility broken by framing; view 3 only frames it
    assert got[1].tolist() == [0, -1, -1]


def test_crop_camera_maps_the_box_onto_the_whole_image() -> None:
    camera = look_at(
        "v", np.array([0.0, -3.0, 0.5]), np.zeros(3), np.array([0.0, 0, 1]), width=80, height=60, fov_y_deg=50
    )
    box = CropBox(x0=10.0, y0=5.0, side=40.0)
    crop = crop_camera(camera, box, 32)
    assert (crop.width, crop.height) == (32, 32)
    point = np.array([0.1, 0.2, 0.3])
    p = camera.world_to_camera[:3, :3] @ point + camera.world_to_camera[:3, 3]
    u, v = camera.fx * p[0] / p[2] + camera.cx, camera.fy * p[1] / p[2] + camera.cy
    uc, vc = crop.fx * p[0] / p[2] + crop.cx, crop.fy * p[1] / p[2] + crop.cy
    np.testing.assert_allclose([uc, vc], [(u - 10.0) * 32 / 40, (v - 5.0) * 32 / 40], atol=1e-9)


def test_crop_box_frames_the_cluster_with_a_margin() -> None:
    scene = random_scene(600, seed=1, spread=0.15)
    camera = front_camera(64)
    means = scene.means.numpy()
    radii = 3 * scene.scales.max(dim=1).values.numpy()
    box = crop_box(camera, means, radii, margin=0.1, trim=0.0)
    assert box is not None
    crop = crop_camera(camera, box, 48)
    out = render(scene, crop, backend="torch")
    alpha = out.alpha.numpy()
    assert alpha.sum() > 0.2 * alpha.size  # the cluster fills the crop…
    border = np.concatenate([alpha[:2].ravel(), alpha[-2:].ravel(), alpha[:, :2].ravel(), alpha[:, -2:].ravel()])
    assert border.max() < 0.05  # …and the margin keeps it off the edges
    behind = look_at(
        "b",
        np.array([0.0, 3.0, 0.0]),
        np.array([0.0, 6.0, 0.0]),
        np.array([0.0, 0, 1]),
        width=32,
        height=32,
        fov_y_deg=50,
    )
    assert crop_box(behind, means, radii) is None  # nothing in front of the camera

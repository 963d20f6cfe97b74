"""The reference renderer, `contributions` and `ray_feature` against analytic cases and each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.core.camera import look_at
from backend.core.scene import GaussianScene
from backend.render import RayCaster, contributions, pixel_center, ray_feature, render
from backend.render.sh import sh_to_rgb
from tests.conftest import front_camera, random_scene


def _one_gaussian(center, *, opacity: float, color, scale: float = 0.05) -> GaussianScene:
    return GaussianScene.from_activated(
        means=torch.tensor([center], dtype=torch.float32),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        scales=torch.full((1, 3), scale),
        opacities=torch.tensor([opacity]),
        colors=torch.tensor([color], dtype=torch.float32),
    )


def _axis_camera(size: int = 65):
    # Looking down +y at the origin, so the origin projects to the image centre (size/2, size/2).
    return look_at(
        "axis",
        np.array([0.0, -2.0, 0.0]),
        np.zeros(3),
        np.array([0.0, 0.0, 1.0]),
        width=size,
        height=size,
        fov_y_deg=40,
    )


def test_single_gaussian_peak_alpha_is_its_opacity():
    cam = _axis_camera(65)  # odd size: the centre pixel's centre (32.5, 32.5) is exactly the projected mean
    out = render(_one_gaussian([0, 0, 0], opacity=0.7, color=[1, 0, 0]), cam, backend="torch")
    peak = out.alpha.max()
    assert out.alpha[32, 32] == pytest.approx(0.7, abs=1e-6)
    assert peak == pytest.approx(0.7, abs=1e-6)
    assert torch.allclose(out.rgb[32, 32], torch.tensor([0.7, 0.0, 0.0]), atol=1e-6)
    assert out.depth[32, 32] == pytest.approx(2.0, abs=1e-5)
    # Symmetric falloff and nothing far away.
    assert out.alpha[32, 30] == pytest.approx(out.alpha[32, 34].item(), abs=1e-6)
    assert out.alpha[0, 0] == 0


def test_opacity_capped_at_0999():
    out = render(_one_gaussian([0, 0, 0], opacity=0.99999, color=[1, 1, 1]), _axis_camera(), backend="torch")
    assert out.alpha.max() == pytest.approx(0.999, abs=1e-6)


def test_two_overlapping_gaussians_blend_front_to_back():
    front = _one_gaussian([0, -0.5, 0], opacity=0.6, color=[1, 0, 0])
    back = _one_gaussian([0, 0.5, 0], opacity=0.8, color=[0, 0, 1])
    cam = _axis_camera(65)
    for scene in (GaussianScene.concat([front, back]), GaussianScene.concat([back, front])):  # file order is irrelevant
        out = render(scene, cam, backend="torch")
        r, g, b = out.rgb[32, 32].tolist()
        assert r == pytest.approx(0.6, abs=1e-5)  # front: alpha 0.6, T = 1
        assert b == pytest.approx(0.4 * 0.8, abs=1e-5)  # back: alpha 0.8, T = 0.4
        assert g == 0
        assert out.alpha[32, 32] == pytest.approx(1 - 0.4 * 0.2, abs=1e-5)
        expected_depth = (0.6 * 1.5 + 0.32 * 2.5) / (0.6 + 0.32)
        assert out.depth[32, 32] == pytest.approx(expected_depth, abs=1e-4)


def test_transmittance_cutoff_stops_the_ray():
    # Ten opaque layers: after the first few T < 1e-4 and later layers must not contribute at all.
    layers = [_one_gaussian([0, -0.5 + 0.1 * i, 0], opacity=0.99, color=[0, 0, 0]) for i in range(10)]
    layers[-1] = _one_gaussian([0, 0.4, 0], opacity=0.99, color=[1, 1, 1])
    out = render(GaussianScene.concat(layers), _axis_camera(), backend="torch")
    assert out.rgb[32, 32].max() == 0.0


def test_background_fills_transparent_pixels(small_scene, camera):
    bg = torch.tensor([0.0, 1.0, 0.0])
    plain = render(small_scene, camera, backend="torch")
    with_bg = render(small_scene, camera, backend="torch", background=bg)
    expected = plain.rgb + (1 - plain.alpha)[..., None] * bg
    assert torch.allclose(with_bg.rgb, expected, atol=1e-6)


def test_sh_view_dependence_matches_direct_evaluation():
    scene = random_scene(300, sh_degree=3, spread=0.3)
    cam = front_camera(48)
    out = render(
        scene, cam, backend="torch", features=sh_to_rgb(scene.sh, scene.means - torch.tensor(cam.center).float())
    )
    assert torch.allclose(out.rgb, out.features, atol=1e-5)
    flat = render(scene, cam, backend="torch", sh_degree=0)
    assert not torch.allclose(out.rgb, flat.rgb, atol=1e-3)  # higher bands do change the colour


def test_feature_map_is_differentiable(small_scene, camera):
    feats = torch.randn(len(small_scene), 5, requires_grad=True)
    out = render(small_scene, camera, features=feats, backend="torch")
    out.features.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    # d(sum of pixels)/d f_i is the total weight of Gaussian i, the same in every channel.
    assert torch.allclose(feats.grad[:, 0], feats.grad[:, 4])


def test_contributions_reproduce_rendered_features(small_scene, camera):
    feats = torch.randn(len(small_scene), 7)
    out = render(small_scene, camera, features=feats, backend="torch")
    ys, xs = torch.meshgrid(torch.arange(camera.height), torch.arange(camera.width), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    ids, w = contributions(small_scene, camera, pixels, k=512)
    assert (w[:, -1] == 0).all(), "k large enough to hold every contributor"
    recon = (w[..., None] * feats[ids.clamp(min=0)]).sum(1).reshape(camera.height, camera.width, 7)
    assert torch.allclose(recon, out.features, atol=1e-4)
    # Sorted largest first, -1 only where the weight is 0.
    assert (w[:, :-1] >= w[:, 1:]).all()
    assert ((ids == -1) == (w == 0)).all()


def test_contributions_topk_keeps_the_largest(small_scene, camera):
    pixels = torch.tensor([[32, 32], [10, 50], [32, 32]])
    full_ids, full_w = contributions(small_scene, camera, pixels, k=512)
    ids, w = contributions(small_scene, camera, pixels, k=3)
    assert torch.equal(ids, full_ids[:, :3])
    assert torch.allclose(w, full_w[:, :3])
    assert torch.equal(ids[0], ids[2])  # a repeated pixel gives the same answer


def test_contributions_reject_pixels_outside_the_image(small_scene, camera):
    with pytest.raises(ValueError, match="must lie in"):
        contributions(small_scene, camera, torch.tensor([[64, 0]]), k=4)


@pytest.mark.parametrize("xy", [(32, 32), (5, 60), (40, 12), (63, 63), (0, 0)])
def test_ray_feature_equals_the_rendered_pixel(small_scene, camera, xy):
    feats = torch.randn(len(small_scene), 6)
    out = render(small_scene, camera, features=feats, backend="torch")
    x, y = xy
    got = ray_feature(small_scene, feats, camera, pixel_center(x, y))
    assert torch.allclose(got, out.features[y, x], atol=1e-4)


def test_ray_caster_culls_most_gaussians():
    scene = random_scene(20_000, spread=1.0)
    caster = RayCaster(scene)
    cand = caster.candidates(front_camera(), pixel_center(32, 32))
    assert 0 < cand.numel() < 0.05 * len(scene)


def test_ray_feature_of_empty_space_is_zero(small_scene):
    cam = front_camera()
    far = look_at("away", cam.center, cam.center * 2, np.array([0.0, 0.0, 1.0]), width=64, height=64, fov_y_deg=50)
    got = ray_feature(small_scene, torch.ones(len(small_scene), 3), far, pixel_center(32, 32))
    assert torch.equal(got, torch.zeros(3))


def test_gaussians_behind_the_camera_are_invisible():
    cam = _axis_camera()
    behind = _one_gaussian([0, -3.0, 0], opacity=0.9, color=[1, 1, 1])
    assert render(behind, cam, backend="torch").alpha.max() == 0

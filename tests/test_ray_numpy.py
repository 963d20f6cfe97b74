"""`NumpyRay` (the click's ray in NumPy, `RayCaster.weights` on a CPU scene with `compiled` off) against
`RayCaster.weights_torch` (the path before it): the same contributors in the same order with bit-identical weights,
and therefore the same selections from `FeatureField.segment`, on random and tabletop scenes from several cameras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features.field import FeatureField
from backend.features.threads import compute_threads
from backend.render import RayCaster
from backend.synthetic import build_tabletop, orbit_cameras
from tests.conftest import front_camera, random_scene


def _same_rays(caster: RayCaster, cameras, rng: np.random.Generator, rays: int) -> int:
    """Compares `rays` random pixels; returns how many hit something."""
    hits = 0
    with compute_threads():  # as a click runs (one torch thread on a busy machine)
        for _ in range(rays):
            hits += _same_ray(caster, cameras, rng)
    return hits


def _same_ray(caster: RayCaster, cameras, rng: np.random.Generator) -> bool:
    cam = cameras[int(rng.integers(len(cameras)))]
    # Inside the image and a little outside it (a drag can end off the canvas).
    pixel = (float(rng.uniform(-4, cam.width + 4)), float(rng.uniform(-4, cam.height + 4)))
    assert caster.fast
    caster.compiled = False  # NumpyRay (the compiled kernel is compared with it in tests/test_ray_kernel.py)
    ids, w = caster.weights(cam, pixel)
    ref_ids, ref_w = caster.weights_torch(cam, pixel)
    assert ids.dtype == ref_ids.dtype and w.dtype == ref_w.dtype
    assert torch.equal(ids, ref_ids), pixel
    assert torch.equal(w, ref_w), pixel
    np.testing.assert_array_equal(caster._numpy.candidates(cam, pixel), caster.candidates(cam, pixel).numpy())
    return ids.numel() > 0


def test_numpy_ray_equals_torch_on_random_scenes():
    for seed, spread in ((3, 0.3), (4, 1.5)):  # dense blobs; a cloud the camera sits inside (near plane, behind)
        caster = RayCaster(random_scene(12_000, seed=seed, spread=spread))
        cams = [front_camera(96, distance=d) for d in (0.5, 1.5, 3.0)]
        assert _same_rays(caster, cams, np.random.default_rng(seed), 40) > 12


def test_numpy_ray_equals_torch_on_a_tabletop_with_small_chunks():
    synth = build_tabletop(seed=1, num_gaussians=30_000)
    caster = RayCaster(synth.scene, chunk=64)
    cams = orbit_cameras(synth, views=5, resolution=120, seed=2)
    assert _same_rays(caster, cams, np.random.default_rng(7), 50) > 25


def test_torch_is_kept_where_numpy_does_not_apply():
    scene = random_scene(3000, seed=2)
    caster = RayCaster(scene)
    caster.compiled = False
    cam = front_camera(64)
    caster.fast = False
    ids, w = caster.weights(cam, (32.5, 32.5))
    assert ids.numel() > 0
    caster.fast = True
    fast_ids, fast_w = caster.weights(cam, (32.5, 32.5))
    assert torch.equal(ids, fast_ids) and torch.equal(w, fast_w)


def _tabletop_fields(n: int):
    synth = build_tabletop(seed=3, num_gaussians=n)
    g = torch.Generator().manual_seed(0)

    def directions(labels: np.ndarray, dim: int, noise: float) -> torch.Tensor:
        lab = torch.from_numpy(labels.astype(np.int64))
        centres = F.normalize(torch.randn(int(lab.max()) + 1, dim, generator=g), dim=1)
        return F.normalize(centres[lab] + noise * torch.randn(len(lab), dim, generator=g), dim=1)

    feats = torch.cat([directions(synth.object_labels, 12, 0.2), directions(synth.part_labels, 12, 0.2)], dim=1)
    click = FeatureField(synth.scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)})
    saga = FeatureField(
        synth.scene,
        "saga",
        {
            "features": directions(synth.object_labels, 32, 0.3),
            "gate_weight": torch.randn(32, 1, generator=g),
            "gate_bias": torch.randn(32, generator=g),
            "quantiles": torch.linspace(0.01, 1.0, 50),
        },
    )
    return synth, click, saga


@pytest.mark.parametrize("method", ["click", "saga"])
def test_selections_equal_the_torch_ray_path(method):
    synth, click, saga = _tabletop_fields(40_000)
    field = click if method == "click" else saga
    cams = orbit_cameras(synth, views=4, resolution=160, seed=1)
    rng = np.random.default_rng(5)
    caster = field._ray_caster()
    caster.compiled = False  # NumpyRay (bit-identical weights)
    compared = 0
    for k in range(16):
        cam = cams[k % len(cams)]
        pixels = [(float(rng.uniform(20, 140)), float(rng.uniform(20, 140))) for _ in range(1 + k % 3)]
        negatives = pixels[1:] if k % 2 else []
        positives = pixels[:1] if k % 2 else pixels
        kwargs = {"level": ("coarse", "fine")[k % 2]} if method == "click" else {}
        results = []
        for fast in (True, False):
            caster.fast = fast
            results.append(field.segment(cam, positives, negatives, **kwargs))
        caster.fast = True
        a, b = results
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.scale == b.scale
        compared += a.count > 0
    assert compared >= 8  # most clicks selected something


def test_a_scene_whose_tensors_track_gradients_casts_alike():
    scene = random_scene(4000, seed=6)
    scene.means.requires_grad_(True)
    caster = RayCaster(scene)  # NumpyRay's views are taken from detached tensors
    with torch.no_grad():  # as a click runs
        assert _same_rays(caster, [front_camera(64)], np.random.default_rng(6), 10) > 0

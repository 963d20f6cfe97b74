"""`KernelRay` (the click's ray cast and blend as one compiled kernel, `RayCaster.weights` on a CPU scene) against
`NumpyRay` (the previous path, bit-identical to torch): the same contributors in the same order, weights within
float32 rounding, and the same selections from `FeatureField.segment`."""

from __future__ import annotations

import numpy as np
import torch

from backend.features.threads import compute_threads
from backend.render import RayCaster
from backend.synthetic import build_tabletop, orbit_cameras
from tests.conftest import front_camera, random_scene
from tests.test_ray_numpy import _tabletop_fields


def _compare(caster: RayCaster, cameras, rng: np.random.Generator, rays: int) -> int:
    """Compares `rays` random pixels (inside the image and a little outside it); returns how many hit something."""
    hits = 0
    with compute_threads():
        for _ in range(rays):
            cam = cameras[int(rng.integers(len(cameras)))]
            pixel = (float(rng.uniform(-4, cam.width + 4)), float(rng.uniform(-4, cam.height + 4)))
            assert caster.fast and caster.compiled
            ids, w = caster.weights(cam, pixel)
            ref_ids, ref_w = caster._numpy.weights(cam, pixel)
            assert ids.dtype == torch.int64 and w.dtype == torch.float32
            np.testing.assert_array_equal(ids.numpy(), ref_ids, err_msg=str(pixel))
            np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-5, atol=1e-7, err_msg=str(pixel))
            hits += ids.numel() > 0
    return hits


def test_kernel_ray_equals_numpy_on_random_scenes():
    for seed, spread in ((3, 0.3), (4, 1.5)):  # dense blobs; a cloud the camera sits inside (near plane, behind)
        caster = RayCaster(random_scene(12_000, seed=seed, spread=spread)).warm_up()
        cams = [front_camera(96, distance=d) for d in (0.5, 1.5, 3.0)]
        assert _compare(caster, cams, np.random.default_rng(seed), 60) > 20


def test_kernel_ray_equals_numpy_on_a_tabletop_with_small_chunks():
    synth = build_tabletop(seed=1, num_gaussians=30_000)
    caster = RayCaster(synth.scene, chunk=64)
    cams = orbit_cameras(synth, views=5, resolution=120, seed=2)
    assert _compare(caster, cams, np.random.default_rng(7), 60) > 30


def test_kernel_ray_on_adversarial_scenes():
    """Gaussians behind the camera, on the near plane, nearly transparent, degenerate (zero scale), and one chunk
    whose padding is dead: the kernel keeps and drops the same ones as NumPy."""
    scene = random_scene(2000, seed=9, spread=2.0)
    with torch.no_grad():
        scene.logit_opacities[:200] = -6.0  # opacity ≈ 1/400: below 1/255, never drawn
        scene.log_scales[200:300] = -30.0  # a point: only the low-pass gives it a footprint
        # A cluster around the near plane of the camera at distance 1 (it sits at y = −1, z = 0.8, looking at 0).
        scene.means[300:400] = torch.tensor([0.0, -0.99, 0.8]) + 0.01 * torch.randn(100, 3)
    caster = RayCaster(scene, chunk=96)  # 2000 = 20 chunks of 96 and a padded one
    cams = [front_camera(64, distance=d) for d in (0.05, 1.0, 4.0)]
    assert _compare(caster, cams, np.random.default_rng(1), 80) > 10


def test_a_ray_that_hits_nothing():
    caster = RayCaster(random_scene(500, seed=1)).warm_up()
    ids, w = caster.weights(front_camera(64, distance=2.0), (-1e6, -1e6))
    assert ids.numel() == 0 and w.numel() == 0


def test_selections_equal_the_numpy_ray_path():
    synth, click, saga = _tabletop_fields(40_000)
    cams = orbit_cameras(synth, views=4, resolution=160, seed=1)
    rng = np.random.default_rng(11)
    compared = 0
    for field in (click, saga):
        caster = field._ray_caster()
        for k in range(12):
            cam = cams[k % len(cams)]
            pixels = [(float(rng.uniform(20, 140)), float(rng.uniform(20, 140))) for _ in range(1 + k % 3)]
            kwargs = {"level": ("coarse", "fine")[k % 2]} if field is click else {}
            results = []
            for compiled in (True, False):
                caster.compiled = compiled
                results.append(field.segment(cam, pixels[:1], pixels[1:], **kwargs))
            caster.compiled = True
            np.testing.assert_array_equal(results[0].mask, results[1].mask)
            compared += results[0].count > 0
    assert compared >= 12


def test_group_boxes_hold_their_chunks_and_a_degenerate_group_is_always_tested():
    from backend.render.ray_kernel import BOX_COLUMNS, group_boxes

    rng = np.random.default_rng(0)
    lo = rng.normal(size=(37, 3)).astype(np.float32)
    boxes = np.zeros((37, BOX_COLUMNS), np.float32)
    boxes[:, 0:3], boxes[:, 3:6] = lo, lo + rng.uniform(0, 0.5, (37, 3)).astype(np.float32)
    boxes[:, 6:9] = 0.5 * (boxes[:, 0:3] + boxes[:, 3:6])
    boxes[:, 9] = np.linalg.norm(0.5 * (boxes[:, 3:6] - boxes[:, 0:3]), axis=1)
    boxes[:, 10] = rng.uniform(0, 0.1, 37)
    boxes[20, 4] = np.inf  # a Gaussian with an infinite extent
    groups = group_boxes(boxes, 8)  # 5 groups, the last one padded
    assert groups.shape == (5, BOX_COLUMNS)
    for g in range(5):
        members = boxes[8 * g : 8 * g + 8]
        if g == 2:
            assert groups[g, 11] == 1
            continue
        assert groups[g, 11] == 0
        assert (groups[g, 0:3] <= members[:, 0:3]).all() and (groups[g, 3:6] >= members[:, 3:6]).all()
        far = np.linalg.norm(members[:, 6:9] - groups[g, 6:9], axis=1) + members[:, 9]
        assert (groups[g, 9] >= far).all() and (groups[g, 10] >= members[:, 10]).all()


def test_kernel_ray_on_chunk_counts_that_do_not_fill_the_last_group():
    """17 and 19 chunks make 2 groups of 16 boxes: the kernel must walk 16 chunks a group (⌈C / G⌉ = 9 or 10 there
    left chunks 9–15 under the second group's box, and missed contributors on 1 ray in 3)."""
    for n, chunk in ((136, 8), (600, 32)):
        caster = RayCaster(random_scene(n, seed=5, spread=1.0), chunk=chunk).warm_up()
        assert caster._kernel.groups.shape[0] == 2 and caster.packed.shape[0] % 16
        assert _compare(caster, [front_camera(64, distance=3.0)], np.random.default_rng(0), 150) > 25

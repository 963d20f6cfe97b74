"""`RayCaster.weights` (nearest candidates first, the rest skipped once the transmittance is cut) against
`weights_reference` (every candidate blended), on random rays through a random and a tabletop scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.render import RayCaster
from backend.synthetic import build_tabletop, orbit_cameras
from tests.conftest import front_camera, random_scene


class _CountingCaster(RayCaster):
    """The real caster; counts how many blends ran on a front subset rather than on every candidate."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.front_blends = 0

    def _blend(self, cand, camera, pixel):
        self.front_blends += cand.numel() == self.front
        return super()._blend(cand, camera, pixel)


def _check(caster: _CountingCaster, cameras, rng: np.random.Generator, rays: int) -> int:
    skipped = 0
    for _ in range(rays):
        cam = cameras[int(rng.integers(len(cameras)))]
        pixel = (float(rng.uniform(0, cam.width)), float(rng.uniform(0, cam.height)))
        before = caster.front_blends
        ids, w = caster.weights(cam, pixel)
        took_front = caster.front_blends > before
        ref_ids, ref_w = caster.weights_reference(cam, pixel)
        assert torch.equal(ids, ref_ids), pixel
        assert torch.allclose(w, ref_w, rtol=1e-6, atol=1e-9), pixel
        if took_front and ids.numel() == ref_ids.numel():
            # The front blend answered alone when it ran and no second blend followed.
            skipped += caster.front_blends - before == 1
    return skipped


@pytest.mark.parametrize("front", [8, 32])
def test_front_first_equals_every_candidate_on_a_random_scene(front):
    scene = random_scene(15_000, seed=11, spread=0.3)
    caster = _CountingCaster(scene)
    caster.front = front
    cams = [front_camera(96, distance=d) for d in (1.5, 3.0)]
    skipped = _check(caster, cams, np.random.default_rng(front), 40)
    assert skipped > 5  # the early cut did happen (dense, fairly opaque blobs)


def test_front_first_equals_every_candidate_on_a_tabletop():
    synth = build_tabletop(seed=2, num_gaussians=25_000)
    caster = _CountingCaster(synth.scene)
    caster.front = 64
    cams = orbit_cameras(synth, views=4, resolution=96, seed=0)
    skipped = _check(caster, cams, np.random.default_rng(0), 40)
    assert skipped > 5


def test_front_zero_is_the_reference():
    scene = random_scene(5000, seed=1)
    caster = _CountingCaster(scene)
    caster.front = 0
    caster.compiled = False  # NumpyRay: bit-identical to torch (the compiled kernel: tests/test_ray_kernel.py)
    cam = front_camera(64)
    ids, w = caster.weights(cam, (32.5, 32.5))
    ref_ids, ref_w = caster.weights_reference(cam, (32.5, 32.5))
    assert caster.front_blends == 0 and torch.equal(ids, ref_ids) and torch.equal(w, ref_w)
    caster.compiled = True  # the kernel: the same contributors, weights to float32 rounding
    ids, w = caster.weights(cam, (32.5, 32.5))
    assert caster.front_blends == 0 and torch.equal(ids, ref_ids)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-7)

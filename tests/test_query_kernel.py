"""The click's blend of its ray into the clicked feature and seeds (`_query_kernels.blend_ray`, compiled) against
`blend_reference` (NumPy, the same float32 sums in the same order): equal exactly, on random rays, tied and tiny
weights, one contributor; against torch's blend (`FeatureField._blend_torch`, the previous path) within float32
rounding with the same seeds; and whole clicks on a tabletop select the same Gaussians either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features._query_kernels import SEEDS, blend_ray, blend_reference
from backend.synthetic import orbit_cameras
from tests.test_ray_numpy import _tabletop_fields


def _kernel(ids, w, feats):
    blended = np.empty(feats.shape[1], np.float32)
    seeds = np.empty(min(SEEDS, ids.size), np.int64)
    total = blend_ray(ids, w, feats, blended, seeds)
    return blended, seeds, total


@pytest.mark.parametrize("dim", [12, 24, 32, 33])
def test_blend_equals_the_reference_exactly(dim):
    rng = np.random.default_rng(dim)
    feats = rng.standard_normal((5000, dim)).astype(np.float32)
    for length in (1, 2, 3, 4, 5, 17, 64, 300):
        for case in range(4):
            ids = rng.integers(0, feats.shape[0], length).astype(np.int64)
            w = rng.random(length).astype(np.float32)
            if case == 1:  # ties: the earlier one is the heavier seed
                w = rng.choice(np.float32([0.25, 0.5]), length)
            elif case == 2:  # tiny weights: the ray that barely hits
                w = (w * 1e-8).astype(np.float32)
            elif case == 3:  # repeated contributors
                ids[::2] = ids[0]
            got, want = _kernel(ids, w, feats), blend_reference(ids, w, feats)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            assert got[2] == want[2]


@pytest.mark.parametrize("dim", [12, 24, 32])
def test_blend_equals_torch_to_rounding(dim):
    g = torch.Generator().manual_seed(dim)
    feats = torch.randn(3000, dim, generator=g)
    for length in (1, 5, 40, 200):
        ids = torch.randint(0, feats.shape[0], (length,), generator=g)
        w = torch.rand(length, generator=g)
        blended, seeds, total = _kernel(ids.numpy(), w.numpy(), feats.numpy())
        want = (w[:, None] * feats[ids]).sum(0).numpy()
        scale = (w[:, None] * feats[ids]).abs().sum(0).numpy()
        assert np.all(np.abs(blended - want) <= 1e-6 * scale + 1e-30)
        np.testing.assert_array_equal(seeds, ids[torch.argsort(w, descending=True)[:SEEDS]].numpy())
        assert abs(float(total) - float(w.sum())) <= 1e-6 * float(w.sum())


def test_clicks_select_the_same_gaussians_as_the_torch_blend():
    synth, click, saga = _tabletop_fields(40_000)
    cams = orbit_cameras(synth, views=4, resolution=160, seed=2)
    rng = np.random.default_rng(5)
    compared = 0
    for field in (click, saga):
        for k in range(12):
            cam = cams[k % len(cams)]
            pixels = [(float(rng.uniform(20, 140)), float(rng.uniform(20, 140))) for _ in range(1 + k % 3)]
            level = ("coarse", "fine")[k % 2] if field is click else None
            results, queries = [], []
            for compiled in (True, False):
                field.blend_compiled = compiled
                queries.append(field._queries(cam, pixels, level, None))
                results.append(field.segment(cam, pixels[:1], pixels[1:], level=level))
            field.blend_compiled = True
            np.testing.assert_allclose(queries[0][0].numpy(), queries[1][0].numpy(), rtol=0, atol=1e-6)
            np.testing.assert_array_equal(queries[0][1], queries[1][1])  # the same seeds
            np.testing.assert_array_equal(results[0].mask, results[1].mask)
            compared += results[0].count > 0
    assert compared >= 12


def test_an_id_outside_the_features_raises():
    feats = np.zeros((10, 3), np.float32)
    for bad in (10, -1):
        with pytest.raises(IndexError):
            _kernel(np.array([0, bad], np.int64), np.ones(2, np.float32), feats)


def test_arrays_that_do_not_line_up_raise():
    """numba reads past an array's end silently: fewer weights than ids, more seeds than ids or a blended feature
    wider than the features must raise rather than read or write outside them."""
    feats = np.zeros((10, 3), np.float32)
    ids = np.array([0, 1, 2], np.int64)
    for weights, blended, seeds in (
        (np.ones(2, np.float32), np.empty(3, np.float32), np.empty(3, np.int64)),
        (np.ones(3, np.float32), np.empty(3, np.float32), np.empty(4, np.int64)),
        (np.ones(3, np.float32), np.empty(5, np.float32), np.empty(3, np.int64)),
    ):
        with pytest.raises(IndexError, match="not aligned"):
            blend_ray(ids, weights, feats, blended, seeds)

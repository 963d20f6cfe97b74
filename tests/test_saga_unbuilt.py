"""A SAGA click at a scale whose bank is not built (`SagaMethod.select_unbuilt`, the field's background builder)
selects exactly what the whole gated bank selects (`FeatureField.fast = False`, the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features._lane_kernels import sequential_products
from backend.features.pruned import reference_select
from backend.features.saga import SagaMethod


def _saga(n: int, dim: int, seed: int, *, groups: int = 8, noise: float = 0.3) -> SagaMethod:
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(groups, dim, generator=g), dim=1)
    lab = torch.randint(0, groups, (n,), generator=g)
    feats = F.normalize(centres[lab] + noise * torch.randn(n, dim, generator=g), dim=1)
    tensors = {
        "quantiles": torch.linspace(0.05, 2.0, 20),
        "gate_weight": torch.randn(dim, 1, generator=g) * 4,
        "gate_bias": torch.randn(dim, generator=g),
        "features": feats,
    }
    return SagaMethod(feats, tensors)


def _queries(saga: SagaMethod, scale: float, rows: list[list[int]], seed: int) -> torch.Tensor:  # [P, D]
    g = torch.Generator().manual_seed(seed)
    out = []
    for ids in rows:
        w = torch.rand(len(ids), generator=g)
        out.append(saga.query((saga.features[ids] * w[:, None]).sum(0), None, scale))
    return torch.stack(out)


@pytest.mark.parametrize("dim", [8, 32])
def test_unbuilt_selection_equals_the_gated_bank(dim):
    saga = _saga(6000, dim, seed=dim)
    saga.UNBUILT_ROWS = 1000  # several slices, one of them short
    for k, scale in enumerate((0.05, 0.3, 1.0, 3.0)):
        bank = saga.bank(None, scale)
        pos = _queries(saga, scale, [[3, 9, 40], [100]][: 1 + k % 2], seed=k)
        neg = None if k % 2 else _queries(saga, scale, [[2000, 2001]], seed=10 + k)
        for thr in (0.3, 0.7, 0.9):
            got = saga.select_unbuilt(pos, neg, thr, None, scale)
            np.testing.assert_array_equal(got, reference_select(pos, neg, bank, thr))


def test_unbuilt_selection_decides_the_borderline_as_the_bank_does():
    # Thresholds at the bank's own float32 scores: those Gaussians sit exactly on the line (s > thr is False for
    # them, True one ulp lower), where the screen's rounding alone would decide some of them wrongly.
    saga = _saga(4000, 32, seed=5, noise=0.6)
    scale = 0.7
    bank = saga.bank(None, scale)
    pos = _queries(saga, scale, [[1, 2, 3]], seed=0)
    scores = sequential_products(pos.numpy()[0], bank.numpy())  # the bank's own float32 sums
    checked = 0
    for i in np.argsort(scores)[-1500::150]:
        for thr in (float(scores[i]), float(np.nextafter(scores[i], -np.inf))):
            got = saga.select_unbuilt(pos, None, thr, None, scale)
            want = reference_select(pos, None, bank, thr)
            np.testing.assert_array_equal(got, want)
            checked += want.size
    assert checked > 0


def test_unbuilt_selection_of_non_finite_features_is_the_reference():
    saga = _saga(3000, 16, seed=2)
    saga.features[::97] = float("nan")
    saga.features[5::131, 3] = float("inf")
    saga.features[7] = 0.0
    scale = 0.5
    bank = saga.bank(None, scale)
    pos = _queries(saga, scale, [[1, 2]], seed=1)
    for thr in (0.2, 0.8):
        got = saga.select_unbuilt(pos, None, thr, None, scale)
        np.testing.assert_array_equal(got, reference_select(pos, None, bank, thr))
        assert got.size > 0


def test_field_click_at_a_new_scale_is_exact_then_fast_once_built():
    """`FeatureField.segment` on SAGA: a new scale's first click takes the unbuilt path (no `PrunedBank` yet)
    while the background builder makes one; the next click uses it. Every mask equals the reference path's."""
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=20_000)
    g = torch.Generator().manual_seed(3)
    lab = torch.from_numpy(synth.object_labels.astype(np.int64))
    centres = F.normalize(torch.randn(int(lab.max()) + 1, 16, generator=g), dim=1)
    feats = F.normalize(centres[lab] + 0.3 * torch.randn(len(lab), 16, generator=g), dim=1)
    tensors = {
        "features": feats,
        "quantiles": torch.linspace(0.05, 2.0, 20),
        "gate_weight": torch.randn(16, 1, generator=g) * 4,
        "gate_bias": torch.randn(16, generator=g),
    }
    field = FeatureField(synth.scene, "saga", tensors)
    cam = orbit_cameras(synth, views=1, resolution=120, seed=0)[0]
    rng = np.random.default_rng(0)
    pixels = [(float(x), float(y)) for x, y in rng.uniform(0.3, 0.7, (6, 2)) * (cam.width, cam.height)]
    selected = 0
    for i, scale in enumerate((0.2, 0.9, 0.2)):
        neg = [pixels[i + 3]] if i == 1 else []
        key = (None, scale)
        field.fast = True
        assert (key in field._pruned) == (i == 2)  # built in the background after the first click at 0.2
        first = field.segment(cam, [pixels[i]], neg, scale=scale)
        assert field.wait_for_banks(timeout=120)
        assert key in field._pruned and not field._builder.errors
        second = field.segment(cam, [pixels[i]], neg, scale=scale)  # through the built `PrunedBank`
        field.fast = False
        ref = field.segment(cam, [pixels[i]], neg, scale=scale)
        np.testing.assert_array_equal(first.mask, ref.mask)
        np.testing.assert_array_equal(second.mask, ref.mask)
        np.testing.assert_array_equal(first.scores, ref.scores)
        selected += ref.count
    assert selected > 0


def test_field_builds_in_the_click_when_asked():
    """`build_in_background = False` is the previous path: the click builds the `PrunedBank` itself."""
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=1, num_gaussians=5000)
    feats = F.normalize(torch.randn(len(synth.scene), 8, generator=torch.Generator().manual_seed(0)), dim=1)
    tensors = {
        "features": feats,
        "quantiles": torch.linspace(0.05, 2.0, 20),
        "gate_weight": torch.ones(8, 1),
        "gate_bias": torch.zeros(8),
    }
    field = FeatureField(synth.scene, "saga", tensors)
    field.build_in_background = False
    cam = orbit_cameras(synth, views=1, resolution=80, seed=0)[0]
    field.segment(cam, [(40.0, 40.0)], scale=0.4)
    assert (None, 0.4) in field._pruned

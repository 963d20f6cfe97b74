"""SAGA's scale gate, quantile normalisation and scale-dependent correspondence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features.saga import QuantileTable, ScaleGate, sample_scales, scale_correspondence


def test_gate_shapes_and_range() -> None:
    gate = ScaleGate(32)
    out = gate(torch.tensor([0.0, 0.5, 1.0]))
    assert out.shape == (3, 32)
    assert torch.all((out > 0) & (out < 1))
    assert gate(torch.tensor(0.3)).shape == (1, 32)


def test_quantile_normalisation() -> None:
    scales = np.array([0.01, 0.02, 0.02, 0.05, 0.1, 0.4, 1.0, np.nan])
    q = QuantileTable.fit(scales)
    assert q(0.01) == pytest.approx(0.0)
    assert q(1.0) == pytest.approx(1.0)
    assert q(5.0) == pytest.approx(1.0) and q(0.0) == pytest.approx(0.0)  # clipped outside the range
    values = q(np.linspace(0.0, 1.2, 50))
    assert np.all(np.diff(values) >= 0)  # monotone
    assert q(np.median(scales[np.isfinite(scales)])) == pytest.approx(0.5, abs=0.1)
    assert q.inverse(float(q(0.1))) == pytest.approx(0.1, rel=1e-6)
    # A value shared by many masks maps to the middle of its quantile range, not to one end.
    tied = QuantileTable.fit(np.array([1.0, 2.0, 2.0, 2.0, 3.0]))
    assert tied(2.0) == pytest.approx(0.5)


def test_scale_correspondence_groups_by_the_masks_below_the_scale() -> None:
    # Masks: 0 = the object (scale 1.0), 1 = part A (0.2), 2 = part B (0.3). Pixels: in A, in A, in B, object only.
    cover = torch.tensor([[True, True, False], [True, True, False], [True, False, True], [True, False, False]])
    scales = torch.tensor([1.0, 0.2, 0.3])
    fine = scale_correspondence(cover, scales, 0.1)  # below every mask: each pixel's smallest mask
    assert fine[0, 1] and not fine[0, 2] and not fine[2, 3] and not fine[0, 3]
    mid = scale_correspondence(cover, scales, 0.25)  # A counts as a whole; B and the rest by smallest mask
    assert mid[0, 1] and not mid[0, 2] and not mid[2, 3]
    whole = scale_correspondence(cover, scales, 2.0)  # the object mask is below the scale: all one
    assert whole.all()
    none = scale_correspondence(torch.zeros(2, 3, dtype=torch.bool), scales, 2.0)
    assert not none.any()  # pixels no mask covers are nobody's positive


def test_sampled_scales_fall_in_the_gaps() -> None:
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.2, 0.5, 1.0])
    s = sample_scales(scales, 200, g)
    assert torch.all(s > 0) and torch.all(s <= 2.0)
    assert (s > 1.0).any() and (s < 0.2).any()

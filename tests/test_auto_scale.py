"""SAGA's automatic scale rules (backend/features/auto_scale.py) and the selection sizes they read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.features.auto_scale import MarginScale, PlateauScale
from backend.features.method import ClickEvidence
from backend.features.saga import SagaMethod


def _counts(table: dict[float, int]):
    """count_at from a step function: the count of the largest key ≤ the scale."""
    keys = sorted(table)

    def count_at(s: float) -> int:
        below = [k for k in keys if k <= s * (1 + 1e-9)]
        return table[below[-1]] if below else 0

    return count_at


def test_margin_scale_multiplies_the_start() -> None:
    assert MarginScale(1.5).choose(0.2, 1.0, lambda s: 0) == pytest.approx(0.3)


def test_plateau_stops_where_the_selection_stops_growing() -> None:
    rule = PlateauScale(step=2.0, tolerance=0.05)
    # Grows from the part (start) to the whole at 0.4, then flat up to above every mask (top 1.0).
    count_at = _counts({0.1: 100, 0.2: 500, 0.4: 1000, 0.8: 1020})
    assert rule.choose(0.1, 1.0, count_at) == pytest.approx(0.4)
    # Still growing at the top (the masks group the object only above every mask): one step above the top.
    grows = _counts({0.1: 100, 0.2: 200, 0.4: 400, 0.8: 800, 1.6: 1600})
    assert rule.choose(0.1, 1.0, grows) == pytest.approx(1.6)
    # Flat from the start: the start.
    assert rule.choose(0.1, 1.0, lambda s: 50) == pytest.approx(0.1)
    # A start above every mask is answered at once.
    assert rule.choose(2.0, 1.0, lambda s: 50) == pytest.approx(2.0)


def test_plateau_takes_the_first_scale_whose_every_larger_selection_is_within_tolerance() -> None:
    rule = PlateauScale(step=2.0, tolerance=0.1)
    # A dip then a rise: 0.2 (1000) is within 10% of everything above (≤ 1090), 0.1 (700) is not.
    count_at = _counts({0.1: 700, 0.2: 1000, 0.4: 950, 0.8: 1090})
    assert rule.choose(0.1, 1.0, count_at) == pytest.approx(0.2)
    # The sweep is bounded: a start far below the top stops after max_steps.
    rule = PlateauScale(step=2.0, tolerance=0.0, max_steps=3)
    seen = []
    rule.choose(1e-6, 1.0, lambda s: seen.append(s) or int(s * 1e9))
    assert len(seen) == 4 and math.isclose(seen[-1], 8e-6)


def test_saga_counts_are_the_selection_before_negatives_and_floater_filter() -> None:
    # `_count_at` (a matrix product over a sample) against a plain loop over every Gaussian.
    g = torch.Generator().manual_seed(0)
    n, d = 500, 8
    feats = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    tensors = {
        "quantiles": torch.tensor([0.1, 1.0]),
        "gate_weight": torch.randn(d, generator=g),
        "gate_bias": torch.randn(d, generator=g),
    }
    saga = SagaMethod(feats, tensors)
    ids, w = torch.tensor([3, 7, 11]), torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    blended = (feats[ids].double() * w[:, None]).sum(0)
    for scale in (0.05, 0.3, 0.9, 2.0):
        gate = torch.sigmoid(
            tensors["gate_weight"] * float(saga.quantiles(np.array([scale]))[0]) + tensors["gate_bias"]
        )
        q = torch.nn.functional.normalize(blended.float() * gate, dim=0)
        expected = sum(
            float(torch.nn.functional.normalize(feats[i] * gate, dim=0) @ q) > SagaMethod.THRESHOLD for i in range(n)
        )
        assert saga._count_at([blended], scale) == expected
    # The default rule is the plateau; a click is answered at a scale the rule picked from these counts.
    assert isinstance(SagaMethod.AUTO_SCALE, PlateauScale)
    scale = saga.click_scale(ClickEvidence([(ids, w)], [0.2]))
    top = saga.quantiles.inverse(1.0)
    assert scale == pytest.approx(SagaMethod.AUTO_SCALE.choose(0.2, top, lambda s: saga._count_at([blended], s)))
    assert 0.2 <= scale <= top * SagaMethod.AUTO_SCALE.step

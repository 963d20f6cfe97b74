"""SAGA's automatic scale rules (backend/features/auto_scale.py) and the selection sizes they read."""

from __future__ import annotations

import math

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


def _choose(rule, start: float, top: float, count_at) -> float:
    scales = rule.candidates(start, top)
    return rule.choose(scales, [count_at(s) for s in scales])


def test_margin_scale_multiplies_the_start() -> None:
    assert MarginScale(1.5).candidates(0.2, 1.0) == [pytest.approx(0.3)]
    assert _choose(MarginScale(1.5), 0.2, 1.0, lambda s: 0) == pytest.approx(0.3)


def test_plateau_stops_where_the_selection_stops_growing() -> None:
    rule = PlateauScale(step=2.0, tolerance=0.05)
    # Grows from the part (start) to the whole at 0.4, then flat up to above every mask (top 1.0).
    count_at = _counts({0.1: 100, 0.2: 500, 0.4: 1000, 0.8: 1020})
    assert _choose(rule, 0.1, 1.0, count_at) == pytest.approx(0.4)
    # Still growing at the top (the masks group the object only above every mask): one step above the top.
    grows = _counts({0.1: 100, 0.2: 200, 0.4: 400, 0.8: 800, 1.6: 1600})
    assert _choose(rule, 0.1, 1.0, grows) == pytest.approx(1.6)
    # Flat from the start: the start.
    assert _choose(rule, 0.1, 1.0, lambda s: 50) == pytest.approx(0.1)
    # A start above every mask is answered at once.
    assert _choose(rule, 2.0, 1.0, lambda s: 50) == pytest.approx(2.0)


def test_plateau_takes_the_first_scale_whose_every_larger_selection_is_within_tolerance() -> None:
    rule = PlateauScale(step=2.0, tolerance=0.1)
    # A dip then a rise: 0.2 (1000) is within 10% of everything above (≤ 1090), 0.1 (700) is not.
    count_at = _counts({0.1: 700, 0.2: 1000, 0.4: 950, 0.8: 1090})
    assert _choose(rule, 0.1, 1.0, count_at) == pytest.approx(0.2)
    # The sweep is bounded: a start far below the top stops after max_steps.
    rule = PlateauScale(step=2.0, tolerance=0.0, max_steps=3)
    seen = rule.candidates(1e-6, 1.0)
    assert len(seen) == 4 and math.isclose(seen[-1], 8e-6)


def test_saga_counts_are_the_selection_before_negatives_and_floater_filter() -> None:
    # `selection_counts` (two products for all scales) against the gated bank `SagaMethod.bank` builds per scale.
    g = torch.Generator().manual_seed(0)
    n, d = 500, 8
    feats = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    tensors = {
        "quantiles": torch.tensor([0.1, 1.0]),
        "gate_weight": torch.randn(d, generator=g) * 3,
        "gate_bias": torch.randn(d, generator=g),
    }
    saga = SagaMethod(feats, tensors)
    ids, w = torch.tensor([3, 7, 11]), torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    other = (torch.tensor([40, 41]), torch.tensor([0.5, 0.5], dtype=torch.float64))
    queries = [(feats[i].double() * v[:, None]).sum(0) for i, v in ((ids, w), other)]
    scales = [0.05, 0.3, 0.9, 2.0]
    counts = saga.selection_counts(queries, scales)
    for scale, count in zip(scales, counts):
        bank = saga.bank(None, scale)  # [D, N] unit gated features
        sims = torch.stack([saga.query(q.float(), None, scale) @ bank for q in queries]).amax(0)
        assert count == int((sims > SagaMethod.THRESHOLD).sum())
    assert len(set(counts)) > 1  # the scales do differ
    # The default rule is the plateau; a click is answered at the scale the rule picks from these counts.
    assert isinstance(SagaMethod.AUTO_SCALE, PlateauScale)
    rule, top = SagaMethod.AUTO_SCALE, saga.quantiles.inverse(1.0)
    scale = saga.click_scale(ClickEvidence([(ids, w)], [0.2]))
    candidates = rule.candidates(0.2, top)
    assert scale == pytest.approx(rule.choose(candidates, saga.selection_counts(queries[:1], candidates)))
    assert 0.2 <= scale <= top * rule.step

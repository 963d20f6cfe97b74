"""SAGA's automatic scale on a shared grid (`GridPlateauScale`): every candidate is top · b^k, so clicks share
their scales and the banks built for them."""

from __future__ import annotations

import itertools
import math

import pytest

from backend.features.auto_scale import GridPlateauScale, PlateauScale, grid_index, grid_scale


def test_grid_candidates_are_grid_points_shared_by_nearby_starts() -> None:
    rule = GridPlateauScale()
    top = 0.83
    assert rule.base == pytest.approx(2.0 ** (1 / 8))
    a = rule.candidates(0.1035, top)
    b = rule.candidates(0.1050, top)  # within the same sixteenth of an octave: the same floats, bit for bit
    assert a == b
    for s in a:
        k = math.log(s / top) / math.log(rule.base)
        assert k == pytest.approx(round(k), abs=1e-9)
        assert s == grid_scale(top, rule.base, round(k))
    assert a[-1] > top >= a[-2]  # up to one step above every mask, as the plain rule
    assert a[0] == pytest.approx(top * 2.0 ** (-24 / 8))  # 0.1035 ≈ top / 8 → 24 eighths of an octave below
    assert [y / x for x, y in itertools.pairwise(a)] == pytest.approx([math.sqrt(2.0)] * (len(a) - 1))  # half octaves
    half = GridPlateauScale(points_per_step=1)  # the half-octave grid
    assert half.candidates(0.101, top)[0] == pytest.approx(top * math.sqrt(2.0) ** -6)


def test_grid_start_moves_by_at_most_a_quarter_octave() -> None:
    for rule, most in ((GridPlateauScale(), 1 / 16), (GridPlateauScale(points_per_step=1), 1 / 4)):
        for start in (0.013, 0.2, 0.5, 0.83, 1.1, 3.0):
            first = rule.candidates(start, 0.83)[0]
            assert abs(math.log2(first / start)) <= most + 1e-12


def test_grid_rule_chooses_as_the_plain_rule_on_the_grid() -> None:
    counts = {0: 100, 1: 500, 2: 1000, 3: 1010, 4: 1020, 5: 1030}
    for rule in (GridPlateauScale(step=2.0, points_per_step=1), GridPlateauScale(step=2.0), PlateauScale(step=2.0)):
        scales = rule.candidates(0.125, 1.0)
        chosen = rule.choose(scales, [counts[i] for i in range(len(scales))])
        assert chosen == pytest.approx(0.5)


def test_no_grid_for_scales_that_are_not_positive_and_finite() -> None:
    assert grid_index(0.0, 1.0, 2.0) is None and grid_index(1.0, float("inf"), 2.0) is None
    assert grid_index(float("nan"), 1.0, 2.0) is None
    assert GridPlateauScale().candidates(-1.0, 1.0) == PlateauScale().candidates(-1.0, 1.0)
    tiny = GridPlateauScale().candidates(1e-300, 1e10)  # k far below: the grid point underflows to 0
    assert all(s > 0 for s in tiny)


def test_saga_counts_with_kept_norms_equal_fresh_counts() -> None:
    import torch

    from backend.features.saga import SagaMethod

    g = torch.Generator().manual_seed(4)
    n, d = 3000, 8
    feats = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    tensors = {
        "quantiles": torch.tensor([0.1, 1.0]),
        "gate_weight": torch.randn(d, generator=g) * 3,
        "gate_bias": torch.randn(d, generator=g),
    }
    kept = SagaMethod(feats, tensors)
    kept.COUNT_NORMS = 3  # evictions happen
    queries = [feats[i].double() for i in (3, 50)]
    lists = [[0.1, 0.2, 0.4], [0.2, 0.4, 0.8], [0.1, 0.2, 0.4], [0.05, 0.4], [0.1, 0.2, 0.4]]
    for scales in lists:
        for qs in (queries[:1], queries):
            assert kept.selection_counts(qs, scales) == SagaMethod(feats, tensors).selection_counts(qs, scales)

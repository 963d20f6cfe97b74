"""`PrunedBank.select_positions` with its compiled products over the tiles (`compiled`, `_lane_kernels.lane_products`)
against the NumPy path run by run: the same positions, exactly, with one to three positives, thresholds as a Python
float and as a NumPy float64 (NumPy compares the two in different precisions), lone-column runs and non-finite
features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features._lane_kernels import sequential_products
from backend.features._pruned_kernels import comparison_threshold
from backend.features.pruned import PrunedBank, reference_select
from tests.test_pruned_bank import _grouped_bank


def _both(pruned: PrunedBank, pos, thr) -> np.ndarray:
    pruned.compiled = True
    fast, fast_read = pruned.select_positions(pos, None, thr)
    pruned.compiled = False
    ref, ref_read = pruned.select_positions(pos, None, thr)
    pruned.compiled = True
    pruned.runs_compiled = False  # the runs from `live_runs` (NumPy), the threshold still compiled
    listed, listed_read = pruned.select_positions(pos, None, thr)
    pruned.runs_compiled = True
    np.testing.assert_array_equal(listed, fast)
    assert listed_read == fast_read
    assert fast.dtype == np.int64
    np.testing.assert_array_equal(fast, ref)
    assert fast_read == ref_read
    return fast


@pytest.mark.parametrize(("dim", "groups", "noise"), [(12, 20, 0.15), (32, 5, 1.0)])
def test_compiled_threshold_equals_numpy(dim, groups, noise):
    bank = _grouped_bank(20_000, dim, groups, noise, seed=dim)
    pruned = PrunedBank(bank, blocks=64, sample=4000).warm_up()
    rng = torch.Generator().manual_seed(3)
    selected = 0
    for trial in range(12):
        cols = torch.randint(0, bank.shape[1], (3,), generator=rng)
        pos = bank[:, cols[: 1 + trial % 3]].T.clone()
        if trial % 2:
            pos = F.normalize(pos + 0.2 * torch.randn(pos.shape, generator=rng), dim=1)
        for thr in (0.5, 0.85, np.float64(0.85), np.float32(0.95), 1):
            selected += _both(pruned, pos, thr).size
    assert selected > 0


def test_a_threshold_on_a_products_float32_value():
    """A Gaussian whose score is exactly a float32 just above the float64 threshold: NumPy's float32 comparison
    (Python float) and float64 comparison (NumPy float64) disagree, and the kernel follows each."""
    bank = _grouped_bank(3000, 8, 4, 0.2, seed=1)
    pruned = PrunedBank(bank, blocks=8, sample=1000)
    q = bank[:, 10][None].clone()
    column = pruned.columns(np.flatnonzero(pruned.perm == 10))  # [D, 1]
    score = float(sequential_products(q[0].numpy(), column)[0])
    for thr in (score, np.float64(score), np.nextafter(score, 0.0), np.float64(np.nextafter(score, 0.0))):
        _both(pruned, q, thr)
    assert comparison_threshold(0.1) == float(np.float32(0.1)) and comparison_threshold(np.float64(0.1)) == 0.1


def test_lone_columns_and_non_finite_features():
    bank = _grouped_bank(4000, 12, 6, 0.1, seed=5)
    bank[:, ::97] = float("nan")
    bank[3, 5::131] = float("inf")
    pruned = PrunedBank(bank, blocks=64, sample=2000)  # small blocks: some runs are one column wide
    for col in (1, 2, 3, 10, 3000):
        for thr in (0.8, 0.97, 0.999):
            _both(pruned, bank[:, col][None].clone(), thr)
    assert pruned.select_positions(torch.full((1, 12), float("nan")), None, 0.85)[0].size == 0


def test_every_kind_of_threshold_compares_as_numpy_does():
    """A 0-d array, a long double, a NumPy integer, a Python int: the kernel's float64 limit holds NumPy's comparison
    for each, on columns whose scores sit exactly at or one step around the threshold."""
    bank = _grouped_bank(1000, 12, 4, 0.2, seed=2)
    bank[:, 5:40] = bank[:, 4:5]  # many columns with one score
    pruned = PrunedBank(bank, blocks=16, sample=500)
    q = F.normalize(torch.randn(1, 12, generator=torch.Generator().manual_seed(0)), dim=1)
    column = pruned.columns(np.flatnonzero(pruned.perm == 4))
    s = sequential_products(q[0].numpy(), column)[0]
    below = np.nextafter(np.float64(s), -1.0)
    for thr in (
        np.array(below),
        np.array(s),
        np.longdouble(s) - np.longdouble(1e-20),
        np.longdouble(s) + np.longdouble(1e-20),
        np.longdouble(below),
        float(below),
        np.int64(0),
        0,
    ):
        _both(pruned, q, thr)
        got = np.sort(pruned.select(q, None, thr)[0])
        np.testing.assert_array_equal(got, reference_select(q, None, bank, thr), err_msg=repr(thr))

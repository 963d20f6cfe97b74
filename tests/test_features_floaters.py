"""The floater filter's fast path against its plain reference, and the keep rule on a scene with a speck."""

from __future__ import annotations

import numpy as np
import pytest

from backend.features.floaters import FloaterFilter, floater_filter_reference


def _clouds(seed: int = 0) -> np.ndarray:  # [N, 3]: two dense blobs, a thin bridge-free gap, scattered specks
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.05, (400, 3))
    b = rng.normal(0, 0.05, (300, 3)) + np.array([2.0, 0, 0])
    c = rng.normal(0, 0.02, (30, 3)) + np.array([0, 2.0, 0])
    specks = rng.uniform(3, 6, (12, 3))  # far from everything
    return np.concatenate([a, b, c, specks])


@pytest.mark.parametrize("keep_ratio", [0.02, 0.3, 1.0, float("inf")])
@pytest.mark.parametrize("min_support", [1, 2])
def test_fast_path_matches_the_reference(keep_ratio: float, min_support: int) -> None:
    means = _clouds()
    filt = FloaterFilter(means, min_support=min_support, keep_ratio=keep_ratio)
    rng = np.random.default_rng(1)
    for trial in range(12):
        selected = np.flatnonzero(rng.random(len(means)) < rng.uniform(0.05, 0.9))
        seeds = rng.choice(len(means), 3, replace=False) if trial % 3 else selected[:2]
        fast = np.sort(filt(selected, seeds))
        ref = np.sort(floater_filter_reference(filt, selected, seeds))
        assert np.array_equal(fast, ref), (trial, fast.size, ref.size)


def test_keep_ratio_one_keeps_only_what_touches_the_click() -> None:
    means = _clouds()
    a, b = np.arange(400), np.arange(400, 700)
    everything = np.arange(730)  # not the specks
    only_seeded = FloaterFilter(means, keep_ratio=1.0)
    assert set(only_seeded(everything, a[:3]).tolist()) == set(a.tolist())
    assert set(only_seeded(everything, np.concatenate([a[:2], b[:2]])).tolist()) == set(a.tolist()) | set(b.tolist())
    lenient = FloaterFilter(means, keep_ratio=0.02)  # B (75% of A) and C (7.5%) are kept as substantial pieces
    assert set(lenient(everything, a[:3]).tolist()) == set(everything.tolist())


def test_a_keep_ratio_per_call_matches_the_reference() -> None:
    means = _clouds()
    filt = FloaterFilter(means)  # keep_ratio 0.02 of its own
    everything = np.arange(730)
    seeds = np.arange(3)
    for ratio in (None, 0.5, 1.0, float("inf")):
        fast = np.sort(filt(everything, seeds, keep_ratio=ratio))
        assert np.array_equal(fast, np.sort(floater_filter_reference(filt, everything, seeds, keep_ratio=ratio)))
    assert filt(everything, seeds, keep_ratio=1.0).size == 400 and filt(everything, seeds).size == 730


def test_a_selection_kept_whole_comes_back_unchanged() -> None:
    means = _clouds()
    filt = FloaterFilter(means, keep_ratio=0.02)
    rng = np.random.default_rng(4)
    selected = rng.permutation(730)  # every blob, no speck, in no particular order
    kept = filt(selected, selected[:3])
    assert np.array_equal(kept, selected)  # the early return: same ids, same order
    assert np.array_equal(np.sort(kept), np.sort(floater_filter_reference(filt, selected, selected[:3])))
    only_a = filt(selected, np.arange(3), keep_ratio=1.0)  # something is dropped: the full path
    assert np.array_equal(np.sort(only_a), np.arange(400))

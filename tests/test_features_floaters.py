"""The floater filter's fast path against its plain reference, and the keep rule on a scene with a speck."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from backend.features import floaters
from backend.features.floaters import FloaterFilter, cells_and_adjacency_reference, floater_filter_reference
from backend.features.neighbors import knn_neighbors


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
        filt.compiled = False  # the NumPy path (tests/test_floater_kernel.py compares the two exactly)
        assert np.array_equal(np.sort(filt(selected, seeds)), ref), trial
        filt.keep_by_cell = False  # the previous path (occupied-cell indices) answers the same
        assert np.array_equal(np.sort(filt(selected, seeds)), ref), trial
        filt.keep_by_cell = filt.compiled = True
        assert not filt._keep.any() and (filt._local == -1).all()  # the reused tables are left clean
        assert not filt._counts.any()


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_the_sliced_build_gives_the_references_cells_and_adjacency(
    monkeypatch: pytest.MonkeyPatch, dtype: type, index: type
) -> None:
    means = _clouds().astype(dtype)
    means[5] = means[6]  # a duplicate point: reach 0 for one of them
    nb = knn_neighbors(means, 8).numpy().astype(index)
    monkeypatch.setattr(floaters, "ROWS", 97)  # many uneven slices
    filt = FloaterFilter(means, nb)
    cell_of, num_cells, indptr, indices = cells_and_adjacency_reference(means, nb)
    assert filt.num_cells == num_cells and filt.cell_of.dtype == np.int32
    assert np.array_equal(filt.cell_of, cell_of)
    assert np.array_equal(filt.adj_indptr, indptr) and np.array_equal(filt.adj_indices, indices)
    # every row's neighbours strictly ascending: a click's graph is in SciPy's canonical form, never sorted per click
    row = np.repeat(np.arange(num_cells), np.diff(indptr))
    same_row = row[1:] == row[:-1]
    assert (np.diff(indices.astype(np.int64))[same_row] > 0).all()


def test_the_build_keeps_its_temporaries_small() -> None:
    # Traced bytes, not time: the reference's whole-scene float64 / int64 temporaries are several times the sliced
    # build's, whose peak is bounded by its slices and the per-Gaussian outputs.
    rng = np.random.default_rng(3)
    n = 200_000
    means = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    nb = (np.arange(n)[:, None] + rng.integers(1, 50, (n, 8))) % n  # any int graph: the peak is what is measured
    nb = nb.astype(np.int32)
    peaks = []
    for build in (lambda: FloaterFilter(means, nb), lambda: cells_and_adjacency_reference(means, nb)):
        tracemalloc.start()
        build()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] < 0.4 * peaks[1], peaks


def test_selections_from_several_threads_get_their_own_answers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    means = _clouds()
    filt = FloaterFilter(means, keep_ratio=1.0)
    rng = np.random.default_rng(12)
    jobs = [(np.flatnonzero(rng.random(len(means)) < 0.7), rng.choice(len(means), 2)) for _ in range(24)]
    expected = [filt(sel, seeds) for sel, seeds in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: filt(job[0], job[1]), jobs * 3))
    assert all(np.array_equal(g, e) for g, e in zip(got, expected * 3))

"""`_lane_kernels.lane_products` (the blocked bank's products over 16-column tiles) against `sequential_products`
(NumPy, the same order of float32 sums): the same bits for every column, whatever the runs' alignment to the tiles,
with one to three queries and non-finite columns; the positions it lists are exactly those NumPy finds above the
threshold; bad runs and short outputs are refused rather than read or written out of bounds."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backend.features._lane_kernels import LANES, lane_products, sequential_products

NONE_F = np.zeros(0, np.float32)
NONE_I = np.zeros(0, np.int64)


def _tiles(bank: np.ndarray) -> np.ndarray:  # [D, N] → [T, D, LANES], zero past the end
    d, n = bank.shape
    t = -(-n // LANES)
    pad = np.zeros((d, t * LANES), np.float32)
    pad[:, :n] = bank
    return np.ascontiguousarray(pad.reshape(d, t, LANES).transpose(1, 0, 2))


def _runs(rng, n: int) -> tuple[np.ndarray, np.ndarray]:  # ascending, disjoint, any alignment, lone columns
    cuts = np.unique(np.concatenate([[0, n], rng.integers(0, n, 40)]))
    lows, highs = cuts[:-1:2], cuts[1::2]
    return lows.astype(np.int64), highs.astype(np.int64)


def _expected(queries, bank, lows, highs) -> np.ndarray:
    cols = np.concatenate([np.arange(a, b) for a, b in zip(lows, highs, strict=True)])
    s = sequential_products(queries[0], bank[:, cols])
    for q in queries[1:]:
        np.maximum(s, sequential_products(q, bank[:, cols]), out=s)
    return cols, s


@pytest.mark.parametrize(("dim", "n", "queries"), [(12, 1000, 1), (24, 4099, 2), (32, 777, 3), (3, 17, 1)])
def test_products_are_the_sequential_sums_bit_for_bit(dim, n, queries) -> None:
    rng = np.random.default_rng(dim + n)
    bank = rng.standard_normal((dim, n)).astype(np.float32)
    bank[:, 5] = np.nan
    bank[1, 9] = np.inf
    bank[:, 11] = 0.0
    q = rng.standard_normal((queries, dim)).astype(np.float32)
    tiles = _tiles(bank)
    for _ in range(5):
        lows, highs = _runs(rng, n)
        cols, want = _expected(q, bank, lows, highs)
        got = np.empty(cols.size, np.float32)
        assert lane_products(tiles, q, lows, highs, 0.0, got, NONE_I) == 0
        np.testing.assert_array_equal(got, want)  # NaN where NaN: the same bits
        for thr in (-0.5, 0.0, float(np.float32(1.3))):
            out = np.empty(cols.size, np.int64)
            k = lane_products(tiles, q, lows, highs, thr, NONE_F, out)
            with np.errstate(invalid="ignore"):
                np.testing.assert_array_equal(out[:k], cols[want > np.float32(thr)])


def test_a_column_has_the_same_product_in_every_run_that_holds_it() -> None:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((24, 300)).astype(np.float32)
    q = rng.standard_normal((1, 24)).astype(np.float32)
    tiles = _tiles(bank)
    whole = np.empty(300, np.float32)
    lane_products(tiles, q, np.array([0]), np.array([300]), 0.0, whole, NONE_I)
    for lo in range(0, 40):
        for width in (1, 2, 15, 16, 17, 33):
            hi = min(300, lo + width)
            part = np.empty(hi - lo, np.float32)
            lane_products(tiles, q, np.array([lo]), np.array([hi]), 0.0, part, NONE_I)
            np.testing.assert_array_equal(part, whole[lo:hi])


def test_bad_runs_and_short_outputs_are_refused() -> None:
    tiles = _tiles(np.ones((4, 40), np.float32))  # 3 tiles: columns 0 … 47
    q = np.ones((1, 4), np.float32)
    buf = np.empty(100, np.float32)
    for lows, highs in (([0], [49]), ([-1], [3]), ([5], [4]), ([0, 2], [3, 6]), ([0], [3, 4])):
        with pytest.raises(IndexError):
            lane_products(tiles, q, np.array(lows, np.int64), np.array(highs, np.int64), 0.0, buf, NONE_I)
    with pytest.raises(IndexError):
        lane_products(tiles, q, np.array([0]), np.array([30]), 0.0, np.empty(29, np.float32), NONE_I)
    with pytest.raises(IndexError):
        lane_products(tiles, np.ones((1, 5), np.float32), np.array([0]), np.array([3]), 0.0, buf, NONE_I)


def test_the_vectoriser_flag_is_put_back_after_compiling() -> None:
    before = numba.config.SLP_VECTORIZE
    tiles = _tiles(np.ones((2, 3), np.float32))
    lane_products(
        tiles, np.ones((1, 2), np.float32), np.array([0]), np.array([3]), 0.0, np.empty(3, np.float32), NONE_I
    )
    assert before == numba.config.SLP_VECTORIZE

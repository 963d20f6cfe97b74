"""The blocked bank's products (pruned.py `PrunedBank`) as one compiled pass over lane tiles.

A click reads 10–35% of a 1M-Gaussian bank in 10–30 runs of columns. Stored [D, N], a run is D separate streams
(one per feature row), and each run restarts them all: at 1M Gaussians OpenBLAS's matrix-vector product over a
fine click's runs took 0.8 ms with the caches cold, where one stream of the same bytes takes 0.45 ms. So the bank is
stored in tiles of LANES columns, [T, D, LANES]: tile t holds columns t·LANES … t·LANES + LANES − 1, feature row by
feature row, 64 contiguous bytes each, and a run of columns is one contiguous stream of tiles.

Each column's product is summed in feature order, d = 0 … D − 1, in float32 (a product rounded, then the sum
rounded), sixteen columns at once: lane k of a tile does the same arithmetic as every other lane, so a column's
product does not depend on where a run starts or ends, and `sequential_products` (NumPy, the same order) gives the
same bits column for column (tests/test_lane_kernels.py). The sixteen sums are sixteen locals, which LLVM's SLP
vectoriser packs into one 512-bit (or two 256-bit) register; `core/jit.py` `vector_kernel` compiles with it on
(numba leaves it off by default). Without it the answer is the same, only ~1.4× slower.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import vector_kernel

LANES = 16
"""Columns per tile: sixteen float32 sums fill one AVX-512 register, and a tile row is one 64-byte cache line."""


@vector_kernel
def lane_products(
    tiles,  # [T, D, LANES] float32 the bank in tiles (zero columns past the end)
    queries,  # [P, D] float32, P ≥ 1
    lows,  # [R] int64 each run's first column
    highs,  # [R] int64 each run's end (runs ascending, disjoint, within T · LANES)
    threshold,  # float64 (`_pruned_kernels.comparison_threshold`)
    scores,  # [W] float32 out, or [0]: with W = the runs' widths, each column's max over the queries, run after run
    positions,  # [W] int64 out, or [0]: the columns whose max is above the threshold, ascending
):  # → how many positions were written (0 when only scores are asked for)
    """max_p queries[p] · column, over the runs: written to `scores`, or only the columns above `threshold` listed."""
    if queries.shape[1] != tiles.shape[1] or tiles.shape[2] != LANES or lows.size != highs.size:
        raise IndexError("lane_products: the tiles, queries or runs do not match")
    dims = tiles.shape[1]
    limit = tiles.shape[0] * LANES
    width = 0
    for r in range(lows.size):
        if lows[r] < 0 or highs[r] > limit or lows[r] > highs[r] or (r > 0 and lows[r] < highs[r - 1]):
            raise IndexError("lane_products: a run outside the tiles or out of order")
        width += highs[r] - lows[r]
    listing = positions.size > 0
    if (positions.size if listing else scores.size) < width:
        raise IndexError("lane_products: the output is shorter than the runs")
    best = np.empty(LANES, np.float32)
    n = 0
    off = 0
    for r in range(lows.size):
        lo = lows[r]
        hi = highs[r]
        for t in range(lo // LANES, (hi + LANES - 1) // LANES):
            tile = tiles[t]
            for p in range(queries.shape[0]):
                q0 = queries[p, 0]
                a0 = q0 * tile[0, 0]
                a1 = q0 * tile[0, 1]
                a2 = q0 * tile[0, 2]
                a3 = q0 * tile[0, 3]
                a4 = q0 * tile[0, 4]
                a5 = q0 * tile[0, 5]
                a6 = q0 * tile[0, 6]
                a7 = q0 * tile[0, 7]
                a8 = q0 * tile[0, 8]
                a9 = q0 * tile[0, 9]
                a10 = q0 * tile[0, 10]
                a11 = q0 * tile[0, 11]
                a12 = q0 * tile[0, 12]
                a13 = q0 * tile[0, 13]
                a14 = q0 * tile[0, 14]
                a15 = q0 * tile[0, 15]
                for d in range(1, dims):
                    qd = queries[p, d]
                    a0 += qd * tile[d, 0]
                    a1 += qd * tile[d, 1]
                    a2 += qd * tile[d, 2]
                    a3 += qd * tile[d, 3]
                    a4 += qd * tile[d, 4]
                    a5 += qd * tile[d, 5]
                    a6 += qd * tile[d, 6]
                    a7 += qd * tile[d, 7]
                    a8 += qd * tile[d, 8]
                    a9 += qd * tile[d, 9]
                    a10 += qd * tile[d, 10]
                    a11 += qd * tile[d, 11]
                    a12 += qd * tile[d, 12]
                    a13 += qd * tile[d, 13]
                    a14 += qd * tile[d, 14]
                    a15 += qd * tile[d, 15]
                if p == 0:
                    best[0] = a0
                    best[1] = a1
                    best[2] = a2
                    best[3] = a3
                    best[4] = a4
                    best[5] = a5
                    best[6] = a6
                    best[7] = a7
                    best[8] = a8
                    best[9] = a9
                    best[10] = a10
                    best[11] = a11
                    best[12] = a12
                    best[13] = a13
                    best[14] = a14
                    best[15] = a15
                else:  # NumPy's `maximum`: a NaN on either side stays
                    got = (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)
                    for k in range(LANES):
                        b = best[k]
                        if got[k] > b or got[k] != got[k]:
                            best[k] = got[k]
            first = max(lo, t * LANES) - t * LANES
            last = min(hi, t * LANES + LANES) - t * LANES
            if listing:
                for k in range(first, last):  # without a branch: hits are 20–60% of what is read, unpredictable
                    positions[n] = t * LANES + k
                    n += np.float64(best[k]) > threshold
            else:
                for k in range(first, last):
                    scores[off + k - first] = best[k]
                off += last - first
    return n


def sequential_products(
    query: np.ndarray,  # [D] float32
    columns: np.ndarray,  # [D, W] float32
) -> np.ndarray:  # [W] float32
    """`lane_products`' sum in NumPy: q[0]·c[0], then + q[d]·c[d] for d = 1 … D − 1, each step rounded to float32."""
    q = np.asarray(query, dtype=np.float32)
    out = q[0] * columns[0]
    for d in range(1, columns.shape[0]):
        out += q[d] * columns[d]
    return out


def max_products(
    queries: np.ndarray,  # [P, D] float32, P ≥ 1
    columns: np.ndarray,  # [D, W] float32
) -> np.ndarray:  # [W] float32
    """max over the queries of `sequential_products` (NumPy's `maximum`: a NaN stays): `lane_products`' scores in
    NumPy, the reference every whole-bank product is held to."""
    s = sequential_products(queries[0], columns)
    for row in queries[1:]:
        np.maximum(s, sequential_products(row, columns), out=s)
    return s


def warm_up(dims: int) -> None:
    """Compile (or load from numba's cache) before the first click."""
    tiles = np.zeros((1, dims, LANES), np.float32)
    one = np.zeros(1, np.int64)
    lane_products(tiles, np.zeros((1, dims), np.float32), one, one + 1, 0.5, np.zeros(1, np.float32), one)

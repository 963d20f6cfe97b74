"""`PrunedBank`'s run search (pruned.py) as compiled kernels: the blocks' angles and reaches for a click's queries
(`block_reach`), then each block's run of columns that can pass (`block_runs`), with no NumPy call per block; and
the threshold as NumPy compares it (`comparison_threshold`), which the product pass (`_lane_kernels.py`) uses.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel


def comparison_threshold(threshold) -> float:
    """The float64 `t` with (s > t) ⇔ NumPy's `scores > threshold` for every float32 s. NumPy compares a float32
    array in the type `np.result_type` gives: float32 for a Python number (NEP 50), float64 for a NumPy float64 or
    int64 or a 0-d float64 array, long double for a long double. float32 → float64 is exact, so a float64 `t` holds
    the first two exactly; a long double is brought to the float64 just below it when it rounds up (no float32 lies
    between the two)."""
    kind = np.result_type(np.zeros(1, np.float32), threshold)
    if kind == np.float32:
        return float(np.float32(threshold))
    t = float(threshold)
    if kind.itemsize > 8 and np.longdouble(t) > np.asarray(threshold, dtype=np.longdouble):
        t = float(np.nextafter(t, -np.inf))
    return t


@kernel
def block_runs(
    theta,  # [P, K] float64 each query's angle to each block's centroid (`PrunedBank._reach`)
    reach,  # [P, K] float64 how far from θ a member's φ may be and still pass (−1 or NaN: none)
    radius,  # [K] float64 each block's largest φ
    lo,  # [K] int64 each block's first column
    hi,  # [K] int64 each block's end
    key,  # [F] float64 φ + 8 × block over the finite blocks, ascending (`PrunedBank._key`)
    out,  # [K, 2] int64 out: the runs (first column, end), in block order
):  # → how many runs `out` holds
    """`PrunedBank.live_runs`' search after `_reach`, one block at a time: the same float64 bounds, the same binary
    searches in the block-offset key, the union of the queries' runs per block; no NumPy call per step."""
    num = 0
    for b in range(lo.size):
        if hi[b] <= lo[b]:
            continue
        first = np.iinfo(np.int64).max
        last = -1
        offset = 8.0 * b
        for p in range(theta.shape[0]):
            t = theta[p, b]
            r = reach[p, b]
            if not (r >= 0 and t - radius[b] <= r):
                continue
            a = max(np.searchsorted(key, offset + (t - r - 1e-9), side="left"), lo[b])
            z = min(np.searchsorted(key, offset + (t + r + 1e-9), side="right"), hi[b])
            first = min(first, a)
            last = max(last, z)
        if first < last:
            out[num, 0] = first
            out[num, 1] = last
            num += 1
    return num


@kernel
def block_reach(
    queries,  # [P, D] float64
    centroids,  # [K, D] float64 unit
    max_norm,  # [K] float64 each block's largest member norm
    limit,  # float64 the threshold less the margin
    theta,  # [P, K] float64 out: each query's angle to each centroid
    reach,  # [P, K] float64 out: how far from θ a member's φ may be and still pass; −1 none can
):
    """`PrunedBank.reach_reference` (NumPy) in one pass: cos θ = q·μ / |q|, and reach = arccos(limit / (|q|·max|f|))
    (π when that ratio is ≤ −1, −1 when ≥ 1) plus 1e-6. The sums run in order, so θ may differ from NumPy's in the
    last bits; any θ is a valid bound (the runs hold every passing column by the slack on `limit`)."""
    if centroids.shape[1] != queries.shape[1] or max_norm.size != centroids.shape[0]:
        raise IndexError("block_reach: the queries, centroids or norms do not match")
    if theta.shape != (queries.shape[0], centroids.shape[0]) or reach.shape != theta.shape:
        raise IndexError("block_reach: the outputs are not [P, K]")
    for p in range(queries.shape[0]):
        qn = 0.0
        for d in range(queries.shape[1]):
            qn += queries[p, d] * queries[p, d]
        qn = np.sqrt(qn)
        for b in range(centroids.shape[0]):
            dot = 0.0
            for d in range(queries.shape[1]):
                dot += queries[p, d] * centroids[b, d]
            theta[p, b] = np.arccos(min(1.0, max(-1.0, dot / max(qn, 1e-30))))
            ratio = limit / max(qn * max_norm[b], 1e-30)
            if ratio >= 1.0:
                reach[p, b] = -1.0
            elif ratio <= -1.0:
                reach[p, b] = np.pi + 1e-6
            else:
                reach[p, b] = np.arccos(ratio) + 1e-6

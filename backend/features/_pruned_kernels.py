"""`PrunedBank.select_positions`' threshold step (pruned.py) as one compiled kernel.

A click's blocked product reads 10–35% of the bank in 20–60 runs of columns; per run NumPy then compared the run's
products with the threshold, listed the hits (`flatnonzero`) and shifted them to block positions, ~10 µs of
per-call cost a run (a third of a SAGA click's product step at 1M Gaussians). The products stay BLAS's (a fused
product in numba measured 4.5× slower than OpenBLAS's matrix-vector kernel on this CPU: docs/architecture.md);
they are written run after run into one buffer, and this kernel lists the positions above the threshold in one pass.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel


def comparison_threshold(threshold) -> float:
    """The float64 `t` with (s > t) ⇔ NumPy's `scores > threshold` for every float32 s: NumPy compares a float32 array
    with a Python float in float32 (NEP 50), and with a NumPy float64 in float64; float32 → float64 is exact."""
    if isinstance(threshold, np.floating) and np.dtype(type(threshold)).itemsize > 4:
        return float(threshold)
    return float(np.float32(threshold))


@kernel
def positions_above(
    scores,  # [R] float32 the runs' products, run after run
    run_lo,  # [K] int64 each run's first block position
    run_len,  # [K] int64 each run's width (the runs' widths sum to R)
    threshold,  # float64 holding the threshold as NumPy compares it (`comparison_threshold`)
):  # → [S] int64 ascending block positions whose score is above the threshold
    out = np.empty(scores.size, np.int64)
    n = 0
    off = 0
    for k in range(run_lo.size):
        lo = run_lo[k]
        for j in range(run_len[k]):  # without a branch: a click's hits are 20–60% of what it reads, unpredictable
            out[n] = lo + j
            n += np.float64(scores[off + j]) > threshold
        off += run_len[k]
    return out[:n]  # a view: the click drops it with its other arrays, no copy of up to ~1 MB at 1M


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

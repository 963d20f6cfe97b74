"""A click's clicked feature from its ray (`FeatureField._queries`) as one compiled pass.

The ray's few dozen contributors' features, blended by their weights, make the clicked feature; the 4 heaviest are
the click's seeds. In torch that is ~12 small operations (index, multiply, sum, argsort, gathers) whose per-call
cost, with the caches cold after the previous click's passes over the 1M-Gaussian arrays, is ~0.3 ms of a ~3 ms
click. Here one kernel reads the contributors' rows once. The sum runs in float32 in the rays' order, where torch
sums in an order of its own that depends on the feature width and the CPU's vector width, so the blended feature
equals torch's to float32 rounding (as the compiled ray's weights equal NumPy's: docs/architecture.md, "The click
path"); `blend_reference` is the same order in NumPy, which tests/test_query_kernel.py holds the kernel to exactly,
and to torch's path within rounding, with the same seeds.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel

SEEDS = 4
"""The Gaussians that make most of the clicked pixel: the click's seeds (growth, floater filter, pieces)."""


@kernel
def blend_ray(
    ids,  # [L] int64 the ray's contributors (Gaussian ids)
    weights,  # [L] float32 their blend weights, front to back
    features,  # [N, D] float32
    blended,  # [D] float32 out: Σ weights[i] · features[ids[i]], summed in order, in float32
    seeds,  # [min(L, SEEDS)] int64 out: the ids of the heaviest weights, heaviest first, ties to the earlier one
):  # → float32 Σ weights, summed in order
    if weights.size != ids.size or seeds.size > ids.size or blended.size != features.shape[1]:
        raise IndexError("blend_ray: the ray's ids, weights, seeds or blended feature are not aligned")
    for i in range(ids.size):  # numba checks no bounds: a bad id raises rather than reads outside `features`
        if ids[i] < 0 or ids[i] >= features.shape[0]:
            raise IndexError("blend_ray: a contributor id outside the features")
    for d in range(blended.size):
        blended[d] = np.float32(0.0)
    total = np.float32(0.0)
    for i in range(ids.size):
        w = weights[i]
        total += w
        row = ids[i]
        for d in range(blended.size):
            blended[d] += w * features[row, d]
    # The heaviest first (a stable descending order's head): each pick the largest weight not yet taken.
    taken = np.zeros(ids.size, np.bool_)
    for k in range(seeds.size):
        best = -1
        for i in range(ids.size):
            if not taken[i] and (best < 0 or weights[i] > weights[best]):
                best = i
        taken[best] = True
        seeds[k] = ids[best]
    return total


def blend_reference(
    ids: np.ndarray,  # [L] int
    weights: np.ndarray,  # [L] float32
    features: np.ndarray,  # [N, D] float32
) -> tuple[np.ndarray, np.ndarray, np.float32]:  # blended [D] float32, seeds [≤ SEEDS] int64, Σ weights float32
    """`blend_ray` in NumPy: the same float32 sums in the same order, the seeds by a stable descending sort."""
    blended = np.zeros(features.shape[1], dtype=np.float32)
    total = np.float32(0.0)
    for i, w in zip(ids.tolist(), weights.astype(np.float32), strict=True):
        total = np.float32(total + w)
        blended += w * features[i]
    order = np.argsort(-weights.astype(np.float32), kind="stable")[:SEEDS]
    return blended, ids[order].astype(np.int64), total


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first click."""
    blend_ray(
        np.zeros(1, np.int64),
        np.ones(1, np.float32),
        np.zeros((1, 1), np.float32),
        np.empty(1, np.float32),
        np.empty(1, np.int64),
    )

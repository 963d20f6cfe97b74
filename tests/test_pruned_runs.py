"""`PrunedBank.live_runs` (one vectorised search over every block) against `live_runs_reference` (the per-block
loop): its runs lie inside the reference's and still hold every column a query can bring to the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features.pruned import MARGIN, PrunedBank


def _covered(runs: list[tuple[int, int]], n: int) -> np.ndarray:  # → [n] bool
    out = np.zeros(n, dtype=bool)
    for a, z in runs:
        out[a:z] = True
    return out


@pytest.mark.parametrize(("dim", "groups", "noise"), [(12, 20, 0.15), (32, 8, 0.5), (24, 1, 3.0)])
def test_vectorised_runs_are_inside_the_reference_and_hold_every_passing_column(dim, groups, noise):
    g = torch.Generator().manual_seed(dim)
    centres = F.normalize(torch.randn(groups, dim, generator=g), dim=1)
    lab = torch.randint(0, groups, (15_000,), generator=g)
    bank = F.normalize(centres[lab] + noise * torch.randn(15_000, dim, generator=g), dim=1).T.contiguous()
    bank[:, 7] = float("nan")  # the non-finite block is read whole by both
    pruned = PrunedBank(bank, blocks=32, sample=3000)
    b = pruned.columns_between(0, pruned.num_gaussians).astype(np.float64)
    n = b.shape[1]
    rng = np.random.default_rng(dim)
    for trial in range(10):
        cols = rng.integers(0, n, 1 + trial % 3)
        q = b[:, cols].T + 0.1 * rng.normal(size=(cols.size, dim)) * (trial % 2)
        q = np.nan_to_num(q / np.linalg.norm(np.nan_to_num(q), axis=1, keepdims=True))
        for thr in (0.3, 0.85, 0.97):
            fast = pruned.live_runs(q, thr)
            ref = pruned.live_runs_reference(q, thr)
            compiled = pruned.live_bounds(q, thr)  # the kernel's search: the vectorised runs exactly
            assert compiled.dtype == np.int64 and compiled.shape == (len(fast), 2)
            assert [tuple(r) for r in compiled.tolist()] == fast
            got, want = _covered(fast, n), _covered(ref, n)
            assert not (got & ~want).any()  # never more than the loop read
            with np.errstate(invalid="ignore"):
                passing = np.nan_to_num((q @ b).max(0), nan=-np.inf) > thr - MARGIN
            assert not (passing & ~got).any()  # never a column that can pass left out
            assert all(a < z for a, z in fast)


def test_compiled_runs_on_edge_cases():
    """`live_bounds` (compiled) equals `live_runs` on empty blocks, a block of one column, NaN and zero queries,
    thresholds every member passes (reach π) and none can (reach −1), several queries at once."""
    g = torch.Generator().manual_seed(11)
    bank = F.normalize(torch.randn(6, 700, generator=g), dim=0)
    bank[:, 3] = float("nan")
    bank[:, 5] = 0.0
    pruned = PrunedBank(bank, blocks=200, sample=300)  # more centroids than the sample fills: empty blocks
    assert (pruned.bounds[1:] == pruned.bounds[:-1]).any() or (np.diff(pruned.bounds) == 1).any()
    b = np.nan_to_num(pruned.columns_between(0, pruned.num_gaussians).astype(np.float64))
    queries = [
        b[:, :1].T,
        b[:, 10:14].T,
        np.zeros((1, 6)),
        np.full((1, 6), np.nan),
        np.vstack([b[:, 20], np.full(6, np.nan)]),
        -b[:, 30:31].T * 3.0,
    ]
    for q in queries:
        for thr in (-2.0, -0.5, 0.0, 0.6, 0.999, 1.5, np.float64(0.9)):
            with np.errstate(invalid="ignore"):
                fast = pruned.live_runs(q, thr)
                compiled = pruned.live_bounds(q, thr)
            assert [tuple(r) for r in compiled.tolist()] == fast


@pytest.mark.parametrize("dim", [8, 24])
def test_compiled_reach_is_the_numpy_formula(dim):
    """`_pruned_kernels.block_reach` (what `_reach` runs) against `reach_reference`: the same angles and reaches to
    float64 rounding, the same "none can pass" blocks, for thresholds that make every case of the formula."""
    g = torch.Generator().manual_seed(dim)
    bank = F.normalize(torch.randn(3000, dim, generator=g), dim=1).T.contiguous()
    pruned = PrunedBank(bank, blocks=16, sample=1000)
    q = torch.randn(3, dim, generator=g).numpy()
    q[1] *= 0.2  # a short query: some blocks out of reach
    for thr in (-2.0, -0.5, 0.0, 0.3, 0.9, 1.5):
        theta, reach = pruned._reach(q, thr)
        want_theta, want_reach = pruned.reach_reference(q, thr)
        np.testing.assert_allclose(theta, want_theta, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(reach < 0, want_reach < 0)
        np.testing.assert_allclose(reach, want_reach, rtol=0, atol=1e-9)

"""`PrunedBank`: the click's similarity product over only the Gaussians that can pass the threshold.

A click selects the Gaussians whose unit feature f has q·f > threshold, and at 1M Gaussians the product against every
feature is most of a click's cost (a 24-d float32 bank is 96 MB to read). Most of the scene cannot pass: features
are grouped by object. So the bank is split once into blocks of similar features (spherical k-means on a sample,
then every Gaussian joins its nearest centroid μ), stored contiguously, each with its angular radius r (the largest
angle between a member and μ) and its largest member norm. For a query q at angle θ to μ every member satisfies

    q·f ≤ |q| · max|f| · cos(max(0, θ − r))

and more finely, a member at angle φ from μ has q·f ≤ |q|·|f|·cos(|θ − φ|). Members are sorted by φ inside their
block, so the ones that can pass (less a margin far above float32 rounding) form one contiguous run of columns per
block, found by binary search; the exact float32 product runs on those runs only. The selection is therefore the
reference's (`FeatureField._scores` over the whole bank, kept as the reference path and compared in
tests/test_pruned_bank.py), not an approximation: no Gaussian outside the runs read can reach the threshold.
Real features are grouped less tightly than synthetic ones; the answer stays exact, only the share read grows.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ._pruned_kernels import block_runs, comparison_threshold, positions_above
from .threads import single_threaded_blas

MARGIN = 1e-4
"""Slack on the bound: float32 rounding of a 24–32-d unit dot product is ~1e-6, so nothing near the threshold is
skipped by a rounding accident."""


class PrunedBank:
    """A [D, N] bank of unit columns regrouped into blocks with angular bounds (see the module's docstring)."""

    def __init__(
        self,
        bank: Tensor,  # [D, N] unit columns (the field's cached bank)
        *,
        blocks: int = 64,
        sample: int = 20_000,
        iterations: int = 6,
        seed: int = 0,
        in_place: bool = False,
    ) -> None:
        """`in_place`: the caller hands `bank` over (nothing else reads it again): its columns are regrouped where
        they are, one row at a time, instead of into a copy, so the bank's bytes are never held twice (the field's
        warm-up peak at 3M Gaussians). The same bits either way."""
        b = bank.detach().cpu().numpy().astype(np.float32, copy=False)  # [D, N]
        n = b.shape[1]
        step = 1 << 17  # columns per slice of the passes over the whole bank (bounds their temporaries)
        self.num_gaussians = n
        rng = np.random.default_rng(seed)
        # Non-finite features have no angle: such columns go to one extra block that every query reads in full
        # (an infinite one can pass the reference's `>` test, a NaN never does), and stay out of the clustering,
        # which they would poison.
        finite = np.empty(n, dtype=bool)  # [N]
        for s in range(0, n, step):  # in slices: `np.isfinite(b)` whole is a [D, N] bool temporary
            finite[s : s + step] = np.isfinite(b[:, s : s + step]).all(axis=0)
        usable = np.flatnonzero(finite)
        k = max(1, min(blocks, usable.size))
        pick = rng.choice(usable, size=min(sample, usable.size), replace=False) if usable.size else np.zeros(1, int)
        x = np.nan_to_num(np.ascontiguousarray(b[:, pick].T), nan=0.0, posinf=0.0, neginf=0.0)  # [S, D]
        centroids = x[rng.choice(len(x), size=k, replace=False)].copy()  # [K, D]
        with single_threaded_blas():
            for _ in range(iterations):  # spherical k-means on the sample: a grouping, any grouping is exact
                lab = np.argmax(x @ centroids.T, axis=1)
                sums = np.zeros_like(centroids)
                np.add.at(sums, lab, x)
                norms = np.linalg.norm(sums, axis=1, keepdims=True)
                live = norms[:, 0] > 0
                centroids[live] = sums[live] / norms[live]
            centroids = centroids.astype(np.float32)
            labels = np.empty(n, dtype=np.int64)
            for s in range(0, n, step):  # every Gaussian to its nearest centroid, in slices to bound the memory
                labels[s : s + step] = np.argmax(centroids @ b[:, s : s + step], axis=0)
        labels[~finite] = k  # the dead block
        counts = np.bincount(labels, minlength=k + 1)
        self.bounds = np.concatenate([[0], np.cumsum(counts)])  # [K + 2] block b is [bounds[b], bounds[b + 1])
        self.centroids = centroids.astype(np.float64)  # [K, D]
        # Each member's angle φ to its centroid; inside a block members are sorted by φ, so the members a query
        # at angle θ can reach (|θ − φ| small enough) are one contiguous run of columns.
        phi = np.empty(n)
        norm = np.empty(n)
        for s in range(0, n, step):
            cols = np.where(finite[s : s + step], b[:, s : s + step], 0.0)  # float64; non-finite columns get φ 0
            norm[s : s + step] = np.linalg.norm(cols, axis=0)
            cos = np.einsum("dn,nd->n", cols, self.centroids[np.minimum(labels[s : s + step], k - 1)]) / np.maximum(
                norm[s : s + step], 1e-30
            )
            phi[s : s + step] = np.arccos(np.clip(cos, -1.0, 1.0))
        phi[~finite] = 0.0
        order = np.lexsort((phi, labels))
        self.perm = order  # [N] block position → Gaussian id
        self.rank = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)  # [N] Gaussian id → block position
        self.rank[order] = np.arange(n, dtype=self.rank.dtype)
        if in_place and b.flags.c_contiguous:
            for row in b:  # one row's temporary at a time
                row[:] = row[order]
            self.bank = b  # [D, N] grouped by block, by φ inside a block
        else:
            self.bank = np.ascontiguousarray(b[:, order])
        self.phi = phi[order]  # [N] radians, ascending inside each block
        # φ offset by 8 per block (φ ≤ π, and a search bound θ ± reach stays within [−π, 2π]): one sorted key over
        # every finite block, so a click finds all its runs with two vectorised searches (`live_runs`).
        self._key = self.phi[: self.bounds[k]] + 8.0 * np.repeat(np.arange(k), counts[:k])  # [N finite]
        self.vectorised = True
        """`live_runs` searches every block at once; False runs `live_runs_reference` (the benchmark's previous)."""
        self.compiled = True
        """Without negatives, the runs are searched by one compiled kernel (`_pruned_kernels.block_runs`, as an
        array: `live_bounds`), their products go into one buffer and one more kernel lists the positions above the
        threshold (`positions_above`); False searches with `live_runs` and compares run by run in NumPy (the
        reference)."""
        self.runs_compiled = True
        """With `compiled`, False searches the runs with `live_runs` (NumPy) before the compiled threshold step (the
        benchmark's path before `live_bounds`)."""
        self.radius = np.zeros(k)  # [K] radians: the block's largest φ
        self.max_norm = np.zeros(k)  # [K]
        for blk in range(k):
            lo, hi = self.bounds[blk], self.bounds[blk + 1]
            if lo < hi:
                self.radius[blk] = self.phi[hi - 1]
                self.max_norm[blk] = float(norm[order[lo:hi]].max())

    def _reach(self, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:  # → θ, reach [P, K]
        """Per query and block: the query's angle θ to the centroid, and how far from θ (radians) a member's φ may
        be and still pass (−1: no member can)."""
        q = queries.astype(np.float64)
        qn = np.linalg.norm(q, axis=1)  # [P]
        cos = (q @ self.centroids.T) / np.maximum(qn[:, None], 1e-30)  # [P, K]
        theta = np.arccos(np.clip(cos, -1.0, 1.0))
        ratio = (threshold - MARGIN) / np.maximum(qn[:, None] * self.max_norm[None, :], 1e-30)  # [P, K]
        reach = np.where(ratio <= -1.0, np.pi, np.arccos(np.clip(ratio, -1.0, 1.0))) + 1e-6  # [P, K]
        reach[ratio >= 1.0] = -1.0  # nothing in the block can pass
        return theta, reach

    def live_runs(self, queries: np.ndarray, threshold: float) -> list[tuple[int, int]]:  # [P, D] → column runs
        """The column ranges holding every member some query can bring to `threshold` (less MARGIN).

        A member at angle φ from its centroid, for a query at angle θ from it, has q·f ≤ |q|·|f|·cos(|θ − φ|):
        only members with |θ − φ| below arccos(threshold / (|q|·max|f|)) can pass, a run of the φ-sorted block.
        Every (query, block) pair that can reach a member is searched at once in the block-offset key (bounds
        widened by 1e-9 for the offset's rounding); `live_runs_reference` is the per-block loop it replaced, whose
        runs contain these.
        """
        theta, reach = self._reach(queries, threshold)
        k = self.centroids.shape[0]
        lo, hi = self.bounds[:k], self.bounds[1 : k + 1]
        p_idx, blk = np.nonzero((reach >= 0) & (theta - self.radius[None, :] <= reach) & (hi > lo)[None, :])
        runs: list[tuple[int, int]] = []
        if blk.size:
            t, r, offset = theta[p_idx, blk], reach[p_idx, blk], 8.0 * blk
            a = np.maximum(np.searchsorted(self._key, offset + (t - r - 1e-9), side="left"), lo[blk])
            z = np.minimum(np.searchsorted(self._key, offset + (t + r + 1e-9), side="right"), hi[blk])
            first = np.full(k, np.iinfo(np.int64).max)
            last = np.full(k, -1)
            np.minimum.at(first, blk, a)
            np.maximum.at(last, blk, z)
            live = np.flatnonzero(first < last)
            runs = list(zip(first[live].tolist(), last[live].tolist(), strict=True))
        if self.bounds[k + 1] > self.bounds[k]:  # the non-finite block, always read
            runs.append((int(self.bounds[k]), int(self.bounds[k + 1])))
        return runs

    def live_bounds(self, queries: np.ndarray, threshold: float) -> np.ndarray:  # [P, D] → [R, 2] int64 runs
        """`live_runs` as one [R, 2] array (first column, end), searched by one compiled kernel: the same runs."""
        theta, reach = self._reach(queries, threshold)
        k = self.centroids.shape[0]
        out = np.empty((k + 1, 2), dtype=np.int64)
        num = block_runs(theta, reach, self.radius, self.bounds[:k], self.bounds[1 : k + 1], self._key, out)
        if self.bounds[k + 1] > self.bounds[k]:  # the non-finite block, always read
            out[num] = self.bounds[k], self.bounds[k + 1]
            num += 1
        return out[:num]

    def live_runs_reference(self, queries: np.ndarray, threshold: float) -> list[tuple[int, int]]:
        """`live_runs` one block and one query at a time (the loop before the vectorised search)."""
        theta, reach = self._reach(queries, threshold)
        runs: list[tuple[int, int]] = []
        live = ((theta - self.radius[None, :] <= reach) & (reach >= 0)).any(axis=0)  # some φ ∈ [0, radius] in reach
        for blk in np.flatnonzero(live):
            lo, hi = int(self.bounds[blk]), int(self.bounds[blk + 1])
            if lo == hi:
                continue
            phis = self.phi[lo:hi]
            a, z = hi, lo
            for p in range(theta.shape[0]):
                if reach[p, blk] < 0:
                    continue
                a = min(a, lo + int(np.searchsorted(phis, theta[p, blk] - reach[p, blk], side="left")))
                z = max(z, lo + int(np.searchsorted(phis, theta[p, blk] + reach[p, blk], side="right")))
            if a < z:
                runs.append((a, z))
        k = self.centroids.shape[0]
        if self.bounds[k + 1] > self.bounds[k]:  # the non-finite block, always read
            runs.append((int(self.bounds[k]), int(self.bounds[k + 1])))
        return runs

    def select(
        self,
        positives: Tensor,  # [P, D] clicked features (P ≥ 1)
        negatives: Tensor | None,  # [Q, D] or None
        threshold: float,
    ) -> tuple[np.ndarray, float]:  # → selected Gaussian ids [S] (block order, unsorted), share of the bank read
        """The ids with max_p q_p·f > threshold and (with negatives) max_n q_n·f ≤ that score: the reference rule."""
        positions, share = self.select_positions(positives, negatives, threshold)
        return self.perm[positions], share  # sorting 1M ids costs 3 ms: they stay in block order

    def select_positions(
        self,
        positives: Tensor,  # [P, D] clicked features (P ≥ 1)
        negatives: Tensor | None,  # [Q, D] or None
        threshold: float,
    ) -> tuple[np.ndarray, float]:  # → [S] ascending block positions of the selected Gaussians, share read
        """`select` before mapping to Gaussian ids: a caller holding per-Gaussian data in block order (`perm`)
        reads it for the selection in ascending order instead of gathering it at scattered ids."""
        pos = positives.detach().cpu().numpy().astype(np.float32)
        neg = None if negatives is None or negatives.shape[0] == 0 else negatives.detach().cpu().numpy()
        if self.compiled and self.vectorised and self.runs_compiled and neg is None:
            return self._select_compiled(pos, self.live_bounds(pos, threshold), threshold)
        runs = self.live_runs(pos, threshold) if self.vectorised else self.live_runs_reference(pos, threshold)
        if self.compiled and neg is None:
            return self._select_compiled(pos, np.array(runs, dtype=np.int64).reshape(-1, 2), threshold)
        picked: list[np.ndarray] = []
        read = 0
        with single_threaded_blas():
            for lo, hi in runs:
                read += hi - lo
                s = _products(pos[0], self.bank, lo, hi)
                for row in pos[1:]:
                    np.maximum(s, _products(row, self.bank, lo, hi), out=s)
                hit = np.flatnonzero(s > threshold)
                if neg is not None and hit.size:
                    # the whole run, not a copy of its hit columns: a copy rounds differently (`_products`)
                    t = _products(neg[0].astype(np.float32), self.bank, lo, hi)[hit]
                    for row in neg[1:]:
                        np.maximum(t, _products(row.astype(np.float32), self.bank, lo, hi)[hit], out=t)
                    hit = hit[t <= s[hit]]
                picked.append(hit + lo)
        positions = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        return positions, read / max(1, self.num_gaussians)

    def _select_compiled(
        self, pos: np.ndarray, bounds: np.ndarray, threshold: float
    ) -> tuple[np.ndarray, float]:  # pos [P, D] float32, bounds [K, 2] int64 runs → `select_positions`' answer
        """The runs' products (the same BLAS calls as the NumPy path: the same bits) into one buffer, then one
        kernel pass for the positions above the threshold (without negatives)."""
        if not bounds.shape[0]:
            return np.zeros(0, dtype=np.int64), 0.0
        lows = bounds[:, 0].copy()
        widths = bounds[:, 1] - lows
        read = int(widths.sum())
        scores = np.empty(read, dtype=np.float32)
        off = 0
        with single_threaded_blas():
            for lo, hi, w in zip(lows.tolist(), bounds[:, 1].tolist(), widths.tolist(), strict=True):
                s = scores[off : off + w]
                if w == 1:
                    s[:] = _products(pos[0], self.bank, lo, hi)
                else:
                    np.matmul(pos[0], self.bank[:, lo:hi], out=s)
                for row in pos[1:]:
                    np.maximum(s, _products(row, self.bank, lo, hi), out=s)
                off += w
        positions = positions_above(scores, lows, widths, comparison_threshold(threshold))
        return positions, read / max(1, self.num_gaussians)

    def in_gaussian_order(self) -> np.ndarray:  # [D, N] float32, a copy
        """The bank as it was given (column i is Gaussian i's feature, the same bits): the field keeps only this
        blocked copy, and the rare readers of the whole bank in Gaussian order (PCA colours, a click's scores) get
        it put back."""
        return np.ascontiguousarray(self.bank[:, self.rank])

    def scores(self, queries: np.ndarray) -> np.ndarray:  # [P, D] → [N] float32 in Gaussian order
        """max_p q_p·f for every Gaussian, the whole-bank product (`FeatureField._scores`) over the blocked copy: a
        column's product does not depend on where it sits (the runs of `select_positions` rely on it too), so the
        scores are the given bank's, put back in Gaussian order."""
        q = np.asarray(queries, dtype=np.float32)
        out = np.zeros(self.num_gaussians, dtype=np.float32)
        if q.shape[0] == 0:
            return out
        with single_threaded_blas():
            s = q[0] @ self.bank
            for row in q[1:]:
                np.maximum(s, row @ self.bank, out=s)
        out[self.perm] = s
        return out

    def warm_up(self) -> PrunedBank:
        """Compile the threshold kernel (or load it from numba's cache) now, so that the first click does not."""
        positions_above(np.zeros(1, np.float32), np.zeros(1, np.int64), np.ones(1, np.int64), 0.5)
        self.live_bounds(np.zeros((1, self.centroids.shape[1]), np.float32), 0.5)
        return self


def _products(q: np.ndarray, bank: np.ndarray, lo: int, hi: int) -> np.ndarray:  # [D], [D, N] → [hi - lo]
    """q · bank[:, lo:hi] rounded as the whole-bank product rounds them. NumPy hands a one-column product to a dot
    kernel that sums in another order than the matrix-vector kernel the whole bank goes through (so does a
    contiguous copy of the columns), and a Gaussian right at the threshold could flip: a lone column is read as
    part of a two-column slice of the bank itself."""
    if hi - lo != 1:
        return q @ bank[:, lo:hi]
    if hi < bank.shape[1]:
        return (q @ bank[:, lo : hi + 1])[:1]
    return (q @ bank[:, lo - 1 : hi])[1:]


def reference_select(
    positives: Tensor, negatives: Tensor | None, bank: Tensor, threshold: float
) -> np.ndarray:  # [P, D], [Q, D] | None, [D, N] → sorted ids
    """The whole-bank rule the field used before `PrunedBank` (float32 products against every Gaussian)."""
    b = bank.detach().cpu().numpy()
    pos = positives.detach().cpu().numpy().astype(b.dtype)
    s = pos[0] @ b
    for row in pos[1:]:
        np.maximum(s, row @ b, out=s)
    mask = s > threshold
    if negatives is not None and negatives.shape[0]:
        neg = negatives.detach().cpu().numpy().astype(b.dtype)
        t = neg[0] @ b
        for row in neg[1:]:
            np.maximum(t, row @ b, out=t)
        mask &= t <= s
    return np.flatnonzero(mask)

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

The regrouped bank is stored in tiles of 16 columns ([T, D, 16], `_lane_kernels.py`), so that a run is one stream of
memory, and every product (the click's, the whole-bank reference's) sums in feature order in float32
(`sequential_products`): a column's product is the same bits wherever a run starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch import Tensor

from ._lane_kernels import LANES, lane_products, max_products
from ._lane_kernels import warm_up as warm_up_lanes
from ._pruned_kernels import block_reach, block_runs, comparison_threshold

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
    ) -> None:
        """`bank` is read, not kept: its columns are copied into the tiles slice by slice (`tiles`), so a caller
        that hands a freshly built bank over and drops it holds the bank's bytes once afterwards. While this runs,
        the bank and its tiles are both held (twice the bank, as the method's `build_bank` itself holds its
        normalised rows and their transpose); at 3M Gaussians the field's warm-up peak stayed where it was (README,
        "3M Gaussians")."""
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
        dims = b.shape[0]
        self.dim = dims
        # [T, D, LANES]: column p (block position p) at tiles[p // LANES, :, p % LANES]; the last tile's unused
        # columns are zero. Filled a slice of columns at a time (a multiple of LANES), so no second whole bank.
        self.tiles = np.zeros((-(-n // LANES), dims, LANES), dtype=np.float32)
        for s in range(0, n, step):
            cols = b[:, order[s : s + step]]  # [D, W]
            w = cols.shape[1]
            full = w - w % LANES
            t = s // LANES
            self.tiles[t : t + full // LANES] = cols[:, :full].reshape(dims, -1, LANES).transpose(1, 0, 2)
            if full < w:
                self.tiles[t + full // LANES, :, : w - full] = cols[:, full:]
        self._flat = self.tiles.reshape(-1)  # a view: element (p, d) at (p // LANES)·D·LANES + d·LANES + p % LANES
        self._row_step = np.arange(dims, dtype=np.int64) * LANES  # [D]
        self.phi = phi[order]  # [N] radians, ascending inside each block
        # φ offset by 8 per block (φ ≤ π, and a search bound θ ± reach stays within [−π, 2π]): one sorted key over
        # every finite block, so a click finds all its runs with two vectorised searches (`live_runs`).
        self._key = self.phi[: self.bounds[k]] + 8.0 * np.repeat(np.arange(k), counts[:k])  # [N finite]
        self.vectorised = True
        """`live_runs` searches every block at once; False runs `live_runs_reference` (the benchmark's previous)."""
        self.compiled = True
        """The runs are searched by one compiled kernel (`_pruned_kernels.block_runs`, as an array: `live_bounds`)
        and their products taken by another over the tiles (`_lane_kernels.lane_products`), which without negatives
        lists the positions above the threshold itself; False searches with `live_runs` and compares run by run in
        NumPy (`sequential_products`, the reference)."""
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
        be and still pass (−1: no member can). One compiled pass (`_pruned_kernels.block_reach`: a dozen NumPy
        calls on [P, K] arrays were ~60 µs of a click); `reach_reference` is the same formula in NumPy."""
        q = np.ascontiguousarray(queries, dtype=np.float64)
        theta = np.empty((q.shape[0], self.centroids.shape[0]))
        reach = np.empty_like(theta)
        block_reach(q, self.centroids, self.max_norm, float(threshold) - MARGIN, theta, reach)
        return theta, reach

    def reach_reference(self, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """`_reach` in NumPy."""
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
        pos = _queries(positives)
        neg = None if negatives is None or negatives.shape[0] == 0 else _queries(negatives)
        if self.compiled and self.vectorised and self.runs_compiled:
            bounds = self.live_bounds(pos, threshold)
        else:
            runs = self.live_runs(pos, threshold) if self.vectorised else self.live_runs_reference(pos, threshold)
            bounds = np.array(runs, dtype=np.int64).reshape(-1, 2)
        read = int((bounds[:, 1] - bounds[:, 0]).sum())
        share = read / max(1, self.num_gaussians)
        if not read:
            return np.zeros(0, dtype=np.int64), share
        if self.compiled:
            return self._select_compiled(pos, neg, bounds, read, threshold), share
        picked: list[np.ndarray] = []
        for lo, hi in bounds.tolist():
            cols = self.columns_between(lo, hi)
            s = max_products(pos, cols)
            hit = np.flatnonzero(s > threshold)
            if neg is not None and hit.size:
                hit = hit[max_products(neg, cols[:, hit]) <= s[hit]]
            picked.append(hit + lo)
        return np.concatenate(picked), share

    def _select_compiled(
        self, pos: np.ndarray, neg: np.ndarray | None, bounds: np.ndarray, read: int, threshold: float
    ) -> np.ndarray:  # pos [P, D], neg [Q, D] | None float32, bounds [R, 2] int64 runs → ascending positions
        """The runs' products in one kernel pass over the tiles. Without negatives it lists the positions above the
        threshold itself; with them, both maxima are written for the runs and compared here."""
        lows, highs = np.ascontiguousarray(bounds[:, 0]), np.ascontiguousarray(bounds[:, 1])
        limit = comparison_threshold(threshold)
        if neg is None:
            out = np.empty(read, dtype=np.int64)
            n = lane_products(self.tiles, pos, lows, highs, limit, _NO_SCORES, out)
            return out[:n]  # a view: the click drops it with its other arrays
        s = np.empty(read, dtype=np.float32)
        t = np.empty(read, dtype=np.float32)
        lane_products(self.tiles, pos, lows, highs, limit, s, _NO_POSITIONS)
        lane_products(self.tiles, neg, lows, highs, limit, t, _NO_POSITIONS)
        hit = np.flatnonzero((s > threshold) & (t <= s))  # [H] offsets into the runs, run after run
        widths = highs - lows
        run = np.searchsorted(np.cumsum(widths), hit, side="right")
        return lows[run] + hit - (np.cumsum(widths) - widths)[run]

    def columns(self, positions: np.ndarray) -> np.ndarray:  # [k] int block positions → [D, k] float32, a copy
        """The bank's columns at these block positions (the values it was given, in any order)."""
        base = self._offsets(positions)  # [k]
        if base.size * self.dim <= 1 << 16:  # a click's few hundred columns: one gather
            return self._flat[self._row_step[:, None] + base[None, :]]
        out = np.empty((self.dim, base.size), dtype=np.float32)
        for d, row in enumerate(self.feature_rows(base, offsets=True)):  # no [D, k] index array for many columns
            out[d] = row
        return out

    def rows(self, positions: np.ndarray) -> np.ndarray:  # [k] int block positions → [k, D] float32, a copy
        """`columns`, one row per position (the [N, D] view a graph builder reads)."""
        return np.ascontiguousarray(self.columns(positions).T)

    def feature_rows(self, positions: np.ndarray, *, offsets: bool = False) -> Iterator[np.ndarray]:  # → D × [k]
        """Feature row d of the columns at these block positions, for d = 0 … D − 1: what `bank[d, columns]` is for
        a bank stored [D, N] (hidden.py's pair test reads a million pairs that way, one row at a time)."""
        base = np.asarray(positions, dtype=np.int64) if offsets else self._offsets(positions)
        for step in self._row_step.tolist():
            yield self._flat[base + step]

    def _offsets(self, positions: np.ndarray) -> np.ndarray:  # [k] block positions → [k] int64 offsets of row 0
        p = np.asarray(positions, dtype=np.int64)
        return (p // LANES) * (self.dim * LANES) + p % LANES

    def columns_between(self, lo: int, hi: int) -> np.ndarray:  # → [D, hi − lo] float32, a copy
        """Block positions lo … hi − 1, read tile by tile."""
        t0, t1 = lo // LANES, -(-hi // LANES)
        cols = self.tiles[t0:t1].transpose(1, 0, 2).reshape(self.dim, -1)
        return np.ascontiguousarray(cols[:, lo - t0 * LANES : hi - t0 * LANES])

    def in_gaussian_order(self, step: int = 1 << 17) -> np.ndarray:  # [D, N] float32, a copy
        """The bank as it was given (column i is Gaussian i's feature, the same bits): the field keeps only the
        tiles, and the rare readers of the whole bank in Gaussian order (PCA colours, a click's scores) get it put
        back, a slice at a time."""
        out = np.empty((self.dim, self.num_gaussians), dtype=np.float32)
        for s in range(0, self.num_gaussians, step):
            out[:, s : s + step] = self.columns(self.rank[s : s + step])
        return out

    def scores(self, queries: np.ndarray) -> np.ndarray:  # [P, D] → [N] float32 in Gaussian order
        """max_p q_p·f for every Gaussian, the whole-bank product (`FeatureField._scores`, the same order of sums)
        over the tiles, put back in Gaussian order."""
        q = _queries(queries)
        out = np.zeros(self.num_gaussians, dtype=np.float32)
        if q.shape[0] == 0 or self.num_gaussians == 0:
            return out
        s = np.empty(self.num_gaussians, dtype=np.float32)
        whole = np.array([0], dtype=np.int64), np.array([self.num_gaussians], dtype=np.int64)
        lane_products(self.tiles, q, *whole, 0.0, s, _NO_POSITIONS)
        out[self.perm] = s
        return out

    def warm_up(self) -> PrunedBank:
        """Compile the kernels (or load them from numba's cache) now, so that the first click does not."""
        warm_up_lanes(self.dim)
        self.live_bounds(np.zeros((1, self.centroids.shape[1]), np.float32), 0.5)
        return self


_NO_SCORES = np.zeros(0, dtype=np.float32)
_NO_POSITIONS = np.zeros(0, dtype=np.int64)


def _queries(queries) -> np.ndarray:  # Tensor | array [P, D] → C-contiguous float32 (the kernels' one signature)
    q = queries.detach().cpu().numpy() if isinstance(queries, Tensor) else np.asarray(queries)
    return np.ascontiguousarray(q, dtype=np.float32)


def reference_select(
    positives: Tensor, negatives: Tensor | None, bank: Tensor, threshold: float
) -> np.ndarray:  # [P, D], [Q, D] | None, [D, N] → sorted ids
    """The whole-bank rule (float32 products against every Gaussian, summed in feature order: `sequential_products`)."""
    b = bank.detach().cpu().numpy().astype(np.float32, copy=False)
    s = max_products(_queries(positives), b)
    mask = s > threshold
    if negatives is not None and negatives.shape[0]:
        mask &= max_products(_queries(negatives), b) <= s
    return np.flatnonzero(mask)

"""Cross-view agreement of the fine level: which pixel pairs the other views keep in one fine mask.

A view's fine mask (the smallest covering a pixel) is noisy evidence in two directions, and not equally often: a
mask generator merges touching parts into one mask (a lid with its pot, a table's legs with its top) far more often
than it cuts one part in two. Click-Gaussian pulls every pair of pixels in one fine mask together, so the views that
merge two parts pull them together as hard as the views that separate them push them apart, and the parts' features
end up between the two (docs/architecture.md, "Fine agreement").

Here each Gaussian gets one vote per reference view: the fine mask that holds most of its blend weight among that
view's sampled pixels (`gaussian_fine_votes`). Two pixels of the view being trained are then compared through their
front Gaussians' votes: the share of the reference views seeing both in which both sit in the same fine mask
(`pixel_agreement`, `pair_agreement`). Training drops the fine pull of a pair that most views separate (a merge in
this view) and pushes it instead; a pair too rarely seen together keeps what this view says. The same votes score
each fine mask (`mask_agreement`), and the fine global clusters are found among the masks that are one thing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .contrib_cache import ContributionCache

MAX_REFERENCE_VIEWS = 32
"""Votes are kept for at most this many views (spread evenly): [N, 32] int32 is 128 MB at 1M Gaussians."""


def gaussian_fine_votes(
    cache: ContributionCache,
    *,
    max_views: int = MAX_REFERENCE_VIEWS,
    min_weight: float = 0.5,
) -> Tensor:  # [N, V'] int32 global fine-mask id per reference view, -1 = no vote
    """Per Gaussian and reference view: the fine mask holding most of its cached blend weight in that view, when
    that weight is at least `min_weight` (about one sampled pixel's worth of a front Gaussian); else −1."""
    refs = reference_views(cache.num_views, max_views)
    n = cache.num_gaussians
    out = torch.full((n, len(refs)), -1, dtype=torch.int32)
    for col, v in enumerate(refs):
        rows = cache.rows(v)
        fine = cache.fine[rows].long()  # [P]
        covered = fine >= 0
        if not bool(covered.any()):
            continue
        ids = cache.ids[rows][covered].long()  # [P', K]
        w = cache.weights[rows][covered].float()  # [P', K]
        local = fine[covered] - int(cache.mask_start[v])  # [P'] in [0, M_v)
        m = int(cache.mask_start[v + 1] - cache.mask_start[v])
        keys = ids * m + local[:, None]  # [P', K] (Gaussian, mask) pairs
        uniq, inverse = torch.unique(keys.reshape(-1), return_inverse=True)
        sums = torch.zeros(uniq.numel(), dtype=torch.float64)
        sums.index_add_(0, inverse, w.reshape(-1).double())
        gauss, mask = uniq // m, uniq % m
        best_w = torch.zeros(n, dtype=torch.float64).scatter_reduce(0, gauss, sums, "amax", include_self=False)
        heaviest = sums == best_w[gauss]  # ties: the larger mask id (as the reference)
        best_mask = torch.full((n,), -1, dtype=torch.int64).scatter_reduce(0, gauss[heaviest], mask[heaviest], "amax")
        total = torch.zeros(n, dtype=torch.float64)
        total.index_add_(0, gauss, sums)
        vote = torch.where((best_mask >= 0) & (total >= min_weight), best_mask + int(cache.mask_start[v]), -1)
        out[:, col] = vote.to(torch.int32)
    return out


def fill_votes(
    votes: Tensor,  # [N, V'] int32, -1 = no vote
    neighbors: Tensor,  # [N, k] int nearest 3D neighbours
    weights: Tensor | None = None,  # [N, k] float neighbour weights (colour affinity); None = all 1
    *,
    hops: int = 3,
    chunk: int = 8192,
) -> Tensor:  # [N, V'] int32: every missing vote that a neighbour can lend filled
    """A Gaussian without a vote in a view borrows the vote most of its neighbours' weight holds, `hops` times.

    A face of a part that only views merging it with its neighbour see (a table leg's side that only two close-up
    views show, both with the leg merged into the table) has no vote of its own elsewhere; its surface's votes
    stand for it, so the merge there is recognised as one. Ties go to the larger mask id."""
    out = votes.clone()
    nb = neighbors.long()
    w = torch.ones(nb.shape) if weights is None else weights.float()
    for _ in range(hops):
        missing = torch.nonzero((out < 0).any(1)).squeeze(1)
        if missing.numel() == 0:
            break
        prev = out.clone()  # every hop reads the previous hop's votes only
        for s in range(0, missing.numel(), chunk):  # [n, V', k, k] comparisons: chunked, 8192 · 32 · 64 floats
            rows = missing[s : s + chunk]
            out[rows] = _fill_rows(prev, rows, nb, w)
    return out


def _fill_rows(votes: Tensor, rows: Tensor, nb: Tensor, w: Tensor) -> Tensor:  # [n] ids → [n, V'] int32
    nbv = votes.index_select(0, nb[rows].reshape(-1)).reshape(rows.numel(), nb.shape[1], -1)  # [n, k, V']
    nbv = nbv.permute(0, 2, 1)  # [n, V', k]
    wm = w[rows][:, None, :] * (nbv >= 0).float()  # [n, V', k]
    # score of each candidate j: the weight of the neighbours voting as j does
    score = ((nbv[..., :, None] == nbv[..., None, :]).float() * wm[..., None, :]).sum(-1)  # [n, V', k]
    score = torch.where(nbv >= 0, score, torch.full_like(score, -1.0))
    best = score.max(-1, keepdim=True).values  # [n, V', 1]
    pick = torch.where((score == best) & (best > 0), nbv, torch.full_like(nbv, -1)).max(-1).values  # [n, V']
    own = votes[rows]
    return torch.where(own >= 0, own, pick.to(own.dtype))


def fill_votes_reference(votes: Tensor, neighbors: Tensor, weights: Tensor | None = None, *, hops: int = 3) -> Tensor:
    """`fill_votes` one Gaussian and view at a time (for the test)."""
    out = votes.clone()
    for _ in range(hops):
        prev = out.clone()
        for i in range(out.shape[0]):
            for c in range(out.shape[1]):
                if prev[i, c] >= 0:
                    continue
                acc: dict[int, float] = {}
                for j, nbr in enumerate(neighbors[i].tolist()):
                    v = int(prev[nbr, c])
                    if v >= 0:
                        acc[v] = acc.get(v, 0.0) + (1.0 if weights is None else float(weights[i, j]))
                if acc and max(acc.values()) > 0:
                    best = max(acc.values())
                    out[i, c] = max(v for v, s in acc.items() if s == best)
    return out


def gaussian_fine_votes_reference(
    cache: ContributionCache, *, max_views: int = MAX_REFERENCE_VIEWS, min_weight: float = 0.5
) -> Tensor:  # [N, V'] int32
    """`gaussian_fine_votes` with dictionaries, one cached pixel at a time (for the test)."""
    refs = reference_views(cache.num_views, max_views)
    out = torch.full((cache.num_gaussians, len(refs)), -1, dtype=torch.int32)
    for col, v in enumerate(refs):
        acc: dict[int, dict[int, float]] = {}
        for r in range(cache.rows(v).start, cache.rows(v).stop):
            f = int(cache.fine[r])
            if f < 0:
                continue
            for g, w in zip(cache.ids[r].tolist(), cache.weights[r].float().tolist()):
                acc.setdefault(g, {}).setdefault(f, 0.0)
                acc[g][f] += w
        for g, per_mask in acc.items():
            if sum(per_mask.values()) >= min_weight:
                best = max(per_mask.values())
                out[g, col] = max(f for f, s in per_mask.items() if s == best)  # ties: the later mask, as above
    return out


def pixel_agreement(
    votes: Tensor,  # [B, V'] int32 votes of each pixel's front Gaussian
) -> tuple[Tensor, Tensor]:  # (agreement [B, B] float in [0, 1], views seeing both [B, B] float)
    """For each pixel pair: in how many reference views both front Gaussians vote, and the share of those in
    which they vote for the same mask."""
    has = (votes >= 0).float()  # [B, V']
    both = has @ has.T  # [B, B]
    same = torch.zeros_like(both)
    for col in range(votes.shape[1]):  # V' ≤ 32 small [B, B] comparisons
        v = votes[:, col]
        same += ((v[:, None] == v[None, :]) & (v[:, None] >= 0)).float()
    return same / both.clamp(min=1.0), both


def mask_agreement(
    cache: ContributionCache,
    votes: Tensor,  # [N, V'] int32
    *,
    sample: int = 64,
    min_views: int = 3,
    seed: int = 0,
) -> Tensor:  # [num_masks] float32: mean agreement of pixel pairs inside each fine mask, NaN = not measured
    """How much the other views agree that a fine mask is one thing: the mean `pixel_agreement` over pairs of (up
    to `sample`) of its pixels seen together in at least `min_views` reference views. A part's mask scores near 1;
    a mask that merges two parts scores about the share of its pairs that lie in one part."""
    g = torch.Generator().manual_seed(seed)
    out = torch.full((cache.num_masks,), float("nan"))
    fine = cache.fine
    order = torch.argsort(fine.long(), stable=True)
    ids, counts = torch.unique_consecutive(fine.long()[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    for m, s, c in zip(ids.tolist(), starts.tolist(), counts.tolist()):
        if m < 0 or c < 2:
            continue
        rows = order[s : s + c]
        if c > sample:
            rows = rows[torch.randperm(c, generator=g)[:sample]]
        agree, both = pixel_agreement(front_votes(cache, votes, rows))
        ok = (both >= min_views) & ~torch.eye(len(rows), dtype=torch.bool)
        if bool(ok.any()):
            out[m] = agree[ok].mean()
    return out


def pair_agreement(
    votes_a: Tensor,  # [P, V'] int32
    votes_b: Tensor,  # [P, V'] int32
) -> tuple[Tensor, Tensor]:  # (agreement [P], views seeing both [P])
    """`pixel_agreement` for listed pairs only (the pairs of one fine mask are a small share of a batch's)."""
    both = ((votes_a >= 0) & (votes_b >= 0)).sum(1).float()
    same = ((votes_a == votes_b) & (votes_a >= 0)).sum(1).float()
    return same / both.clamp(min=1.0), both


def front_votes(cache: ContributionCache, votes: Tensor, rows: Tensor) -> Tensor:  # [B] rows → [B, V'] int32
    """The votes of each pixel's largest contributor (the cache keeps weights largest first)."""
    return votes.index_select(0, cache.ids[rows, 0].long())


def reference_views(num_views: int, max_views: int = MAX_REFERENCE_VIEWS) -> list[int]:
    """The views that get a vote column (all, or `max_views` spread evenly), in column order."""
    if num_views <= max_views:
        return list(range(num_views))
    return sorted({round(float(x)) for x in np.linspace(0, num_views - 1, max_views)})

"""Which mask a pixel's fine level learns from, when SAM's multimask stack is three deep.

Click-Gaussian's fine level is the smallest mask covering a pixel. SAM's automatic generator hands back up to three
nested masks per region (whole / part / subpart), and its smallest level often cuts a part along a line no other
view agrees with (the `p_subpart` of `backend/masks/sam_like.py`). Taking the smallest mask then teaches the fine
level, in that view, that the two halves of a part are different things: they are pushed apart, a part's features
spread, and a click on it misses its far side. `part_labels` picks, per pixel, the largest covering mask other than
the coarse one (the "part" of a whole ⊃ part ⊃ subpart stack), and the coarse mask itself where nothing else covers
the pixel; where the stack is two deep (whole ⊃ part) that is the smallest mask, as before.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .contrib_cache import ContributionCache


def part_labels(cache: ContributionCache) -> Tensor:  # [R] int32 global mask id, -1 = no mask covers the pixel
    """Per cached pixel: the largest covering mask after the coarse one (`cache.coarse`), else the coarse one."""
    out = cache.coarse.clone()
    for v in range(cache.num_views):
        rows = cache.rows(v)
        cover = cache.cover[v]  # [P, M] bool
        if cover.shape[1] < 2 or cover.shape[0] == 0:
            continue
        start = int(cache.mask_start[v])
        area = cache.mask_area[start : start + cover.shape[1]]  # [M]
        local_coarse = cache.coarse[rows].long() - start  # [P], negative where uncovered
        ranked = torch.where(cover, area[None, :], torch.full_like(area[None, :], -1.0).expand_as(cover))  # [P, M]
        has = local_coarse >= 0
        ranked[has, local_coarse[has]] = -1.0  # the coarse mask is not a candidate
        best_area, best = ranked.max(dim=1)
        other = has & (best_area > 0)
        out[rows] = torch.where(other, (best + start).to(torch.int32), cache.coarse[rows])
    return out


def part_labels_reference(cache: ContributionCache) -> Tensor:  # [R] int32
    """`part_labels` one pixel at a time, for the test."""
    out = cache.coarse.clone()
    for v in range(cache.num_views):
        rows = cache.rows(v)
        start = int(cache.mask_start[v])
        for i, r in enumerate(range(rows.start, rows.stop)):
            coarse = int(cache.coarse[r])
            candidates = [
                (float(cache.mask_area[start + m]), start + m)
                for m in torch.nonzero(cache.cover[v][i]).flatten().tolist()
                if start + m != coarse
            ]
            if coarse >= 0 and candidates:
                out[r] = max(candidates, key=lambda c: (c[0], -c[1]))[1]
    return out

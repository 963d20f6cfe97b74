"""Which masks of a view contain another mask of the same view: a whole whose parts have masks of their own.

Click-Gaussian's fine level labels a pixel with the smallest mask covering it. Where a whole's mask holds the masks
of some of its parts, the pixels it alone covers are "the rest": the parts the mask generator did not mask in this
view (a mug's coffee and its handle, too small for SAM's point grid or dropped by its filters), plus a ring of
boundary pixels. That rest is often several disconnected things, and nothing says they are one part, yet pulling
every pair of pixels in one fine mask together teaches exactly that (on the tabletop the mug's coffee and handle
ended up with one feature, cosine 0.99). What the rest does say holds: it is none of the parts that have masks,
so its pushes against them stay. `container_masks` finds the containers from the cached pixels, and training
(`ClickConfig.fine_residual_pull`) drops the fine pulls among pixels whose finest mask is one, and leaves
containers out of the fine global clusters (docs/architecture.md, "Fine agreement").
"""

from __future__ import annotations

import torch
from torch import Tensor

from .contrib_cache import ContributionCache


def container_masks(
    cache: ContributionCache,
    *,
    inside: float = 0.9,
) -> Tensor:  # [num_masks] bool: the mask contains another mask of its view
    """Mask a contains mask b (of the same view) when at least `inside` of b's cached pixels lie in a and a has
    more cached pixels than b; a mask without a cached pixel contains nothing and is contained in nothing."""
    out = torch.zeros(cache.num_masks, dtype=torch.bool)
    for v in range(cache.num_views):
        cover = cache.cover[v].float()  # [P, M]
        if cover.shape[1] < 2 or cover.shape[0] == 0:
            continue
        counts = cover.sum(0)  # [M]
        inter = cover.T @ cover  # [M, M]: shared cached pixels
        holds = (inter >= inside * counts[None, :]) & (counts[:, None] > counts[None, :]) & (counts[None, :] > 0)
        start = int(cache.mask_start[v])
        out[start : start + cover.shape[1]] = holds.any(1)
    return out


def container_masks_reference(cache: ContributionCache, *, inside: float = 0.9) -> Tensor:  # [num_masks] bool
    """`container_masks` one pair of masks at a time, with sets of pixel rows (for the test)."""
    out = torch.zeros(cache.num_masks, dtype=torch.bool)
    for v in range(cache.num_views):
        cover = cache.cover[v]
        start = int(cache.mask_start[v])
        rows = [set(torch.nonzero(cover[:, m]).flatten().tolist()) for m in range(cover.shape[1])]
        for a, ra in enumerate(rows):
            for b, rb in enumerate(rows):
                if a != b and rb and len(ra) > len(rb) and len(ra & rb) >= inside * len(rb):
                    out[start + a] = True
    return out


def residual_pairs(
    fine: Tensor,  # [B] int global fine-mask id of each pixel, -1 = none
    container: Tensor,  # [num_masks] bool
) -> Tensor:  # [B, B] bool: both pixels' finest mask is the same container
    """The pixel pairs of a batch that one container alone covers (the rest of a whole: no evidence of one part)."""
    res = (fine >= 0) & container[fine.clamp(min=0).long()]
    return (fine[:, None] == fine[None, :]) & res[:, None] & res[None, :]

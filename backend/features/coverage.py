"""How much of each Gaussian's rendered footprint lies where no mask is: the support and background SAM leaves bare.

A Gaussian of a masked object renders mostly inside its object's masks (its silhouette rim and the views that
dropped or holed the mask excepted); a Gaussian of the unmasked shelf board renders mostly where no mask is, even
when training gave it the feature of the object standing on it (its footprint reaches under the object, whose masked
pixels are sampled ten times as densely as the board's). Such support Gaussians are few in 3D but large, so they
cost a click far more in the rendered views than in a count of Gaussians (issue 10: shelf objects 2D 0.873 against
3D 0.943, every wrong pixel on the board). A click on a masked thing drops them (`FeatureField.segment`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .contrib_cache import ContributionCache


def _area_weights(cache: ContributionCache) -> Tensor:  # [R, K] blend weights × the area each pixel stands for
    w = cache.weights.float()
    if cache.stands_for is not None:
        w = w * cache.stands_for[:, None].float()
    return w


def training_weight(cache: ContributionCache) -> Tensor:  # [N] float32 ≥ 0
    """Per Gaussian: its blend weight summed over the training views' cached pixels, each pixel counted for the
    area it stands for, so the sum is that of the whole views (one view's worth for a Gaussian that makes one
    pixel alone). How much the training saw of it: `hidden.py` trusts the features of the well-seen ones only."""
    w = _area_weights(cache)
    return torch.zeros(cache.num_gaussians).index_add_(0, cache.ids.reshape(-1).long(), w.reshape(-1))


def uncovered_share(cache: ContributionCache) -> Tensor:  # [N] float32 in [0, 1]; 0 = in no cached pixel
    """Per Gaussian: its blend weight over the cached pixels no mask covers, divided by its weight over all cached
    pixels (`training_weight`), so the share is that of the whole views, not of the sampled pixels. A Gaussian no
    cached pixel reaches gets 0: nothing says it is bare, so it is never dropped (and the features file stays
    finite)."""
    n = cache.num_gaussians
    w = _area_weights(cache)  # [R, K]
    ids = cache.ids.reshape(-1).long()
    bare = (cache.coarse < 0).float()[:, None]  # [R, 1]
    total = training_weight(cache)
    uncovered = torch.zeros(n).index_add_(0, ids, (w * bare).reshape(-1))
    share = uncovered / total.clamp(min=1e-12)
    share[total <= 1e-6] = 0.0
    return share


def drop_uncovered(
    selected: np.ndarray,  # [S] int64 Gaussian ids
    seeds: np.ndarray,  # [T] int64 ids of the clicked Gaussians
    share: Tensor,  # [N] float32 `uncovered_share`
    limit: float,
) -> np.ndarray:  # [S'] ids kept
    """The selected Gaussians whose uncovered share is at most `limit` (unknown shares stay), when the clicked
    Gaussians themselves are within it on average: a click on the bare floor keeps its floor."""
    s = share.numpy()
    seed_share = s[seeds]
    seed_share = seed_share[np.isfinite(seed_share)]
    if seed_share.size == 0 or float(seed_share.mean()) > limit:
        return selected
    return selected[~(s[selected] > limit)]

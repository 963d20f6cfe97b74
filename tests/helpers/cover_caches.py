"""Small `ContributionCache`s made from per-view mask covers, for the fine-level tests (containment, part labels)."""

from __future__ import annotations

import numpy as np
import torch

from backend.features.contrib_cache import ContributionCache


def cover_cache(covers: list[np.ndarray], areas: list[np.ndarray] | None = None) -> ContributionCache:
    """Per view a [pixels, masks] bool cover; pixel i of a view sees Gaussian i alone. A pixel's coarse / fine label
    is its largest / smallest covering mask by `areas` (default: the masks' pixel counts), as `ViewMasks.levels` has
    them; the cache's mask areas are `areas`, or 1 each when none are given. A view may hold no masks."""
    view_start, mask_start, coarse, fine = [0], [0], [], []
    for v, cover in enumerate(covers):
        area = cover.sum(0) if areas is None else areas[v]
        padded = np.concatenate([cover, np.zeros((cover.shape[0], 1), bool)], 1)  # a view may hold no masks
        big = np.where(padded, np.append(area, 0)[None, :], -1).argmax(1)
        small = np.where(padded, np.append(area, 0)[None, :], np.inf).argmin(1)
        has = cover.any(1)
        coarse.append(np.where(has, big + mask_start[-1], -1))
        fine.append(np.where(has, small + mask_start[-1], -1))
        view_start.append(view_start[-1] + cover.shape[0])
        mask_start.append(mask_start[-1] + cover.shape[1])
    rows = view_start[-1]
    mask_area = (
        torch.ones(mask_start[-1]) if areas is None else torch.from_numpy(np.concatenate(areas).astype(np.float32))
    )
    return ContributionCache(
        views=[f"v{i}" for i in range(len(covers))],
        view_start=torch.tensor(view_start),
        ids=torch.cat([torch.arange(c.shape[0], dtype=torch.int32) for c in covers])[:, None],
        weights=torch.ones(rows, 1, dtype=torch.float16),
        pixels=torch.zeros(rows, 2, dtype=torch.int16),
        coarse=torch.from_numpy(np.concatenate(coarse).astype(np.int32)),
        fine=torch.from_numpy(np.concatenate(fine).astype(np.int32)),
        cover=[torch.from_numpy(c) for c in covers],
        mask_start=torch.tensor(mask_start),
        mask_scale=torch.ones(mask_start[-1]),
        mask_area=mask_area,
        num_gaussians=max(c.shape[0] for c in covers),
    )

"""The fine level's mask when SAM's stack is three deep (whole ⊃ part ⊃ subpart): `fine_levels.part_labels`."""

from __future__ import annotations

import numpy as np
import torch

from backend.features.contrib_cache import ContributionCache
from backend.features.fine_levels import part_labels, part_labels_reference


def _cache(covers: list[np.ndarray], areas: list[np.ndarray]) -> ContributionCache:
    """A cache with only what the labels need: per view, which masks cover each pixel, and the masks' areas."""
    coarse, fine, view_start, mask_start = [], [], [0], [0]
    for cover, area in zip(covers, areas):
        offset = mask_start[-1]
        ranked = np.where(cover, area[None, :], -1.0)
        smallest = np.where(cover, area[None, :], np.inf)
        coarse.append(np.where(cover.any(1), ranked.argmax(1) + offset, -1))
        fine.append(np.where(cover.any(1), smallest.argmin(1) + offset, -1))
        view_start.append(view_start[-1] + len(cover))
        mask_start.append(offset + cover.shape[1])
    rows = view_start[-1]
    return ContributionCache(
        views=[f"v{i}" for i in range(len(covers))],
        view_start=torch.tensor(view_start),
        ids=torch.zeros(rows, 1, dtype=torch.int32),
        weights=torch.ones(rows, 1, dtype=torch.float16),
        pixels=torch.zeros(rows, 2, dtype=torch.int16),
        coarse=torch.from_numpy(np.concatenate(coarse).astype(np.int32)),
        fine=torch.from_numpy(np.concatenate(fine).astype(np.int32)),
        cover=[torch.from_numpy(c) for c in covers],
        mask_start=torch.tensor(mask_start),
        mask_scale=torch.ones(mask_start[-1]),
        mask_area=torch.from_numpy(np.concatenate(areas).astype(np.float32)),
        num_gaussians=1,
    )


def test_a_subpart_pixel_learns_its_part_and_a_two_deep_stack_is_unchanged() -> None:
    # View 0: whole W (area 100) ⊃ part P (40) ⊃ subpart S (15), and a second part Q (30). View 1: no whole
    # (parts only), part P' (50) ⊃ subpart S' (20).
    w, p, s, q = range(4)
    cover0 = np.array(
        [
            [1, 1, 1, 0],  # in the subpart: learns the part, not the subpart
            [1, 1, 0, 0],  # in the part's other half
            [1, 0, 0, 1],  # in the other part (two deep: the smallest, as before)
            [1, 0, 0, 0],  # only the whole covers it
            [0, 0, 0, 0],  # no mask
        ],
        dtype=bool,
    )
    cover1 = np.array([[1, 1], [1, 0]], dtype=bool)  # P' ⊃ S'
    cache = _cache([cover0, cover1], [np.array([100, 40, 15, 30.0]), np.array([50, 20.0])])
    assert cache.fine[:5].tolist() == [s, p, q, w, -1]  # the smallest mask: the subpart tears P apart
    labels = part_labels(cache)
    assert labels[:5].tolist() == [p, p, q, w, -1]
    # Parts only: the part is the coarse mask, so its subpart is the next level down (a two-deep stack).
    assert labels[5:].tolist() == [5, 4]
    assert torch.equal(labels, part_labels_reference(cache))


def test_part_labels_match_the_reference_on_random_stacks() -> None:
    rng = np.random.default_rng(3)
    covers, areas = [], []
    for _ in range(4):
        m = int(rng.integers(1, 7))
        covers.append(rng.random((40, m)) < 0.4)
        areas.append(rng.permutation(np.arange(1, m + 1) * 10.0))  # distinct areas: no ties to break
    cache = _cache(covers, areas)
    assert torch.equal(part_labels(cache), part_labels_reference(cache))

"""The fine level's mask when SAM's stack is three deep (whole ⊃ part ⊃ subpart): `fine_levels.part_labels`."""

from __future__ import annotations

import numpy as np
import torch

from backend.features.fine_levels import part_labels, part_labels_reference
from tests.helpers.cover_caches import cover_cache


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
    cache = cover_cache([cover0, cover1], [np.array([100, 40, 15, 30.0]), np.array([50, 20.0])])
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
    cache = cover_cache(covers, areas)
    assert torch.equal(part_labels(cache), part_labels_reference(cache))

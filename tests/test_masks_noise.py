"""The SAM-like noise model: clean at strength 0, each corruption observable, deterministic per view."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from backend.masks.labels import read_view_labels
from backend.masks.maskset import ViewMasks
from backend.masks.noise import CLEAN, NoiseConfig, ground_truth_masks, noisy_masks, part_objects, touching_pairs
from backend.synthetic import write_synthetic_scene


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tensors are tiny: a second intra-op thread only adds spin-waits (35× slower on a busy 2-core CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ONLY = NoiseConfig(strength=1.0, p_merge=0.0, p_split=0.0, p_drop=0.0, jitter_px=0.0, min_area_fraction=0.0)
"""Every corruption off; tests switch on one at a time."""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_scene(folder, views=3, resolution=48, num_gaussians=8000, progress=False)
    return folder


@pytest.fixture(scope="module")
def view_labels(synthetic):
    return [read_view_labels(synthetic, f"view_{i:03d}") for i in range(3)]


def _two_objects() -> tuple[np.ndarray, np.ndarray]:  # part [20, 30], object [20, 30]
    """Object 1 = parts 1 (left) and 2 (right), touching; object 2 = part 3 alone, apart from object 1."""
    part = np.zeros((20, 30), dtype=np.uint16)
    part[2:12, 2:8] = 1
    part[2:12, 8:14] = 2
    part[4:16, 20:28] = 3
    obj = np.where(part == 3, 2, np.where(part > 0, 1, 0)).astype(np.uint16)
    return part, obj


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_strength_zero_is_the_ground_truth(view_labels):
    for i, (part, obj) in enumerate(view_labels):
        masks = noisy_masks(part, obj, NoiseConfig(strength=0.0, seed=7), view=f"view_{i:03d}")
        expected = [obj == o for o in np.unique(obj) if o] + [part == p for p in np.unique(part) if p]
        keys = {np.packbits(m).tobytes() for m in expected}
        assert len(masks) == len(keys)  # every GT mask once (a part equal to its object is not repeated)
        assert {np.packbits(m).tobytes() for m in masks} == keys
        np.testing.assert_array_equal(masks, ground_truth_masks(part, obj))


def test_levels_of_clean_masks_are_objects_and_parts(view_labels):
    part, obj = _two_objects()
    masks = ground_truth_masks(part, obj)
    view = ViewMasks("v", masks, np.ones(len(masks), np.float32), np.ones(len(masks), np.float32))
    coarse, fine = view.levels()
    np.testing.assert_array_equal(coarse >= 0, obj > 0)
    for y, x in zip(*np.nonzero(obj)):
        np.testing.assert_array_equal(masks[coarse[y, x]], obj == obj[y, x])  # coarse: the whole object
        np.testing.assert_array_equal(masks[fine[y, x]], part == part[y, x])  # fine: the part
    # On rendered label maps every labelled pixel has both levels.
    part, obj = view_labels[0]
    coarse, fine = ViewMasks(
        "v", m := ground_truth_masks(part, obj), np.ones(len(m), np.float32), np.ones(len(m), np.float32)
    ).levels()
    np.testing.assert_array_equal(coarse >= 0, (obj > 0) | (part > 0))
    np.testing.assert_array_equal(fine >= 0, (obj > 0) | (part > 0))


def test_levels_pick_largest_and_smallest_covering_mask():
    big = np.zeros((1, 6, 6), bool)
    big[0, 1:5, 1:5] = True
    small = np.zeros((1, 6, 6), bool)
    small[0, 2:4, 2:4] = True
    view = ViewMasks("v", np.concatenate([small, big]), np.ones(2, np.float32), np.ones(2, np.float32))
    coarse, fine = view.levels()
    assert coarse[2, 2] == 1 and fine[2, 2] == 0
    assert coarse[1, 1] == 1 and fine[1, 1] == 1
    assert coarse[0, 0] == -1 and fine[0, 0] == -1


def test_default_noise_changes_masks_but_keeps_most_overlap_high(view_labels):
    changed, best = 0, []
    for i, (part, obj) in enumerate(view_labels):
        # Upsampled ×4 to 192²: at 48² a 1-pixel jitter is a large share of a small part's area.
        part, obj = (np.kron(a, np.ones((4, 4), a.dtype)) for a in (part, obj))
        gt = ground_truth_masks(part, obj)
        noisy = noisy_masks(part, obj, NoiseConfig(), view=f"view_{i:03d}")
        gt_keys = {np.packbits(m).tobytes() for m in gt}
        changed += sum(np.packbits(m).tobytes() not in gt_keys for m in noisy)
        # Masks of a few pixels are all boundary; judge the ones that cover at least 1% of the image.
        best += [max(_iou(m, g) for g in gt) for m in noisy if m.sum() >= 0.01 * m.size]
    assert changed > 0
    assert len(best) > 20
    assert np.median(best) > 0.85
    assert np.mean(np.array(best) > 0.7) > 0.75


def test_noise_is_deterministic_per_view_and_seed(view_labels):
    part, obj = view_labels[0]
    a = noisy_masks(part, obj, NoiseConfig(strength=2.0, seed=3), view="view_000")
    b = noisy_masks(part, obj, NoiseConfig(strength=2.0, seed=3), view="view_000")
    np.testing.assert_array_equal(a, b)
    c = noisy_masks(part, obj, NoiseConfig(strength=2.0, seed=4), view="view_000")
    d = noisy_masks(part, obj, NoiseConfig(strength=2.0, seed=3), view="view_001")  # same maps, another view
    assert not (a.shape == c.shape and np.array_equal(a, c))
    assert not (a.shape == d.shape and np.array_equal(a, d))


def test_merge_fuses_touching_parts_of_one_object():
    part, obj = _two_objects()
    assert touching_pairs(part) == [(1, 2)]
    assert part_objects(part, obj) == {1: 1, 2: 1, 3: 2}
    masks = noisy_masks(part, obj, dataclasses.replace(ONLY, p_merge=1.0), view="v")
    keys = {np.packbits(m).tobytes() for m in masks}
    assert np.packbits(part == 1).tobytes() not in keys
    assert np.packbits(part == 2).tobytes() not in keys
    assert np.packbits(np.isin(part, [1, 2])).tobytes() in keys  # = object 1, kept once
    assert len(masks) == 2  # object 1 (= merged parts) and object 2 (= part 3)


def test_parts_of_different_objects_never_merge():
    part, obj = _two_objects()
    part[2:12, 14:20] = 4  # touches part 2 but belongs to object 3
    obj[2:12, 14:20] = 3
    masks = noisy_masks(part, obj, dataclasses.replace(ONLY, p_merge=1.0), view="v")
    assert not any(m[5, 10] and m[5, 16] for m in masks)


def test_split_cuts_a_part_in_two_halves():
    part, obj = _two_objects()
    masks = noisy_masks(part, obj, dataclasses.replace(ONLY, p_split=1.0), view="v")
    for p in (1, 2):
        target = part == p
        halves = [m for m in masks if m.any() and not (m & ~target).any() and not np.array_equal(m, target)]
        assert len(halves) == 2
        assert not (halves[0] & halves[1]).any()
        np.testing.assert_array_equal(halves[0] | halves[1], target)
    keys = {np.packbits(m).tobytes() for m in masks}
    assert np.packbits(obj == 1).tobytes() in keys  # objects are never split


def test_drop_removes_masks_and_small_ones_go_first():
    part, obj = _two_objects()
    assert len(noisy_masks(part, obj, dataclasses.replace(ONLY, p_drop=1.0), view="v")) == 0
    part[18, 0:3] = 5  # a 3-pixel part of its own object
    obj[18, 0:3] = 4
    kept = noisy_masks(part, obj, dataclasses.replace(ONLY, min_area_fraction=4 / part.size), view="v")
    assert all(m.sum() >= 4 for m in kept)
    assert len(kept) == len(ground_truth_masks(part, obj)) - 1  # the tiny part/object (one mask) is gone
    # Random drops: about p_drop of many masks.
    many = np.zeros((60, 60), np.uint16)
    for k in range(100):
        many[(k // 10) * 6 : (k // 10) * 6 + 5, (k % 10) * 6 : (k % 10) * 6 + 5] = k + 1
    counts = [len(noisy_masks(many, many, dataclasses.replace(ONLY, p_drop=0.3), view=f"v{s}")) for s in range(5)]
    assert 0.55 < np.mean(counts) / 100 < 0.85


def test_jitter_moves_boundaries_by_at_most_the_radius():
    part, obj = _two_objects()
    gt = ground_truth_masks(part, obj)
    noisy = noisy_masks(part, obj, dataclasses.replace(ONLY, jitter_px=2.0), view="v")
    assert len(noisy) == len(gt)  # nothing merged, split or dropped: mask i is GT mask i, moved
    moved = 0
    for n, g in zip(noisy, gt):
        outer = ndimage.binary_dilation(g, iterations=2)
        inner = ndimage.binary_erosion(g, iterations=2)
        assert not (n & ~outer).any() and not (inner & ~n).any()
        moved += not np.array_equal(n, g)
    assert moved > 0


def test_strength_scales_the_rates():
    config = NoiseConfig(strength=2.0)
    assert config.rate(config.p_merge) == pytest.approx(0.30)
    assert config.jitter_radius == 2
    assert CLEAN.rate(0.5) == 0.0 and CLEAN.jitter_radius == 0 and CLEAN.min_area(100, 100) == 0
    with pytest.raises(ValueError):
        NoiseConfig(strength=-1.0)

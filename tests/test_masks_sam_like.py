"""The sam-like mask model: support and background uncovered, nested levels, each corruption at its rate."""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.masks.sam_like import SamLikeConfig, sam_like_masks

OFF = SamLikeConfig(
    strength=1.0,
    p_subpart=0.0,
    p_whole_only=0.0,
    p_parts_only=0.0,
    p_support_merge=0.0,
    p_neighbour_merge=0.0,
    p_hole=0.0,
    spurious_per_view=0.0,
    p_drop=0.0,
    jitter_px=0.0,
    min_area_fraction=0.0,
)
"""Every corruption off; tests switch on one at a time."""


def _shelf_view() -> tuple[np.ndarray, np.ndarray]:  # part [40, 60], object [40, 60]
    """Background above, a support (object 1, part 1) below, object 2 (parts 2, 3) and object 3 (part 4, 5)
    standing on the support, touching it; object 2 and 3 three pixels apart."""
    obj = np.zeros((40, 60), dtype=np.uint16)
    part = np.zeros((40, 60), dtype=np.uint16)
    obj[25:, :] = 1
    part[25:, :] = 1
    part[8:28, 10:20], part[12:20, 20:24] = 2, 3  # a mug: body, handle
    part[5:28, 27:35], part[0:5, 29:33] = 4, 5  # a bottle: body, cap
    obj[part == 2], obj[part == 3] = 2, 2
    obj[part == 4], obj[part == 5] = 3, 3
    return part, obj


def _many(config: SamLikeConfig, n: int = 200) -> list[np.ndarray]:
    part, obj = _shelf_view()
    return [sam_like_masks(part, obj, {1}, config, view=f"v{i}")[0] for i in range(n)]


def test_clean_masks_are_nested_objects_and_parts_and_leave_support_uncovered() -> None:
    part, obj = _shelf_view()
    masks, scores = sam_like_masks(part, obj, {1}, SamLikeConfig(strength=0.0), view="v")
    expected = [obj == 2, part == 2, part == 3, obj == 3, part == 4, part == 5]
    assert len(masks) == len(expected)
    for e in expected:
        assert any((m == e).all() for m in masks)
    assert not masks.any(0)[obj == 1].any() and not masks.any(0)[obj == 0].any()
    assert scores.shape == (len(masks),) and ((scores > 0) & (scores <= 1)).all()


def test_support_stays_mostly_uncovered_at_default_strength() -> None:
    _part, obj = _shelf_view()
    support = obj == 1
    covered = np.mean([m.any(0)[support].mean() if len(m) else 0.0 for m in _many(SamLikeConfig(), 100)])
    assert covered < 0.15  # only merges and spurious blobs reach it
    assert covered > 0.0  # but they do


def test_subparts_nest_inside_parts() -> None:
    stacks = _many(dataclasses.replace(OFF, p_subpart=1.0), 5)
    part, _ = _shelf_view()
    for masks in stacks:
        body = part == 2
        halves = [m for m in masks if m.any() and (m <= body).all() and m.sum() < body.sum()]
        assert len(halves) == 2 and ((halves[0] | halves[1]) == body).all()


def test_whole_only_and_parts_only_rates() -> None:
    part, obj = _shelf_view()
    stacks = _many(dataclasses.replace(OFF, p_whole_only=0.3, p_parts_only=0.2), 300)
    whole_missing = np.mean([not any((m == (obj == 2)).all() for m in s) for s in stacks])
    parts_missing = np.mean([not any((m == (part == 2)).all() for m in s) for s in stacks])
    assert abs(parts_missing - 0.3) < 0.08 and abs(whole_missing - 0.2) < 0.08


def test_support_merge_takes_a_ring_of_support_and_neighbour_merge_fuses_objects() -> None:
    _part, obj = _shelf_view()
    (masks,) = _many(dataclasses.replace(OFF, p_support_merge=1.0), 1)
    merged = [m for m in masks if (m & (obj == 1)).any()]
    assert len(merged) == 2 and all(not (m & (obj == 0)).any() for m in merged)
    (masks,) = _many(dataclasses.replace(OFF, p_neighbour_merge=1.0), 1)
    assert any((m == ((obj == 2) | (obj == 3))).all() for m in masks)


def test_holes_spurious_drops_and_determinism() -> None:
    part, obj = _shelf_view()
    cfg = SamLikeConfig(strength=1.0)
    a, _ = sam_like_masks(part, obj, {1}, cfg, view="x")
    b, _ = sam_like_masks(part, obj, {1}, cfg, view="x")
    assert (a == b).all()
    holes = _many(dataclasses.replace(OFF, p_hole=1.0), 20)
    assert all(m.sum() < (obj == 2).sum() for s in holes for m in s[:1])
    spurious = _many(dataclasses.replace(OFF, spurious_per_view=3.0), 50)
    off_objects = [m for s in spurious for m in s if not (m & (obj >= 2)).any()]
    assert 1.5 < len(off_objects) / 50 < 4.5
    dropped = _many(dataclasses.replace(OFF, p_drop=0.5), 100)
    assert 2.0 < np.mean([len(s) for s in dropped]) < 4.0  # 6 masks, half dropped

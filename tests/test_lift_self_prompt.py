"""SA3D's self-prompt point rule, the choice of the next view, and the ground-truth predictor."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core.camera import look_at
from backend.lift import GroundTruthPredictor, choose_by_granularity, next_view, prompt_points

from .helpers.lift_scenes import ring_cameras


def _disk(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def test_first_point_is_the_most_confident_pixel():
    score = np.zeros((20, 30), dtype=np.float32)
    score[5, 7], score[12, 20] = 0.6, 0.9
    assert prompt_points(score, np.ones_like(score), num_points=1) == [(20.5, 12.5)]


def test_nothing_confident_gives_no_prompt():
    score = np.full((16, 16), -0.2, dtype=np.float32)
    assert prompt_points(score, np.ones_like(score), num_points=3) == []


def test_later_points_spread_over_the_object_and_ignore_a_far_blob():
    """A: a confident disk at depth 1 with its peak at (12, 12). B: almost as confident, far away in the image and in
    depth. The rule takes A's peak, then points in A outside the square excluded around each taken point (half-size
    √(area/π)/2), and never B: its score minus its distance (≈ 1, normalised) times A's peak stays below zero."""
    h = w = 48
    a, b = _disk(h, w, 12, 12, 8), _disk(h, w, 38, 38, 6)
    y, x = np.mgrid[0:h, 0:w]
    score = np.where(a, 1.0 - 0.01 * np.hypot(x - 12, y - 12), 0.0)
    score = np.where(b, 0.95, score).astype(np.float32)
    depth = np.where(a, 1.0, np.where(b, 6.0, 10.0)).astype(np.float32)

    points = prompt_points(score, depth, num_points=3)
    assert len(points) == 3
    assert points[0] == (12.5, 12.5)
    area = float(np.clip(score, 0, 1).sum())
    half = max(int(np.sqrt(area / np.pi)) // 2, 2)
    pixels = [(int(px), int(py)) for px, py in points]
    for i, (px, py) in enumerate(pixels):
        assert a[py, px], f"point {i} at {(px, py)} is not on the object"
        for qx, qy in pixels[:i]:
            assert max(abs(px - qx), abs(py - qy)) > half  # outside the square around every earlier point


def test_points_stop_when_the_object_is_used_up():
    """A tiny object: after the excluded squares cover it, nothing scores above zero and picking stops early."""
    score = np.zeros((40, 40), dtype=np.float32)
    score[18:21, 18:21] = 1.0
    points = prompt_points(score, np.ones_like(score), num_points=5)
    assert 1 <= len(points) < 5


def test_next_view_steps_round_the_object():
    """24 cameras 15° apart, steps of at most 50°: each next view is a 45° neighbour of a done one (not the 15° one,
    which adds little, nor the 180° opposite, which the 3D mask does not cover yet); eight views go once round."""
    cams = ring_cameras(24, elevation_deg=0.0)
    center = np.zeros(3)
    done = ["cam_00"]
    for _ in range(7):
        nxt = next_view(cams, done, center, max_step_deg=50.0)
        assert nxt is not None
        done.append(nxt.name)
    assert sorted(done) == [f"cam_{i:02d}" for i in range(0, 24, 3)]


def test_next_view_with_no_stride_is_nearest_first_and_skips_blind_cameras():
    cams = ring_cameras(12)
    nxt = next_view(cams, ["cam_00"], np.zeros(3), max_step_deg=0.0)
    assert nxt is not None and nxt.name in ("cam_01", "cam_11")
    away = look_at("away", np.array([0.0, -3.0, 0.0]), np.array([0.0, -6.0, 0.0]), np.array([0.0, 0.0, 1.0]),
                   width=32, height=32, fov_y_deg=50.0)  # fmt: skip
    assert next_view([*cams[:1], away], ["cam_00"], np.zeros(3)) is None


# ---- the ground-truth predictor ------------------------------------------------------------------------------------


@pytest.fixture
def gt_predictor():
    part = np.zeros((20, 20), dtype=np.uint16)
    obj = np.zeros((20, 20), dtype=np.uint16)
    part[2:10, 2:10], part[10:18, 2:10] = 1, 2  # one object (id 1) with two parts
    obj[2:18, 2:10] = 1
    part[5:15, 12:18], obj[5:15, 12:18] = 3, 2  # a second object, one part
    cam = ring_cameras(1, size=20)[0]
    predictor = GroundTruthPredictor(lambda camera: (part, obj))
    predictor.set_view(cam)
    return predictor, part, obj


def test_ground_truth_answers_a_click_with_part_then_object(gt_predictor):
    predictor, part, obj = gt_predictor
    masks, scores = predictor.predict([(4.5, 4.5)], [1])
    assert masks.shape == (2, 20, 20) and scores.shape == (2,)
    assert np.array_equal(masks[0], part == 1) and np.array_equal(masks[1], obj == 1)
    single, _ = predictor.predict([(4.5, 4.5)], [1], multimask=False)
    assert np.array_equal(single[0], obj == 1)
    assert choose_by_granularity(masks, scores, "whole") == 1
    assert choose_by_granularity(masks, scores, "part") == 0


def test_ground_truth_takes_the_majority_label_and_honours_negatives_and_boxes(gt_predictor):
    predictor, part, obj = gt_predictor
    masks, _ = predictor.predict([(4.5, 4.5), (4.5, 12.5), (5.5, 13.5)], [1, 1, 1])
    assert np.array_equal(masks[0], part == 2)  # two of three points are on part 2
    masks, scores = predictor.predict([(4.5, 4.5), (4.5, 12.5)], [1, 0])
    assert scores[0] == 1.0 and scores[1] == 0.0  # the negative point is on the object, not on the part
    masks, _ = predictor.predict([], [], box=(11, 4, 19, 16))
    assert np.array_equal(masks[1], obj == 2)

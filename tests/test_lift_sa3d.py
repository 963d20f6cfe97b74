"""The SA3D loop end to end: ground truth on a small tabletop (the acceptance figure), SAM with random weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.core.camera import look_at
from backend.core.errors import InputError
from backend.lift import (
    GeometryCache,
    GroundTruthPredictor,
    Sa3dOptions,
    SamPredictorAdapter,
    ViewStep,
    segment_sa3d,
)
from backend.lift.evaluate import heldout_ious, interior_pixel

from .helpers.lift_scenes import ring_cameras, two_balls


def _object_ring(points: np.ndarray, count: int, size: int) -> list:  # points [n, 3] → cameras round them
    center = points.mean(axis=0)
    radius = float(np.linalg.norm(points - center, axis=1).max())
    distance = radius / math.sin(math.radians(25.0)) / 0.75
    cams = []
    for i in range(count):
        az, el = 2 * math.pi * i / count, math.radians((30.0, 50.0)[i % 2])
        eye = center + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        cams.append(look_at(f"v{i:02d}", eye, center, np.array([0.0, 0.0, 1.0]), width=size, height=size, fov_y_deg=50))
    return cams


def test_ground_truth_lifting_reaches_iou_09_in_held_out_views_on_a_small_tabletop():
    """The issue's acceptance figure, small: the mug of a 20k-Gaussian tabletop (its neighbours in the frame), twelve
    cameras round it at 48², a budget of 8 views; the 4 views the loop did not use score the selection."""
    from backend.synthetic import build_tabletop

    synth = build_tabletop(seed=0, num_gaussians=20_000)
    mug = next(k for k, v in synth.object_names.items() if v == "mug")
    cams = _object_ring(synth.scene.means[torch.from_numpy(synth.object_labels == mug)].double().numpy(), 12, 48)
    cache = GeometryCache(synth.scene)
    predictor = GroundTruthPredictor.from_gaussian_labels(
        synth.scene, synth.part_labels, synth.object_labels, geometry=cache
    )
    object_maps = {c.name: predictor.label_maps(c)[1] for c in cams}
    steps: list[ViewStep] = []
    result = segment_sa3d(
        synth.scene,
        cams,
        predictor,
        view="v00",
        pixels=[interior_pixel(object_maps["v00"] == mug)],
        options=Sa3dOptions(views=8),
        geometry=cache,
        on_view=steps.append,
    )
    assert result.stopped == "views" and len(steps) == 8 and steps == result.steps
    used = {s.camera.name for s in steps}
    ious = heldout_ious(synth.scene, cams, result.mask, object_maps, mug, skip=used, geometry=cache)
    assert len(ious) == 4
    assert np.mean(ious) >= 0.9 and min(ious) >= 0.85, ious
    # The selection is the mug's: what is selected is almost all mug.
    assert np.count_nonzero(result.mask & (synth.object_labels == mug)) >= 0.98 * np.count_nonzero(result.mask)


@pytest.fixture(scope="module")
def balls_setup():
    scene, labels = two_balls(600)
    cams = ring_cameras(12, size=48)
    cache = GeometryCache(scene)
    predictor = GroundTruthPredictor.from_gaussian_labels(scene, labels, labels, geometry=cache)
    return scene, labels, cams, cache, predictor


def test_loop_reports_each_view_and_stops_when_the_selection_settles(balls_setup):
    scene, labels, cams, cache, predictor = balls_setup
    steps: list[ViewStep] = []
    result = segment_sa3d(
        scene,
        cams,
        predictor,
        view="cam_00",
        pixels=[(15.5, 24.5)],  # on ball 1 (left in the first view)
        options=Sa3dOptions(views=12, max_step_deg=0.0, converge_tol=0.05, patience=2),
        geometry=cache,
        on_view=steps.append,
    )
    assert result.stopped == "converged" and len(result.steps) < 12
    assert steps[0].index == 0 and math.isnan(steps[0].agreement) and steps[0].points == ((15.5, 24.5),)
    for s in steps[1:]:
        assert 1 <= len(s.points) <= 3 and 0.0 <= s.agreement <= 1.0 and s.mask.shape == (48, 48)
    assert [s.index for s in steps] == list(range(len(steps)))
    selected = result.mask
    assert np.count_nonzero(selected & (labels == 2)) == 0
    assert np.count_nonzero(selected & (labels == 1)) > 0.6 * np.count_nonzero(labels == 1)
    assert result.confidence.shape == (len(scene),) and result.confidence.max() <= 1.0


def test_loop_can_be_cancelled_between_views(balls_setup):
    scene, _, cams, cache, predictor = balls_setup
    result = segment_sa3d(
        scene, cams, predictor, view="cam_00", pixels=[(15.5, 24.5)], geometry=cache, should_stop=lambda: True
    )
    assert result.stopped == "cancelled" and len(result.steps) == 1 and result.mask.any()


def test_a_click_on_nothing_is_a_clear_error(balls_setup):
    scene, _, cams, cache, predictor = balls_setup
    with pytest.raises(InputError, match="outside view"):
        segment_sa3d(scene, cams, predictor, view="cam_00", pixels=[(60.0, 2.0)], geometry=cache)


def test_sam_path_runs_end_to_end_with_random_weights(balls_setup):
    """segment-anything's predictor (tiny vit_b-shaped model, random weights) on rendered views: the answers are
    meaningless, so only the plumbing is judged: embeddings computed once per view, a well-formed selection."""
    from backend.masks.sam import build_sam_tiny

    scene, _, cams, cache, _ = balls_setup
    adapter = SamPredictorAdapter(build_sam_tiny(seed=0))
    try:
        result = segment_sa3d(
            scene, cams, adapter, view="cam_00", pixels=[(15.5, 24.5)], options=Sa3dOptions(views=2), geometry=cache
        )
    except InputError as e:  # random weights may draw an empty mask under the click: still a clean, named failure
        assert "nothing to segment" in str(e)
        return
    assert result.mask.dtype == bool and result.mask.shape == (len(scene),)
    assert len(result.steps) == 2 and result.steps[0].mask.shape == (48, 48)
    assert adapter.embeddings == len({s.camera.name for s in result.steps if s.mask is not None})
    adapter.set_view(cams[0], np.zeros((48, 48, 3), dtype=np.uint8))
    masks, scores = adapter.predict([(10.0, 10.0)], [1], multimask=True)
    assert masks.shape == (3, 48, 48) and masks.dtype == bool and scores.shape == (3,)

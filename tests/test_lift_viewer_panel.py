"""The "Segment without training" panel, driven through a stand-in for viser's GUI (no browser, no server)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from backend.core.errors import SplatsegError
from backend.lift import GroundTruthPredictor, Sa3dOptions
from viewer.sa3d_panel import Sa3dPanelHooks, Sa3dRunner, add_sa3d_panel, preview_image

from .helpers.lift_scenes import ring_cameras, two_balls


class _Widget:
    def __init__(self, label: str, value=None, **props) -> None:
        self.label, self.value, self.visible, self.content, self.image = label, value, True, "", None
        self.__dict__.update(props)
        self._callbacks = []

    def on_click(self, fn):
        self._callbacks.append(fn)
        return fn

    on_update = on_click


class _Gui:
    def add_folder(self, label, **_):
        return contextlib.nullcontext()

    def add_markdown(self, content, **_):
        return _Widget("", content=content)

    def add_checkbox(self, label, initial_value, **_):
        return _Widget(label, initial_value)

    def add_slider(self, label, lo, hi, step, initial_value, **_):
        return _Widget(label, initial_value)

    def add_dropdown(self, label, options, initial_value=None, **_):
        return _Widget(label, initial_value)

    def add_progress_bar(self, value, visible=True, **_):
        return _Widget("", value, visible=visible)

    def add_image(self, image, label=None, visible=True, **_):
        return _Widget(label or "", image=image, visible=visible)

    def add_button(self, label, visible=True, **_):
        return _Widget(label, visible=visible)


@pytest.fixture(scope="module")
def balls():
    scene, labels = two_balls(600)
    cams = ring_cameras(8, size=48)
    return scene, labels, cams


def _panel(balls, predictor):
    scene, _, cams = balls
    calls = {"select": [], "notify": [], "progress": []}
    hooks = Sa3dPanelHooks(
        runner=Sa3dRunner(scene, cams, predictor),
        select=lambda mask, op, key: calls["select"].append((mask.copy(), op, key)),
        notify=lambda *a: calls["notify"].append(a),
        progress=lambda f, s: calls["progress"].append((f, s)),
    )
    return add_sa3d_panel(_Gui(), hooks), calls


def test_a_click_runs_in_the_background_and_ends_in_one_undo_step(balls):
    scene, labels, cams = balls
    panel, calls = _panel(balls, lambda: GroundTruthPredictor.from_gaussian_labels(scene, labels, labels))
    assert not panel.armed
    panel.arm.value = True
    panel.views.value = 3
    assert panel.armed
    panel.run(cams[0], (15.5, 24.5))  # ball 1, left in the first view
    assert panel.runner.wait(timeout=120)

    result = panel.runner.last
    assert result is not None and len(result.steps) == 3
    keys = {key for _, _, key in calls["select"]}
    assert keys == {("sa3d", 1)}  # every update of the run merges into one undo step
    final, op, _ = calls["select"][-1]
    assert op == "replace" and np.array_equal(final, result.mask)
    assert np.count_nonzero(final & (labels == 2)) == 0 and np.count_nonzero(final & (labels == 1)) > 200
    assert len(calls["select"]) == 1 + sum(s.accepted for s in result.steps)  # live updates, then the result
    assert panel.preview.visible and panel.preview.image.ndim == 3
    assert "Gaussians" in panel.status.content and not panel.cancel.visible
    assert calls["notify"][-1][2] == "green" and calls["progress"][-1][0] == 1.0


def test_a_missing_model_is_a_message_not_a_crash(balls):
    def no_sam():
        raise SplatsegError("no SAM checkpoint: pass --sam-checkpoint PATH")

    panel, calls = _panel(balls, no_sam)
    panel.run(balls[2][0], (15.5, 24.5))
    assert panel.runner.wait(timeout=30)
    assert calls["select"] == []
    assert calls["notify"][-1][2] == "red" and "--sam-checkpoint" in calls["notify"][-1][1]
    assert panel.status.content.startswith("Failed")


def test_runner_cancels_between_views_and_refuses_a_second_run(balls):
    scene, labels, cams = balls
    runner = Sa3dRunner(scene, cams, lambda: GroundTruthPredictor.from_gaussian_labels(scene, labels, labels))
    done, errors = [], []
    runner.start(
        cams[0],
        (15.5, 24.5),
        Sa3dOptions(views=8),
        on_view=lambda step: runner.cancel(),
        on_done=done.append,
        on_error=errors.append,
    )
    with pytest.raises(SplatsegError, match="already running"):
        runner.start(cams[0], (1, 1), Sa3dOptions(), on_view=print, on_done=print, on_error=print)
    assert runner.wait(timeout=60)
    assert errors == [] and done[0].stopped == "cancelled" and len(done[0].steps) == 1


def test_preview_draws_the_answer_the_rendering_and_the_points(balls):
    scene, labels, cams = balls
    panel_steps = []
    runner = Sa3dRunner(scene, cams, lambda: GroundTruthPredictor.from_gaussian_labels(scene, labels, labels))
    runner.start(cams[0], (15.5, 24.5), Sa3dOptions(views=2), on_view=panel_steps.append, on_done=print, on_error=print)
    assert runner.wait(timeout=60)
    step = panel_steps[-1]
    image = preview_image(step)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    x, y = (int(v) for v in step.points[0])
    assert tuple(image[y, x]) == (255, 30, 30)
    assert preview_image(step, max_side=16).shape[0] <= 16

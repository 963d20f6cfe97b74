"""The shared session, headless: clicks, boxes, modes, undo, views, export, busy and missing-feature errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from backend.io.ply import read_ply
from backend.synthetic import build_tabletop, orbit_cameras
from backend.workspace import Workspace
from tests.helpers.fakes import LabelField
from viewer import session as session_module
from viewer.session import Busy, NoFeatures, Session


@pytest.fixture(scope="module")
def tabletop():
    synth = build_tabletop(seed=0, num_gaussians=4000)
    camera = orbit_cameras(synth, views=3, resolution=160, seed=0)[1]
    return synth, camera


def _session(tmp_path, tabletop, *, field=True) -> Session:
    synth, _ = tabletop
    f = LabelField(synth.scene, synth.object_labels, synth.part_labels) if field else None
    return Session(synth.scene, workspace=Workspace(tmp_path), field=f, field_problem=None if field else "no features")


def _pixel_on(synth, camera, object_name: str) -> tuple[float, float]:
    """A pixel where `object_name` is what the camera sees (front-most Gaussian)."""
    obj = next(k for k, v in synth.object_names.items() if v == object_name)
    field = LabelField(synth.scene, synth.object_labels, synth.part_labels)
    ids = np.nonzero(synth.object_labels == obj)[0]
    pts = synth.scene.means[ids].double().numpy()
    w2c = camera.world_to_camera
    p = pts @ w2c[:3, :3].T + w2c[:3, 3]
    u = camera.fx * p[:, 0] / p[:, 2] + camera.cx
    v = camera.fy * p[:, 1] / p[:, 2] + camera.cy
    centre = np.array([np.median(u), np.median(v)])
    for k in np.argsort(np.hypot(u - centre[0], v - centre[1]))[:200]:
        px = (float(u[k]), float(v[k]))
        g = field.gaussian_at(camera, px)
        if g is not None and synth.object_labels[g] == obj:
            return px
    raise AssertionError(f"{object_name} is not visible from {camera.name}")


def test_click_selects_the_object_under_the_pixel(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop)
    seen = []

    class Listener:
        def on_change(self, kinds):
            seen.append(kinds)

        def on_notify(self, *a):
            pass

    s.subscribe(Listener())
    px = _pixel_on(synth, camera, "mug")
    result = s.click(camera, px, positive=True, who="t")
    mug = synth.object_labels == next(k for k, v in synth.object_names.items() if v == "mug")
    assert np.array_equal(s.selection.mask, mug)
    assert result.count == mug.sum() and result.milliseconds > 0
    assert any("look" in k for k in seen)
    stats = s.stats()
    pts = synth.scene.means[torch.from_numpy(mug)].numpy()
    np.testing.assert_allclose(stats.bbox_min, pts.min(0))
    np.testing.assert_allclose(stats.bbox_max, pts.max(0))


def test_modes_negative_points_and_undo(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop)
    mug = synth.object_labels == 2
    bottle = synth.object_labels == 4
    s.click(camera, _pixel_on(synth, camera, "mug"), positive=True)
    s.update_settings(op="add")
    s.click(camera, _pixel_on(synth, camera, "bottle"), positive=True)
    assert np.array_equal(s.selection.mask, mug | bottle)
    # A negative point in the same prompt (same camera) takes the mug out again.
    s.click(camera, _pixel_on(synth, camera, "mug"), positive=False)
    assert np.array_equal(s.selection.mask, bottle)
    assert s.edit("undo").count == (mug | bottle).sum()
    s.update_settings(op="subtract")
    s.click(camera, _pixel_on(synth, camera, "bottle"), positive=True)
    assert np.array_equal(s.selection.mask, mug)
    # The "clicks are negative" toggle flips plain clicks.
    s.update_settings(op="add", negative_clicks=True)
    s.click(camera, _pixel_on(synth, camera, "mug"), positive=True)
    assert s.selection.count == 0
    s.edit("invert")
    assert s.selection.count == len(synth.scene)
    s.edit("clear")
    assert s.selection.count == 0


def test_level_change_reruns_the_prompt_in_one_undo_step(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop)
    assert s.settings.level == "coarse"
    px = _pixel_on(synth, camera, "mug")
    s.click(camera, px, positive=True)
    whole = s.selection.mask.copy()
    s.update_settings(level="fine")
    part = s.selection.mask.copy()
    assert 0 < part.sum() < whole.sum() and not (part & ~whole).any()
    assert s.field.calls[-1][3]["level"] == "fine"
    s.update_settings(threshold=0.7)
    assert s.field.calls[-1][3]["threshold"] == 0.7
    assert s.edit("undo").count == 0  # the level and threshold re-runs replaced the click's entry


def test_cluster_view_click_picks_a_cluster(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop)
    s.update_settings(view="clusters")
    rgba = s.rgba()
    assert rgba.shape == (len(synth.scene), 4)
    s.click(camera, _pixel_on(synth, camera, "bottle"), positive=True)
    assert np.array_equal(s.selection.mask, synth.object_labels == 4)
    s.update_settings(view="pca")
    assert not np.array_equal(s.rgba()[:, :3], rgba[:, :3])


def test_box_selects_visible_surface(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop, field=False)
    result = s.rect(camera, (0.0, 0.0, camera.width, camera.height))
    assert 0 < result.count < len(synth.scene)
    s.update_settings(front_only=False)
    everything = s.rect(camera, (0.0, 0.0, camera.width, camera.height))
    assert everything.count > result.count  # hidden surfaces come in only when asked for


def test_click_without_features_is_a_clear_error(tmp_path, tabletop):
    _, camera = tabletop
    s = _session(tmp_path, tabletop, field=False)
    with pytest.raises(NoFeatures, match="Prepare masks"):
        s.click(camera, (10.0, 10.0), positive=True)
    assert s.selection.count == 0


def test_busy_session_says_who_holds_it(tmp_path, tabletop, monkeypatch):
    _, camera = tabletop
    monkeypatch.setattr(session_module, "LOCK_WAIT_S", 0.05)
    s = _session(tmp_path, tabletop)
    held, release = threading.Event(), threading.Event()

    def hold():
        with s.acting("client 7", "export"):
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(Busy, match="client 7: export"):
            s.click(camera, (10.0, 10.0), positive=True, who="client 8")
    finally:
        release.set()
        t.join()
    s.rect(camera, (0.0, 0.0, 5.0, 5.0))  # free again


def test_export_writes_atomically_to_the_workspace(tmp_path, tabletop):
    synth, camera = tabletop
    s = _session(tmp_path, tabletop)
    s.click(camera, _pixel_on(synth, camera, "mug"), positive=True)
    path, count = s.export("selection")
    assert path.parent == tmp_path / ".splatseg" / "exports"
    assert count == (synth.object_labels == 2).sum() == len(read_ply(path))
    path2, count2 = s.export("without")
    assert count2 == len(synth.scene) - count and path2 != path
    path3, count3 = s.export("labels")
    labelled = read_ply(path3)
    assert count3 == len(synth.scene) and int(labelled.extras["segment"].sum()) == count
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary files left
    s.edit("clear")
    with pytest.raises(Exception, match="empty"):
        s.export("selection")


def test_broken_listener_does_not_stop_others(tmp_path, tabletop):
    _, camera = tabletop
    s = _session(tmp_path, tabletop, field=False)
    got = []

    class Broken:
        def on_change(self, kinds):
            raise RuntimeError("gone")

        def on_notify(self, *a):
            raise RuntimeError("gone")

    class Good:
        def on_change(self, kinds):
            got.append(kinds)

        def on_notify(self, *a):
            got.append(a)

    s.subscribe(Broken())
    s.subscribe(Good())
    s.rect(camera, (0.0, 0.0, 50.0, 50.0))
    s.notify_all("t", "b")
    assert len(got) == 2


def test_saga_field_gets_a_scale_not_a_level(tmp_path, tabletop):
    synth, camera = tabletop

    class SagaField(LabelField):
        method = "saga"
        uses_scale = True
        levels = ()
        default_scale = 0.12

        def segment(self, camera, positives, negatives=(), *, level=None, scale=None, threshold=None):
            assert level is None and scale is not None
            return super().segment(camera, positives, negatives, level="fine" if scale < 0.1 else "coarse")

    s = Session(
        synth.scene, workspace=Workspace(tmp_path), field=SagaField(synth.scene, synth.object_labels, synth.part_labels)
    )
    assert s.settings.scale == 0.12 and s.settings.level is None
    s.click(camera, _pixel_on(synth, camera, "mug"), positive=True)
    whole = s.selection.count
    s.update_settings(scale=0.05)  # smaller scale: parts
    assert 0 < s.selection.count < whole

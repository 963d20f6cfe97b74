"""`--predictor FOLDER` (per-view masks answer SA3D's prompts) and the viewer's predictor choice."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core.errors import SplatsegError
from backend.lift.folder_predictor import FolderPredictor
from backend.lift.predictor import GroundTruthPredictor
from tests.conftest import front_camera, random_scene
from viewer.sa3d_panel import predictor_loader


def _stack() -> np.ndarray:  # [3, 8, 8]: a 2×2 part inside a 4×4 object, and a separate 2×2 object
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[0, 0:4, 0:4] = True  # object (16 px)
    masks[1, 1:3, 1:3] = True  # part of it (4 px)
    masks[2, 6:8, 6:8] = True  # another object
    return masks


def _predictor(camera) -> FolderPredictor:
    from backend.masks.maskset import ViewMasks

    def masks(cam):
        if cam.name != camera.name:
            return None
        m = _stack()
        return ViewMasks(cam.name, m, np.ones(len(m), np.float32), np.full(len(m), np.nan, np.float32))

    return FolderPredictor(masks)


def test_candidates_are_the_masks_under_the_click_smallest_first() -> None:
    camera = front_camera(8)
    p = _predictor(camera)
    p.set_view(camera, None)
    masks, scores = p.predict([(1.5, 1.5)], [1])
    assert [int(m.sum()) for m in masks] == [4, 16] and scores.tolist() == [1.0, 1.0]
    single, _ = p.predict([(1.5, 1.5)], [1], multimask=False)
    assert int(single.sum()) == 16  # one answer: the largest, as SAM's single mask is the object
    # A negative point on the object but off the part zeroes the object only.
    _, scores = p.predict([(1.5, 1.5), (3.5, 3.5)], [1, 0])
    assert scores.tolist() == [1.0, 0.0]
    # Background, or only a box around the other object.
    assert len(p.predict([(5.5, 1.5)], [1])[0]) == 0
    boxed, _ = p.predict([], [], box=(5.0, 5.0, 7.0, 7.0))
    assert len(boxed) == 1 and boxed[0, 7, 7]


def test_a_view_without_a_mask_file_answers_nothing() -> None:
    camera, other = front_camera(8), front_camera(8, name="side")
    p = _predictor(camera)
    p.set_view(other, None)
    masks, scores = p.predict([(1.5, 1.5)], [1])
    assert masks.shape == (0, 8, 8) and scores.shape == (0,)


def test_viewer_predictor_is_sam_unless_named(tmp_path) -> None:
    labels = tmp_path / "scene" / "labels"
    labels.mkdir(parents=True)
    with pytest.raises(SplatsegError, match="sam, labels or a folder"):
        predictor_loader(predictor="sma", scene_dir=str(tmp_path / "scene"))
    with pytest.raises(SplatsegError, match="labels/ folder"):  # labels asked for a scene without them
        predictor_loader(predictor="labels", scene_dir=str(tmp_path))
    # Named labels: the ground truth, although no SAM checkpoint was given.
    assert isinstance(predictor_loader(predictor="labels", scene_dir=str(tmp_path / "scene"))(), GroundTruthPredictor)
    # The default asks for SAM (here: a checkpoint that is missing, so nothing is downloaded), labels/ or not.
    get = predictor_loader(scene_dir=str(tmp_path / "scene"), sam_checkpoint=str(tmp_path / "none.pth"))
    with pytest.raises(SplatsegError, match="--sam-checkpoint"):
        get()


def test_the_panel_names_the_predictor_that_answers() -> None:
    from tests.test_lift_viewer_panel import _Gui
    from viewer.sa3d_panel import Sa3dPanelHooks, Sa3dRunner, add_sa3d_panel, predictor_title

    scene = random_scene(50)
    for predictor, name in (("sam", "SAM"), ("labels", "The ground-truth labels"), ("/m", "Your masks (/m)")):
        assert predictor_title(predictor) == name
        runner = Sa3dRunner(scene, [front_camera(8)], lambda: None, predictor_name=name)  # type: ignore[arg-type]
        hooks = Sa3dPanelHooks(runner=runner, select=lambda *a: None, notify=lambda *a: None)
        panel = add_sa3d_panel(_Gui(), hooks)
        assert f"{name} segments it" in panel.about.content

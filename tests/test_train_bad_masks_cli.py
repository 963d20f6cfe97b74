"""Issue 10, "bad input": mask folders that say almost nothing, through the CLI as a user runs it.

`prepare --masks FOLDER` then `train` for both methods on a folder that covers almost nothing, one where every mask
covers the whole image, and one with a single mask per view: training finishes (exit 0), its summary line says what
it saw ("99.8% of pixels have no mask"), stderr carries the warning, the manifest records both, and the saved
features are finite. (tests/test_features_bad_masks.py checks the same through `train_features` with small
configs; this is the command-line path with the methods' own configs.)
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.features.store import features_name
from backend.masks.folder import FolderMasks
from backend.workspace import Workspace
from tests.helpers.feature_scenes import TinyScene, build_tiny_scene, user_mask_folder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_tiny_scene(tmp_path_factory.mktemp("bad-masks") / "scene", views=3, size=48)
    finally:
        torch.set_num_threads(previous)


def _nearly_nothing(lab: np.ndarray) -> np.ndarray:  # one 2×2 mask: 99.8% of a 48² view uncovered
    m = np.zeros((1, *lab.shape), bool)
    m[0, 23:25, 23:25] = True
    return m


def _whole_image(lab: np.ndarray) -> np.ndarray:
    return np.ones((2, *lab.shape), bool)


def _one_mask(lab: np.ndarray) -> np.ndarray:  # everything that is not empty space, as one mask
    return (lab > 0)[None]


_NO_MASK = " of pixels have no mask"


@pytest.mark.parametrize(
    ("make", "warning", "uncovered"),
    [
        (_nearly_nothing, r"warning: 99\.8% of pixels have no mask", rf"99\.8%{_NO_MASK}, 1\.0 masks a view"),
        (_whole_image, r"warning: 6 of 6 masks cover the whole image", rf"0%{_NO_MASK}, 2\.0 masks a view"),
        (_one_mask, r"warning: every view has at most one mask", rf"\d+%{_NO_MASK}, 1\.0 masks a view"),
    ],
    ids=["covers-almost-nothing", "whole-image-masks", "one-mask-per-view"],
)
def test_cli_trains_both_methods_warns_and_saves_finite_features(base, tmp_path, capsys, make, warning, uncovered):
    scene, masks = user_mask_folder(base, tmp_path, make)
    assert main(["prepare", str(scene), "--masks", str(masks)]) == 0
    capsys.readouterr()
    ws = Workspace(scene)
    for method in ("click", "saga"):
        assert main(["train", str(scene), "--method", method, "--iterations", "3"]) == 0
        out, err = capsys.readouterr()
        assert re.search(rf"; masks: {uncovered}$", out.strip()), out
        assert re.search(warning, err), err
        assert "Traceback" not in err and "nan" not in out.lower()
        params = ws.entry(features_name(method))["params"]
        assert any(re.search(warning.removeprefix("warning: "), w) for w in params["warnings"]), params["warnings"]
        assert params["mask_stats"]["views"] == len(base.cameras)
        json.dumps(params)  # the manifest entry stays plain JSON
        tensors = ws.load_tensors(features_name(method), verify=True)
        assert tensors["features"].shape[0] == len(base.scene)
        for key, t in tensors.items():
            if t.is_floating_point() and key != "auto_scale":  # auto_scale: NaN marks "no mask scale" by design
                assert torch.isfinite(t).all(), (method, key)


def test_a_view_file_without_masks_is_a_view_without_masks(base, tmp_path) -> None:
    """An empty stack [0, H, W] (or only empty masks) used to crash the folder reader with a reshape traceback."""
    _, masks = user_mask_folder(base, tmp_path, _one_mask)
    cams = base.cameras
    h, w = cams[0].height, cams[0].width
    np.save(masks / f"{cams[0].name}.npy", np.zeros((0, h, w), bool))
    np.save(masks / f"{cams[1].name}.npy", np.zeros((3, h, w), bool))
    folder = FolderMasks(masks, cams)
    for cam in cams[:2]:
        view = folder(cam)
        assert view is not None and view.masks.shape == (0, h, w) and len(view.scales) == len(view.scores) == 0
    assert len(folder(cams[2]).masks) == 1


def test_cli_refuses_a_folder_whose_masks_are_all_empty(base, tmp_path, capsys) -> None:
    scene, masks = user_mask_folder(base, tmp_path, lambda lab: np.zeros((0, *lab.shape), bool))
    assert main(["prepare", str(scene), "--masks", str(masks)]) == 0  # views without masks are allowed
    capsys.readouterr()
    assert main(["train", str(scene), "--method", "click", "--iterations", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("splatseg train: error:") and "no segments" in err[-1]
    assert not (Workspace(scene).path(features_name("click"))).exists()

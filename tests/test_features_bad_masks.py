"""Training on mask folders that say almost nothing: it finishes, warns with what it saw, and saves finite features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features.click import ClickConfig
from backend.features.saga import SagaConfig
from backend.features.store import features_name
from backend.features.train import train_features
from backend.masks.prepare import prepare_masks
from backend.workspace import Workspace
from tests.helpers.feature_scenes import TinyScene, prepared_tiny_scene, user_mask_folder


@pytest.fixture
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return prepared_tiny_scene(tmp_path_factory)


def _folder_with(tiny: TinyScene, tmp_path, make) -> tuple:
    scene, masks = user_mask_folder(tiny, tmp_path, make)
    prepare_masks(scene, source=masks, progress=False)
    return scene


def _nearly_nothing(lab: np.ndarray) -> np.ndarray:
    m = np.zeros((1, *lab.shape), bool)
    m[0, 30:33, 30:33] = True
    return m


def _whole_image(lab: np.ndarray) -> np.ndarray:
    return np.ones((2, *lab.shape), bool)


def _one_mask(lab: np.ndarray) -> np.ndarray:
    return (lab > 0)[None]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_nearly_nothing, r"\d+% of pixels have no mask"),
        (_whole_image, "cover the whole image"),
        (_one_mask, "every view has at most one mask"),
    ],
)
@pytest.mark.parametrize("method", ["click", "saga"])
def test_training_finishes_and_warns(tiny_scene, tmp_path, make, expected, method) -> None:
    scene = _folder_with(tiny_scene, tmp_path, make)
    config = (
        ClickConfig(iterations=30, batch_pixels=128, gfl_start=0.5, gfl_every=10, knn_sample=512)
        if method == "click"
        else SagaConfig(iterations=20, batch_pixels=128, knn_sample=512)
    )
    report = train_features(scene, method=method, config=config, pixels_per_view=300, progress=False)
    assert any(__import__("re").search(expected, w) for w in report.warnings), report.warnings
    ws = Workspace(scene)
    entry = ws.entry(features_name(method))
    assert entry["params"]["warnings"] == list(report.warnings)
    assert 0.0 <= entry["params"]["mask_stats"]["uncovered_fraction"] <= 1.0
    tensors = ws.load_tensors(features_name(method), verify=False)
    for key, t in tensors.items():
        if t.is_floating_point() and key != "auto_scale":
            assert torch.isfinite(t).all(), key


def test_good_masks_give_no_warning_about_granularity(tiny_scene, tmp_path) -> None:
    def good(lab: np.ndarray) -> np.ndarray:
        return np.stack([np.isin(lab, (1, 2)), lab == 1, lab == 2, lab == 3, lab == 0])

    scene = _folder_with(tiny_scene, tmp_path, good)
    report = train_features(
        scene, method="click", config=ClickConfig(iterations=5, batch_pixels=64), pixels_per_view=200, progress=False
    )
    assert report.warnings == () and report.mask_stats["uncovered_fraction"] < 0.05

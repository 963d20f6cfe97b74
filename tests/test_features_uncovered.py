"""Training changes for masks that leave pixels uncovered (issue 10), each against its absence."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features.auto_scale import MarginScale
from backend.features.click import ClickConfig, uncovered_as_segment
from backend.features.field import load_field
from backend.features.saga import SagaConfig
from backend.features.train import train_features
from backend.render import pixel_center
from tests.helpers.feature_scenes import TinyScene, prepared_tiny_scene

AUTO_SCALE_MARGIN = 1.5


@pytest.fixture
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return prepared_tiny_scene(tmp_path_factory)


def _copy(tiny: TinyScene, dst) -> object:
    shutil.copytree(tiny.folder, dst)
    return dst


def _coherence(features: torch.Tensor) -> float:  # [M, D] → length of the mean unit vector, 1 = all alike
    return float(F.normalize(features, dim=1).mean(0).norm())


def test_uncovered_labels_become_one_virtual_segment() -> None:
    labels = torch.tensor([3, -1, 5, -1])
    assert uncovered_as_segment(labels, 9).tolist() == [3, 9, 5, 9]


def test_click_uncovered_segment_gives_the_unmasked_ground_one_feature_apart_from_the_objects(
    tiny_scene, tmp_path
) -> None:
    # The tiny scene's ground is covered by no mask. Without the rule its Gaussians are only pushed (from the
    # objects and from each other) and scatter; with it they share one feature, far from both objects.
    ground = tiny_scene.labels == 0
    results = {}
    for on in (False, True):
        folder = _copy(tiny_scene, tmp_path / f"s{on}")
        config = ClickConfig(iterations=80, batch_pixels=256, gfl_start=0.5, gfl_every=30, knn_sample=2048)
        config = ClickConfig(**{**config.__dict__, "uncovered_segment": on})
        train_features(folder, method="click", config=config, pixels_per_view=600, progress=False)
        field = load_field(folder, "click", scene=tiny_scene.scene)
        coarse = field.gaussian_features(level="coarse")
        results[on] = _coherence(coarse[torch.from_numpy(ground)])
    assert results[True] > 0.5 and results[True] > results[False] + 0.3, results


def test_saga_uncovered_segment_pulls_bare_pixels_together(tiny_scene, tmp_path) -> None:
    ground = tiny_scene.labels == 0
    results = {}
    for on in (False, True):
        folder = _copy(tiny_scene, tmp_path / f"s{on}")
        config = SagaConfig(iterations=60, batch_pixels=192, knn_sample=2048, uncovered_segment=on)
        train_features(folder, method="saga", config=config, pixels_per_view=600, progress=False)
        field = load_field(folder, "saga", scene=tiny_scene.scene)
        feats = field.gaussian_features(scale=field.default_scale)
        results[on] = _coherence(feats[torch.from_numpy(ground)])
    assert results[True] > results[False] + 0.1, results


def test_object_scales_are_the_whole_masks_scales(tiny_scene) -> None:
    from backend.features.contrib_cache import build_cache
    from backend.features.saga import object_scales
    from backend.masks.maskset import MaskSet
    from backend.masks.prepare import MASKS_NAME
    from backend.workspace import Workspace

    masks = MaskSet(Workspace(tiny_scene.folder).path(MASKS_NAME))
    views = list(masks)
    cache = build_cache(tiny_scene.scene, tiny_scene.cameras, views, pixels_per_view=600, seed=0)
    auto = object_scales(cache).numpy()
    # Per view, the masks' scales: A's whole mask is the largest mask over A's pixels, its parts are smaller.
    whole_a = np.median([v.scales[np.argmax(v.masks.reshape(len(v.masks), -1).sum(1))] for v in views])
    lower, upper, b = (tiny_scene.labels == k for k in (1, 2, 3))
    seen = np.isfinite(auto)
    for part in (lower, upper):
        assert abs(np.median(auto[part & seen]) / whole_a - 1) < 0.25
    assert np.median(auto[b & seen]) < 0.9 * whole_a  # the sphere is smaller than A


def test_saga_click_without_a_scale_uses_the_clicked_objects_scale(tiny_scene, tmp_path) -> None:
    folder = _copy(tiny_scene, tmp_path / "saga")
    config = SagaConfig(iterations=10, batch_pixels=64, knn_sample=512)
    train_features(folder, method="saga", config=config, pixels_per_view=600, progress=False)
    field = load_field(folder, "saga", scene=tiny_scene.scene)
    field.impl.AUTO_SCALE = MarginScale(1.5)  # the start scale itself, times a margin (the plateau: test_auto_scale)
    cam = tiny_scene.cameras[0]
    browser = dataclasses.replace(cam, name="a browser's camera")  # no workspace masks for it
    scales = {}
    for name, labels in (("A lower", (1,)), ("B", (3,))):
        x, y = tiny_scene.deepest_pixel(cam.name, labels)
        auto = field.auto_scale(browser, [pixel_center(x, y)])
        assert auto is not None and np.isfinite(auto)
        assert auto == pytest.approx(field.auto_scale(cam, [pixel_center(x, y)], from_masks=False))
        assert field.segment(browser, [pixel_center(x, y)]).scale == pytest.approx(auto)
        scales[name] = auto
    assert scales["A lower"] > scales["B"]  # A is bigger: its part's click queries A's whole scale
    # Without object scales in the features, a click outside the workspace views falls back to the default scale.
    del field._tensors["auto_scale"]
    assert field.auto_scale(browser, [pixel_center(x, y)]) is None
    assert field.segment(browser, [pixel_center(x, y)]).scale == pytest.approx(field.default_scale)


def test_saga_click_in_a_workspace_view_uses_the_clicked_pixels_whole_mask(tiny_scene, tmp_path) -> None:
    from backend.masks.maskset import MaskSet
    from backend.masks.prepare import MASKS_NAME
    from backend.workspace import Workspace

    folder = _copy(tiny_scene, tmp_path / "saga")
    config = SagaConfig(iterations=10, batch_pixels=64, knn_sample=512)
    train_features(folder, method="saga", config=config, pixels_per_view=600, progress=False)
    field = load_field(folder, "saga", scene=tiny_scene.scene)
    field.impl.AUTO_SCALE = MarginScale(AUTO_SCALE_MARGIN)
    masks = MaskSet(Workspace(folder).path(MASKS_NAME))
    for cam in tiny_scene.cameras[:3]:
        view = masks.read_view(cam.name)
        x, y = tiny_scene.deepest_pixel(cam.name, (1,))  # A's lower part: its whole mask is A
        covering = np.flatnonzero(view.masks[:, y, x])
        assert covering.size >= 2  # the part and the whole
        areas = [int(view.masks[i].sum()) for i in covering]
        whole = float(view.scales[covering[int(np.argmax(areas))]])
        assert field.auto_scale(cam, [pixel_center(x, y)]) == pytest.approx(whole * AUTO_SCALE_MARGIN)
        assert field.segment(cam, [pixel_center(x, y)]).scale == pytest.approx(whole * AUTO_SCALE_MARGIN)
    # A pixel no mask covers gives no mask scale: the clicked Gaussians' stored scale answers instead.
    cam = tiny_scene.cameras[0]
    view = masks.read_view(cam.name)
    bare = np.argwhere(~view.masks.any(0))
    assert np.isnan(view.coarse_scale_at(int(bare[0][1]), int(bare[0][0])))
    assert np.isnan(view.coarse_scale_at(-1, 0)) and np.isnan(view.coarse_scale_at(view.width, 0))


def test_saga_click_scale_prefers_the_masks_then_the_stored_object_scale() -> None:
    from backend.features.method import ClickEvidence
    from backend.features.saga import SagaMethod

    n, d = 4, 8
    tensors = {
        "quantiles": torch.tensor([0.1, 1.0]),
        "gate_weight": torch.zeros(d),
        "gate_bias": torch.zeros(d),
        "auto_scale": torch.tensor([0.2, 0.2, float("nan"), 0.8]),
    }
    saga = SagaMethod(torch.randn(n, d), tensors)
    saga.AUTO_SCALE = MarginScale(AUTO_SCALE_MARGIN)
    hit = [(torch.tensor([0, 1, 2]), torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))]
    assert saga.click_scale(ClickEvidence(hit, [])) == pytest.approx(0.2 * AUTO_SCALE_MARGIN)
    assert saga.click_scale(ClickEvidence(hit, [0.5])) == pytest.approx(0.5 * AUTO_SCALE_MARGIN)
    assert saga.click_scale(ClickEvidence(hit, [0.5, 2.0])) == pytest.approx(1.0 * AUTO_SCALE_MARGIN)  # geometric
    assert saga.click_scale(ClickEvidence(hit, [float("nan")])) == pytest.approx(0.2 * AUTO_SCALE_MARGIN)
    del tensors["auto_scale"]
    assert saga.click_scale(ClickEvidence(hit, [])) is None

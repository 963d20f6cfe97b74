"""FeatureField on hand-made features: thresholds, negatives, the floater filter, SAGA's gated bank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.core.camera import look_at
from backend.core.errors import SplatsegError
from backend.core.scene import GaussianScene
from backend.features.field import FeatureField
from backend.features.floaters import FloaterFilter


def _blobs(seed: int = 0) -> tuple[GaussianScene, np.ndarray]:
    """Two dense blobs side by side (labels 0 and 1) and five isolated specks far away (label 2)."""
    rng = np.random.default_rng(seed)
    ball = rng.normal(size=(1200, 3))
    ball *= (rng.random((1200, 1)) ** (1 / 3)) * 0.12 / np.linalg.norm(ball, axis=1, keepdims=True)  # uniform
    a = ball[:600] + np.array([-0.3, 0.0, 0.0])
    b = ball[600:] + np.array([0.3, 0.0, 0.0])
    specks = rng.uniform(-1, 1, (5, 3)) + np.array([0.0, 1.5, 0.0])
    means = np.concatenate([a, b, specks]).astype(np.float32)
    labels = np.repeat([0, 1, 2], [600, 600, 5])
    n = len(means)
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(means),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.02),
        opacities=torch.full((n,), 0.9),
        colors=torch.full((n, 3), 0.5),
    )
    return scene, labels


def _camera():
    return look_at(
        "front", np.array([0.0, -2.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=64, height=64, fov_y_deg=50.0
    )


def _click_field(labels: np.ndarray, scene: GaussianScene, **kwargs) -> FeatureField:
    # Blob A along e0, blob B at cos 0.6 to it, the specks exactly like A (the floaters a filter must catch).
    coarse = torch.zeros(len(labels), 12)
    coarse[labels == 0, 0] = 1.0
    coarse[labels == 1, 0], coarse[labels == 1, 1] = 0.6, 0.8
    coarse[labels == 2, 0] = 1.0
    fine = F.normalize(torch.ones(len(labels), 12), dim=1)
    feats = torch.cat([coarse, fine], dim=1)
    return FeatureField(scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)}, **kwargs)


def _pixel_of(camera, point: np.ndarray) -> tuple[float, float]:
    p = camera.world_to_camera[:3, :3] @ point + camera.world_to_camera[:3, 3]
    return (camera.fx * p[0] / p[2] + camera.cx, camera.fy * p[1] / p[2] + camera.cy)


def test_threshold_negatives_and_floaters() -> None:
    scene, labels = _blobs()
    field = _click_field(labels, scene)
    cam = _camera()
    on_a, on_b = _pixel_of(cam, np.array([-0.3, 0, 0])), _pixel_of(cam, np.array([0.3, 0, 0]))
    strict = field.segment(cam, [on_a], threshold=0.9)
    assert np.array_equal(strict.mask, labels == 0)  # the specks are like A but not connected to it
    unfiltered = field.segment(cam, [on_a], threshold=0.9, filter_floaters=False)
    assert unfiltered.mask[labels == 2].all()
    loose = field.segment(cam, [on_a], threshold=0.5)
    assert loose.mask[labels == 1].all() and loose.mask[labels == 0].all()  # B is similar enough
    minus_b = field.segment(cam, [on_a], [on_b], threshold=0.5)
    assert np.array_equal(minus_b.mask, labels == 0)  # B is closer to the negative than to the positive
    both = field.segment(cam, [on_a, on_b], threshold=0.9)
    assert np.array_equal(both.mask, labels < 2)
    assert strict.scores.dtype == np.float32 and strict.milliseconds > 0 and strict.level == "coarse"


def test_a_click_on_nothing_selects_nothing_and_bad_arguments_are_errors() -> None:
    scene, labels = _blobs()
    field = _click_field(labels, scene)
    cam = _camera()
    assert field.segment(cam, [(1.0, 1.0)]).count == 0  # the corner ray misses every blob
    with pytest.raises(SplatsegError, match="coarse or fine"):
        field.segment(cam, [(32.0, 32.0)], level="medium")
    with pytest.raises(SplatsegError, match="--scale is for SAGA"):
        field.segment(cam, [(32.0, 32.0)], scale=0.1)
    with pytest.raises(SplatsegError, match="at least one positive"):
        field.segment(cam, [])


def test_floater_filter_keeps_connected_components() -> None:
    scene, labels = _blobs()
    means = scene.means.numpy()
    filt = FloaterFilter(means)
    a, b, specks = (np.flatnonzero(labels == k) for k in range(3))
    kept = filt(np.concatenate([a, specks]), a[:3])
    assert set(kept.tolist()) == set(a.tolist())
    small_b = b[np.argsort(means[b, 0])[-8:]]  # 8 of B's Gaussians: far from A, under 2% of it
    assert set(filt(np.concatenate([a, small_b]), a[:3]).tolist()) == set(a.tolist())
    assert set(filt(np.concatenate([a, b]), a[:3]).tolist()) == set(a.tolist()) | set(b.tolist())
    assert filt(np.zeros(0, np.int64), a[:3]).size == 0


def test_saga_bank_is_gated_and_cached() -> None:
    scene, labels = _blobs()
    g = torch.Generator().manual_seed(0)
    tensors = {
        "features": F.normalize(torch.randn(len(labels), 32, generator=g), dim=1),
        "gate_weight": torch.randn(32, 1, generator=g),
        "gate_bias": torch.zeros(32),
        "quantiles": torch.linspace(0.1, 1.0, 50),
    }
    field = FeatureField(scene, "saga", tensors)
    low, high = field.gaussian_features(scale=0.1), field.gaussian_features(scale=1.0)
    assert low.shape == (len(labels), 32) and torch.allclose(low.norm(dim=1), torch.ones(len(labels)), atol=1e-5)
    assert not torch.allclose(low, high)
    assert field.gaussian_features(scale=0.1).data_ptr() == low.data_ptr()  # cached per scale
    assert field.default_scale == pytest.approx(field.quantiles.inverse(0.8))
    with pytest.raises(SplatsegError, match="--level is for click"):
        field.segment(_camera(), [(32.0, 32.0)], level="fine")


def test_a_fine_click_keeps_only_the_piece_it_touches() -> None:
    # B is a separate piece as big as A and similar enough at both levels: a coarse click keeps it (an object may be
    # several pieces), a fine click does not (a part is one piece; ClickMethod.floater_keep_ratio).
    blobs, labels = _blobs()
    means = blobs.means.clone()
    means[torch.from_numpy(labels == 1)] += torch.tensor([0.9, 0.0, 0.0])  # B well apart from A: its own piece
    n = len(labels)
    scene = GaussianScene.from_activated(
        means=means,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.02),
        opacities=torch.full((n,), 0.9),
        colors=torch.full((n, 3), 0.5),
    )
    field = _click_field(labels, scene)
    cam = _camera()
    on_a = _pixel_of(cam, np.array([-0.3, 0, 0]))
    coarse = field.segment(cam, [on_a], level="coarse", threshold=0.5)
    assert coarse.mask[labels == 1].all() and coarse.mask[labels == 0].all()
    fine = field.segment(cam, [on_a], level="fine", threshold=0.5)
    assert np.array_equal(fine.mask, labels == 0)
    assert field.segment(cam, [on_a], level="fine", threshold=0.5, filter_floaters=False).mask[labels == 1].all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.bfloat16])
def test_the_load_check_finds_any_nan_or_infinity(dtype) -> None:
    """`_all_finite` (load_field's check of the features) sums in float64: one NaN or infinity anywhere, or both
    infinities (which cancel to NaN), is found; the largest finite values are not taken for overflow."""
    from backend.features.field import _all_finite

    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(5000, 8).to(dtype)
        x[4321, 5] = bad
        assert not _all_finite(x), (dtype, bad)
    x = torch.randn(20, 3).to(dtype)
    x[0, 0], x[1, 0] = float("inf"), -float("inf")
    assert not _all_finite(x)
    assert _all_finite(torch.full((100_000, 2), torch.finfo(dtype).max, dtype=dtype))
    assert _all_finite(torch.randn(3000, 24).to(dtype)) and _all_finite(torch.zeros(5, 0, dtype=dtype))

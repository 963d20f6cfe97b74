"""The SAM source on a tiny random-weight SAM (the real generator code path), and its checkpoint handling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import backend.masks.sam as sam_module
from backend.core.camera import look_at
from backend.core.errors import InputError
from backend.masks.sam import SamMasks, build_sam_tiny, generate_view_masks, load_sam, mask_generator, model_type_of
from tests.conftest import random_scene


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tensors are tiny: a second intra-op thread only adds spin-waits (35× slower on a busy 2-core CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LENIENT = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
"""Random weights predict low IoUs; without these thresholds the generator would (correctly) return nothing."""


@pytest.fixture(scope="module")
def tiny():
    return build_sam_tiny(0)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test here may reach the network or the real cache."""
    monkeypatch.setattr(sam_module, "is_online", lambda *a, **k: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _image(h: int = 64, w: int = 64) -> np.ndarray:  # [H, W, 3] uint8: two flat regions on noise
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    image[8:40, 8:30] = (220, 30, 30)
    image[30:60, 35:60] = (30, 200, 60)
    return image


def _well_formed(view, h, w):
    m = len(view.masks)
    assert view.masks.shape == (m, h, w) and view.masks.dtype == bool
    assert view.scores.shape == (m,) and view.scores.dtype == np.float32 and np.isfinite(view.scores).all()
    assert view.scales.shape == (m,) and np.isnan(view.scales).all()
    assert all(mask.any() for mask in view.masks)
    areas = view.masks.reshape(m, -1).sum(1)
    assert (np.diff(areas) <= 0).all()  # largest first


def test_tiny_sam_runs_the_automatic_generator(tiny):
    view = generate_view_masks(mask_generator(tiny, **LENIENT), _image(), "view_000")
    assert view.name == "view_000"
    _well_formed(view, 64, 64)
    # A non-square image of another size goes through SAM's resize and crop-back.
    _well_formed(generate_view_masks(mask_generator(tiny, **LENIENT), _image(40, 72), "wide"), 40, 72)


def test_tiny_sam_is_deterministic_for_a_seed():
    a, b = build_sam_tiny(3), build_sam_tiny(3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_views_without_images_are_rendered(tiny):
    cam = look_at("nophoto", np.array([0.0, -3.0, 0.8]), np.zeros(3), np.array([0.0, 0.0, 1.0]),
                  width=48, height=40, fov_y_deg=50.0)  # fmt: skip
    source = SamMasks(mask_generator(tiny, **LENIENT), random_scene(500), backend="torch")
    image = source.image(cam)
    assert image.shape == (40, 48, 3) and image.dtype == np.uint8 and image.max() > 0
    _well_formed(source(cam), 40, 48)
    with pytest.raises(InputError, match="no image"):
        SamMasks(mask_generator(tiny, **LENIENT))(cam)


def test_offline_without_a_checkpoint_names_the_flag():
    with pytest.raises(InputError, match=r"no SAM checkpoint: pass --sam-checkpoint PATH \(sam_vit_b_01ec64.pth"):
        load_sam("vit_b", None, "cpu")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickled_checkpoint_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    path = tmp_path / "sam_vit_b_evil.pth"
    with open(path, "wb") as f:
        torch.save({"weights": Boom()}, f)
    with pytest.raises(InputError, match="not a plain SAM state dict"):
        load_sam(None, path, "cpu")
    path.write_bytes(pickle.dumps({"x": 1}))  # legacy pickle, not torch's zip format
    with pytest.raises(InputError, match="not a plain SAM state dict"):
        load_sam("vit_b", path, "cpu")
    with pytest.raises(InputError, match="file not found"):
        load_sam("vit_b", tmp_path / "missing.pth", "cpu")


def test_model_type_from_checkpoint_name():
    assert model_type_of("/x/sam_vit_b_01ec64.pth") == "vit_b"
    assert model_type_of("sam_vit_l_0b3195.pth") == "vit_l"
    assert model_type_of("my_model.pth") == "vit_h"
    assert model_type_of(None) == "vit_h"
    with pytest.raises(InputError, match="unknown SAM model"):
        load_sam("vit_x", None, "cpu")  # type: ignore[arg-type]

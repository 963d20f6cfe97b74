"""`RenderMemo`: prepare renders each view once, and what it stores is what rendering every time would give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.io.ply import write_ply
from backend.io.scene_folder import load_scene
from backend.masks.geometric import GeometricMasks
from backend.masks.prepare import prepare_masks
from backend.masks.scale import view_mask_scales
from backend.render import reference, render
from backend.render.memo import RenderMemo
from backend.viewpoints.virtual import scene_cameras
from tests.conftest import random_scene


def _cloud(tmp_path: Path) -> Path:
    folder = tmp_path / "cloud"
    folder.mkdir()
    write_ply(folder / "model.ply", random_scene(800, seed=4))
    return folder


def test_a_kept_render_is_the_render_and_the_budget_bounds_what_is_kept(tmp_path: Path) -> None:
    folder = _cloud(tmp_path)
    cams = scene_cameras(folder, views=3, resolution=32, backend="torch")
    scene, _ = load_scene(folder)
    memo = RenderMemo()
    first = memo.render(scene, cams[0], backend="torch")
    assert len(memo) == 1 and memo.get(cams[0]) is first
    fresh = render(scene, cams[0], backend="torch")
    for a, b in ((first.rgb, fresh.rgb), (first.depth, fresh.depth), (first.alpha, fresh.alpha)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert memo.get(cams[1]) is None  # another view (another pose) is not the first one's render
    memo.forget(cams[0])
    assert len(memo) == 0 and memo.get(cams[0]) is None
    small = RenderMemo(budget_bytes=32 * 32 * 5 * 4)  # one view of RGB, depth, alpha in float32
    assert small.keep(cams[0], fresh) and not small.keep(cams[1], fresh)
    assert len(small) == 1


def test_prepare_renders_each_virtual_view_once_with_the_masks_and_scales_of_rendering_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cloud(tmp_path)
    calls = []
    real = reference.render_reference

    def counted(scene, camera, **kwargs):
        calls.append(camera.name)
        return real(scene, camera, **kwargs)

    monkeypatch.setattr(reference, "render_reference", counted)
    masks = prepare_masks(folder, source="geometric", views=3, resolution=32, backend="torch", progress=False)
    assert sorted(calls) == ["virtual_000", "virtual_001", "virtual_002"]  # photo, masks and scales: one render

    # The reference: every step renders for itself (the way prepare did before the memo).
    monkeypatch.setattr(reference, "render_reference", real)
    scene, _ = load_scene(folder)
    cams = scene_cameras(folder, backend="torch")
    source = GeometricMasks(scene, backend="torch")
    for cam in cams:
        want = source(cam)
        out = render(scene, cam, backend="torch")
        want.scales = view_mask_scales(want.masks, out.depth.numpy(), out.alpha.numpy(), cam)
        got = masks.read_view(cam.name)
        assert len(want.masks) > 0
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.scales, want.scales)

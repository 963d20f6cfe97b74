"""Content bounds, up axis and orbit cameras; virtual cameras in the workspace; geometric masks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.camera import look_at
from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.cameras import write_inria_cameras
from backend.io.compressed_ply import read_compressed_ply
from backend.io.ply import write_ply
from backend.masks.geometric import geometric_view_masks
from backend.masks.prepare import prepare_masks
from backend.render import render
from backend.viewpoints import content_bounds, estimate_up, orbit_cameras, up_from_cameras
from backend.viewpoints.virtual import CAMERAS_NAME, scene_cameras

REAL = Path("/work/shared/data/real/biker.compressed.ply")
needs_real = pytest.mark.skipif(not REAL.is_file(), reason="real capture not on this machine")


def _scene(means: torch.Tensor, opacity: torch.Tensor, scale: float = 0.05) -> GaussianScene:
    n = len(means)
    return GaussianScene.from_activated(
        means=means,
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), scale),
        opacities=opacity,
        colors=torch.rand(n, 3, generator=torch.Generator().manual_seed(1)),
    )


def _subject_with_clutter(seed: int = 0) -> GaussianScene:
    """A dense unit ball at (3, 0, 0), far floaters, and a faint background shell of radius 50."""
    g = torch.Generator().manual_seed(seed)
    ball = torch.randn(5000, 3, generator=g)
    ball = ball / ball.norm(dim=1, keepdim=True) * torch.rand(5000, 1, generator=g) + torch.tensor([3.0, 0, 0])
    floaters = torch.randn(200, 3, generator=g) * 100
    shell = torch.randn(3000, 3, generator=g)
    shell = shell / shell.norm(dim=1, keepdim=True) * 50
    means = torch.cat([ball, floaters, shell])
    opacity = torch.cat([torch.full((5000,), 0.9), torch.full((200,), 0.5), torch.full((3000,), 0.1)])
    return _scene(means, opacity)


def test_content_bounds_ignore_floaters_and_background_shell() -> None:
    bounds = content_bounds(_subject_with_clutter())
    assert np.linalg.norm(bounds.center - [3, 0, 0]) < 0.2
    assert 0.6 < bounds.radius < 1.5


def test_up_from_cameras_is_their_mean_up() -> None:
    up = np.array([0.0, 0.0, 1.0])
    cams = [
        look_at(
            f"c{i}", np.array([5 * np.cos(a), 5 * np.sin(a), 1.0]), np.zeros(3), up, width=8, height=8, fov_y_deg=50
        )
        for i, a in enumerate(np.linspace(0, 2 * np.pi, 8, endpoint=False))
    ]
    np.testing.assert_allclose(up_from_cameras(cams), up, atol=1e-9)
    np.testing.assert_allclose(estimate_up(_subject_with_clutter(), cams), up, atol=1e-9)


def test_up_of_a_flat_scene_is_its_normal() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.rand(4000, 3, generator=g) * torch.tensor([4.0, 0.1, 4.0])  # a slab, thin along y
    np.testing.assert_allclose(estimate_up(_scene(means, torch.full((4000,), 0.8))), [0, -1, 0])


def test_orbit_cameras_look_at_the_content() -> None:
    bounds = content_bounds(_subject_with_clutter())
    cams = orbit_cameras(bounds, np.array([0.0, 0.0, 1.0]), views=48, resolution=512)
    assert len(cams) == 48 and len({c.name for c in cams}) == 48
    assert all((c.width, c.height) == (512, 512) for c in cams)
    for cam in cams:
        p = cam.world_to_camera @ np.append(bounds.center, 1.0)
        assert p[2] > 0
        np.testing.assert_allclose([cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy], [256, 256])
        image_up = -cam.world_to_camera[1, :3]  # world direction of the image's up
        assert image_up @ [0, 0, 1] > 0
    elevations = {
        round(float(np.arcsin((c.center - bounds.center)[2] / np.linalg.norm(c.center - bounds.center))), 3)
        for c in cams
    }
    assert len(elevations) == 3


@needs_real
def test_biker_is_minus_y_up_and_every_virtual_view_shows_it() -> None:
    scene = read_compressed_ply(REAL)
    up = estimate_up(scene)
    np.testing.assert_allclose(up, [0, -1, 0])
    cams = orbit_cameras(content_bounds(scene), up, views=12, resolution=24)
    light = scene.subset(torch.arange(0, len(scene), 16))  # every 16th Gaussian: enough to see, 16× faster
    for cam in cams:
        with torch.no_grad():
            alpha = render(light, cam, backend="torch").alpha.numpy()
        assert alpha[9:15, 9:15].mean() > 0.5, cam.name  # the subject fills the centre
        assert alpha[:, :3].mean() < 0.2, cam.name  # and the frame's edges are background


# ---- virtual cameras in the workspace -------------------------------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(3)
    means = torch.randn(600, 3, generator=g) * torch.tensor([0.3, 0.6, 0.3])
    folder = tmp_path / "scene"
    folder.mkdir(parents=True)
    write_ply(folder / "model.ply", _scene(means, torch.full((600,), 0.9), scale=0.08))
    return folder


def test_virtual_cameras_are_made_once_in_the_workspace_and_remade_for_a_new_model(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cams = scene_cameras(folder, views=4, resolution=32, backend="torch")
    assert [c.name for c in cams] == [f"virtual_{i:03d}" for i in range(4)]
    assert sorted(p.name for p in folder.iterdir()) == [".splatseg", "model.ply"]  # nothing else in the user's folder
    stored = json.loads((folder / ".splatseg" / CAMERAS_NAME).read_text())
    assert [e["img_name"] for e in stored] == [c.name for c in cams]
    assert all(Path(c.image_path).is_file() and ".splatseg" in c.image_path for c in cams)
    manifest = json.loads((folder / ".splatseg" / "manifest.json").read_text())
    assert manifest["files"][CAMERAS_NAME]["params"]["views"] == 4
    first = os.stat(cams[0].image_path).st_mtime_ns

    again = scene_cameras(folder, backend="torch")  # no override: the stored set, not re-rendered
    assert [c.name for c in again] == [c.name for c in cams]
    assert os.stat(again[0].image_path).st_mtime_ns == first

    write_ply(folder / "model.ply", _scene(torch.randn(300, 3) + 5, torch.full((300,), 0.9)))  # the model changed
    moved = scene_cameras(folder, backend="torch")
    assert len(moved) == 4 and moved[0].width == 32  # remade as it was asked for
    assert not np.allclose(moved[0].world_to_camera, cams[0].world_to_camera)
    assert len(scene_cameras(folder, views=2, resolution=32, backend="torch")) == 2  # other counts: made again


def test_views_option_is_refused_where_the_scene_has_cameras(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cam = look_at("a", np.array([0, 0, -3.0]), np.zeros(3), np.array([0, -1.0, 0]), width=16, height=16, fov_y_deg=50)
    write_inria_cameras(folder / "cameras.json", [cam])
    assert [c.name for c in scene_cameras(folder)] == ["a"]
    with pytest.raises(InputError, match="own cameras"):
        scene_cameras(folder, views=4)
    with pytest.raises(InputError, match="--views 0"):
        scene_cameras(_folder(tmp_path / "b"), views=0)


def test_prepare_geometric_masks_without_cameras(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    masks = prepare_masks(folder, source="geometric", views=3, resolution=32, backend="torch", progress=False)
    assert masks.index["source"] == "geometric"
    assert sorted(masks.views) == ["virtual_000", "virtual_001", "virtual_002"]


def test_geometric_masks_split_a_depth_step_and_nest_scales() -> None:
    """Two flat squares of equal colour, one behind the other: depth alone separates them."""
    h = w = 64
    rgb = np.full((h, w, 3), 0.5)
    depth = np.full((h, w), 2.0)
    depth[:, 32:] = 4.0
    alpha = np.ones((h, w))
    cam = look_at("v", np.array([0, 0, -3.0]), np.zeros(3), np.array([0, -1.0, 0]), width=w, height=h, fov_y_deg=50)
    view = geometric_view_masks(rgb, depth, alpha, cam)
    left = np.zeros((h, w), bool)
    left[:, :32] = True
    ious = [(m & left).sum() / (m | left).sum() for m in view.masks]
    assert max(ious) > 0.9  # one segment is the near square
    assert all(m.sum() < h * w for m in view.masks)  # a foreground filling the picture is not an object


def test_viewer_prepare_uses_geometric_masks_offline_without_sam_weights(tmp_path: Path, monkeypatch) -> None:
    from backend.masks import sam
    from backend.masks.prepare import viewer_source

    folder = _folder(tmp_path)
    monkeypatch.setattr(sam, "is_online", lambda *a, **k: False)
    monkeypatch.setattr(sam, "cache_dir", lambda: tmp_path / "no-weights")
    source, note = viewer_source(folder)
    assert source == "geometric" and "rougher than SAM" in note
    weights = tmp_path / "no-weights" / sam.CHECKPOINT_FILES[sam.DEFAULT_SAM_MODEL]
    weights.parent.mkdir()
    weights.write_bytes(b"")
    assert viewer_source(folder)[0] == "auto"


def test_up_choice_is_stored_by_name_and_resolved(tmp_path):
    from backend.viewpoints.up_choice import CHOICES, UP_FILE, resolve_up, save_up, saved_up
    from backend.workspace import Workspace

    ws = Workspace(tmp_path, tmp_path / ".splatseg")
    assert saved_up(ws) == "estimated"  # nothing stored yet
    save_up(ws, "+y")
    assert saved_up(ws) == "+y"
    with pytest.raises(InputError, match="unknown up direction"):
        save_up(ws, "up")
    assert saved_up(ws) == "+y"
    ws.path(UP_FILE).write_text('{"up": [0, 1, 0]}')  # not a choice splatseg writes: ignored, not trusted
    assert saved_up(ws) == "estimated"
    ws.path(UP_FILE).write_text("not json")
    assert saved_up(ws) == "estimated"
    g = torch.Generator().manual_seed(0)
    n = 2000
    scene = GaussianScene.from_activated(
        means=torch.randn(n, 3, generator=g) * torch.tensor([0.2, 1.0, 0.2]),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.05),
        opacities=torch.full((n,), 0.9),
        colors=torch.full((n, 3), 0.5),
    )
    assert resolve_up("-z", scene).tolist() == [0.0, 0.0, -1.0]
    assert abs(resolve_up("estimated", scene)[1]) == 1.0  # the tall axis
    assert len(CHOICES) == 7

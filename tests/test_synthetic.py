"""The synthetic tabletop: ground truth that the segmentation methods are scored against must itself be right."""

from __future__ import annotations

import json
import math

import numpy as np
import plyfile
import pytest
import torch
from PIL import Image
from scipy.spatial import cKDTree

from backend.core.errors import SplatsegError
from backend.core.rotations import quat_to_rotmat
from backend.synthetic import SyntheticScene, build_tabletop, orbit_cameras, write_synthetic_scene

N = 30_000


@pytest.fixture(scope="module")
def synth() -> SyntheticScene:
    return build_tabletop(seed=0, num_gaussians=N)


def _part_id(synth: SyntheticScene, name: str) -> int:
    return next(k for k, v in synth.part_names.items() if v == name)


def _mean_color(synth: SyntheticScene, part: str) -> np.ndarray:  # [3]
    mask = torch.from_numpy(synth.part_labels == _part_id(synth, part))
    return synth.scene.dc_colors[mask].mean(dim=0).numpy()


def test_same_seed_same_arrays_and_other_seed_differs(synth: SyntheticScene) -> None:
    again = build_tabletop(seed=0, num_gaussians=N)
    for name in ("means", "quats", "log_scales", "logit_opacities", "sh"):
        assert torch.equal(getattr(synth.scene, name), getattr(again.scene, name)), name
    assert np.array_equal(synth.object_labels, again.object_labels)
    assert np.array_equal(synth.part_labels, again.part_labels)

    other = build_tabletop(seed=1, num_gaussians=N)
    assert not torch.equal(synth.scene.means, other.scene.means)
    assert other.part_names == synth.part_names  # the same content, laid out and sampled differently


def test_gaussian_count_is_the_requested_one() -> None:
    for n in (5_000, 20_001, 61_237):
        s = build_tabletop(seed=2, num_gaussians=n)
        assert abs(len(s.scene) - n) <= 0.01 * n
        assert s.object_labels.shape == s.part_labels.shape == (len(s.scene),)
        assert s.object_labels.dtype == s.part_labels.dtype == np.int32


def test_objects_and_parts(synth: SyntheticScene) -> None:
    assert len(synth.object_names) >= 6
    assert 0 not in synth.object_names and 0 not in synth.part_names
    for object_id, name in synth.object_names.items():
        parts = [p for p, o in synth.part_to_object.items() if o == object_id]
        assert 2 <= len(parts) <= 4, name
        assert all(synth.part_names[p].startswith(name + "/") for p in parts)
        # Every part is really present in the Gaussians.
        assert all((synth.part_labels == p).sum() > 0 for p in parts), name
    assert "mug/handle" in synth.part_names.values()


def test_every_part_belongs_to_its_object(synth: SyntheticScene) -> None:
    lookup = np.zeros(max(synth.part_names) + 1, dtype=np.int32)
    for part, obj in synth.part_to_object.items():
        lookup[part] = obj
    assert np.array_equal(lookup[synth.part_labels], synth.object_labels)
    background = synth.object_labels == 0
    assert 0.05 < background.mean() < 0.3  # a background exists, and the objects get most of the budget


def test_some_colours_are_shared_across_objects(synth: SyntheticScene) -> None:
    red = [_mean_color(synth, p) for p in ("mug/body", "car/body")]
    white = [_mean_color(synth, p) for p in ("lamp/base", "mug/handle", "bottle/cap")]
    for group in (red, white):
        for c in group[1:]:
            np.testing.assert_allclose(c, group[0], atol=0.02)
    assert np.abs(red[0] - white[0]).max() > 0.3
    # Slight per-Gaussian noise, not flat colours.
    mask = torch.from_numpy(synth.part_labels == _part_id(synth, "mug/body"))
    std = synth.scene.dc_colors[mask].std(dim=0)
    assert bool(((std > 0.01) & (std < 0.06)).all())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_objects_stand_on_the_table_without_touching_each_other(seed: int) -> None:
    synth = build_tabletop(seed=seed, num_gaussians=12_000)
    means = synth.scene.means.numpy()
    table = next(k for k, v in synth.object_names.items() if v == "table")
    top = synth.part_labels == _part_id(synth, "table/top")
    assert abs(means[top, 2].max()) < 1e-4  # the table top is at z = 0
    on_table = [k for k in synth.object_names if k != table]
    for obj in on_table:
        pts = means[synth.object_labels == obj]
        assert pts[:, 2].min() >= -1e-4, synth.object_names[obj]
        assert pts[:, 2].min() < 0.02, synth.object_names[obj]  # standing on it, not floating
        assert np.all(np.abs(pts[:, 0]) < 0.6) and np.all(np.abs(pts[:, 1]) < 0.4)
    trees = {obj: cKDTree(means[synth.object_labels == obj]) for obj in on_table}
    for i, a in enumerate(on_table):
        for b in on_table[i + 1 :]:
            distance, _ = trees[b].query(means[synth.object_labels == a], k=1)
            assert distance.min() > 0.005, (synth.object_names[a], synth.object_names[b])


def test_gaussians_are_flat_surface_splats(synth: SyntheticScene) -> None:
    scales = synth.scene.scales
    assert torch.allclose(scales[:, 2] / scales[:, :2].mean(dim=1), torch.tensor(0.2), atol=1e-4)
    opacities = synth.scene.opacities
    assert float(opacities.min()) >= 0.9 - 1e-4 and float(opacities.max()) <= 0.99 + 1e-4
    # The thin axis is the surface normal: +z on the top face of the table.
    means = synth.scene.means
    on_top_face = (means[:, 2] > -1e-4) & (means[:, 0].abs() < 0.59) & (means[:, 1].abs() < 0.39)
    top = torch.from_numpy(synth.part_labels == _part_id(synth, "table/top")) & on_top_face
    thin_axis = quat_to_rotmat(synth.scene.unit_quats[top])[:, :, 2]
    assert float(thin_axis[:, 2].abs().min()) > 0.999
    # Object splats are a few millimetres at the default-range density.
    objects = torch.from_numpy(synth.object_labels > 1)
    assert 0.002 < float(scales[objects, 0].median()) < 0.01


def test_orbit_cameras_look_at_the_table(synth: SyntheticScene) -> None:
    cams = orbit_cameras(synth, views=9, resolution=96, seed=0)
    assert [c.name for c in cams] == [f"view_{i:03d}" for i in range(9)]
    elevations = []
    for cam in cams:
        assert (cam.width, cam.height) == (96, 96)
        p = cam.world_to_camera @ np.append(synth.center, 1.0)
        u, v = cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy
        assert abs(u - 48) < 1e-6 and abs(v - 48) < 1e-6
        down = cam.world_to_camera[1, :3]  # camera y (image down) in world coordinates
        assert down[2] < 0  # world up is image up
        offset = cam.center - synth.center
        elevations.append(math.degrees(math.asin(offset[2] / np.linalg.norm(offset))))
    assert min(elevations) > 20 and max(elevations) < 60
    assert max(elevations) - min(elevations) > 20  # several rings, not one
    again = orbit_cameras(synth, views=9, resolution=96, seed=0)
    assert all(np.array_equal(a.world_to_camera, b.world_to_camera) for a, b in zip(cams, again))


def test_write_synthetic_scene(tmp_path) -> None:
    out = tmp_path / "scene"
    synth = write_synthetic_scene(out, views=4, resolution=64, num_gaussians=12_000, progress=False)
    names = [f"view_{i:03d}" for i in range(4)]

    ply = plyfile.PlyData.read(str(out / "point_cloud.ply"))
    props = [p.name for p in ply["vertex"].properties]
    assert len(ply["vertex"].data) == len(synth.scene) == 12_000
    assert not any("label" in p or p in ("object", "part") for p in props)  # the answer is not in the model

    cams = json.loads((out / "cameras.json").read_text())
    assert sorted(c["img_name"] for c in cams) == names
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert len(frames) == 4

    gt = np.load(out / "gaussian_labels.npz")
    assert np.array_equal(gt["object"], synth.object_labels) and gt["object"].dtype == np.int32
    assert np.array_equal(gt["part"], synth.part_labels)
    meta = json.loads((out / "labels.json").read_text())
    assert meta["parts"][str(_part_id(synth, "mug/handle"))] == "mug/handle"
    assert meta["part_to_object"] == {str(k): v for k, v in synth.part_to_object.items()}

    seen_objects: set[int] = set()
    agree, labelled = 0, 0
    for name in names:
        rgb = np.asarray(Image.open(out / "images" / f"{name}.png"))
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert rgb.std() > 10  # a picture, not a blank
        objects = np.asarray(Image.open(out / "labels" / f"{name}_object.png"))
        parts = np.asarray(Image.open(out / "labels" / f"{name}_part.png"))
        assert objects.shape == parts.shape == (64, 64)
        assert objects.dtype == parts.dtype == np.uint16  # 16-bit label maps
        assert set(np.unique(objects)) <= {0, *synth.object_names}
        assert set(np.unique(parts)) <= {0, *synth.part_names}
        seen_objects |= set(np.unique(objects).tolist()) - {0}
        has_part = parts > 0
        lookup = np.array([0] + [synth.part_to_object[p] for p in range(1, max(synth.part_names) + 1)])
        agree += int((lookup[parts[has_part]] == objects[has_part]).sum())
        labelled += int(has_part.sum())
    assert len(seen_objects) >= 5
    assert agree / labelled > 0.97  # the two levels nest in the images too


def test_rewrites_its_own_folder_but_no_other(tmp_path) -> None:
    out = tmp_path / "scene"
    write_synthetic_scene(out, views=3, resolution=24, num_gaussians=4_000, progress=False)
    write_synthetic_scene(out, views=2, resolution=24, num_gaussians=4_000, seed=1, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["view_000.png", "view_001.png"]
    assert not (out / "labels" / "view_002_part.png").exists()  # stale views of the first run are gone

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SplatsegError, match="not empty"):
        write_synthetic_scene(other, views=1, resolution=16, num_gaussians=4_000, progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]

    with pytest.raises(SplatsegError, match="tabletop"):
        write_synthetic_scene(tmp_path / "new", preset="kitchen", progress=False)

"""Camera loaders: every format lands in the same OpenCV convention, checked by projecting points."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest

from backend.core.camera import Camera, look_at
from backend.core.errors import InputError
from backend.io.cameras import (
    find_camera,
    load_cameras,
    read_colmap,
    read_inria_cameras,
    read_transforms,
    write_inria_cameras,
    write_transforms,
)
from backend.io.images import write_png

UP = np.array([0.0, 0.0, 1.0])


def project(cam: Camera, points: np.ndarray) -> np.ndarray:  # points: [N, 3] -> [N, 2] pixels
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    in_camera = (cam.world_to_camera @ homogeneous.T)[:3]
    assert (in_camera[2] > 0).all(), "test points must be in front of the camera"
    uvw = cam.K @ in_camera
    return (uvw[:2] / uvw[2]).T


def ring_cameras(n: int = 4, *, width: int = 64, height: int = 48, off_centre: bool = False) -> list[Camera]:
    cams = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        eye = np.array([3 * math.cos(angle), 3 * math.sin(angle), 1.0 + 0.1 * i])
        cam = look_at(f"view_{i:02d}", eye, np.zeros(3), UP, width=width, height=height, fov_y_deg=50 + 5 * i)
        if off_centre:
            K = cam.K.copy()
            K[0, 0] *= 1.1  # fx ≠ fy
            K[0, 2] += 3.25
            K[1, 2] -= 1.5
            cam = dataclasses.replace(cam, K=K)
        cams.append(cam)
    return cams


POINTS = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [-0.4, 0.25, -0.3], [0.1, 0.4, 0.35]])  # [4, 3]


def assert_same_cameras(got: list[Camera], expected: list[Camera]) -> None:
    assert [c.name for c in got] == sorted(c.name for c in expected)
    by_name = {c.name: c for c in expected}
    for cam in got:
        ref = by_name[cam.name]
        assert (cam.width, cam.height) == (ref.width, ref.height)
        np.testing.assert_allclose(cam.K, ref.K, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cam.world_to_camera, ref.world_to_camera, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# INRIA cameras.json


def test_inria_round_trip(tmp_path: Path) -> None:
    cams = ring_cameras()
    write_inria_cameras(tmp_path / "cameras.json", cams[::-1])
    assert_same_cameras(read_inria_cameras(tmp_path / "cameras.json"), cams)


def test_inria_file_matches_camera_to_json(tmp_path: Path) -> None:
    """Our writer's entry equals what INRIA's camera_to_JSON computes from its (R, T) camera."""
    cam = ring_cameras(1)[0]
    # INRIA's Camera keeps R = (world-to-camera rotation)ᵀ and T = world-to-camera translation.
    R_inria, T_inria = cam.world_to_camera[:3, :3].T, cam.world_to_camera[:3, 3]
    Rt = np.zeros((4, 4))
    Rt[:3, :3] = R_inria.transpose()
    Rt[:3, 3] = T_inria
    Rt[3, 3] = 1.0
    W2C = np.linalg.inv(Rt)  # INRIA's name; it is camera-to-world
    write_inria_cameras(tmp_path / "cameras.json", [cam])
    (entry,) = json.loads((tmp_path / "cameras.json").read_text())
    assert list(entry) == ["id", "img_name", "width", "height", "position", "rotation", "fy", "fx"]
    assert entry["id"] == 0 and entry["img_name"] == "view_00"
    np.testing.assert_allclose(entry["position"], W2C[:3, 3], atol=1e-12)
    np.testing.assert_allclose(entry["rotation"], W2C[:3, :3], atol=1e-12)
    np.testing.assert_allclose(entry["position"], cam.center, atol=1e-12)


def test_inria_reader_projects_target_to_centre(tmp_path: Path) -> None:
    """A hand-written INRIA entry: camera at (0, -4, 0) looking along +y (world z up) sees the origin mid-image."""
    c2w_rows = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]  # camera x→world x, y(down)→-z, z→+y
    entry = {"id": 0, "img_name": "front", "width": 100, "height": 80, "position": [0.0, -4.0, 0.0]}
    entry |= {"rotation": c2w_rows, "fy": 90.0, "fx": 100.0}
    (tmp_path / "cameras.json").write_text(json.dumps([entry]))
    (cam,) = read_inria_cameras(tmp_path / "cameras.json")
    pixels = project(cam, np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(pixels[0], [50.0, 40.0])
    np.testing.assert_allclose(pixels[1], [50.0 + 100.0 / 4, 40.0])  # world +x is image right
    np.testing.assert_allclose(pixels[2], [50.0, 40.0 - 90.0 / 4])  # world up is image up


def test_inria_writer_refuses_off_centre_principal_point(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="principal point"):
        write_inria_cameras(tmp_path / "cameras.json", ring_cameras(1, off_centre=True))
    assert not (tmp_path / "cameras.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# transforms.json


def test_transforms_round_trip(tmp_path: Path) -> None:
    cams = ring_cameras(off_centre=True)
    write_transforms(tmp_path / "transforms.json", cams)
    data = json.loads((tmp_path / "transforms.json").read_text())
    assert data["frames"][0]["file_path"] == "images/view_00.png"
    assert_same_cameras(read_transforms(tmp_path / "transforms.json"), cams)


def test_transforms_opengl_axes_are_flipped(tmp_path: Path) -> None:
    """Identity OpenGL pose: the camera looks down world -z with world +y up in the image."""
    frame = {"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}
    meta = {"fl_x": 50.0, "fl_y": 50.0, "cx": 32.0, "cy": 24.0, "w": 64, "h": 48, "frames": [frame]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    (cam,) = read_transforms(tmp_path / "transforms.json")
    assert cam.name == "a" and cam.image_path is None
    pixels = project(cam, np.array([[0.0, 0.0, -5.0], [1.0, 0.0, -5.0], [0.0, 1.0, -5.0]]))
    np.testing.assert_allclose(pixels, [[32.0, 24.0], [42.0, 24.0], [32.0, 14.0]])


def test_same_camera_as_cameras_json_and_transforms_projects_alike(tmp_path: Path) -> None:
    cams = ring_cameras()
    write_inria_cameras(tmp_path / "a" / "cameras.json", cams)
    write_transforms(tmp_path / "b" / "transforms.json", cams)
    from_inria = read_inria_cameras(tmp_path / "a" / "cameras.json")
    from_transforms = read_transforms(tmp_path / "b" / "transforms.json")
    for ref, a, b in zip(cams, from_inria, from_transforms, strict=True):
        expected = project(ref, POINTS)
        np.testing.assert_allclose(project(a, POINTS), expected, atol=1e-9)
        np.testing.assert_allclose(project(b, POINTS), expected, atol=1e-9)
        np.testing.assert_allclose(expected[0], [ref.width / 2, ref.height / 2], atol=1e-9)  # look_at target


def test_per_frame_intrinsics_override_global(tmp_path: Path) -> None:
    frames = [
        {"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()},
        {"file_path": "images/b.png", "transform_matrix": np.eye(4).tolist(), "fl_x": 80.0, "w": 100},
    ]
    meta = {"fl_x": 50.0, "w": 64, "h": 48, "k1": 0.1, "camera_model": "OPENCV", "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    a, b = read_transforms(tmp_path / "transforms.json")
    np.testing.assert_allclose(a.K, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
    np.testing.assert_allclose(b.K, [[80, 0, 50], [0, 80, 24], [0, 0, 1]])
    assert (b.width, b.height) == (100, 48)


def test_blender_camera_angle_x_and_size_from_image(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "r_0.png", np.zeros((30, 40, 3), np.uint8))
    matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    meta = {"camera_angle_x": 0.6911112070083618, "frames": [{"file_path": "./train/r_0", "transform_matrix": matrix}]}
    (tmp_path / "transforms_train.json").write_text(json.dumps(meta))
    (cam,) = read_transforms(tmp_path / "transforms_train.json")
    fx = 0.5 * 40 / math.tan(0.5 * 0.6911112070083618)
    assert cam.name == "r_0" and (cam.width, cam.height) == (40, 30)
    np.testing.assert_allclose(cam.K, [[fx, 0, 20], [0, fx, 15], [0, 0, 1]])
    assert cam.image_path == str(tmp_path / "train" / "r_0.png")
    np.testing.assert_allclose(cam.center, [0, 0, 4])
    np.testing.assert_allclose(project(cam, np.zeros((1, 3))), [[20, 15]])


def test_blender_splits_are_concatenated_and_disambiguated(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("test", 1)):
        frames = []
        for i in range(n):
            write_png(tmp_path / split / f"r_{i}.png", np.zeros((30, 40, 3), np.uint8))
            matrix = [[1, 0, 0, i], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": matrix})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    cams = load_cameras(tmp_path)
    assert [c.name for c in cams] == ["test_r_0", "train_r_0", "train_r_1"]
    assert cams[0].image_path == str(tmp_path / "test" / "r_0.png")


@pytest.mark.parametrize("model", ["OPENCV_FISHEYE", "EQUIRECTANGULAR"])
def test_transforms_non_pinhole_model_is_refused(tmp_path: Path, model: str) -> None:
    meta = {"camera_model": model, "fl_x": 50.0, "w": 64, "h": 48}
    meta["frames"] = [{"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=f"camera_model '{model}' is not a pinhole"):
        read_transforms(tmp_path / "transforms.json")


# ---------------------------------------------------------------------------------------------------------------
# COLMAP


def build_colmap(sparse_dir: Path, cams: list[Camera], *, text: bool, model: str = "PINHOLE") -> None:
    """A reconstruction with one COLMAP camera per view, written the way COLMAP itself writes it."""
    rec = pycolmap.Reconstruction()
    for i, cam in enumerate(cams, start=1):
        colmap_cam = pycolmap.Camera.create_from_model_name(i, model, cam.fx, cam.width, cam.height)
        if model == "PINHOLE":
            colmap_cam.params = [cam.fx, cam.fy, cam.cx, cam.cy]
        else:  # SIMPLE_RADIAL / OPENCV: focal, principal point, then distortion
            params = np.array(colmap_cam.params)
            params[colmap_cam.principal_point_idxs()] = [cam.cx, cam.cy]
            params[colmap_cam.extra_params_idxs()] = 0.01
            colmap_cam.params = params
        rec.add_camera_with_trivial_rig(colmap_cam)
        R, t = cam.world_to_camera[:3, :3], cam.world_to_camera[:3, 3]
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(R), t)
        rec.add_image_with_trivial_frame(pycolmap.Image(name=f"{cam.name}.jpg", camera_id=i, image_id=i), pose)
    sparse_dir.mkdir(parents=True)
    if text:
        rec.write_text(str(sparse_dir))
    else:
        rec.write(str(sparse_dir))


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_colmap_round_trip(tmp_path: Path, text: bool) -> None:
    cams = ring_cameras(3, off_centre=True)
    build_colmap(tmp_path / "sparse" / "0", cams, text=text)
    assert (tmp_path / "sparse" / "0" / ("cameras.txt" if text else "cameras.bin")).is_file()
    got = read_colmap(tmp_path / "sparse" / "0")
    assert_same_cameras(got, cams)
    for ref, cam in zip(cams, got, strict=True):
        np.testing.assert_allclose(project(cam, POINTS), project(ref, POINTS), atol=1e-9)


def test_colmap_distortion_is_ignored_with_one_warning(tmp_path: Path) -> None:
    cams = ring_cameras(2)
    build_colmap(tmp_path / "sparse", cams, text=False, model="OPENCV")
    with pytest.warns(UserWarning, match="distortion of OPENCV cameras is ignored") as record:
        got = read_colmap(tmp_path / "sparse")
    assert len(record) == 1
    assert [c.name for c in got] == ["view_00", "view_01"]
    np.testing.assert_allclose(got[0].K[:2, 2], [cams[0].cx, cams[0].cy])


def test_colmap_fisheye_is_refused(tmp_path: Path) -> None:
    build_colmap(tmp_path / "sparse", ring_cameras(1), text=True, model="OPENCV_FISHEYE")
    with pytest.raises(InputError, match=r"OPENCV_FISHEYE is not a pinhole.*image_undistorter"):
        read_colmap(tmp_path / "sparse")


def test_colmap_images_dir_attaches_photos(tmp_path: Path) -> None:
    cams = ring_cameras(2)
    build_colmap(tmp_path / "sparse", cams, text=True)
    write_png(tmp_path / "photos" / "view_00.png", np.zeros((48, 64, 3), np.uint8))  # .jpg missing: found by stem
    got = read_colmap(tmp_path / "sparse", images_dir=tmp_path / "photos")
    assert got[0].image_path == str(tmp_path / "photos" / "view_00.png") and got[1].image_path is None


# ---------------------------------------------------------------------------------------------------------------
# Scene discovery and images


def test_discovery_order(tmp_path: Path) -> None:
    cams = ring_cameras(2)
    write_inria_cameras(tmp_path / "cameras.json", [dataclasses.replace(c, name="inria_" + c.name) for c in cams])
    write_transforms(tmp_path / "transforms.json", [dataclasses.replace(c, name="ns_" + c.name) for c in cams])
    build_colmap(tmp_path / "sparse" / "0", cams, text=False)
    assert load_cameras(tmp_path)[0].name == "inria_view_00"
    (tmp_path / "cameras.json").unlink()
    assert load_cameras(tmp_path)[0].name == "ns_view_00"
    (tmp_path / "transforms.json").unlink()
    assert_same_cameras(load_cameras(tmp_path), cams)
    for f in (tmp_path / "sparse" / "0").iterdir():  # sparse/ holding the model directly
        f.rename(tmp_path / "sparse" / f.name)
    assert_same_cameras(load_cameras(tmp_path), cams)
    shutil.rmtree(tmp_path / "sparse")
    with pytest.raises(InputError, match=r"no cameras in .*: expected cameras.json, transforms.json or COLMAP"):
        load_cameras(tmp_path)


def test_images_are_attached_by_stem(tmp_path: Path) -> None:
    write_inria_cameras(tmp_path / "cameras.json", ring_cameras(3))
    write_png(tmp_path / "images" / "view_00.png", np.zeros((48, 64, 3), np.uint8))
    write_png(tmp_path / "images" / "view_02.png", np.zeros((48, 64, 3), np.uint8))
    cams = load_cameras(tmp_path)
    assert [c.image_path for c in cams] == [
        str(tmp_path / "images" / "view_00.png"),
        None,
        str(tmp_path / "images" / "view_02.png"),
    ]


def test_image_size_mismatch_names_view_sizes_and_fix(tmp_path: Path) -> None:
    write_inria_cameras(tmp_path / "cameras.json", ring_cameras(2))
    write_png(tmp_path / "images" / "view_01.png", np.zeros((96, 128, 3), np.uint8))
    with pytest.raises(InputError, match=r"view 'view_01': .* is 128×96 but its camera is 64×48; use the images"):
        load_cameras(tmp_path)


def test_cameras_that_match_no_image_are_an_error(tmp_path: Path) -> None:
    write_inria_cameras(tmp_path / "cameras.json", ring_cameras(2))
    write_png(tmp_path / "images" / "IMG_0001.png", np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(InputError, match=r"cameras don't match the images: .*view_00.*IMG_0001"):
        load_cameras(tmp_path)


def test_images_are_optional(tmp_path: Path) -> None:
    write_inria_cameras(tmp_path / "cameras.json", ring_cameras(2))
    (tmp_path / "images").mkdir()  # empty: nothing to match, views are rendered
    assert all(c.image_path is None for c in load_cameras(tmp_path))


def test_find_camera(tmp_path: Path) -> None:
    cams = ring_cameras(3)
    assert find_camera(cams, "view_01") is cams[1]
    with pytest.raises(InputError, match=r"unknown view 'view_1'; did you mean 'view_01'.*3 views: view_00, view_01"):
        find_camera(cams, "view_1")
    with pytest.raises(InputError, match="no cameras"):
        find_camera([], "x")


# ---------------------------------------------------------------------------------------------------------------
# Malformed files: one line naming the file and the field


def inria_entry(**changes: object) -> dict:
    entry = {"id": 0, "img_name": "a", "width": 64, "height": 48, "position": [0.0, 0.0, 0.0]}
    entry |= {"rotation": np.eye(3).tolist(), "fy": 50.0, "fx": 50.0}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"id": 0, "img_name": ', r"cameras.json: not valid JSON \(line 1"),
        (json.dumps({"a": 1}), r"cameras.json: expected a JSON list"),
        (json.dumps([inria_entry(fx=None)]), r"cameras.json: camera 0 \('a'\): missing field 'fx'"),
        (json.dumps([inria_entry(position=[0.0, float("nan"), 0.0])]), r"'a'\): field 'position' contains NaN"),
        (json.dumps([inria_entry(rotation=[[1.0, 0.0], [0.0, 1.0]])]), r"field 'rotation' must be 3×3"),
        (json.dumps([inria_entry(rotation=(2 * np.eye(3)).tolist())]), r"field 'rotation' is not a rotation"),
        (json.dumps([inria_entry(width="64")]), r"field 'width' must be a number"),
        (json.dumps([inria_entry(fx=float("inf"))]), r"field 'fx' is inf"),
    ],
)
def test_malformed_cameras_json(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "cameras.json").write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_cameras(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"transform_matrix": np.eye(4).tolist()}, r"frame 0: missing field 'file_path'"),
        ({"file_path": "images/a.png"}, r"frame 0 \('images/a.png'\): missing field 'transform_matrix'"),
        ({"file_path": "a.png", "transform_matrix": [[float("nan")] * 4] * 4}, r"'transform_matrix' contains NaN"),
        ({"file_path": "a.png", "transform_matrix": [[1, 0, 0], [0, 1, 0]]}, r"'transform_matrix' must be 4×4 or 3×4"),
    ],
)
def test_malformed_transforms_json(tmp_path: Path, frame: dict, message: str) -> None:
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 50.0, "w": 64, "h": 48, "frames": [frame]}))
    with pytest.raises(InputError, match=message) as info:
        load_cameras(tmp_path)
    assert "transforms.json" in str(info.value)


def test_transforms_without_focal_length(tmp_path: Path) -> None:
    meta = {"w": 64, "h": 48, "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"missing field 'fl_x' \(nerfstudio\) or 'camera_angle_x' \(Blender\)"):
        read_transforms(tmp_path / "transforms.json")


def test_transforms_without_size_or_image(tmp_path: Path) -> None:
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"missing fields 'w'/'h' and the image is not there"):
        read_transforms(tmp_path / "transforms.json")


def test_duplicate_view_names(tmp_path: Path) -> None:
    (tmp_path / "cameras.json").write_text(json.dumps([inria_entry(), inria_entry(id=1, img_name="a.png")]))
    with pytest.raises(InputError, match="two views are both named 'a'"):
        read_inria_cameras(tmp_path / "cameras.json")


# ---- nerfstudio's dataparser_transforms.json -------------------------------------------------------------------------
def _dataparser(angle: float = 0.7, scale: float = 0.37) -> tuple[np.ndarray, float]:  # T [3, 4], scale
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return np.concatenate([R, np.array([[0.2], [-0.5], [0.3]])], axis=1), scale


def test_nerfstudio_dataparser_transform_moves_cameras_with_the_model(tmp_path: Path) -> None:
    """A splatfacto export lives in nerfstudio's normalised space; transforms.json does not. With the run's
    dataparser_transforms.json beside the checkpoint, the loaded cameras see the normalised points where the
    original cameras saw the original ones."""
    cams = ring_cameras()
    write_transforms(tmp_path / "transforms.json", cams)
    T, scale = _dataparser()
    run = tmp_path / "outputs" / "scene" / "splatfacto" / "2026-11-22_000000"
    run.mkdir(parents=True)
    (run / "dataparser_transforms.json").write_text(json.dumps({"transform": T.tolist(), "scale": scale}))
    moved = load_cameras(tmp_path)
    normalised = scale * (POINTS @ T[:, :3].T + T[:, 3])
    for ref, cam in zip(sorted(cams, key=lambda c: c.name), moved, strict=True):
        np.testing.assert_allclose(project(cam, normalised), project(ref, POINTS), atol=1e-9)
        np.testing.assert_allclose(cam.K, ref.K)
    # The workspace is not searched, and without the file nothing moves.
    shutil.move(str(run / "dataparser_transforms.json"), str(tmp_path / "elsewhere.json"))
    (tmp_path / ".splatseg").mkdir()
    (tmp_path / ".splatseg" / "dataparser_transforms.json").write_text("{}")
    for ref, cam in zip(sorted(cams, key=lambda c: c.name), load_cameras(tmp_path), strict=True):
        np.testing.assert_allclose(project(cam, POINTS), project(ref, POINTS), atol=1e-9)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"scale": 1.0}, "missing field 'transform'"),
        ({"transform": np.eye(3, 4).tolist(), "scale": -1}, "must be positive"),
        ({"transform": (2 * np.eye(3, 4)).tolist(), "scale": 1.0}, "not a rotation"),
        ({"transform": np.eye(3).tolist(), "scale": 1.0}, "must be 3×4 or 4×4"),
    ],
)
def test_malformed_dataparser_transforms(tmp_path: Path, payload: dict, message: str) -> None:
    write_transforms(tmp_path / "transforms.json", ring_cameras())
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps(payload))
    with pytest.raises(InputError, match=message):
        load_cameras(tmp_path)


def test_two_dataparser_transforms_are_ambiguous(tmp_path: Path) -> None:
    write_transforms(tmp_path / "transforms.json", ring_cameras())
    T, _ = _dataparser()
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "dataparser_transforms.json").write_text(json.dumps({"transform": T.tolist(), "scale": 1}))
    with pytest.raises(InputError, match=r"2 dataparser_transforms\.json files .*keep only the one"):
        load_cameras(tmp_path)


def test_the_kept_inverse_pose_follows_a_pose_changed_in_place() -> None:
    cam = look_at(
        "v", np.array([0.0, -3.0, 1.0]), np.zeros(3), np.array([0, 0, 1.0]), width=64, height=48, fov_y_deg=50
    )
    first = cam.camera_to_world
    np.testing.assert_allclose(first @ cam.world_to_camera, np.eye(4), atol=1e-12)
    first[:] = 0.0  # a caller's copy: the kept inverse is not changed through it
    np.testing.assert_allclose(cam.camera_to_world @ cam.world_to_camera, np.eye(4), atol=1e-12)
    cam.world_to_camera[:3, 3] += 1.0  # the pose changed in place: inverted again, not the kept one
    np.testing.assert_allclose(cam.camera_to_world, np.linalg.inv(cam.world_to_camera), atol=1e-12)
    origin, direction = cam.ray((32.0, 24.0))
    np.testing.assert_allclose(origin, np.linalg.inv(cam.world_to_camera)[:3, 3], atol=1e-12)
    assert abs(np.linalg.norm(direction) - 1.0) < 1e-12

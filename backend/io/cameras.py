"""Camera files in, `list[Camera]` out: INRIA `cameras.json`, nerfstudio/Blender `transforms.json`, COLMAP `sparse/0`.

Every loader converts to the one convention of `backend.core.camera` (OpenCV: x right, y down, z forward) on the way
in, so nothing downstream knows which trainer produced the scene. Every problem with a file is one `InputError`
line naming the file, the view and the field, because these files are hand-edited and exported by many tools.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backend.core.camera import Camera
from backend.core.errors import InputError
from backend.io.atomic import write_text_atomic
from backend.io.images import IMAGE_SUFFIXES, read_image_size

_OPENGL_FLIP = np.diag([1.0, -1.0, -1.0])
"""Camera axes OpenGL/Blender (y up, z backward) ↔ OpenCV (y down, z forward); its own inverse."""

_NAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".exr"}
"""Extensions stripped to make a view name: `--view NAME` and mask files use the stem, not the file name."""

_PINHOLE_MODELS = {"SIMPLE_PINHOLE", "PINHOLE"}
_DISTORTED_PINHOLE_MODELS = {"SIMPLE_RADIAL", "RADIAL", "OPENCV"}
"""Pinhole plus lens distortion: usable with the distortion ignored (3DGS trainers themselves ignore it)."""

_ROTATION_TOLERANCE = 1e-3
"""How far R Rᵀ may stray from I: float32 round-off passes, a scaled or sheared matrix does not."""


# ---------------------------------------------------------------------------------------------------------------
# Field parsing: each helper raises one line naming the file/view (`where`) and the field.


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise InputError(f"{where}: missing field {key!r}")
    return obj[key]


def _float(value: Any, key: str, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: field {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{where}: field {key!r} is {value} (NaN/Inf)")
    if positive and value <= 0:
        raise InputError(f"{where}: field {key!r} must be positive, got {value}")
    return float(value)


def _size(value: Any, key: str, where: str) -> int:
    number = _float(value, key, where, positive=True)
    if number != int(number):
        raise InputError(f"{where}: field {key!r} must be a whole number of pixels, got {value}")
    return int(number)


def _array(value: Any, key: str, where: str, shapes: Sequence[tuple[int, ...]]) -> np.ndarray:
    expected = " or ".join("×".join(map(str, s)) for s in shapes)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field {key!r} must be a {expected} array of numbers") from None
    if array.shape not in shapes:
        raise InputError(f"{where}: field {key!r} must be {expected}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{where}: field {key!r} contains NaN/Inf")
    return array


def _check_rotation(R: np.ndarray, key: str, where: str) -> None:  # R: [3, 3]
    if np.abs(R @ R.T - np.eye(3)).max() > _ROTATION_TOLERANCE or np.linalg.det(R) <= 0:
        raise InputError(
            f"{where}: field {key!r} is not a rotation (scaled, sheared or mirrored); splatseg needs rigid camera poses"
        )


# ---------------------------------------------------------------------------------------------------------------
# Pose algebra. Inverses are written out (Rᵀ, -Rᵀt) rather than np.linalg.inv so write→read is exact to round-off.


def _pose_to_world_to_camera(R_c2w: np.ndarray, center: np.ndarray) -> np.ndarray:  # [3, 3], [3] -> [4, 4]
    w2c = np.eye(4)
    w2c[:3, :3] = R_c2w.T
    w2c[:3, 3] = -R_c2w.T @ center
    return w2c


def _world_to_camera_to_pose(w2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [4, 4] -> [3, 3], [3]
    R = w2c[:3, :3]
    return R.T.copy(), -R.T @ w2c[:3, 3]


def _intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:  # [3, 3]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _view_name(file_name: str) -> str:
    """The image stem; only a known image extension is stripped, so "frame.001" stays whole."""
    p = Path(file_name)
    return p.stem if p.suffix.lower() in _NAME_SUFFIXES else p.name


def _sorted_unique(cameras: list[Camera], source: Path) -> list[Camera]:
    seen: set[str] = set()
    for c in cameras:
        if c.name in seen:
            raise InputError(
                f"{source}: two views are both named {c.name!r}; view names are image stems and must be unique"
            )
        seen.add(c.name)
    return sorted(cameras, key=lambda c: c.name)


def _resolve_image(folder: Path, file_path: str) -> Path | None:
    """The image a camera refers to; Blender's `file_path` lacks the extension ("./train/r_0")."""
    p = folder / file_path
    if p.is_file():
        return p
    if p.suffix.lower() not in _NAME_SUFFIXES:
        for suffix in IMAGE_SUFFIXES:
            candidate = p.with_name(p.name + suffix)
            if candidate.is_file():
                return candidate
    return None


# ---------------------------------------------------------------------------------------------------------------
# INRIA cameras.json


def read_inria_cameras(path: str | os.PathLike[str]) -> list[Camera]:
    """INRIA 3DGS `cameras.json`: `rotation` holds camera-to-world rotation rows, `position` the camera centre.

    INRIA's `camera_to_JSON` inverts its world-to-camera Rt and writes that (despite naming it W2C). The format has
    no principal point: INRIA's rasteriser centres it, so cx, cy = width/2, height/2.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of cameras (INRIA cameras.json), got {type(data).__name__}")
    cameras = []
    for i, entry in enumerate(data):
        where = f"{path}: camera {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        img_name = _require(entry, "img_name", where)
        if not isinstance(img_name, str) or not img_name:
            raise InputError(f"{where}: field 'img_name' must be a non-empty string")
        where = f"{path}: camera {i} ({img_name!r})"
        width = _size(_require(entry, "width", where), "width", where)
        height = _size(_require(entry, "height", where), "height", where)
        fx = _float(_require(entry, "fx", where), "fx", where, positive=True)
        fy = _float(_require(entry, "fy", where), "fy", where, positive=True)
        center = _array(_require(entry, "position", where), "position", where, [(3,)])
        R_c2w = _array(_require(entry, "rotation", where), "rotation", where, [(3, 3)])
        _check_rotation(R_c2w, "rotation", where)
        cameras.append(
            Camera(
                name=_view_name(img_name),
                width=width,
                height=height,
                K=_intrinsics(fx, fy, width / 2, height / 2),
                world_to_camera=_pose_to_world_to_camera(R_c2w, center),
            )
        )
    return _sorted_unique(cameras, path)


def write_inria_cameras(path: str | os.PathLike[str], cameras: Sequence[Camera]) -> None:
    """Write INRIA's `cameras.json` exactly as `camera_to_JSON` does (ids in the given order).

    The format cannot hold an off-centre principal point, so such a camera is refused rather than silently moved.
    """
    entries = []
    for i, cam in enumerate(cameras):
        if abs(cam.cx - cam.width / 2) > 1e-6 or abs(cam.cy - cam.height / 2) > 1e-6:
            raise ValueError(
                f"camera {cam.name!r}: principal point ({cam.cx}, {cam.cy}) is not the image centre; "
                "INRIA cameras.json cannot store it: use write_transforms"
            )
        R_c2w, center = _world_to_camera_to_pose(cam.world_to_camera)
        entries.append(
            {
                "id": i,
                "img_name": cam.name,
                "width": cam.width,
                "height": cam.height,
                "position": center.tolist(),
                "rotation": [row.tolist() for row in R_c2w],
                "fy": cam.fy,
                "fx": cam.fx,
            }
        )
    write_text_atomic(path, json.dumps(entries, allow_nan=False))


# ---------------------------------------------------------------------------------------------------------------
# nerfstudio / Blender transforms.json


def read_transforms(path: str | os.PathLike[str]) -> list[Camera]:
    """nerfstudio or Blender `transforms.json`: OpenGL camera-to-world poses, intrinsics global or per frame.

    Distortion coefficients (k1, k2, p1, p2, …) are ignored: splatfacto trains on undistorted images. Cameras whose
    file exists get `image_path` set, so Blender's train/ and test/ photos are found without an images/ folder.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'frames' (transforms.json), got {type(data).__name__}")
    frames = _require(data, "frames", str(path))
    if not isinstance(frames, list):
        raise InputError(f"{path}: field 'frames' must be a list")
    folder = path.parent
    cameras = []
    for i, frame in enumerate(frames):
        where = f"{path}: frame {i}"
        if not isinstance(frame, dict):
            raise InputError(f"{where}: expected an object, got {type(frame).__name__}")
        file_path = _require(frame, "file_path", where)
        if not isinstance(file_path, str) or not file_path:
            raise InputError(f"{where}: field 'file_path' must be a non-empty string")
        where = f"{path}: frame {i} ({file_path!r})"
        image = _resolve_image(folder, file_path)
        cameras.append(_transforms_frame(data, frame, where, file_path, image))
    return _sorted_unique(cameras, path)


def _transforms_frame(
    data: dict[str, Any], frame: dict[str, Any], where: str, file_path: str, image: Path | None
) -> Camera:
    def get(key: str) -> Any:  # a per-frame value overrides the global one
        return frame.get(key, data.get(key))

    model = get("camera_model")
    if model is not None and model not in _PINHOLE_MODELS | _DISTORTED_PINHOLE_MODELS:
        raise InputError(
            f"{where}: camera_model {model!r} is not a pinhole camera; splatseg renders pinhole views only: "
            "undistort the images (e.g. `colmap image_undistorter`) and retrain, or use a PINHOLE/OPENCV dataset"
        )

    if get("w") is not None and get("h") is not None:
        width, height = _size(get("w"), "w", where), _size(get("h"), "h", where)
    elif image is not None:
        width, height = read_image_size(image)
    else:
        raise InputError(f"{where}: missing fields 'w'/'h' and the image is not there to read its size from")

    if get("fl_x") is not None:
        fx = _float(get("fl_x"), "fl_x", where, positive=True)
        fy = _float(get("fl_y"), "fl_y", where, positive=True) if get("fl_y") is not None else fx
    elif get("camera_angle_x") is not None:
        angle_x = _float(get("camera_angle_x"), "camera_angle_x", where, positive=True)
        fx = 0.5 * width / math.tan(0.5 * angle_x)
        fy = fx  # INRIA's Blender reader: square pixels unless camera_angle_y says otherwise
        if get("camera_angle_y") is not None:
            angle_y = _float(get("camera_angle_y"), "camera_angle_y", where, positive=True)
            fy = 0.5 * height / math.tan(0.5 * angle_y)
    else:
        raise InputError(f"{where}: missing field 'fl_x' (nerfstudio) or 'camera_angle_x' (Blender)")
    cx = _float(get("cx"), "cx", where) if get("cx") is not None else width / 2
    cy = _float(get("cy"), "cy", where) if get("cy") is not None else height / 2

    matrix = _array(_require(frame, "transform_matrix", where), "transform_matrix", where, [(4, 4), (3, 4)])
    R_c2w = matrix[:3, :3] @ _OPENGL_FLIP
    _check_rotation(R_c2w, "transform_matrix", where)
    return Camera(
        name=_view_name(image.name if image is not None else file_path),
        width=width,
        height=height,
        K=_intrinsics(fx, fy, cx, cy),
        world_to_camera=_pose_to_world_to_camera(R_c2w, matrix[:3, 3]),
        image_path=str(image) if image is not None else None,
    )


def write_transforms(path: str | os.PathLike[str], cameras: Sequence[Camera], image_dir: str = "images") -> None:
    """Write nerfstudio's `transforms.json` with per-frame pinhole intrinsics and OpenGL camera-to-world poses."""
    frames = []
    for cam in cameras:
        R_c2w, center = _world_to_camera_to_pose(cam.world_to_camera)
        c2w_gl = np.eye(4)
        c2w_gl[:3, :3] = R_c2w @ _OPENGL_FLIP
        c2w_gl[:3, 3] = center
        frames.append(
            {
                "file_path": f"{image_dir}/{cam.name}.png" if image_dir else f"{cam.name}.png",
                "fl_x": cam.fx,
                "fl_y": cam.fy,
                "cx": cam.cx,
                "cy": cam.cy,
                "w": cam.width,
                "h": cam.height,
                "transform_matrix": c2w_gl.tolist(),
            }
        )
    write_text_atomic(path, json.dumps({"camera_model": "PINHOLE", "frames": frames}, indent=2, allow_nan=False))


# ---------------------------------------------------------------------------------------------------------------
# COLMAP sparse model


def read_colmap(sparse_dir: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None) -> list[Camera]:
    """A COLMAP model (binary or text) via pycolmap; only images with a registered pose become cameras.

    Radial/OPENCV distortion is ignored with one warning: INRIA 3DGS expects undistorted images and ignores it too,
    so a model trained on such a scene was trained as if the camera were a pinhole.
    """
    sparse_dir = Path(sparse_dir)
    if not any((sparse_dir / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
        raise InputError(f"{sparse_dir}: no cameras.bin or cameras.txt here; not a COLMAP sparse model")
    import pycolmap  # deferred: only scenes with a COLMAP model pay for loading it

    try:
        rec = pycolmap.Reconstruction(str(sparse_dir))
    except Exception as e:  # pycolmap raises bare RuntimeError/ValueError for every kind of bad file
        raise InputError(f"{sparse_dir}: COLMAP model could not be read ({e})") from None

    cameras = []
    distorted: set[str] = set()
    for image in rec.images.values():
        if not image.has_pose:
            continue
        where = f"{sparse_dir}: image {image.name!r}"
        colmap_cam = rec.cameras[image.camera_id]
        model = colmap_cam.model_name if hasattr(colmap_cam, "model_name") else colmap_cam.model.name
        if model not in _PINHOLE_MODELS | _DISTORTED_PINHOLE_MODELS:
            raise InputError(
                f"{where}: camera model {model} is not a pinhole camera; run `colmap image_undistorter` "
                "and use its sparse/ and images/ (as INRIA 3DGS's convert.py does)"
            )
        if model in _DISTORTED_PINHOLE_MODELS and np.any(colmap_cam.params[colmap_cam.extra_params_idxs()] != 0):
            distorted.add(model)
        pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world  # 4.x: method
        w2c = np.eye(4)
        w2c[:3, :] = np.asarray(pose.matrix(), dtype=np.float64)  # [3, 4]
        K = np.asarray(colmap_cam.calibration_matrix(), dtype=np.float64)
        if not (np.isfinite(w2c).all() and np.isfinite(K).all()):
            raise InputError(f"{where}: pose or intrinsics contain NaN/Inf")
        image_path = _resolve_colmap_image(Path(images_dir), image.name) if images_dir is not None else None
        cameras.append(
            Camera(
                name=_view_name(image.name),
                width=int(colmap_cam.width),
                height=int(colmap_cam.height),
                K=K,
                world_to_camera=w2c,
                image_path=str(image_path) if image_path is not None else None,
            )
        )
    if distorted:
        warnings.warn(
            f"{sparse_dir}: lens distortion of {', '.join(sorted(distorted))} cameras is ignored; "
            "for exact pixels run `colmap image_undistorter` first",
            stacklevel=2,
        )
    return _sorted_unique(cameras, sparse_dir)


def _resolve_colmap_image(images_dir: Path, image_name: str) -> Path | None:
    exact = images_dir / image_name
    if exact.is_file():
        return exact
    stem = _view_name(image_name)
    return next((images_dir / (stem + s) for s in IMAGE_SUFFIXES if (images_dir / (stem + s)).is_file()), None)


# ---------------------------------------------------------------------------------------------------------------
# Scene folders


def load_cameras(scene_dir: str | os.PathLike[str]) -> list[Camera]:
    """The scene's cameras, found in this order: cameras.json, transforms.json (moved into nerfstudio's normalised
    space when a dataparser_transforms.json is there; or Blender's transforms_train.json + transforms_test.json),
    COLMAP sparse/0 (or sparse/). Photos in images/ are attached by
    stem and checked against the cameras' sizes, so a mismatch is caught here rather than as misaligned masks.
    """
    scene = Path(scene_dir)
    if not scene.is_dir():
        raise InputError(f"{scene}: not a folder")
    if (scene / "cameras.json").is_file():
        source, cameras = scene / "cameras.json", read_inria_cameras(scene / "cameras.json")
    elif (scene / "transforms.json").is_file():
        source, cameras = scene / "transforms.json", read_transforms(scene / "transforms.json")
        if (dataparser := find_dataparser_transforms(scene)) is not None:
            cameras = apply_dataparser_transforms(cameras, dataparser)
    elif (scene / "transforms_train.json").is_file():
        source, cameras = scene / "transforms_train.json", _read_blender_splits(scene)
    elif (sparse := _find_sparse(scene)) is not None:
        source, cameras = sparse, read_colmap(sparse)
    else:
        raise InputError(f"no cameras in {scene}: expected cameras.json, transforms.json or COLMAP sparse/0")
    if not cameras:
        raise InputError(f"{source}: holds no cameras (with a pose)")
    cameras = _attach_images(scene / "images", cameras)
    _check_image_sizes(cameras)
    return cameras


DATAPARSER_NAME = "dataparser_transforms.json"
"""nerfstudio's record of how it normalised the poses of transforms.json (written once per training run)."""


def find_dataparser_transforms(scene: Path) -> Path | None:
    """The scene's nerfstudio `dataparser_transforms.json`, anywhere under it (nerfstudio writes it beside the
    checkpoint, outputs/NAME/splatfacto/TIMESTAMP/), or None. Several runs' files are ambiguous: an error that
    says which to keep, since the wrong one would misplace every camera silently."""
    found = sorted(  # hidden folders (the workspace among them) are not the user's, as in scene_folder
        p for p in scene.rglob(DATAPARSER_NAME) if not any(part.startswith(".") for part in p.relative_to(scene).parts)
    )
    if len(found) > 1:
        names = _examples(str(p.relative_to(scene)) for p in found)
        raise InputError(
            f"{len(found)} {DATAPARSER_NAME} files under {scene} ({names}): keep only the one of the run whose "
            "model you load"
        )
    return found[0] if found else None


def apply_dataparser_transforms(cameras: list[Camera], path: Path) -> list[Camera]:
    """Move transforms.json cameras into the space a nerfstudio model (splatfacto's PLY export) lives in.

    nerfstudio trains in normalised coordinates: c2w' = T · c2w (T: 3×4, a rotation and a translation), then the
    translation is multiplied by `scale`. Its exported Gaussians stay in that space, so the cameras must follow.
    A left multiplication does not care whether the camera axes are OpenGL or OpenCV, so it applies to ours as is.
    """
    data = _load_json(path)
    where = str(path)
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object with 'transform' and 'scale'")
    T = _array(_require(data, "transform", where), "transform", where, [(3, 4), (4, 4)])[:3]
    scale = _float(_require(data, "scale", where), "scale", where, positive=True)
    _check_rotation(T[:, :3], "transform", where)
    out = []
    for cam in cameras:
        R, center = _world_to_camera_to_pose(cam.world_to_camera)  # camera-to-world rotation, camera centre
        w2c = _pose_to_world_to_camera(T[:, :3] @ R, scale * (T[:, :3] @ center + T[:, 3]))
        out.append(dataclasses.replace(cam, world_to_camera=w2c))
    return out


def _read_blender_splits(scene: Path) -> list[Camera]:
    """train + test; Blender reuses stems across splits (train/r_0, test/r_0), then names become train_r_0, …"""
    splits = {"train": read_transforms(scene / "transforms_train.json")}
    if (scene / "transforms_test.json").is_file():
        splits["test"] = read_transforms(scene / "transforms_test.json")
    names = [c.name for cams in splits.values() for c in cams]
    if len(set(names)) < len(names):
        splits = {
            split: [dataclasses.replace(c, name=f"{split}_{c.name}") for c in cams] for split, cams in splits.items()
        }
    return _sorted_unique([c for cams in splits.values() for c in cams], scene)


def _find_sparse(scene: Path) -> Path | None:
    for candidate in (scene / "sparse" / "0", scene / "sparse"):
        if any((candidate / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
            return candidate
    return None


def _attach_images(images_dir: Path, cameras: list[Camera]) -> list[Camera]:
    if not images_dir.is_dir():
        return cameras
    by_stem: dict[str, Path] = {}
    for suffix in reversed(IMAGE_SUFFIXES):  # earlier suffixes win: a.png over a.jpg
        for p in images_dir.glob(f"*{suffix}"):
            if p.is_file() and p.suffix == suffix:
                by_stem[p.stem] = p
    if not by_stem:
        return cameras
    if not any(c.name in by_stem for c in cameras):
        raise InputError(
            f"cameras don't match the images: none of the {len(cameras)} views ({_examples(c.name for c in cameras)}) "
            f"has a file in {images_dir} ({len(by_stem)} images: {_examples(sorted(by_stem))}); "
            "image stems must equal the cameras' names, or remove images/ to render views from the Gaussians"
        )
    return [dataclasses.replace(c, image_path=str(by_stem[c.name])) if c.name in by_stem else c for c in cameras]


def _check_image_sizes(cameras: list[Camera]) -> None:
    for c in cameras:
        if c.image_path is None:
            continue
        width, height = read_image_size(c.image_path)
        if (width, height) != (c.width, c.height):
            raise InputError(
                f"view {c.name!r}: {c.image_path} is {width}×{height} but its camera is {c.width}×{c.height}; "
                "use the images the model was trained on (e.g. images_2/ for --resolution 2, renamed to images/) "
                "or remove images/ to render views from the Gaussians"
            )


def _examples(names: Any, n: int = 4) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (", …" if len(names) > n else "")


def find_camera(cameras: Sequence[Camera], name: str) -> Camera:
    """The view called `name` (`--view NAME`), or an error that shows what the names look like."""
    for cam in cameras:
        if cam.name == name:
            return cam
    names = [c.name for c in cameras]
    if not names:
        raise InputError(f"unknown view {name!r}: the scene has no cameras")
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise InputError(f"unknown view {name!r}{hint} (the scene has {len(names)} views: {_examples(names, 5)})")

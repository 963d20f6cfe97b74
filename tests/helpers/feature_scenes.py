"""A tiny two-object scene with masks, prepared and trained once per test session (tests of features and segment).

Object A is two stacked boxes (parts "lower" and "upper"), object B a sphere, both on a ground plane no mask
covers. Masks come from rendered labels as a user folder (`prepare --masks PATH`), one object mask per object and
one per part of A, so training sees both levels.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from backend.core.camera import Camera, look_at
from backend.core.scene import GaussianScene
from backend.io.cameras import write_inria_cameras
from backend.io.ply import write_ply
from backend.render import render

LABELS = {0: "ground", 1: "A/lower", 2: "A/upper", 3: "B"}
OBJECT_OF = np.array([0, 1, 1, 2])  # label → object (0 = none)


@dataclasses.dataclass
class TinyScene:
    folder: Path
    scene: GaussianScene
    cameras: list[Camera]
    labels: np.ndarray  # [N] 0..3 (see LABELS)
    label_maps: dict[str, np.ndarray]  # view → [H, W] label (0 also for empty pixels)

    def objects(self) -> np.ndarray:  # [N] 0 ground, 1 A, 2 B
        return OBJECT_OF[self.labels]

    def deepest_pixel(self, view: str, label_set: tuple[int, ...]) -> tuple[int, int]:
        inside = np.isin(self.label_maps[view], label_set)
        dist = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return int(x), int(y)


def _box(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """n points on the surface of an axis-aligned box."""
    size = hi - lo
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]]).repeat(2)
    face = rng.choice(6, n, p=areas / areas.sum())
    pts = lo + rng.random((n, 3)) * size
    axis = face // 2
    pts[np.arange(n), axis] = np.where(face % 2 == 0, lo[axis], hi[axis])
    return pts


def _sphere(rng: np.random.Generator, center: np.ndarray, radius: float, n: int) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return center + radius * d / np.linalg.norm(d, axis=1, keepdims=True)


def build_tiny_scene(folder: Path, *, views: int = 5, size: int = 64, seed: int = 0) -> TinyScene:
    rng = np.random.default_rng(seed)
    parts = [
        (0, np.stack([rng.uniform(-0.8, 0.8, 700), rng.uniform(-0.8, 0.8, 700), np.zeros(700)], 1)),
        (1, _box(rng, np.array([-0.5, -0.12, 0.0]), np.array([-0.26, 0.12, 0.14]), 450)),
        (2, _box(rng, np.array([-0.5, -0.12, 0.14]), np.array([-0.26, 0.12, 0.3]), 450)),
        (3, _sphere(rng, np.array([0.35, 0.0, 0.14]), 0.14, 700)),
    ]
    means = np.concatenate([p for _, p in parts]).astype(np.float32)
    labels = np.concatenate([np.full(len(p), lab) for lab, p in parts]).astype(np.int64)
    n = len(means)
    colors = np.array([[0.5, 0.5, 0.5], [0.8, 0.2, 0.2], [0.8, 0.2, 0.2], [0.2, 0.3, 0.8]])[labels]
    scales = np.where(labels[:, None] == 0, 0.03, 0.012) * np.ones((n, 3))
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(means),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.from_numpy(scales.astype(np.float32)),
        opacities=torch.full((n,), 0.95),
        colors=torch.from_numpy(colors.astype(np.float32)),
    )
    cameras = []
    for i in range(views):
        az = 2 * math.pi * i / views + 0.3
        eye = np.array([1.3 * math.cos(az), 1.3 * math.sin(az), 0.9])
        cam = look_at(
            f"view_{i:02d}",
            eye,
            np.array([0.0, 0.0, 0.12]),
            np.array([0.0, 0.0, 1.0]),
            width=size,
            height=size,
            fov_y_deg=50.0,
        )
        cameras.append(cam)

    folder.mkdir(parents=True, exist_ok=True)
    write_ply(folder / "point_cloud.ply", scene)
    write_inria_cameras(folder / "cameras.json", cameras)
    mask_dir = folder / "user_masks"
    mask_dir.mkdir(exist_ok=True)
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(labels), 4).float()
    label_maps = {}
    for cam in cameras:
        out = render(scene, cam, features=one_hot, backend="torch")
        lab = out.features.argmax(-1).numpy()
        lab[out.alpha.numpy() <= 0.5] = 0
        label_maps[cam.name] = lab
        candidates = [np.isin(lab, (1, 2)), lab == 1, lab == 2, lab == 3]
        masks = np.stack([m for m in candidates if m.sum() >= 4])
        np.save(mask_dir / f"{cam.name}.npy", masks)
    return TinyScene(folder, scene, cameras, labels, label_maps)


_CACHE: dict[str, TinyScene] = {}


def prepared_tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    """The scene folder with its masks prepared (no features yet); built once per session."""
    from backend.masks.prepare import prepare_masks

    if "prepared" not in _CACHE:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            tiny = build_tiny_scene(tmp_path_factory.mktemp("tiny") / "scene")
            prepare_masks(tiny.folder, source=tiny.folder / "user_masks", progress=False)
        finally:
            torch.set_num_threads(previous)
        _CACHE["prepared"] = tiny
    return _CACHE["prepared"]


def trained_tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    """The prepared scene with click and SAGA features trained briefly (in a copy, so the prepared one stays
    without features); built once per session."""
    import shutil

    from backend.features.click import ClickConfig
    from backend.features.saga import SagaConfig
    from backend.features.train import train_features

    if "trained" not in _CACHE:
        prepared = prepared_tiny_scene(tmp_path_factory)
        folder = tmp_path_factory.mktemp("trained") / "scene"
        shutil.copytree(prepared.folder, folder)
        click = ClickConfig(iterations=80, batch_pixels=256, gfl_start=0.5, gfl_every=30, knn_sample=2048)
        saga = SagaConfig(iterations=60, batch_pixels=192, knn_sample=2048)
        for method, config in (("saga", saga), ("click", click)):  # click last: the default for load_field
            train_features(folder, method=method, config=config, pixels_per_view=600, progress=False)
        _CACHE["trained"] = dataclasses.replace(prepared, folder=folder)
    return _CACHE["trained"]


def user_mask_folder(tiny: TinyScene, tmp_path: Path, make: Callable[[np.ndarray], np.ndarray]) -> tuple[Path, Path]:
    """A copy of `tiny`'s model and cameras in `tmp_path/scene` and a user mask folder `tmp_path/masks` holding
    `make(label map)` per view (what a user hands `prepare --masks FOLDER`)."""
    scene = tmp_path / "scene"
    scene.mkdir()
    for name in ("point_cloud.ply", "cameras.json"):
        shutil.copy(tiny.folder / name, scene / name)
    masks = tmp_path / "masks"
    masks.mkdir()
    for cam in tiny.cameras:
        np.save(masks / f"{cam.name}.npy", make(tiny.label_maps[cam.name]))
    return scene, masks

"""Writing a synthetic scene folder (model, cameras, images, label maps, ground truth) that any splatseg command
or 3DGS tool reads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from backend.core.errors import SplatsegError

from .cameras import orbit_cameras
from .presets import PRESETS
from .scene import GENERATOR, SyntheticScene
from .tabletop import DEFAULT_NUM_GAUSSIANS

# ---- writing a scene folder ----------------------------------------------------------------------------------------

_VIEW_FILE = re.compile(r"view_\d+(_object|_part)?\.png")


def _is_synthetic_scene(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "labels.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == GENERATOR


def _check_target(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise SplatsegError(f"{folder} exists and is not a folder; give a new folder for the synthetic scene")
    if folder.is_dir() and any(folder.iterdir()) and not _is_synthetic_scene(folder):
        raise SplatsegError(
            f"{folder} is not empty and is not a synthetic scene splatseg wrote; give an empty or new folder"
        )


def one_hot_labels(labels: np.ndarray, num_labels: int) -> torch.Tensor:  # [N] → [N, num_labels] float32
    """Labels as features to render: a pixel's rendered vector is each label's accumulated blend weight."""
    out = torch.zeros(labels.shape[0], num_labels, dtype=torch.float32)
    out[torch.arange(labels.shape[0]), torch.from_numpy(labels.astype(np.int64))] = 1.0
    return out


def label_map(weights: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:  # [H, W, L], [H, W] → [H, W] uint16
    """The label with the largest accumulated weight where the pixel is mostly covered (alpha > 0.5), else 0."""
    labels = weights.argmax(dim=-1)
    labels[alpha <= 0.5] = 0
    return labels.cpu().numpy().astype(np.uint16)


def write_synthetic_scene(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = "tabletop",
    seed: int = 0,
    views: int = 36,
    resolution: int = 256,
    num_gaussians: int = DEFAULT_NUM_GAUSSIANS,
    progress: bool = True,
) -> SyntheticScene:
    """Write a scene folder any splatseg command (or another 3DGS tool) reads, plus its ground truth.

    Layout: `point_cloud.ply` (no label properties: a method must not see the answer), `cameras.json` (INRIA),
    `transforms.json`, `images/<view>.png` rendered by the reference renderer, `labels/<view>_object.png` and
    `labels/<view>_part.png` (16-bit label maps, 0 = background), `gaussian_labels.npz` (`object`, `part`: int32 in
    Gaussian order) and `labels.json` (names, part → object map). Rewriting a previous synthetic scene is allowed;
    writing into any other non-empty folder is refused.
    """
    # Imported here: building a scene (tests, benchmarks) must not pay for the renderer and the file writers.
    from tqdm import tqdm

    from backend.io.atomic import atomic_open, write_text_atomic
    from backend.io.cameras import write_inria_cameras, write_transforms
    from backend.io.images import write_png
    from backend.io.ply import write_ply
    from backend.render import render, to_uint8

    if preset not in PRESETS:
        raise SplatsegError(f"unknown synthetic preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
    folder = Path(out_dir)
    _check_target(folder)
    synth = PRESETS[preset](seed=seed, num_gaussians=num_gaussians)
    cameras = orbit_cameras(synth, views=views, resolution=resolution, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)

    # The marker first: a run cut short leaves a folder the next run recognises and may overwrite.
    write_text_atomic(folder / "labels.json", json.dumps(synth.labels_json(), indent=2) + "\n")
    with atomic_open(folder / "gaussian_labels.npz", "wb") as f:
        np.savez(f, object=synth.object_labels, part=synth.part_labels)
    write_ply(folder / "point_cloud.ply", synth.scene)
    write_inria_cameras(folder / "cameras.json", cameras)
    write_transforms(folder / "transforms.json", cameras, image_dir="images")

    num_objects = max(synth.object_names) + 1
    num_parts = max(synth.part_names) + 1
    features = torch.cat(
        [one_hot_labels(synth.object_labels, num_objects), one_hot_labels(synth.part_labels, num_parts)], dim=1
    )
    written: set[str] = set()
    for camera in tqdm(cameras, desc="rendering views", unit="view", disable=not progress):
        out = render(synth.scene, camera, features=features, backend="torch")
        write_png(folder / "images" / f"{camera.name}.png", to_uint8(out.rgb))
        write_png(
            folder / "labels" / f"{camera.name}_object.png", label_map(out.features[..., :num_objects], out.alpha)
        )
        write_png(folder / "labels" / f"{camera.name}_part.png", label_map(out.features[..., num_objects:], out.alpha))
        written |= {f"{camera.name}.png", f"{camera.name}_object.png", f"{camera.name}_part.png"}

    # Views of an earlier, larger run would otherwise pass for views of this one.
    for sub in ("images", "labels"):
        for path in (folder / sub).iterdir():
            if _VIEW_FILE.fullmatch(path.name) and path.name not in written:
                path.unlink()
    return synth

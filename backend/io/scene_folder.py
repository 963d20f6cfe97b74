"""Finding the trained model in a scene folder, the way the trainers that made it lay their outputs out.

Accepted, in this order of preference (docs/architecture.md, "Inputs and the workspace files"):
1. `point_cloud.ply` anywhere under the folder; INRIA writes `point_cloud/iteration_N/point_cloud.ply` for several
   N, and the highest N is the finished model.
2. A single top-level `*.ply` whose header has the 3DGS properties (nerfstudio splatfacto's `splat.ply` export);
   other PLYs such as a COLMAP point cloud are ignored.
3. gsplat checkpoints `ckpt_STEP[_rankR].pt` anywhere under the folder: the highest STEP.

The workspace (`.splatseg/`) and other hidden folders are never searched: an export written there must not be
mistaken for the model. When candidates from different runs compete the user is asked to name the file, rather
than splatseg guessing which run they meant.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NoReturn

from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.checkpoint import read_gsplat_checkpoint
from backend.io.ply import is_gaussian_ply, read_ply

MODEL_SUFFIXES = (".ply", ".pt", ".pth")
_ITERATION = re.compile(r"iteration_(\d+)\Z")
_CKPT = re.compile(r"ckpt_(\d+)(?:_rank(\d+))?\.pt\Z")


def scene_dir_of(scene_path: str | os.PathLike[str]) -> Path:
    """The scene folder for SCENE: the folder itself, or the run folder a model file belongs to.

    For a file, that is its parent, except in the trainers' own layouts where the cameras live higher up:
    `RUN/point_cloud/iteration_N/point_cloud.ply` and `RUN/ckpts/ckpt_*.pt` both belong to RUN.
    """
    path = Path(scene_path)
    if path.is_dir():
        return path
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder; give a scene folder or a model file (.ply or .pt)")
    parent = path.parent
    if path.name == "point_cloud.ply" and _ITERATION.match(parent.name) and parent.parent.name == "point_cloud":
        return parent.parent.parent
    if _CKPT.match(path.name) and parent.name == "ckpts":
        return parent.parent
    return parent


def find_model(scene_dir: str | os.PathLike[str]) -> Path:
    """The model file of a scene folder (or SCENE itself when it is a model file)."""
    path = Path(scene_dir)
    if path.is_file():
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise InputError(
                f"{path} is not a model file; give a scene folder, a 3DGS .ply or a gsplat ckpt_*.pt checkpoint"
            )
        return path
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder; give a scene folder or a model file (.ply or .pt)")

    point_clouds: list[Path] = []
    checkpoints: list[Path] = []
    for folder, subdirs, files in os.walk(path):
        # Hidden folders (the .splatseg workspace among them) never hold the model.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in files:
            if name == "point_cloud.ply":
                point_clouds.append(Path(folder) / name)
            elif _CKPT.match(name):
                checkpoints.append(Path(folder) / name)

    if point_clouds:
        return _latest_point_cloud(path, point_clouds)
    exports = sorted(p for p in path.glob("*.ply") if p.is_file() and is_gaussian_ply(p))
    if len(exports) == 1:
        return exports[0]
    if len(exports) > 1:
        _ambiguous(path, exports)
    if checkpoints:
        return _latest_checkpoint(path, checkpoints)
    raise InputError(
        f"no 3DGS model in {path}: expected point_cloud.ply, a splatfacto .ply export or a gsplat ckpt_*.pt"
    )


def load_scene(scene_path: str | os.PathLike[str], *, allow_nonfinite: bool = False) -> tuple[GaussianScene, Path]:
    """Find and read the model of SCENE; returns the Gaussians and the model file they came from."""
    model = find_model(scene_path)
    if model.suffix.lower() == ".ply":
        return read_ply(model, allow_nonfinite=allow_nonfinite), model
    return read_gsplat_checkpoint(model, allow_nonfinite=allow_nonfinite), model


def _latest_point_cloud(root: Path, candidates: list[Path]) -> Path:
    if len(candidates) == 1:
        return candidates[0]
    iterations = [_ITERATION.match(p.parent.name) for p in candidates]
    same_run = len({p.parent.parent for p in candidates}) == 1
    if not same_run or not all(iterations):
        _ambiguous(root, candidates)
    numbers = [int(m.group(1)) for m in iterations if m]
    return candidates[numbers.index(max(numbers))]


def _latest_checkpoint(root: Path, candidates: list[Path]) -> Path:
    if len({p.parent for p in candidates}) > 1:
        _ambiguous(root, candidates)
    steps = [int(m.group(1)) for p in candidates if (m := _CKPT.match(p.name))]
    last = max(steps)
    latest = sorted(p for p, step in zip(candidates, steps) if step == last)
    if len(latest) > 1:
        # gsplat's multi-GPU training splits the Gaussians between ranks: one file alone is part of the scene.
        raise InputError(
            f"{root}: step {last} is split over {len(latest)} files ({', '.join(p.name for p in latest)}) by "
            f"multi-GPU training; export the model to one .ply with gsplat and give that file"
        )
    return latest[0]


def _ambiguous(root: Path, candidates: list[Path]) -> NoReturn:
    shown = ", ".join(str(p.relative_to(root)) for p in sorted(candidates)[:4])
    more = f" and {len(candidates) - 4} more" if len(candidates) > 4 else ""
    raise InputError(
        f"{root} holds several 3DGS models ({shown}{more}); give the one you mean as SCENE (its file path)"
    )

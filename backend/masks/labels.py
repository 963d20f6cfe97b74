"""The `labels` mask source: a synthetic scene's ground-truth label maps, made SAM-like by the noise model.

`splatseg synth` writes `labels/<view>_object.png` and `labels/<view>_part.png` (16-bit, 0 = background) beside
the images. Handing those to the trainers as they are would test nothing of what SAM's inconsistency does to them,
so they go through `noise.noisy_masks` first (strength 0 gives the clean ground truth, for an upper bound).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.camera import Camera
from ..core.errors import InputError
from ..io.images import read_label_map
from .maskset import ViewMasks
from .noise import NoiseConfig, noisy_masks

LABELS_DIRNAME = "labels"


def has_labels(scene_dir: str | os.PathLike[str]) -> bool:
    """Whether the scene carries ground-truth label maps (a synthetic scene)."""
    return (Path(scene_dir) / LABELS_DIRNAME).is_dir()


def read_view_labels(scene_dir: str | os.PathLike[str], view: str) -> tuple[np.ndarray, np.ndarray]:
    """(part map [H, W] uint16, object map [H, W] uint16) of one view."""
    folder = Path(scene_dir) / LABELS_DIRNAME
    maps = []
    for level in ("part", "object"):
        path = folder / f"{view}_{level}.png"
        if not path.is_file():
            raise InputError(
                f"view {view!r} has no {path}; --masks labels needs every view's labels "
                f"(rewrite the scene with `splatseg synth`, or use --masks sam)"
            )
        maps.append(read_label_map(path))
    part, obj = maps
    if part.shape != obj.shape:
        raise InputError(
            f"view {view!r}: {view}_part.png is {part.shape[1]}×{part.shape[0]} but "
            f"{view}_object.png is {obj.shape[1]}×{obj.shape[0]}; rewrite the scene with `splatseg synth`"
        )
    return part, obj


class LabelMasks:
    """Per view: ground truth → noise model → `ViewMasks` (score 1, scales left NaN for `prepare` to fill)."""

    def __init__(self, scene_dir: str | os.PathLike[str], *, noise: NoiseConfig | None = None) -> None:
        self.scene_dir = Path(scene_dir)
        self.noise = noise if noise is not None else NoiseConfig()
        if not has_labels(self.scene_dir):
            raise InputError(
                f"--masks labels needs a synthetic scene's labels/ folder ({self.scene_dir / LABELS_DIRNAME} "
                "does not exist); use --masks sam or --masks PATH"
            )

    def __call__(self, camera: Camera) -> ViewMasks:
        part, obj = read_view_labels(self.scene_dir, camera.name)
        if part.shape != (camera.height, camera.width):
            raise InputError(
                f"view {camera.name!r}: its label maps are {part.shape[1]}×{part.shape[0]} but the camera is "
                f"{camera.width}×{camera.height}; rewrite the scene with `splatseg synth`"
            )
        masks = noisy_masks(part, obj, self.noise, view=camera.name)  # [M, H, W]
        m = len(masks)
        return ViewMasks(
            name=camera.name,
            masks=masks,
            scores=np.ones(m, dtype=np.float32),
            scales=np.full(m, np.nan, dtype=np.float32),
        )

"""Headless segmentation from Python (notebooks, scripts).

    from backend.segment import segment
    result = segment("scene/", "view_003", [(120, 88)], level="fine")
    result.mask      # [N] bool over the model file's Gaussians
    result.count, result.milliseconds

Pixels are integer pixel indices in the named camera's full-resolution image, clicked at the pixel's centre; the
features come from `splatseg train` (the most recently trained method unless one is named).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from .core.camera import Camera
from .core.errors import SplatsegError
from .features.field import FeatureField, SegmentResult, load_field
from .io.cameras import find_camera, load_cameras
from .io.scene_folder import scene_dir_of
from .render import pixel_center

__all__ = ["FeatureField", "SegmentResult", "load_field", "segment"]


def segment(
    scene: str | os.PathLike[str],
    view: str,
    pixels: Sequence[tuple[float, float]],
    negatives: Sequence[tuple[float, float]] = (),
    *,
    method: str | None = None,
    level: str | None = None,
    scale: float | None = None,
    threshold: float | None = None,
    workspace: str | os.PathLike[str] | None = None,
    field: FeatureField | None = None,
) -> SegmentResult:
    """Segment SCENE from clicks on the pixels (x, y) of camera `view` (negatives remove what they click).

    Pass a `field` from `load_field` to click many times without reloading the features.
    """
    camera = find_camera(load_cameras(scene_dir_of(scene)), view)
    if field is None:
        field = load_field(scene, method, workspace=workspace)  # type: ignore[arg-type]
    return field.segment(
        camera,
        [_center(camera, p) for p in pixels],
        [_center(camera, p) for p in negatives],
        level=level,
        scale=scale,
        threshold=threshold,
    )


def _center(camera: Camera, pixel: tuple[float, float]) -> tuple[float, float]:
    x, y = pixel
    if not (math.isfinite(x) and math.isfinite(y)):
        raise SplatsegError(f"pixel {x},{y} is not a number")
    if not (0 <= x < camera.width and 0 <= y < camera.height):
        raise SplatsegError(
            f"pixel {x:g},{y:g} is outside view {camera.name!r}, which is {camera.width}×{camera.height} "
            f"(x in 0..{camera.width - 1}, y in 0..{camera.height - 1})"
        )
    return pixel_center(int(x), int(y))

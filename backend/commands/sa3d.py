"""`splatseg segment --method sa3d`: the training-free path of the segment command.

It prints the same JSON object as the feature methods (count, milliseconds, method, level, view, pixels, …) plus
what only SA3D has: the views tried and lifted, why it stopped, and which 2D predictor answered (`predictor`).
Nothing is read from the workspace: no masks, no features, no training.

The predictor is SAM unless the user names another (`--predictor labels|FOLDER`): a synthetic scene's ground truth
is a benchmark's oracle, never a silent stand-in for SAM because the scene happens to carry `labels/`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.camera import Camera
from ..core.errors import InputError
from ..lift.predictor import Granularity, make_predictor
from ..lift.self_prompt import Sa3dOptions, segment_sa3d

LEVEL_TO_GRANULARITY: dict[str | None, Granularity] = {None: "whole", "coarse": "whole", "fine": "part"}
"""`--level` of the feature methods, read as which of SAM's candidates the click means."""


def sa3d_segment_command(
    scene: Path,
    *,
    view: str,
    pixels: Sequence[tuple[float, float]],
    negatives: Sequence[tuple[float, float]] = (),
    level: str | None = None,
    views: int | None = None,
    predictor: str = "sam",
    sam_checkpoint: Path | None = None,
    sam_model: str | None = None,
    mask_out: Path | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment, write what was asked for, return the one JSON object to print."""
    from ..io.cameras import find_camera, load_cameras
    from ..io.scene_folder import load_scene, scene_dir_of

    start = time.perf_counter()
    if level not in LEVEL_TO_GRANULARITY:
        raise InputError(f"--level is coarse or fine, not {level!r}")
    scene_dir = scene_dir_of(scene)
    cameras = load_cameras(scene_dir)
    camera = find_camera(cameras, view)
    clicks = [_pixel_center(camera, p) for p in pixels]
    negs = [_pixel_center(camera, p) for p in negatives]
    mask_predictor, source = make_predictor(
        scene_dir, predictor, cameras=cameras, sam_checkpoint=sam_checkpoint, sam_model=sam_model
    )
    gaussians, _ = load_scene(scene)
    options = Sa3dOptions(granularity=LEVEL_TO_GRANULARITY[level], **({} if views is None else {"views": views}))
    result = segment_sa3d(
        gaussians,
        cameras,
        mask_predictor,
        view=camera,
        pixels=clicks,
        negatives=negs,
        options=options,
        progress=progress,
    )
    report: dict[str, Any] = {
        "count": int(result.mask.sum()),
        "milliseconds": round(result.seconds * 1e3, 3),
        "method": "sa3d",
        "level": level or "coarse",
        "scale": None,
        "threshold": None,
        "view": view,
        "pixels": [[int(x), int(y)] for x, y in pixels],
        "negatives": [[int(x), int(y)] for x, y in negatives],
        "num_gaussians": len(gaussians),
        "predictor": source,
        "views_tried": len(result.steps),
        "views_used": result.views_used,
        "stopped": result.stopped,
    }
    if mask_out is not None:
        from ..io.selection import save_selection

        save_selection(mask_out, result.mask)
        report["mask_out"] = str(mask_out)
    if out is not None:
        from ..export import export_selection

        export_selection(gaussians, result.mask, out, format="ply")
        report["out"] = str(out)
    report["total_milliseconds"] = round((time.perf_counter() - start) * 1e3, 1)
    return report


def _pixel_center(camera: Camera, pixel: tuple[float, float]) -> tuple[float, float]:
    """A pixel index (x, y) → its centre; a user mistake (outside the image, not a number) is one clear line."""
    x, y = pixel
    if not (math.isfinite(x) and math.isfinite(y)) or not (0 <= x < camera.width and 0 <= y < camera.height):
        raise InputError(
            f"pixel {x:g},{y:g} is outside view {camera.name!r}, which is {camera.width}×{camera.height} "
            f"(x in 0..{camera.width - 1}, y in 0..{camera.height - 1})"
        )
    return int(x) + 0.5, int(y) + 0.5

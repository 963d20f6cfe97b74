"""`splatseg segment`: check the arguments, segment with the trained features (or SA3D), print one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import SplatsegError
from ..features.field import load_field
from ..io.cameras import find_camera, load_cameras
from ..io.scene_folder import scene_dir_of
from ..segment import _center


def run(args: argparse.Namespace) -> int:
    if args.method == "sa3d":  # training-free: no workspace, no features to load
        return run_sa3d(args)
    print_report(
        segment_command(
            args.scene,
            view=args.view,
            pixels=args.pixel,
            negatives=args.negative,
            method=args.method,
            level=args.level,
            scale=args.scale,
            threshold=args.threshold,
            mask_out=args.mask_out,
            out=args.out,
            workspace=args.workspace,
        )
    )
    return 0


def run_sa3d(args: argparse.Namespace) -> int:
    from .sa3d import sa3d_segment_command

    if args.scale is not None or args.threshold is not None:
        raise SplatsegError("--scale and --threshold are for the feature methods; --method sa3d takes --level")
    predictor = args.predictor or "sam"
    if args.masks is not None:  # the old spelling, which defaulted to the labels when a scene had them
        if args.predictor is not None:
            raise SplatsegError("give --predictor only (--masks is its old name for --method sa3d)")
        print("splatseg segment: warning: --masks is deprecated for --method sa3d; use --predictor", file=sys.stderr)
        predictor = args.masks
    report = sa3d_segment_command(
        args.scene,
        view=args.view,
        pixels=args.pixel,
        negatives=args.negative,
        level=args.level,
        views=args.views,
        predictor=predictor,
        sam_checkpoint=args.sam_checkpoint,
        sam_model=args.sam_model,
        mask_out=args.mask_out,
        out=args.out,
    )
    print_report(report)
    return 0


def segment_command(
    scene: Path,
    *,
    view: str,
    pixels: Sequence[tuple[float, float]],
    negatives: Sequence[tuple[float, float]] = (),
    method: str | None = None,
    level: str | None = None,
    scale: float | None = None,
    threshold: float | None = None,
    mask_out: Path | None = None,
    out: Path | None = None,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """`splatseg segment`: segment, write what was asked for, return the one JSON object to print."""
    start = time.perf_counter()
    camera = find_camera(load_cameras(scene_dir_of(scene)), view)
    positives = [_center(camera, p) for p in pixels]
    negs = [_center(camera, p) for p in negatives]
    field = load_field(scene, method, workspace=workspace)  # type: ignore[arg-type]
    field.warm_up()  # build the ray caster and the floater filter first: "milliseconds" is the click itself
    result = field.segment(camera, positives, negs, level=level, scale=scale, threshold=threshold)
    report: dict[str, Any] = {
        "count": result.count,
        "milliseconds": round(result.milliseconds, 3),
        "method": field.method,
        "level": result.level,
        "scale": result.scale,
        "threshold": result.threshold,
        "view": view,
        "pixels": [[int(x), int(y)] for x, y in pixels],
        "negatives": [[int(x), int(y)] for x, y in negatives],
        "num_gaussians": field.num_gaussians,
    }
    if mask_out is not None:
        from ..io.selection import save_selection

        save_selection(mask_out, result.mask)
        report["mask_out"] = str(mask_out)
    if out is not None:
        from ..export import export_selection

        export_selection(field.scene, result.mask, out, format="ply")
        report["out"] = str(out)
    report["total_milliseconds"] = round((time.perf_counter() - start) * 1e3, 1)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(json.dumps(report, separators=(", ", ": ")))

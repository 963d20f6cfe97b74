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
from ..io.cameras import find_camera
from ..segment import _center
from ..viewpoints.virtual import scene_cameras
from .checks import check_command_outputs, check_threshold


def run(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)  # a similarity: below 0 selects most of the scene
    check_command_outputs(args, ("--mask-out", args.mask_out), ("--out", args.out))
    if (args.pixel is None) == (args.prompts is None):
        raise SplatsegError("give the clicks as --pixel X,Y (one prompt) or --prompts FILE.json (many), not both")
    if args.prompts is not None:
        return run_batch(args)
    if args.view is None:
        raise SplatsegError("--view NAME is needed with --pixel (the camera the pixels are in)")
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
    camera = find_camera(scene_cameras(scene, workspace), view)
    field = load_field(scene, method, workspace=workspace)  # type: ignore[arg-type]
    field.warm_up()  # build the ray caster and the floater filter first: "milliseconds" is the click itself
    result, report = _segment_once(field, camera, view, pixels, negatives, level, scale, threshold)
    # A SAGA click at an unbuilt scale has its bank built in a daemon thread; a process that exits while that
    # thread is inside torch aborts (exit 134, "terminate called without an active exception") after its output.
    field.wait_for_banks()
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


def _segment_once(field, camera, view, pixels, negatives, level, scale, threshold) -> tuple[Any, dict[str, Any]]:
    """One prompt through a loaded field → (SegmentResult, the JSON object `segment` prints for it)."""
    positives = [_center(camera, p) for p in pixels]
    negs = [_center(camera, p) for p in negatives]
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
    return result, report


def run_batch(args: argparse.Namespace) -> int:
    """`--prompts FILE.json`: load the scene and the features once, print one JSON line per prompt (the line
    `--pixel` would print for it, without total_milliseconds), so a script segmenting many objects pays the start-up
    once."""
    from .prompts import read_prompts

    if args.method == "sa3d":
        raise SplatsegError("--prompts is for the feature methods (click, saga); run --method sa3d once per prompt")
    if args.mask_out is not None or args.out is not None or args.negative:
        raise SplatsegError("with --prompts, put negatives in each prompt; --mask-out and --out take one prompt")
    prompts = read_prompts(args.prompts, default_view=args.view)
    cameras = scene_cameras(args.scene, args.workspace)
    for p in prompts:
        find_camera(cameras, p.view)  # every view checked before the first line is printed
    field = load_field(args.scene, args.method, workspace=args.workspace)
    field.warm_up()
    for p in prompts:
        _, report = _segment_once(
            field,
            find_camera(cameras, p.view),
            p.view,
            p.pixels,
            p.negatives,
            p.level if p.level is not None else args.level,
            p.scale if p.scale is not None else args.scale,
            p.threshold if p.threshold is not None else args.threshold,
        )
        print_report(report)
    field.wait_for_banks()  # as `segment`: the process must not exit while the bank builder runs
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(json.dumps(report, separators=(", ", ": ")))

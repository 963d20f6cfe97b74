"""The segmentation accuracy grid: {tabletop, shelf} × {clean, default, strong noise} × {click, saga}.

Each cell is one `bench.accuracy.accuracy_benchmark` run (one click per object and per part in its best training
view, scored in the held-out views and over Gaussians). Each preset is scored with the mask model built for it:
`tabletop` with `labels` (its own noise model, every pixel covered), `shelf` with `sam-like` (SAM automatic-generator
statistics, support and background uncovered). The noise levels are strengths of that model: clean 0, default 1,
strong 2 (every rate doubled, probabilities clipped to 1). SAGA objects are clicked without a scale (the automatic
scale, no slider); SAGA parts at the scale of the best-matching training mask (the slider set right), as
`bench.accuracy` does. Training runs in a spawned child per method, so its peak memory (VmHWM) is its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import Figure

MASK_MODEL = {"tabletop": "labels", "shelf": "sam-like"}
"""The mask model each preset is scored with."""

NOISE_LEVELS = (("clean", 0.0), ("default", 1.0), ("strong", 2.0))
"""Name and strength of each noise level (a multiplier on every rate of the preset's mask model)."""

METHODS = ("click", "saga")


@dataclasses.dataclass(frozen=True)
class GridSize:
    views: int
    resolution: int
    num_gaussians: int
    iterations: int | None = None
    """Training steps per method; None: the method's default."""


QUICK = GridSize(views=36, resolution=160, num_gaussians=30_000)
FULL = GridSize(views=40, resolution=256, num_gaussians=80_000)

METRICS = (
    ("miou3d_coarse", "3D mIoU objects"),
    ("miou3d_fine", "3D mIoU parts"),
    ("miou_coarse", "2D mIoU objects, held-out views"),
    ("miou_fine", "2D mIoU parts, held-out views"),
    ("floater_fraction", "floater fraction"),
)


def segmentation_grid(
    *,
    size: GridSize,
    workdir: Path,
    presets: Sequence[str] = tuple(MASK_MODEL),
    noise_levels: Sequence[tuple[str, float]] = NOISE_LEVELS,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    isolate: bool = True,
    presets_at_once: int = 1,
    log=print,
) -> list[dict[str, Any]]:
    """One row per (preset, noise level, method), in that order; each row holds the scores and the training
    report (`train_seconds`, `peak_memory_mb`) of that cell. The scene of a preset is built once and shared by its
    noise levels; each noise level prepares its masks once for both methods.

    `presets_at_once` > 1 runs the presets side by side, each in its own spawned child (a shared box's wall clock
    is the constraint the quick grid is sized for); their training times then include each other's load.
    """
    kwargs = dict(size=size, workdir=workdir, noise_levels=tuple(noise_levels), methods=tuple(methods), seed=seed,
                  isolate=isolate)  # fmt: skip
    if presets_at_once <= 1 or len(presets) <= 1:
        return [row for preset in presets for row in _preset_rows(preset, log=log, **kwargs)]
    from concurrent.futures import ThreadPoolExecutor

    from .accuracy import _run_isolated

    with ThreadPoolExecutor(presets_at_once) as pool:  # each thread only waits for its child
        futures = [
            pool.submit(_run_isolated, _preset_child, preset, kwargs, f"the {preset} grid") for preset in presets
        ]
        return [row for f in futures for row in f.result()["rows"]]


def _preset_child(preset: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"rows": _preset_rows(preset, log=lambda s: print(s, flush=True), **kwargs)}


def _preset_rows(
    preset: str,
    *,
    size: GridSize,
    workdir: Path,
    noise_levels: Sequence[tuple[str, float]],
    methods: Sequence[str],
    seed: int,
    isolate: bool,
    log,
) -> list[dict[str, Any]]:
    from .accuracy import accuracy_benchmark

    rows: list[dict[str, Any]] = []
    for level, strength in noise_levels:
        log(f"[segmentation] {preset}, {MASK_MODEL[preset]} {level} (noise {strength:g}) …")
        r = accuracy_benchmark(
            noise=strength,
            methods=tuple(methods),
            preset=preset,
            masks=MASK_MODEL[preset],
            seed=seed,
            views=size.views,
            resolution=size.resolution,
            num_gaussians=size.num_gaussians,
            workdir=workdir / "accuracy",
            iterations={m: size.iterations for m in methods} if size.iterations else None,
            isolate=isolate,
        )
        for method, m in r["methods"].items():
            row = {
                "preset": preset,
                "masks": MASK_MODEL[preset],
                "noise": level,
                "strength": strength,
                "method": method,
                "scene": r["scene"],
                **{k: m[k] for k, _ in METRICS},
                "train_seconds": m["train_seconds"],
                "peak_memory_mb": m["peak_memory_mb"],
                "iterations": m["iterations"],
            }
            rows.append(row)
            log(format_grid([row], header=False))
    return rows


def format_grid(rows: Sequence[dict[str, Any]], *, header: bool = True) -> str:
    """The README's accuracy table, one line per cell."""
    lines = (
        [
            "| scene | masks | noise | method | 3D objects | 3D parts | 2D objects | 2D parts | floaters | train s "
            "| peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        if header
        else []
    )
    for r in rows:
        scores = " | ".join(f"{r[k]:.3f}" for k, _ in METRICS)
        lines.append(
            f"| {r['preset']} | {r['masks']} | {r['noise']} ({r['strength']:g}) | {r['method']} | {scores} | "
            f"{r['train_seconds']:.1f} | {r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def grid_key(row: dict[str, Any], metric: str) -> str:
    """`--json` key of one figure: segmentation.<preset>.<noise>.<method>.<metric>."""
    return f"segmentation.{row['preset']}.{row['noise']}.{row['method']}.{metric}"


def grid_figures(rows: Sequence[dict[str, Any]]) -> list[Figure]:
    """Every cell's scores, train time and peak memory as keyed figures (the JSON carries each at its key)."""
    figures: list[Figure] = []
    for r in rows:
        sc = r["scene"]
        where = (
            f"{r['preset']}, {r['masks']} {r['noise']} ({r['strength']:g}); {sc['num_gaussians'] // 1000}k, "
            f"{sc['views']} views at {sc['resolution']}²"
        )
        for metric, label in METRICS:
            figures.append(Figure("segment", f"{r['method']}: {label} ({where})", r[metric], "ratio",
                                  key=grid_key(r, metric)))  # fmt: skip
        figures.append(
            Figure("train", f"{r['method']}: training ({where})", r["train_seconds"], "s",
                   f"peak {r['peak_memory_mb']:.0f} MB", key=grid_key(r, "train_seconds"))
        )  # fmt: skip
        figures.append(
            Figure("train", f"{r['method']}: peak memory ({where})", r["peak_memory_mb"], "MB",
                   "training child's VmHWM", key=grid_key(r, "peak_memory_mb"))
        )  # fmt: skip
    return figures

"""`splatseg bench`: the figures the README's table quotes, measured the same way every time.

Speed is measured here, never in timed tests. Each figure is a median over repetitions (these machines are noisy),
with p95 where latency matters; the machine is printed beside the table so figures from different machines are not
compared by accident. `--quick` runs fewer repetitions and skips the long accuracy runs.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from backend.io.atomic import write_text_atomic

from .common import Figure, machine_description, percentile, timed


def bench_foundation(*, quick: bool, workdir: Path) -> list[Figure]:
    """PLY load at 1M, reference render at 100k/256², ray_feature at 1M, contributions 10k px."""
    from backend.features.threads import compute_threads
    from backend.io.ply import read_ply, write_ply
    from backend.render import RayCaster, contributions, pixel_center, render
    from backend.synthetic import build_tabletop, orbit_cameras

    figures: list[Figure] = []
    big = build_tabletop(seed=0, num_gaussians=1_000_000)
    ply = workdir / "bench_1m.ply"
    write_ply(ply, big.scene)
    size_mb = ply.stat().st_size / 1e6
    t = timed(lambda: read_ply(ply), repeat=2 if quick else 5)
    figures.append(Figure("io", "PLY load, 1M Gaussians", statistics.median(t), "s", f"{size_mb:.0f} MB file"))

    small = build_tabletop(seed=0, num_gaussians=100_000)
    cam = orbit_cameras(small, views=8, resolution=256, seed=0)[0]
    t = timed(lambda: render(small.scene, cam, backend="torch"), repeat=2 if quick else 5)
    figures.append(Figure("render", "reference render, 100k Gaussians, 256×256, CPU", statistics.median(t), "s"))

    feats = torch.randn(len(small.scene), 16)
    t = timed(lambda: render(small.scene, cam, features=feats, backend="torch"), repeat=2 if quick else 5)
    figures.append(Figure("render", "reference render + 16-d features, 100k, 256×256", statistics.median(t), "s"))

    g = torch.Generator().manual_seed(0)
    pixels = torch.stack(
        [torch.randint(0, 256, (10_000,), generator=g), torch.randint(0, 256, (10_000,), generator=g)], 1
    )
    t = timed(lambda: contributions(small.scene, cam, pixels, 16), repeat=2 if quick else 5)
    figures.append(Figure("render", "contributions, 10k pixels, k=16, 100k Gaussians", statistics.median(t), "s"))

    big_cam = orbit_cameras(big, views=8, resolution=512, seed=0)[0]
    t0 = time.perf_counter()
    caster = RayCaster(big.scene)
    setup = time.perf_counter() - t0
    big_feats = torch.nn.functional.normalize(torch.randn(len(big.scene), 24), dim=1)
    rng = np.random.default_rng(0)
    clicks = [pixel_center(int(x), int(y)) for x, y in rng.integers(96, 416, size=(30 if quick else 100, 2))]
    latencies = []
    # One thread, as the click path runs: a single ray is too little work to pay for a parallel barrier.
    with compute_threads(1):
        for i, px in enumerate(clicks):
            t0 = time.perf_counter()
            caster.feature(big_feats, big_cam, px)
            if i > 0:  # the first call warms caches
                latencies.append(time.perf_counter() - t0)
    ms = [v * 1000 for v in latencies]
    figures.append(
        Figure(
            "click",
            "ray_feature p50, 1M Gaussians, 512² view",
            percentile(ms, 50),
            "ms",
            f"p95 {percentile(ms, 95):.1f} ms",
        )
    )
    figures.append(Figure("click", "RayCaster set-up, 1M Gaussians (once per scene)", setup * 1000, "ms"))
    return figures


def bench_text(*, quick: bool, workdir: Path) -> list[Figure]:
    """Query latency (encode + rank) and cluster-embedding time, ViT-B-16 architecture; the language field's
    localisation beside cluster ranking (ground-truth encoder, two noise levels) and its query latency at 1M."""
    from .language import bench_text as run
    from .language_field import bench_text_field

    return run(quick=quick, workdir=workdir) + bench_text_field(quick=quick, workdir=workdir)


def bench_sa3d(*, quick: bool, workdir: Path) -> list[Figure]:
    """Held-out IoU with the ground-truth predictor, time per view, SAM's embedding share."""
    from .sa3d import bench_sa3d as run

    return run(quick=quick, workdir=workdir)


def bench_segmentation(*, quick: bool, workdir: Path) -> list[Figure]:
    """The accuracy grid {tabletop, shelf} × {clean, default, strong noise} × {click, saga} (held-out mIoU over
    objects and parts, 2D and 3D, floater fraction, training time and peak memory per run; `bench/segmentation.py`),
    then segment latency at 1M Gaussians. `--quick` is the grid at 36 views of 160², 30k Gaussians with the two
    presets run side by side; the full run 40 views at 256², 80k Gaussians, one run at a time."""
    from .accuracy import click_latency_benchmark
    from .segmentation import FULL, QUICK, format_grid, grid_figures, segmentation_grid

    rows = segmentation_grid(size=QUICK if quick else FULL, workdir=workdir, presets_at_once=2 if quick else 1)
    print(format_grid(rows), flush=True)
    figures = grid_figures(rows)
    lat = click_latency_benchmark(num_gaussians=200_000 if quick else 1_000_000, clicks=20 if quick else 60)
    n = f"{lat['num_gaussians'] // 1000}k" if lat["num_gaussians"] < 1_000_000 else "1M"
    for key, value in lat.items():
        if isinstance(value, dict):
            figures.append(
                Figure(
                    "click",
                    f"segment {key.replace('_', ' ')} p50, {n} Gaussians",
                    value["p50_ms"],
                    "ms",
                    f"p95 {value['p95_ms']:.1f} ms, {lat['threads']} threads",
                )
            )
    return figures


def bench_viewer(*, quick: bool, workdir: Path) -> list[Figure]:
    """Click → selection on the server, bytes per selection change, and (full runs, with
    /usr/bin/chromium) the demo's time to first frame."""
    from .viewer import bench_bytes, bench_click_latency, bench_demo

    figures: list[Figure] = []
    for n in (100_000,) if quick else (100_000, 1_000_000):
        r = bench_click_latency(n, clicks=20 if quick else 60, workdir=workdir)
        label = "1M" if n == 1_000_000 else f"{n // 1000}k"
        figures.append(
            Figure(
                "viewer",
                f"click → selection p50, {label} Gaussians",
                r["click_p50_ms"],
                "ms",
                f"p95 {r['click_p95_ms']:.1f} ms; look + chunk diff p50 {r['look_and_diff_p50_ms']:.1f} ms",
            )
        )
    for n in (80_000,) if quick else (80_000, 1_000_000):
        b = bench_bytes(n)
        label = "1M" if n == 1_000_000 else f"{n // 1000}k"
        figures.append(
            Figure(
                "viewer",
                f"bytes per object → object change, {label} ({int(b['chunks'])} chunks)",
                b["change_mean"],
                "ratio",
                f"share of the {b['full_buffer_mb']:.1f} MB buffer; first selection {100 * b['first_mean']:.1f}%",
            )
        )
    if not quick and Path("/usr/bin/chromium").exists():
        (workdir / "demo").mkdir(exist_ok=True)
        d = bench_demo(workdir / "demo", screenshot=None)
        figures += [
            Figure(
                "demo",
                "splatseg demo: serving, cold (empty cache)",
                d["cold_server_ready_s"],
                "s",
                f"warm {d['warm_server_ready_s']:.1f} s",
            ),
            Figure(
                "demo",
                "splatseg demo: first frame in headless chromium, cold",
                d["cold_first_frame_s"],
                "s",
                f"warm {d['warm_first_frame_s']:.0f} s (software WebGL)",
            ),
        ]
    return figures


def bench_interop(*, quick: bool, workdir: Path) -> list[Figure]:
    """Load time per splat format, splatseg beside splat-transform (SuperSplat's converter)."""
    from .interop import bench_interop as run

    return run(quick=quick, workdir=workdir, num_gaussians=100_000 if quick else 1_000_000)


def bench_latency(*, quick: bool, workdir: Path) -> list[Figure]:
    """The click path at 1M Gaussians (also with --quick: that is the size the figures are about), fast beside
    previous, and the look + diff per browser."""
    from .latency import bench_latency as run
    from .latency import latency_figures

    return latency_figures(run(1_000_000, clicks=12 if quick else 48, workdir=workdir), "1M Gaussians")


def bench_formats(*, quick: bool, workdir: Path) -> list[Figure]:
    """Load time per model format splatseg writes and reads (PLY, compressed PLY, .splat, .spz)."""
    from .formats import bench_formats as run

    return run(quick=quick, workdir=workdir)


def bench_capture(*, quick: bool, workdir: Path) -> list[Figure]:
    """A real capture without cameras: `view FILE` to first frame, Prepare to ready-to-click."""
    from .capture import bench_capture as run

    return run(quick=quick, workdir=workdir)


def bench_load(*, quick: bool, workdir: Path) -> list[Figure]:
    """20 token-holding browsers clicking over websockets while an attacker guesses the token; server RSS."""
    from .viewer_load import load_figures

    return load_figures(quick=quick)


def bench_startup(*, quick: bool, workdir: Path) -> list[Figure]:
    """`splatseg segment` (one click, 25k Gaussians) and `splatseg --help` in fresh processes: wall and CPU time."""
    from .startup import startup_figures

    return startup_figures(quick=quick, workdir=workdir)


SECTIONS: dict[str, Callable[..., list[Figure]]] = {
    "foundation": bench_foundation,
    "segmentation": bench_segmentation,
    "viewer": bench_viewer,
    "text": bench_text,
    "sa3d": bench_sa3d,
    "interop": bench_interop,
    "latency": bench_latency,
    "formats": bench_formats,
    "capture": bench_capture,
    "load": bench_load,
    "startup": bench_startup,
}


def format_table(figures: list[Figure]) -> str:
    lines = ["| section | figure | value | note |", "|---|---|---|---|"]
    for f in figures:
        value = f"{f.value:.3g} {f.unit}" if f.unit not in ("", "ratio") else f"{f.value:.3f}"
        lines.append(f"| {f.section} | {f.name} | {value} | {f.note} |")
    return "\n".join(lines)


def run_bench(*, quick: bool = False, json_out: Path | None = None, sections: list[str] | None = None) -> list[Figure]:
    chosen = sections or list(SECTIONS)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="splatseg-bench-") as tmp:
        for name in chosen:
            print(f"[bench] {name} …", flush=True)
            figures += SECTIONS[name](quick=quick, workdir=Path(tmp))
    print()
    print(f"Machine: {machine_description()}")
    print(format_table(figures))
    if json_out is not None:
        payload = {"machine": machine_description(), "figures": [dataclasses.asdict(f) for f in figures]}
        payload.update({f.key: f.value for f in figures if f.key})
        write_text_atomic(json_out, json.dumps(payload, indent=1))
    return figures

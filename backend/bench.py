"""`splatseg bench`: the figures the README's table quotes, measured the same way every time.

Speed is measured here, never in timed tests. Each figure is a median over repetitions (these machines are noisy),
with p95 where latency matters; the machine is printed beside the table so figures from different machines are not
compared by accident. `--quick` runs fewer repetitions and skips the long accuracy runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .io.atomic import write_text_atomic


@dataclasses.dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    note: str = ""


def machine_description() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), {gpu}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def _timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:  # → seconds per run
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_foundation(*, quick: bool, workdir: Path) -> list[Figure]:
    """Issue 2's figures: PLY load at 1M, reference render at 100k/256², ray_feature at 1M, contributions 10k px."""
    from .features.threads import compute_threads
    from .io.ply import read_ply, write_ply
    from .render import RayCaster, contributions, pixel_center, render
    from .synthetic import build_tabletop, orbit_cameras

    figures: list[Figure] = []
    big = build_tabletop(seed=0, num_gaussians=1_000_000)
    ply = workdir / "bench_1m.ply"
    write_ply(ply, big.scene)
    size_mb = ply.stat().st_size / 1e6
    t = _timed(lambda: read_ply(ply), repeat=2 if quick else 5)
    figures.append(Figure("io", "PLY load, 1M Gaussians", statistics.median(t), "s", f"{size_mb:.0f} MB file"))

    small = build_tabletop(seed=0, num_gaussians=100_000)
    cam = orbit_cameras(small, views=8, resolution=256, seed=0)[0]
    t = _timed(lambda: render(small.scene, cam, backend="torch"), repeat=2 if quick else 5)
    figures.append(Figure("render", "reference render, 100k Gaussians, 256×256, CPU", statistics.median(t), "s"))

    feats = torch.randn(len(small.scene), 16)
    t = _timed(lambda: render(small.scene, cam, features=feats, backend="torch"), repeat=2 if quick else 5)
    figures.append(Figure("render", "reference render + 16-d features, 100k, 256×256", statistics.median(t), "s"))

    g = torch.Generator().manual_seed(0)
    pixels = torch.stack(
        [torch.randint(0, 256, (10_000,), generator=g), torch.randint(0, 256, (10_000,), generator=g)], 1
    )
    t = _timed(lambda: contributions(small.scene, cam, pixels, 16), repeat=2 if quick else 5)
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
        Figure("click", "ray_feature p50, 1M Gaussians, 512² view", _p(ms, 50), "ms", f"p95 {_p(ms, 95):.1f} ms")
    )
    figures.append(Figure("click", "RayCaster set-up, 1M Gaussians (once per scene)", setup * 1000, "ms"))
    return figures


def bench_text(*, quick: bool, workdir: Path) -> list[Figure]:
    """Issue 5's figures: query latency (encode + rank) and cluster-embedding time, ViT-B-16 architecture."""
    from .language.bench import bench_text as run

    return [Figure("text", *row) for row in run(quick, workdir)]


def bench_sa3d(*, quick: bool, workdir: Path) -> list[Figure]:
    """Issue 6's figures: held-out IoU with the ground-truth predictor, time per view, SAM's embedding share."""
    from .bench_sa3d import bench_sa3d as run

    return run(quick=quick, workdir=workdir)


SECTIONS: dict[str, Callable[..., list[Figure]]] = {
    "foundation": bench_foundation,
    "text": bench_text,
    "sa3d": bench_sa3d,
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
        write_text_atomic(json_out, json.dumps(payload, indent=1))
    return figures

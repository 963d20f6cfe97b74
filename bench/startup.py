"""CLI start-up: wall time of `splatseg segment` (one click) and `splatseg --help` in fresh processes.

A scripted user pays a whole process per call, and for a small scene the click itself is a few percent of it: the
rest is importing (torch most of all) and loading the field. A tabletop of `--gaussians` (25k by default) with
click features made from its ground truth is written once; then each command runs `--repeat` times, and when
`--baseline SRC` names another checkout, that checkout's CLI runs interleaved with this one (old, new, old, new…)
so both see the same load and the ratio means something on a shared machine. Reported: medians of wall time and of
CPU time (user + system, steadier than wall time on a loaded machine), and the import time of
`backend.commands.segment` alone (`python -X importtime`, the root's cumulative time).

`python -m bench.startup [--gaussians 25000] [--repeat 5] [--baseline /path/to/old/checkout] [--json OUT]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Figure

REPO = Path(__file__).resolve().parents[1]


def write_scene(folder: Path, num_gaussians: int) -> tuple[str, tuple[int, int]]:
    """A tabletop with cameras (no images) and click features; returns a view name and a pixel on an object."""
    import numpy as np

    from backend.io.cameras import write_inria_cameras
    from backend.io.ply import write_ply
    from backend.synthetic import build_tabletop, orbit_cameras

    from .viewer import _click_pixels, write_click_workspace

    synth = build_tabletop(seed=0, num_gaussians=num_gaussians)
    folder.mkdir(parents=True, exist_ok=True)
    write_ply(folder / "point_cloud.ply", synth.scene)
    cams = orbit_cameras(synth, views=4, resolution=256, seed=0)
    write_inria_cameras(folder / "cameras.json", cams)
    write_click_workspace(folder, synth.object_labels, synth.part_labels, synth.scene.means)
    (x, y) = _click_pixels(synth.scene, cams[0], np.asarray(synth.object_labels), 1, seed=0)[0]
    return cams[0].name, (int(x), int(y))


def _env(src: Path) -> dict[str, str]:
    """The environment that makes `python -m backend.cli` import the checkout at `src`."""
    return {**os.environ, "PYTHONPATH": str(src)}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed_run(argv: list[str], src: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run: on a shared, loaded machine the wall time mostly
    measures the other jobs, the CPU time what the command itself costs."""
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(argv, cwd=src, env=_env(src), check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, _children_cpu() - c0


def _import_seconds(module: str, src: Path) -> float:
    """Cumulative import time of `module` and everything it pulls in, as `-X importtime` reports it."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=src,
        env=_env(src),
        check=True,
        capture_output=True,
        text=True,
    )
    for line in reversed(proc.stderr.splitlines()):
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module and not parts[2].startswith("  "):
            return int(parts[1]) / 1e6
    raise RuntimeError(f"-X importtime did not report {module}")


def startup_times(folder: Path, view: str, pixel: tuple[int, int], *, repeat: int, trees: dict[str, Path]) -> dict:
    """Per checkout (`trees`: label → source root): median wall seconds of `segment` and `--help`, and the import
    seconds of `backend.commands.segment`; each round runs every checkout once, in the same order."""
    segment = [sys.executable, "-m", "backend.cli", "segment", str(folder), "--view", view, "--pixel", "{},{}"]
    segment[-1] = segment[-1].format(*pixel)
    helps = [sys.executable, "-m", "backend.cli", "--help"]
    keys = ("segment", "segment_cpu", "help", "help_cpu", "import")
    runs: dict[str, dict[str, list[float]]] = {k: {key: [] for key in keys} for k in trees}
    for src in trees.values():  # one untimed round: the page cache holds torch for everyone alike
        _timed_run(segment, src)
    for _ in range(repeat):
        for label, src in trees.items():
            r = runs[label]
            for name, argv in (("segment", segment), ("help", helps)):
                wall, cpu = _timed_run(argv, src)
                r[name].append(wall)
                r[f"{name}_cpu"].append(cpu)
            r["import"].append(_import_seconds("backend.commands.segment", src))
    out: dict[str, Any] = {}
    for label, r in runs.items():
        out[label] = {f"{k}_median_s": statistics.median(v) for k, v in r.items()} | {"runs": r}
    return out


def startup_figures(
    *, quick: bool, workdir: Path, num_gaussians: int = 25_000, repeat: int | None = None
) -> list[Figure]:
    """`splatseg bench --section startup`: this checkout alone (the side-by-side form is `--baseline`)."""
    folder = workdir / "startup"
    view, pixel = write_scene(folder, num_gaussians)
    r = startup_times(folder, view, pixel, repeat=repeat or (3 if quick else 5), trees={"this": REPO})["this"]
    size = f"{num_gaussians // 1000}k"
    return [
        Figure(
            "startup",
            f"`segment`, one click, {size} Gaussians, fresh process",
            r["segment_median_s"],
            "s",
            f"CPU {r['segment_cpu_median_s']:.2f} s; importing backend.commands.segment {r['import_median_s']:.2f} s",
            key="segment_startup_s",
        ),
        Figure("startup", "`--help`, fresh process", r["help_median_s"], "s", f"CPU {r['help_cpu_median_s']:.2f} s"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    p.add_argument("--gaussians", type=int, default=25_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--baseline", type=Path, default=None, help="another checkout to time beside this one")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "backend" / "cli.py").is_file():
        p.error(f"--baseline {args.baseline}: not a splatseg checkout (no backend/cli.py there)")
    import tempfile

    from backend.io.atomic import write_text_atomic

    from .common import machine_description

    trees = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline is not None else {})
    with tempfile.TemporaryDirectory(prefix="splatseg-startup-") as tmp:
        folder = Path(tmp) / "scene"
        view, pixel = write_scene(folder, args.gaussians)
        load_before = os.getloadavg()
        result = startup_times(folder, view, pixel, repeat=args.repeat, trees=trees)
    result |= {"machine": machine_description(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    result["num_gaussians"] = args.gaussians
    if "baseline" in result:
        for k in ("segment_median_s", "segment_cpu_median_s", "help_median_s", "help_cpu_median_s", "import_median_s"):
            result[f"speedup_{k}"] = result["baseline"][k] / result["this"][k]
    print(json.dumps({k: v for k, v in result.items() if k not in trees} | {k: _medians(result[k]) for k in trees}))
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


def _medians(r: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in r.items() if k.endswith("_median_s")}


if __name__ == "__main__":
    raise SystemExit(main())

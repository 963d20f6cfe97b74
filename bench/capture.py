"""`splatseg bench --section capture`: one real splat file without cameras, as a user meets it (issue 11's figures).

1. **`view FILE` → first frame**: start `splatseg view FILE` as a user would and time it to the splats being drawn
   in Debian's chromium (the same first-frame test as the demo's figure in `viewer.py`).
2. **Prepare → ready to click**: what the viewer's Prepare and Train buttons run on that file, in this process: the
   virtual cameras and their renders, the masks the viewer picks (`viewer_source`: geometric when there are no SAM
   weights and no network), then click features. `--quick` uses fewer, smaller virtual views than the viewer's
   48 at 512×512.

The capture is PlayCanvas's biker (`tests/data/real/biker.compressed.ply`, 152,746 Gaussians, MIT).

`python -m bench.capture --baseline /path/to/old/checkout [--repeat 2] [--json OUT]` times view → first frame for
this checkout and the other one interleaved (old, new, new, old…), so both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Figure

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "tests" / "data" / "real" / "biker.compressed.ply"


def view_to_first_frame(model: Path, *, timeout: float = 600.0, src: Path = REPO) -> dict[str, float]:
    """Seconds from starting `splatseg view MODEL` (the checkout at `src`) to its server answering and to chromium
    drawing the splats, and the server process's peak resident set by then (`server_peak_rss_mb`, Linux only)."""
    from playwright.sync_api import sync_playwright

    from viewer.headless import CHROMIUM_ARGS

    from .viewer import DEMO_VIEWPORT, _free_port, _wait_frame, _wait_http

    port = _free_port(19100)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "view", str(Path(model).resolve()), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=src,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url, proc, timeout)
        out = {"server_ready_s": time.perf_counter() - t0}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": DEMO_VIEWPORT[0], "height": DEMO_VIEWPORT[1]})
            page.goto(url)
            _wait_frame(page, timeout)
            out["first_frame_s"] = time.perf_counter() - t0
            out["server_peak_rss_mb"] = _peak_rss_mb(proc.pid)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def _peak_rss_mb(pid: int) -> float:
    """A running process's peak resident set (VmHWM) in MB; NaN where /proc does not say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return float(line.split()[1]) / 1024 if line else float("nan")


def prepare_to_ready(
    model: Path,
    workdir: Path,
    *,
    views: int | None = None,
    resolution: int | None = None,
    iterations: int | None = None,
) -> dict:
    """Seconds for the viewer's Prepare (virtual views, masks) and Train (click features) on a copy of MODEL
    (`iterations`: fewer training steps than the default, for the test only)."""
    from backend.features.train import train_features
    from backend.masks.prepare import prepare_masks, viewer_source

    scene = workdir / "capture"
    scene.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, scene / model.name)
    source, _ = viewer_source(scene)
    t0 = time.perf_counter()
    masks = prepare_masks(scene, source=source, views=views, resolution=resolution, progress=False)
    t1 = time.perf_counter()
    train_features(scene, method="click", iterations=iterations, progress=False)
    t2 = time.perf_counter()
    return {
        "source": masks.index["source"],
        "views": len(masks.views),
        "prepare_s": t1 - t0,
        "train_s": t2 - t1,
        "ready_s": t2 - t0,
    }


def bench_capture(*, quick: bool, workdir: Path) -> list[Figure]:
    if not CAPTURE.is_file():
        print(f"[bench] capture skipped: {CAPTURE} is missing", flush=True)
        return []
    figures = []
    if Path("/usr/bin/chromium").exists():
        v = view_to_first_frame(CAPTURE)
        note = f"server answers after {v['server_ready_s']:.1f} s (software WebGL)"
        figures.append(Figure("capture", "view biker.compressed.ply → first frame", v["first_frame_s"], "s", note))
    else:
        print("[bench] capture: no /usr/bin/chromium, first frame not timed", flush=True)
    size = {"views": 12, "resolution": 256} if quick else {}
    r = prepare_to_ready(CAPTURE, workdir / "capture", **size)
    shape = f"{r['views']} views" + (" at 256²" if quick else " at 512²")
    note = f"{r['source']} masks, {shape}: prepare {r['prepare_s']:.0f} s + train {r['train_s']:.0f} s"
    figures.append(Figure("capture", "biker: Prepare → ready to click", r["ready_s"], "s", note))
    return figures


def first_frame_side_by_side(model: Path, trees: dict[str, Path], *, repeat: int) -> dict:
    """Per checkout (`trees`: label → source root) the view → first frame runs, interleaved: each round runs every
    checkout once, the order reversed every other round."""
    labels = list(trees)
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in labels}
    for r in range(repeat):
        for label in labels if r % 2 == 0 else labels[::-1]:
            runs[label].append(view_to_first_frame(model, src=trees[label]) | {"loadavg": os.getloadavg()[0]})
            print(json.dumps({"round": r, "tree": label, **runs[label][-1]}), flush=True)
    out: dict = {"runs": runs}
    for label, rs in runs.items():
        out[f"{label}_first_frame_median_s"] = statistics.median(x["first_frame_s"] for x in rs)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.capture", description="view FILE → first frame, side by side")
    p.add_argument("--model", type=Path, default=CAPTURE)
    p.add_argument("--baseline", type=Path, default=None, help="another checkout to time beside this one")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "backend" / "cli.py").is_file():
        p.error(f"--baseline {args.baseline}: not a splatseg checkout (no backend/cli.py there)")
    if args.json is not None and not args.json.parent.is_dir():
        p.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    if not args.model.is_file():
        p.error(f"--model {args.model}: no such file")
    if args.repeat < 1:
        p.error(f"--repeat {args.repeat}: give 1 or more rounds")
    if not Path("/usr/bin/chromium").exists():
        p.error("no /usr/bin/chromium: install Debian's chromium to time the first frame")
    from backend.io.atomic import write_text_atomic

    from .common import machine_description

    trees = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline is not None else {})
    try:
        result = first_frame_side_by_side(args.model, trees, repeat=args.repeat)
    except RuntimeError as exc:  # the viewer refused the model (its own one line went to its log)
        print(f"python -m bench.capture: {exc}; check that `splatseg view {args.model}` serves it", file=sys.stderr)
        return 1
    result["machine"] = machine_description()
    if "baseline" in trees:
        ratio = result["baseline_first_frame_median_s"] / result["this_first_frame_median_s"]
        result["ratio_baseline_over_this"] = ratio
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

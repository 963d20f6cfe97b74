"""`bench/gpu.sh`: every GPU figure in one run of under 8 minutes on one GPU, one JSON file and the README's rows.

Steps, each timed against one deadline (a step that would start after it is recorded as skipped, never half-run):

0. gsplat's CUDA extension: the PyPI wheel has no binaries, so the first use on a fresh machine JIT-compiles them
   (minutes, with nvcc; cached in ~/.cache/torch_extensions for the pytest process and every later run). It is
   built first and timed on its own (`gsplat_build_s`); the 8 minutes and the deadline count from after it;
1. the CUDA tests (`pytest -m cuda`: gsplat against the reference renderer, the server-rendered viewer);
2. gsplat render time of the tabletop at 1M and 3M Gaussians, 1280×720 (p50 of 20 frames after 3 warm-ups);
3. a `--render server` frame at 1M: what `viewer/server_frames.py` does per frame (upload the look and the
   selection, render colour + the selection channel with gsplat, tint, copy to the host);
4. feature training on the GPU (bench/gpu_training.py): a small CUDA smoke training first (a device bug fails in
   seconds, its traceback's last frames in the JSON), then `train_features(device="cuda")` for click at 1M Gaussians
   / 200 views, then, when the step's time allows, a small scene's click training on the CPU and on the GPU (the
   ratio) and SAGA at 1M: precompute / train / total seconds and the GPU's peak memory;
5. click latency on the GPU machine: the click path is CPU code by design (one ray, one product over the
   blocked bank), so this is `bench.latency` at 1M on that machine's cores.

The JSON is rewritten after every step, so what was measured survives a step that overruns `gpu.sh`'s hard limit.
Without CUDA it says so in one line and exits 1 having measured nothing, unless asked for a CPU run:
`--cpu-parts` runs the steps that need no GPU (5, at `--click-size`); `--dry-run` runs every step on the CPU at toy
sizes with the torch renderer in place of gsplat (and only collects the CUDA tests), which is how the script's
plumbing is checked on a machine without a GPU (its figures mean nothing).

`--only STEP[,STEP]` runs just those steps (cuda_tests, render, server_frame, training, click; gsplat's build
comes first whenever one of the first four is asked for).

`bench/gpu.sh [--json OUT] [--cpu-parts | --dry-run] [--click-size N] [--only STEP[,STEP]]`
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backend.io.atomic import write_text_atomic

from .common import machine_description, percentile

BUDGET_S = 7 * 60
"""Everything must end within 8 minutes; the last step may start until 7."""
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and how big: the real run on a GPU, or the dry run that checks the plumbing on a CPU."""

    device: str = "cuda"
    backend: str = "gsplat"
    render_sizes: tuple[tuple[int, str], ...] = ((1_000_000, "1m"), (3_000_000, "3m"))
    frame_size: int = 1_000_000
    resolution: tuple[int, int] = (1280, 720)
    repeat: int = 20
    pytest_args: tuple[str, ...] = ()


DRY_RUN = Plan(
    device="cpu",
    backend="torch",
    render_sizes=((2000, "1m"), (3000, "3m")),
    frame_size=2000,
    resolution=(64, 36),
    repeat=2,
    pytest_args=("--collect-only",),
)


def _gsplat_build(plan: Plan) -> dict[str, Any]:
    """Build (or load the cached build of) gsplat's CUDA extension, so no later step pays for the compile."""
    if plan.device != "cuda":
        return {"gsplat_build": "not built (dry run: the torch renderer stands in for gsplat)"}
    from gsplat.cuda._backend import _C

    if _C is None:
        raise RuntimeError("gsplat's CUDA extension did not build; is the CUDA toolkit (nvcc) on PATH?")
    return {"gsplat_build": "ok"}


def _cuda_test_files() -> list[str]:
    """The test modules that hold CUDA tests: only these are collected, so the GPU machine needs the packages they
    import and not every test's (pycolmap, playwright)."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py") if "mark.cuda" in p.read_text())


def _cuda_tests(plan: Plan) -> dict[str, Any]:
    args = ["-q", "-m", "cuda", "-p", "no:cacheprovider", "-rP", *plan.pytest_args, *_cuda_test_files()]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    # The passed tests' printed gaps (gsplat against the reference) go into the JSON beside the summary.
    return {"cuda_tests_rc": proc.returncode, "cuda_tests_summary": tail, "cuda_tests_output": proc.stdout[-4000:]}


_SCENES: dict[int, Any] = {}


def _scene_and_camera(num_gaussians: int, resolution: tuple[int, int]):
    """The tabletop at this size (built once per run: the render and server-frame steps share the 1M one) and a
    camera of `resolution`."""
    from backend.synthetic import build_tabletop, orbit_cameras

    if num_gaussians not in _SCENES:
        _SCENES.clear()  # one scene at a time: 3M at SH 0 is ~0.7 GB on the host
        _SCENES[num_gaussians] = build_tabletop(seed=0, num_gaussians=num_gaussians)
    synth = _SCENES[num_gaussians]
    cam = orbit_cameras(synth, views=1, resolution=resolution[1], seed=0)[0]
    return synth, cam.scaled(*resolution) if (cam.width, cam.height) != resolution else cam


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _cuda_p50(fn: Callable[[], object], device: str, repeat: int = 20, warmup: int = 3) -> tuple[float, float]:
    """p50 and p95 milliseconds of `fn`, synchronising the device around each call."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return percentile(times, 50), percentile(times, 95)


def _render_timings(plan: Plan) -> dict[str, Any]:
    from backend.render import render

    out: dict[str, Any] = {}
    for n, label in plan.render_sizes:
        synth, cam = _scene_and_camera(n, plan.resolution)
        scene = synth.scene.to(plan.device)
        with torch.no_grad():
            p50, p95 = _cuda_p50(
                lambda scene=scene, cam=cam: render(scene, cam, backend=plan.backend), plan.device, plan.repeat
            )
        out[f"gsplat_render_{label}_p50_ms"], out[f"gsplat_render_{label}_p95_ms"] = p50, p95
        del scene
        if plan.device == "cuda":
            torch.cuda.empty_cache()
    return out


def _server_frame(plan: Plan) -> dict[str, Any]:
    import numpy as np

    from backend.render import render
    from viewer.looks import base_rgba

    synth, cam = _scene_and_camera(plan.frame_size, plan.resolution)
    scene = synth.scene.to(plan.device)
    rgba_host = base_rgba(synth.scene.dc_colors, synth.scene.opacities)  # [N, 4] uint8
    mask_host = np.asarray(synth.object_labels == synth.object_labels.max())

    def frame() -> object:
        rgba = torch.from_numpy(np.ascontiguousarray(rgba_host)).to(plan.device)
        sel = torch.from_numpy(np.ascontiguousarray(mask_host)).to(plan.device)
        visible = rgba[:, 3] > 0  # as the viewer does: hidden Gaussians are left out of the render
        s, m_sel = (scene, sel) if bool(visible.all()) else (scene.subset(visible), sel[visible])
        out = render(s, cam, features=m_sel.float()[:, None], backend=plan.backend)
        m = (out.features[..., 0] / out.alpha.clamp(min=1e-6)).clamp(0, 1)[..., None]  # [H, W, 1]
        rgb = out.rgb.clamp(0, 1)
        tint = torch.tensor([1.0, 0.55, 0.1], device=rgb.device)
        rgb = (rgb * 0.6 + tint * 0.4) * m + rgb * 0.35 * (1 - m)
        return (rgb * 255).to(torch.uint8).cpu().numpy(), out.depth.float().cpu().numpy()

    with torch.no_grad():
        p50, p95 = _cuda_p50(frame, plan.device, plan.repeat)
    return {"server_frame_1m_p50_ms": p50, "server_frame_1m_p95_ms": p95}


def _training(
    plan: Plan, publish: Callable[[dict[str, Any]], None], *, on_gpu: bool, gsplat_ok: bool
) -> dict[str, Any]:
    """The training step (bench/gpu_training.py). Its scenes' masks are rendered with gsplat, or with the torch
    renderer on the GPU when gsplat's build failed (slower, but the training is still measured)."""
    from .gpu_training import DRY_RUN_SIZES, Sizes, training_step

    if not on_gpu:
        return {"gpu_training": "not measured: no CUDA GPU here"}
    if plan.device != "cuda":
        return training_step(DRY_RUN_SIZES, publish)
    return training_step(Sizes(backend="gsplat" if gsplat_ok else "torch"), publish)


def _click(size: int) -> dict[str, Any]:
    from .latency import bench_latency

    with tempfile.TemporaryDirectory(prefix="splatseg-gpu-") as tmp:
        r = bench_latency(size, clicks=12, workdir=Path(tmp))
    keys = ("click_coarse_p50_ms", "click_fine_p50_ms", "saga_p50_ms", "look_diff_p50_ms")
    return {f"gpu_machine_{k}": r[k] for k in keys} | {"click_size": size}


def readme_rows(result: dict[str, Any]) -> list[str]:
    """The README table's rows for what was measured (`| section | figure | value | note |`)."""
    rows = []
    names = {
        "gsplat_render_1m_p50_ms": "gsplat render 1280×720, 1M Gaussians p50",
        "gsplat_render_3m_p50_ms": "gsplat render 1280×720, 3M Gaussians p50",
        "server_frame_1m_p50_ms": "`--render server` frame, 1M Gaussians p50",
        "gpu_machine_click_coarse_p50_ms": "click → selection (coarse) on the GPU machine's CPU",
    }
    training = {
        "large_click": "feature training on the GPU, click, 1M Gaussians / 200 views",
        "large_saga": "feature training on the GPU, SAGA, 1M Gaussians / 200 views",
    }
    machine = ("dry run, CPU, toy sizes: " if result.get("dry_run") else "") + result["machine"]
    if result.get("gsplat_build") == "ok":
        build = f"{result['gsplat_build_s']:.0f} s"
        rows.append(f"| gpu | gsplat CUDA build (first use; cached after) | {build} | {machine} |")
    for key, name in names.items():
        if isinstance(result.get(key), (int, float)):
            rows.append(f"| gpu | {name} | {result[key]:.3g} ms | {machine} |")
    for part, name in training.items():
        key = f"gpu_training_{part}"
        if isinstance(result.get(f"{key}_total_s"), (int, float)):
            note = (
                f"{result[f'{key}_num_gaussians']} Gaussians, {result[f'{key}_views']} views, "
                f"{result[f'{key}_iterations']} iterations: precompute {result[f'{key}_precompute_s']:.1f} s, "
                f"train {result[f'{key}_train_s']:.1f} s, peak GPU memory {result.get(f'{key}_peak_gpu_mb', 0):.0f} MB"
            )
            rows.append(f"| gpu | {name} | {result[f'{key}_total_s']:.1f} s | {note}; {machine} |")
    if isinstance(result.get("gpu_training_ratio_cpu_over_device"), (int, float)):
        cpu_s, dev_s = result["gpu_training_ratio_click_cpu_train_s"], result["gpu_training_ratio_click_dev_train_s"]
        rows.append(
            f"| gpu | click training, 100k Gaussians / 40 views: CPU ÷ GPU (train phase) | "
            f"{result['gpu_training_ratio_cpu_over_device']:.1f}× | CPU {cpu_s:.1f} s, GPU {dev_s:.1f} s; {machine} |"
        )
    if "cuda_tests_summary" in result:
        rows.append(
            f"| gpu | CUDA tests (`pytest -m cuda`) | rc {result['cuda_tests_rc']} | {result['cuda_tests_summary']} |"
        )
    return rows


STEPS = ("cuda_tests", "render", "server_frame", "training", "click")
GPU_STEPS = STEPS[:4]
"""The steps that need the GPU (and gsplat's build before them)."""


def run(
    *,
    cpu_parts: bool,
    click_size: int,
    dry_run: bool = False,
    json_out: Path | None = None,
    only: tuple[str, ...] = STEPS,
) -> dict | None:
    """Every step in order (those in `only`), each started only before the deadline; the JSON is rewritten after
    each step (and by the training step after each of its parts)."""
    has_cuda = torch.cuda.is_available()
    if not has_cuda and not (cpu_parts or dry_run):
        return None
    plan = DRY_RUN if dry_run else Plan()
    result: dict[str, Any] = {"machine": machine_description(), "dry_run": dry_run, "skipped": [], "errors": {}}

    def publish(partial: dict[str, Any]) -> None:
        result.update(partial)
        _write(result, json_out)

    on_gpu = has_cuda or dry_run
    every: dict[str, Callable[[], dict[str, Any]]] = {
        "cuda_tests": lambda: _cuda_tests(plan),
        "render": lambda: _render_timings(plan),
        "server_frame": lambda: _server_frame(plan),
        "training": lambda: _training(plan, publish, on_gpu=on_gpu, gsplat_ok=result.get("gsplat_build") == "ok"),
        "click": lambda: _click(click_size),
    }
    steps = [(name, every[name]) for name in STEPS if name in only and (on_gpu or name not in GPU_STEPS[:3])]
    if on_gpu and any(name in GPU_STEPS for name in only):
        _run_step(result, "gsplat_build", lambda: _gsplat_build(plan), json_out)
    start = time.perf_counter()  # the deadline counts from after the one-time build
    for name, step in steps:
        if time.perf_counter() - start > BUDGET_S:
            result["skipped"].append(name)
            continue
        _run_step(result, name, step, json_out)
        result["total_s"] = time.perf_counter() - start
    result.setdefault("total_s", time.perf_counter() - start)
    _SCENES.clear()
    return result


def _run_step(result: dict[str, Any], name: str, step: Callable[[], dict[str, Any]], json_out: Path | None) -> None:
    t0 = time.perf_counter()
    try:
        result.update(step())
    except Exception as e:  # one failing step must not lose the others' figures
        result["errors"][name] = f"{type(e).__name__}: {e}"
    result[f"{name}_s"] = time.perf_counter() - t0
    _write(result, json_out)


def _write(result: dict[str, Any], json_out: Path | None) -> None:
    result["readme_rows"] = readme_rows(result)
    if json_out is not None:  # a step that overruns gpu.sh's hard limit keeps the earlier ones' figures
        write_text_atomic(json_out, json.dumps(result, indent=1))


def _steps(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in STEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown step {unknown[0] if unknown else text!r}; choose from {', '.join(STEPS)}"
        )
    return names


def _click_size(text: str) -> int:
    """`--click-size`: checked when parsed (a tabletop scene needs its smallest size), not after the other steps."""
    from backend.synthetic.tabletop import MIN_GAUSSIANS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < MIN_GAUSSIANS:
        raise argparse.ArgumentTypeError(f"{n} is below the click scene's smallest size, {MIN_GAUSSIANS} Gaussians")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (as `splatseg`'s): the script's log stays readable on a GPU machine."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="bench/gpu.sh", description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=Path("bench-gpu.json"), help="where to write the figures")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--cpu-parts", action="store_true", help="without CUDA: run the steps that need no GPU")
    mode.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy sizes (checks plumbing)")
    p.add_argument("--click-size", type=_click_size, default=1_000_000, help="Gaussians for the click step")
    p.add_argument("--only", type=_steps, default=STEPS, help=f"comma-separated steps to run ({', '.join(STEPS)})")
    args = p.parse_args(argv)
    result = run(
        cpu_parts=args.cpu_parts, click_size=args.click_size, dry_run=args.dry_run, json_out=args.json, only=args.only
    )
    if result is None:
        print(
            "bench/gpu.sh: no CUDA GPU here (torch.cuda.is_available() is False); nothing measured "
            "(--dry-run checks the script on the CPU)",
            file=sys.stderr,
        )
        return 1
    print("\n".join(result["readme_rows"]))
    print(f"bench/gpu.sh: wrote {args.json} in {result['total_s']:.0f} s")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

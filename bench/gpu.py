"""`bench/gpu.sh`: every GPU figure in one run of under 8 minutes on one GPU, one JSON file and the README's rows.

Steps, each timed against one deadline (a step that would start after it is recorded as skipped, never half-run):

1. the CUDA tests (`pytest -m cuda`: gsplat against the reference renderer, the server-rendered viewer);
2. gsplat render time of the tabletop at 1M and 3M Gaussians, 1280×720 (p50 of 20 frames after 3 warm-ups);
3. a `--render server` frame at 1M: what `viewer/server_frames.py` does per frame (upload the look and the
   selection, render colour + the selection channel with gsplat, tint, copy to the host);
4. feature training on the GPU: not measured, and said so in the JSON: `train_features` has no device option (the
   contributions cache and the optimiser run where the scene is loaded, on the CPU);
5. click latency on the GPU machine: the click path is CPU code by design (one ray, one product over the
   blocked bank), so this is `bench.latency` at 1M on that machine's cores.

Without CUDA it says so in one line and exits 0 having measured nothing, unless `--cpu-parts` asks for the
steps that need no GPU (5, at `--click-size`), which is how its plumbing is checked on a CPU-only machine.

`bench/gpu.sh [--json OUT] [--cpu-parts] [--click-size N]`
"""

from __future__ import annotations

import argparse
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


def _cuda_tests() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"cuda_tests_rc": proc.returncode, "cuda_tests_summary": tail}


def _scene_and_camera(num_gaussians: int):
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=num_gaussians)
    cam = orbit_cameras(synth, views=1, resolution=720, seed=0)[0]
    return synth, cam


def _cuda_p50(fn: Callable[[], object], repeat: int = 20, warmup: int = 3) -> tuple[float, float]:  # ms p50, p95
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return percentile(times, 50), percentile(times, 95)


def _render_timings() -> dict[str, Any]:
    from backend.render.gsplat_backend import render_gsplat

    out: dict[str, Any] = {}
    for n, label in ((1_000_000, "1m"), (3_000_000, "3m")):
        synth, cam = _scene_and_camera(n)
        scene = synth.scene.to("cuda")
        cam = cam.scaled(1280, 720) if cam.width != 1280 else cam
        with torch.no_grad():
            p50, p95 = _cuda_p50(lambda scene=scene, cam=cam: render_gsplat(scene, cam))
        out[f"gsplat_render_{label}_p50_ms"], out[f"gsplat_render_{label}_p95_ms"] = p50, p95
        del scene, synth
        torch.cuda.empty_cache()
    return out


def _server_frame() -> dict[str, Any]:
    import numpy as np

    from backend.render import render
    from viewer.looks import base_rgba

    synth, cam = _scene_and_camera(1_000_000)
    scene = synth.scene.to("cuda")
    rgba_host = base_rgba(synth.scene.dc_colors, synth.scene.opacities)  # [N, 4] uint8
    mask_host = np.asarray(synth.object_labels == synth.object_labels.max())

    def frame() -> object:
        rgba = torch.from_numpy(np.ascontiguousarray(rgba_host)).to("cuda")
        sel = torch.from_numpy(np.ascontiguousarray(mask_host)).to("cuda")
        visible = rgba[:, 3] > 0  # as the viewer does: hidden Gaussians are left out of the render
        s, m_sel = (scene, sel) if bool(visible.all()) else (scene.subset(visible), sel[visible])
        out = render(s, cam, features=m_sel.float()[:, None], backend="gsplat")
        m = (out.features[..., 0] / out.alpha.clamp(min=1e-6)).clamp(0, 1)[..., None]  # [H, W, 1]
        rgb = out.rgb.clamp(0, 1)
        tint = torch.tensor([1.0, 0.55, 0.1], device=rgb.device)
        rgb = (rgb * 0.6 + tint * 0.4) * m + rgb * 0.35 * (1 - m)
        return (rgb * 255).to(torch.uint8).cpu().numpy(), out.depth.float().cpu().numpy()

    with torch.no_grad():
        p50, p95 = _cuda_p50(frame)
    return {"server_frame_1m_p50_ms": p50, "server_frame_1m_p95_ms": p95}


def _training() -> dict[str, Any]:
    return {"gpu_training": "not measured: train_features has no device option (it trains on the CPU)"}


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
    for key, name in names.items():
        if isinstance(result.get(key), (int, float)):
            rows.append(f"| gpu | {name} | {result[key]:.3g} ms | {result['machine']} |")
    if "cuda_tests_summary" in result:
        rows.append(
            f"| gpu | CUDA tests (`pytest -m cuda`) | rc {result['cuda_tests_rc']} | {result['cuda_tests_summary']} |"
        )
    return rows


def run(*, cpu_parts: bool, click_size: int) -> dict[str, Any] | None:
    has_cuda = torch.cuda.is_available()
    if not has_cuda and not cpu_parts:
        return None
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if has_cuda:
        steps += [("cuda_tests", _cuda_tests), ("render", _render_timings), ("server_frame", _server_frame)]
    steps += [("training", _training), ("click", lambda: _click(click_size))]
    result: dict[str, Any] = {"machine": machine_description(), "skipped": [], "errors": {}}
    start = time.perf_counter()
    for name, step in steps:
        if time.perf_counter() - start > BUDGET_S:
            result["skipped"].append(name)
            continue
        t0 = time.perf_counter()
        try:
            result.update(step())
        except Exception as e:  # one failing step must not lose the others' figures
            result["errors"][name] = f"{type(e).__name__}: {e}"
        result[f"{name}_s"] = time.perf_counter() - t0
    result["total_s"] = time.perf_counter() - start
    result["readme_rows"] = readme_rows(result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/gpu.sh", description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=Path("bench-gpu.json"), help="where to write the figures")
    p.add_argument("--cpu-parts", action="store_true", help="without CUDA: run the steps that need no GPU")
    p.add_argument("--click-size", type=int, default=1_000_000, help="Gaussians for the click step")
    args = p.parse_args(argv)
    result = run(cpu_parts=args.cpu_parts, click_size=args.click_size)
    if result is None:
        print("bench/gpu.sh: no CUDA GPU here (torch.cuda.is_available() is False); nothing measured", file=sys.stderr)
        return 0
    write_text_atomic(args.json, json.dumps(result, indent=1))
    print("\n".join(result["readme_rows"]))
    print(f"bench/gpu.sh: wrote {args.json} in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

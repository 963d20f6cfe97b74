"""The viewer's figures: click latency on the server, bytes per selection change, and the demo's time to first frame.

1. **Click → selection computed** (p50, p95) at 100k and 1M Gaussians: the server path of a browser click without
   the network (viewport → `Camera`, `Session.click`: the feature field's segmentation, the set operation, the undo
   entry). The tabletop is built at that size and given click features made from its ground truth (unit coarse and
   fine halves per object and part, plus noise), written where `splatseg train` writes them and loaded through
   `load_field`, so the field's real code runs. Also timed: the look and chunk diff that follows (per client).
2. **Bytes per selection change**, as a share of the whole splat buffer (what a one-node viewer resends), for each
   object of the tabletop: the first selection and an object-to-object change in highlight mode (with and without
   dimming the rest), and isolate mode.
3. **Time to first frame of `splatseg demo`**: a fresh work folder (cold) and a cached one (warm), from starting the
   command to the splats being drawn in Debian's chromium; then an object is clicked and the page saved as a
   screenshot.

`python -m bench.viewer [--quick] [--json OUT] [--figures DIR] [--skip-demo]`
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.core.camera import Camera
from backend.io.atomic import write_text_atomic
from viewer.headless import CHROMIUM_ARGS

from .common import machine_description, percentile

CLICK_CANVAS = (1280, 720)
"""A typical browser canvas: the click's camera has this size."""
DEMO_VIEWPORT = (1000, 700)
"""The headless browser's page size for the demo figure (software WebGL: a frame takes seconds, not milliseconds)."""


# ---- 1. click latency ----------------------------------------------------------------------------------------------
def synthetic_click_features(
    object_labels: np.ndarray,  # [N] int
    part_labels: np.ndarray,  # [N] int
    *,
    coarse_dim: int = 12,
    fine_dim: int = 12,
    noise: float = 0.15,
    seed: int = 0,
) -> torch.Tensor:  # [N, coarse_dim + fine_dim], each half unit length
    """Features a well-trained click field would have: one direction per object (coarse) and per part (fine)."""
    g = torch.Generator().manual_seed(seed)

    def half(labels: np.ndarray, dim: int) -> torch.Tensor:
        lab = torch.from_numpy(labels.astype(np.int64))
        centres = torch.nn.functional.normalize(torch.randn(int(lab.max()) + 1, dim, generator=g), dim=1)
        f = centres[lab] + noise * torch.randn(len(lab), dim, generator=g)
        return torch.nn.functional.normalize(f, dim=1)

    return torch.cat([half(object_labels, coarse_dim), half(part_labels, fine_dim)], dim=1)


def write_click_workspace(
    scene_dir: Path,
    object_labels: np.ndarray,  # [N]
    part_labels: np.ndarray,  # [N]
    means: torch.Tensor,  # [N, 3]
) -> None:
    """Store synthetic click features exactly where and how `splatseg train` stores trained ones, with the scene's
    real 8 nearest neighbours: the floater filter's cells and the fine level's growth then work on the graph a
    trained scene has (all-zero neighbours made both trivial: a fine click kept 4 Gaussians)."""
    from backend.features.neighbors import knn_neighbors
    from backend.features.store import features_name
    from backend.io.scene_folder import find_model
    from backend.workspace import Workspace

    feats = synthetic_click_features(object_labels, part_labels)
    tensors: dict[str, Any] = {"features": feats, "neighbors": knn_neighbors(means, 8)}
    # As training stores them: coarse centroids over the coarse half [K, 12] (their width tells the field where
    # the coarse half ends), fine centroids over the whole feature [K, 24].
    for level, labels, width in (("coarse", object_labels, 12), ("fine", part_labels, 24)):
        lab = torch.from_numpy(labels.astype(np.int64))
        centroids = torch.zeros(int(lab.max()) + 1, width)
        centroids.index_add_(0, lab, feats[:, :width])
        centroids = torch.nn.functional.normalize(centroids, dim=1)
        tensors[f"{level}_labels"] = lab.to(torch.int32)
        tensors[f"{level}_centroids"] = centroids
    ws = Workspace(scene_dir)
    ws.save_tensors(
        features_name("click"),
        tensors,
        made_by="train",
        params={"method": "click", "synthetic": True},
        inputs={"model": find_model(scene_dir)},
    )


def _click_pixels(scene, camera: Camera, object_labels: np.ndarray, count: int, seed: int) -> list[tuple[float, float]]:
    """Pixels on the objects of the table (not the room), as a person would click."""
    from backend.render import RayCaster

    rng = np.random.default_rng(seed)
    caster = RayCaster(scene)
    w2c = camera.world_to_camera
    p = scene.means.double().numpy() @ w2c[:3, :3].T + w2c[:3, 3]
    u = camera.fx * p[:, 0] / p[:, 2] + camera.cx
    v = camera.fy * p[:, 1] / p[:, 2] + camera.cy
    ok = (p[:, 2] > 0) & (u > 0) & (u < camera.width) & (v > 0) & (v < camera.height) & (object_labels >= 2)
    candidates = np.nonzero(ok)[0]
    pixels: list[tuple[float, float]] = []
    for i in rng.permutation(candidates):
        px = (float(u[i]), float(v[i]))
        with torch.no_grad():
            ids, w = caster.weights(camera, px)
        if ids.numel() and object_labels[int(ids[int(torch.argmax(w))])] >= 2:
            pixels.append(px)
        if len(pixels) == count:
            break
    return pixels


def write_click_scene(scene_dir: Path, num_gaussians: int) -> tuple[Any, list]:
    """The tabletop at `num_gaussians` in `scene_dir` (model, cameras and a click workspace from its ground truth),
    with its orbit views rebuilt at the click canvas's size with square pixels, as the browser reports them."""
    from backend.io.cameras import write_inria_cameras
    from backend.io.ply import write_ply
    from backend.synthetic import build_tabletop, orbit_cameras
    from viewer.client_camera import camera_from_viewport, viewport_of

    synth = build_tabletop(seed=0, num_gaussians=num_gaussians)
    scene_dir.mkdir(parents=True, exist_ok=True)
    write_ply(scene_dir / "point_cloud.ply", synth.scene)
    cameras = [
        camera_from_viewport(width=CLICK_CANVAS[0], height=CLICK_CANVAS[1], name=c.name, **_vp(viewport_of(c)))
        for c in orbit_cameras(synth, views=6, resolution=CLICK_CANVAS[1], seed=0)
    ]
    write_inria_cameras(scene_dir / "cameras.json", cameras)
    write_click_workspace(scene_dir, synth.object_labels, synth.part_labels, synth.scene.means)
    return synth, cameras


def bench_click_latency(num_gaussians: int, *, clicks: int, workdir: Path) -> dict[str, float]:
    from backend.features.field import load_field
    from backend.workspace import Workspace
    from viewer.client_camera import camera_from_viewport, screen_to_pixel, viewport_of
    from viewer.session import Session
    from viewer.splat_layers import LayeredSplats
    from viewer.splats import SplatChunks

    scene_dir = workdir / f"tabletop_{num_gaussians}"
    synth, cameras = write_click_scene(scene_dir, num_gaussians)
    field = load_field(scene_dir, method="click")
    session = Session(synth.scene, workspace=Workspace(scene_dir), field=field)
    chunks = SplatChunks(synth.scene)
    splats = LayeredSplats(_CountingSceneApi(), chunks, session.rgba())
    splats.prefetch(session.look_parts()[2], session.tint_layer())  # as a browser has them after the first frame

    def show() -> None:  # what `ClientView.on_change` does for each browser
        look, plain, dimmed = session.look_parts()
        splats.update(look, plain=plain, dimmed=dimmed)

    times, segment_ms, look_ms = [], [], []
    per_camera = max(1, clicks // len(cameras))
    for ci, cam in enumerate(cameras):
        vp = viewport_of(cam)
        for px in _click_pixels(synth.scene, cam, synth.object_labels, per_camera, seed=ci):
            screen = (px[0] / cam.width, px[1] / cam.height)
            t0 = time.perf_counter()
            camera = camera_from_viewport(width=cam.width, height=cam.height, **_vp(vp))
            pixel = screen_to_pixel(camera, screen)
            result = session.click(camera, pixel, positive=True, who="bench")
            times.append((time.perf_counter() - t0) * 1e3)
            segment_ms.append(result.milliseconds)
            t1 = time.perf_counter()
            show()
            look_ms.append((time.perf_counter() - t1) * 1e3)
            session.edit("clear")
            show()
    warm = 2  # the first clicks pay for lazy allocations
    times, look_ms = times[warm:], look_ms[warm:]
    return {
        "clicks": len(times),
        "click_p50_ms": percentile(times, 50),
        "click_p95_ms": percentile(times, 95),
        "look_and_diff_p50_ms": percentile(look_ms, 50),
        "look_and_diff_p95_ms": percentile(look_ms, 95),
    }


def _vp(vp: dict[str, Any]) -> dict[str, Any]:
    return {"position": vp["position"], "wxyz": vp["wxyz"], "fov_y": vp["fov"]}


# ---- 2. bytes per selection change ---------------------------------------------------------------------------------
class _CountingHandle:
    def __init__(self) -> None:
        self.buffer = np.zeros((0, 8), np.uint32)
        self.visible = True

    def remove(self) -> None:
        pass


class _CountingSceneApi:
    """Stands in for viser's SceneApi: the splat classes count the bytes they would send."""

    def add_frame(self, name: str, *args: Any, visible: bool = True, **kwargs: Any) -> _CountingHandle:
        handle = _CountingHandle()
        handle.visible = visible
        return handle

    def add_gaussian_splats(self, name: str, *args: Any, visible: bool = True, **kwargs: Any) -> _CountingHandle:
        handle = _CountingHandle()
        handle.visible = visible
        return handle


def bench_bytes(num_gaussians: int, *, num_chunks: int | None = None, reference: bool = False) -> dict[str, float]:
    """Shares of the buffer sent per selection change by `LayeredSplats` (dimmed and tinted layers prefetched), or
    with `reference` by `ChunkedSplats` (the previous path: dimmed copies only, whole chunks resent)."""
    from backend.synthetic import build_tabletop
    from viewer.looks import LookCache, base_rgba
    from viewer.splat_layers import LayeredSplats
    from viewer.splats import ChunkedSplats, SplatChunks

    synth = build_tabletop(seed=0, num_gaussians=num_gaussians)
    scene = synth.scene
    chunks = SplatChunks(scene, num_chunks=num_chunks)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    plain, dimmed = looks.layers("highlight")
    objects = [k for k, v in synth.object_names.items() if v != "table"]
    empty = np.zeros(len(scene), bool)
    keys = ("first", "change", "clear", "first_tint_only", "isolate_first", "object_share")
    shares: dict[str, list[float]] = {k: [] for k in keys}
    prefetch = 0.0
    click_cpu: list[float] = []
    for i, obj in enumerate(objects):
        a = synth.object_labels == obj
        b = synth.object_labels == objects[(i + 1) % len(objects)]
        shares["object_share"].append(float(a.mean()))
        if reference:
            splats: Any = ChunkedSplats(_CountingSceneApi(), chunks, base)
            prefetch = splats.prefetch_dim(dimmed) / (len(scene) * 32)
        else:
            splats = LayeredSplats(_CountingSceneApi(), chunks, base)
            prefetch = splats.prefetch(dimmed, looks.tinted("highlight")) / (len(scene) * 32)

        cpu: list[float] = []

        def step(mask: np.ndarray, mode: str = "highlight", dim_rest: bool = True, splats=splats, cpu=cpu) -> float:
            c0 = time.thread_time()  # CPU time: what the look + update cost, not the wait for a core
            make = looks.rgba if reference else looks.parts  # the previous path makes the look's array
            look = make(mode, mask, dim_rest=dim_rest)  # type: ignore[arg-type]
            share = splats.update(look, plain=plain, dimmed=dimmed).share
            cpu.append((time.thread_time() - c0) * 1e3)
            return share

        step(empty)  # a browser that has shown the scene: the clicks below take the selection-aware paths
        cpu.clear()
        shares["first"].append(step(a))
        shares["change"].append(step(b))
        click_cpu += cpu
        shares["clear"].append(step(empty))
        shares["first_tint_only"].append(step(a, dim_rest=False))
        step(empty)
        shares["isolate_first"].append(step(a, "isolate"))
    out: dict[str, float] = {
        "chunks": chunks.num_chunks,
        "full_buffer_mb": len(scene) * 32 / 2**20,
        "dim_prefetch_share": prefetch,
        "click_cpu_p50_ms": percentile(click_cpu, 50),
        "click_cpu_p95_ms": percentile(click_cpu, 95),
    }
    for key, values in shares.items():
        out[f"{key}_mean"] = statistics.mean(values)
        out[f"{key}_max"] = max(values)
    return out


# ---- 3. demo time to first frame -----------------------------------------------------------------------------------
def _free_port(start: int = 18900) -> int:
    from viewer.app import port_is_free

    return next(p for p in range(start, start + 500) if port_is_free("127.0.0.1", p))


def bench_demo(workdir: Path, *, screenshot: Path | None, timeout: float = 600.0) -> dict[str, float]:
    """Run `splatseg demo` as a user would and time it to the first drawn frame in chromium (cold, then warm)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    for label in ("cold", "warm"):
        port = _free_port()
        t0 = time.perf_counter()
        log = workdir / f"demo_{label}.log"
        with open(log, "w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "backend.cli", "demo", "--port", str(port), "--workdir", str(workdir)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(url, proc, timeout)
            out[f"{label}_server_ready_s"] = time.perf_counter() - t0
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": DEMO_VIEWPORT[0], "height": DEMO_VIEWPORT[1]})
                page.goto(url)
                _wait_frame(page, timeout)
                out[f"{label}_first_frame_s"] = time.perf_counter() - t0
                if label == "warm" and screenshot is not None:
                    _click_and_screenshot(page, workdir, screenshot)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return out


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"splatseg demo exited with {proc.returncode} before serving")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"splatseg demo did not serve {url} within {timeout:.0f} s")


def _png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _wait_frame(page, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A software-WebGL frame of millions of splats can hold the page longer than Playwright's default 30 s.
        left_ms = max(1000.0, (deadline - time.monotonic()) * 1000)
        if _png(page.screenshot(timeout=left_ms))[:, :600].std() > 20:
            return
        time.sleep(0.25)
    raise TimeoutError("the splats were not drawn")


def _click_and_screenshot(page, workdir: Path, screenshot: Path) -> None:
    """Click the mug (found from the demo's first camera, as the browser starts there) and save the page."""
    from backend.io.cameras import load_cameras
    from backend.io.scene_folder import load_scene
    from viewer.app import initial_view
    from viewer.client_camera import camera_from_viewport, matrix_to_quat

    folder = workdir / "tabletop"
    scene, _ = load_scene(folder)
    cameras = load_cameras(folder)
    start = initial_view(cameras, scene.means.numpy())
    c2w = cameras[0].camera_to_world
    camera = camera_from_viewport(
        position=start["position"], wxyz=matrix_to_quat(c2w[:3, :3]), fov_y=start["fov"], width=1000, height=700
    )
    labels = np.load(folder / "gaussian_labels.npz")["object"]
    time.sleep(1.0)
    for px in _click_pixels(scene, camera, labels, 40, seed=0):
        if px[0] < 600 and px[1] > 150:
            page.mouse.click(px[0], px[1])
            break
    time.sleep(4.0)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(page.screenshot())


# ---- main ----------------------------------------------------------------------------------------------------------
def run(*, quick: bool, json_out: Path | None, figures: Path | None, skip_demo: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_description()}
    print(results["machine"], flush=True)
    with tempfile.TemporaryDirectory(prefix="splatseg-bench-viewer-") as tmp:
        tmp_path = Path(tmp)
        for n in (100_000, 1_000_000):
            r = bench_click_latency(n, clicks=20 if quick else 60, workdir=tmp_path)
            results[f"click_{n}"] = r
            print(
                f"click → selection at {n:,}: p50 {r['click_p50_ms']:.1f} ms, p95 {r['click_p95_ms']:.1f} ms "
                f"({r['clicks']} clicks); look + chunk diff p50 {r['look_and_diff_p50_ms']:.1f} ms",
                flush=True,
            )
            shutil.rmtree(tmp_path / f"tabletop_{n}", ignore_errors=True)
        for n in (80_000, 1_000_000):
            b = bench_bytes(n)
            results[f"bytes_{n}"] = b
            print(
                f"bytes per selection change at {n:,} ({int(b['chunks'])} chunks, full buffer "
                f"{b['full_buffer_mb']:.1f} MB; one object is {100 * b['object_share_mean']:.0f}% of it): "
                f"first selection {100 * b['first_mean']:.1f}% (max {100 * b['first_max']:.1f}%), "
                f"object → object {100 * b['change_mean']:.1f}% (max {100 * b['change_max']:.1f}%), "
                f"clear {100 * b['clear_mean']:.1f}%, isolate {100 * b['isolate_first_mean']:.1f}%; "
                f"the dimmed and tinted copies sent once after the first frame: {100 * b['dim_prefetch_share']:.0f}%",
                flush=True,
            )
    if not skip_demo:
        workdir = Path(tempfile.mkdtemp(prefix="splatseg-demo-bench-"))
        shot = (figures or workdir) / "demo_selected.png"
        d = bench_demo(workdir, screenshot=shot)
        results["demo"] = {**d, "screenshot": str(shot), "workdir": str(workdir)}
        print(
            f"splatseg demo: serving the scene after {d['cold_server_ready_s']:.0f} s cold (empty cache), "
            f"{d['warm_server_ready_s']:.1f} s warm; first frame drawn in headless chromium with software WebGL "
            f"after {d['cold_first_frame_s']:.0f} s cold, {d['warm_first_frame_s']:.0f} s warm; screenshot {shot}",
            flush=True,
        )
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(results, indent=2, default=float) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.viewer", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer clicks")
    p.add_argument("--json", type=Path, default=None, dest="json_out")
    p.add_argument("--figures", type=Path, default=None, help="where the demo screenshot goes")
    p.add_argument("--skip-demo", action="store_true", help="skip the demo (needs /usr/bin/chromium and playwright)")
    args = p.parse_args(argv)
    run(quick=args.quick, json_out=args.json_out, figures=args.figures, skip_demo=args.skip_demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())

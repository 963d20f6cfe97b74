"""`splatseg demo`: the synthetic tabletop → noisy label masks → click features → the browser viewer.

What a newcomer runs first, so it must finish quickly on a laptop CPU (≤ 120 s to a usable viewer on two cores)
and be instant the second time: every stage is cached in the work folder (`~/.cache/splatseg/demo` by default) and
skipped when its output is present and fresh. The scene is smaller than `splatseg synth`'s default (fewer views at a
lower resolution), which is what the CPU budget allows; the Gaussians are the same tabletop.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from .core.errors import SplatsegError, StaleCacheError

DEMO_SEED = 0
DEMO_GAUSSIANS = 40_000
DEMO_VIEWS = 12
DEMO_RESOLUTION = 128
DEMO_METHOD = "click"
DEMO_ITERATIONS = 800
"""Held-out object mIoU on the demo scene (noisy masks, 9 of 12 views trained): 0.68 at 300 steps, 0.91 at 800,
0.92 at the default 1200; 800 costs ~20 s on 2 CPU cores (`python -m bench.accuracy --views 12
--resolution 128 --gaussians 40000 --noise 1 --method click --iterations 800`)."""
CACHE_ENV = "SPLATSEG_CACHE"


@dataclasses.dataclass
class DemoTimings:
    """Seconds per stage of the last `build_demo` (0 for a stage served from the cache)."""

    scene_s: float = 0.0
    masks_s: float = 0.0
    features_s: float = 0.0
    viewer_s: float = 0.0


def default_workdir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "splatseg") / "demo"


def _scene_matches(folder: Path, *, num_gaussians: int, seed: int, views: int) -> bool:
    try:
        meta = json.loads((folder / "labels.json").read_text())
        cameras = json.loads((folder / "cameras.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        meta.get("num_gaussians") == num_gaussians
        and meta.get("seed") == seed
        and isinstance(cameras, list)
        and len(cameras) == views
        and (folder / "point_cloud.ply").is_file()
    )


def build_scene(
    folder: Path,
    *,
    num_gaussians: int = DEMO_GAUSSIANS,
    views: int = DEMO_VIEWS,
    resolution: int = DEMO_RESOLUTION,
    seed: int = DEMO_SEED,
    quiet: bool = False,
) -> bool:
    """Write the tabletop unless the folder already holds it; returns whether it was written."""
    from .synthetic import write_synthetic_scene

    if _scene_matches(folder, num_gaussians=num_gaussians, seed=seed, views=views):
        return False
    write_synthetic_scene(
        folder, seed=seed, views=views, resolution=resolution, num_gaussians=num_gaussians, progress=not quiet
    )
    return True


def masks_fresh(folder: Path) -> bool:
    from .io.scene_folder import find_model
    from .workspace import Workspace

    ws = Workspace(folder)
    try:
        ws.check_fresh("masks", inputs={"model": find_model(folder)})
    except StaleCacheError:
        return False
    return True


def features_ready(folder: Path, method: str = DEMO_METHOD) -> bool:
    try:
        from .features.field import load_field
    except ImportError:
        return False
    try:
        field = load_field(folder, method=method)
    except SplatsegError:
        return False
    return field is not None


def train(folder: Path, *, method: str = DEMO_METHOD, iterations: int | None = None, quiet: bool = False) -> None:
    """Train affinity features through the features package's training entry point."""
    try:
        from .features.train import train_features
    except ImportError:
        raise SplatsegError("this installation has no feature training (backend.features)") from None
    kwargs: dict[str, object] = {"method": method, "progress": not quiet}
    if iterations is not None:
        kwargs["iterations"] = iterations
    train_features(folder, **kwargs)


def prepare_and_train(
    folder: Path,
    *,
    method: str = DEMO_METHOD,
    iterations: int | None = None,
    noise_strength: float = 1.0,
    quiet: bool = False,
    timings: DemoTimings | None = None,
) -> DemoTimings:
    """Noisy label masks, then features, each only if missing or stale."""
    from .masks.prepare import prepare_masks

    timings = timings or DemoTimings()
    if not masks_fresh(folder):
        t0 = time.perf_counter()
        prepare_masks(folder, source="labels", noise_strength=noise_strength, progress=not quiet)
        timings.masks_s = time.perf_counter() - t0
    if not features_ready(folder, method):
        t0 = time.perf_counter()
        train(folder, method=method, iterations=iterations, quiet=quiet)
        timings.features_s = time.perf_counter() - t0
    return timings


def build_demo(workdir: Path | None = None, *, quiet: bool = False) -> tuple[Path, DemoTimings]:
    """The demo scene, prepared and trained; returns (scene folder, seconds per stage)."""
    folder = (workdir or default_workdir()) / "tabletop"
    timings = DemoTimings()
    t0 = time.perf_counter()
    if build_scene(folder, quiet=quiet):
        timings.scene_s = time.perf_counter() - t0
    prepare_and_train(folder, iterations=DEMO_ITERATIONS, quiet=quiet, timings=timings)
    return folder, timings


def run_demo(
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    workdir: Path | None = None,
    quiet: bool = False,
    log: Callable[[str], None] = print,
):  # → viewer.ViewerApp
    """Build (or reuse) the demo and open the viewer; prints the URL and what each stage cost."""
    from viewer import ViewerApp

    t_start = time.perf_counter()
    folder, timings = build_demo(workdir, quiet=quiet)
    t0 = time.perf_counter()
    # The demo runs offline: its SA3D panel asks the synthetic scene's labels, by name.
    app = ViewerApp(folder, host=host, port=port, verbose=not quiet, sa3d_predictor="labels")
    timings.viewer_s = time.perf_counter() - t0
    stages = (
        f"scene {timings.scene_s:.0f} s, masks {timings.masks_s:.0f} s, features {timings.features_s:.0f} s, "
        f"viewer {timings.viewer_s:.1f} s"
    )
    log(f"splatseg demo: ready in {time.perf_counter() - t_start:.0f} s ({stages}); cached in {folder}")
    log(f"splatseg demo: open {app.url} in a browser and click an object (Ctrl+C to stop)")
    return app

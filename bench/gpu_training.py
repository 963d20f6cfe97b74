"""`bench/gpu.sh`'s training step: `train_features(device="cuda")` on a 1M-Gaussian, 200-view synthetic scene.

What is timed is `train_features` alone (its report's precompute / train / total seconds, and the GPU's peak
memory through `torch.cuda.max_memory_allocated`); making the scene is not, but it must fit the run, so it is made
the fast way: the tabletop preset at the asked size, the model and cameras written directly, and each view's masks
taken from the ground truth (object and part label maps rendered with the step's renderer, gsplat on the GPU) into a
mask folder that `prepare_masks` reads as a user's (`--masks FOLDER`) while measuring the masks' 3D scales.

Order, so that a device bug costs seconds and not minutes and the headline figure comes early: a small smoke
training first (`Sizes.smoke`, a few iterations, click then SAGA) whose failure ends the step with its traceback's
last frames in the JSON; then click at the large size; then, when the step's time allows, a small scene's click
training on the CPU and on the GPU (the ratio) and SAGA at the large size.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class SceneSize:
    num_gaussians: int
    views: int
    resolution: int
    iterations: int | None
    """Training steps (None: the method's default, what `splatseg train` runs)."""
    pixels_per_view: int = 6000


@dataclasses.dataclass(frozen=True)
class Sizes:
    device: str = "cuda"
    backend: str = "gsplat"
    smoke: SceneSize = SceneSize(20_000, 8, 128, 30, 2000)
    ratio: SceneSize = SceneSize(100_000, 40, 192, 200, 4000)
    large: SceneSize = SceneSize(1_000_000, 200, 256, None)
    ratio_budget_s: float = 90.0
    """The CPU / GPU ratio runs only when this much of the step's time is left after the large click."""
    saga_budget_s: float = 90.0
    """SAGA at the large size runs only when this much of the step's time is left after that."""
    step_budget_s: float = 330.0
    """The step's own time, its scenes' making included (`bench/gpu.sh --only training` then fits ~7 minutes
    with gsplat's build)."""


DRY_RUN_SIZES = Sizes(
    device="cpu",
    backend="torch",
    smoke=SceneSize(3000, 3, 48, 4, 300),
    ratio=SceneSize(3000, 3, 48, 6, 300),
    large=SceneSize(4000, 4, 48, 8, 300),
    ratio_budget_s=0.0,
    saga_budget_s=0.0,
)


def make_training_scene(folder: Path, size: SceneSize, *, device: str, backend: str, seed: int = 0) -> float:
    """A prepared scene folder (model, cameras, masks from the ground truth); returns the seconds it took."""
    from backend.io.cameras import write_inria_cameras
    from backend.io.ply import write_ply
    from backend.masks.prepare import prepare_masks
    from backend.render import render
    from backend.synthetic import build_tabletop, orbit_cameras
    from backend.synthetic.writer import label_map, one_hot_labels

    t0 = time.perf_counter()
    synth = build_tabletop(seed=seed, num_gaussians=size.num_gaussians)
    cameras = orbit_cameras(synth, views=size.views, resolution=size.resolution, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_ply(folder / "point_cloud.ply", synth.scene)
    write_inria_cameras(folder / "cameras.json", cameras)
    num_objects, num_parts = int(synth.object_labels.max()) + 1, int(synth.part_labels.max()) + 1
    features = torch.cat(
        [one_hot_labels(synth.object_labels, num_objects), one_hot_labels(synth.part_labels, num_parts)], dim=1
    ).to(device)
    scene = synth.scene.to(device)
    mask_dir = folder / "gt_masks"
    mask_dir.mkdir(exist_ok=True)
    with torch.no_grad():
        for cam in cameras:
            out = render(scene, cam, features=features, backend=backend)
            objects = label_map(out.features[..., :num_objects], out.alpha)  # [H, W] uint16, 0 = none
            parts = label_map(out.features[..., num_objects:], out.alpha)
            masks = [objects == o for o in np.unique(objects) if o > 0]
            masks += [
                p for p in (parts == q for q in np.unique(parts) if q > 0) if not any((p == m).all() for m in masks)
            ]
            masks = [m for m in masks if m.sum() >= 16]
            stack = np.stack(masks) if masks else np.zeros((0, cam.height, cam.width), bool)
            np.save(mask_dir / f"{cam.name}.npy", stack)
    del scene, features
    prepare_masks(folder, source=mask_dir, backend=backend, progress=False)
    return time.perf_counter() - t0


def timed_training(folder: Path, method: str, size: SceneSize, device: str) -> dict[str, Any]:
    """One `train_features` call: its phases, wall time and (on a GPU) peak device memory."""
    from backend.features.train import train_features

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    report = train_features(
        folder,
        method=method,
        iterations=size.iterations,
        pixels_per_view=size.pixels_per_view,
        progress=False,
        device=device,
    )
    wall = time.perf_counter() - t0
    out = {
        "precompute_s": report.precompute_seconds,
        "train_s": report.train_seconds,
        "total_s": report.seconds,
        "wall_s": wall,
        "iterations": report.iterations,
        "num_gaussians": report.num_gaussians,
        "views": report.num_views,
        "cache_mb": report.cache_megabytes,
        "peak_rss_mb": report.peak_rss_megabytes,
    }
    if device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _last_frames(e: BaseException, frames: int = 6) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)[-frames:])[-3000:]


def training_step(
    sizes: Sizes, publish: Callable[[dict[str, Any]], None] | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """Smoke, ratio, large (see the module's docstring); every figure under a `gpu_training_` key, handed to
    `publish` as soon as it is measured (gpu.py rewrites the JSON, so a run cut short keeps them). A failure is
    recorded with its traceback's last frames (`gpu_training_<part>_error`, `..._traceback`); a failing smoke
    training ends the step (raises), a later part's failure lets the next part run."""
    start = time.perf_counter()
    out: dict[str, Any] = {"gpu_training_device": sizes.device}
    with tempfile.TemporaryDirectory(prefix="splatseg-gpu-train-", dir=workdir) as tmp:
        root = Path(tmp)

        def record(key: str, fn: Callable[[], Any], *, fatal: bool = False) -> bool:
            try:
                got = fn()
                if isinstance(got, dict):
                    out.update({f"gpu_training_{key}_{k}": v for k, v in got.items()})
                else:
                    out[f"gpu_training_{key}_s"] = got
                return True
            except Exception as e:
                out[f"gpu_training_{key}_error"] = f"{type(e).__name__}: {e}"
                out[f"gpu_training_{key}_traceback"] = _last_frames(e)
                if fatal:
                    raise
                return False
            finally:
                out["gpu_training_step_s"] = time.perf_counter() - start
                if publish is not None:
                    publish(dict(out))

        def prepared(name: str, size: SceneSize, *, fatal: bool = False) -> Path | None:
            folder = root / name
            ok = record(
                f"{name}_prepare",
                lambda: make_training_scene(folder, size, device=sizes.device, backend=sizes.backend),
                fatal=fatal,
            )
            return folder if ok else None

        smoke = prepared("smoke", sizes.smoke, fatal=True)
        for method in ("click", "saga"):
            record(f"smoke_{method}", lambda m=method: timed_training(smoke, m, sizes.smoke, sizes.device), fatal=True)

        def time_left() -> float:
            return sizes.step_budget_s - (time.perf_counter() - start)

        large = prepared("large", sizes.large)
        if large is not None:
            record("large_click", lambda: timed_training(large, "click", sizes.large, sizes.device))

        if time_left() >= sizes.ratio_budget_s:
            small = prepared("ratio", sizes.ratio)
            if small is not None:
                record("ratio_click_cpu", lambda: timed_training(small, "click", sizes.ratio, "cpu"))
                record("ratio_click_dev", lambda: timed_training(small, "click", sizes.ratio, sizes.device))
                cpu_s = out.get("gpu_training_ratio_click_cpu_train_s")
                dev_s = out.get("gpu_training_ratio_click_dev_train_s")
                if cpu_s is not None and dev_s is not None:
                    out["gpu_training_ratio_cpu_over_device"] = cpu_s / max(dev_s, 1e-9)
        else:
            out["gpu_training_ratio"] = f"skipped: {time_left():.0f} s of the step's time left"

        if large is not None and time_left() >= sizes.saga_budget_s:
            record("large_saga", lambda: timed_training(large, "saga", sizes.large, sizes.device))
        elif large is not None:
            out["gpu_training_large_saga"] = f"skipped: {time_left():.0f} s of the step's time left"
    out["gpu_training_step_s"] = time.perf_counter() - start
    return out

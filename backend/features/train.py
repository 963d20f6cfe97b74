"""`splatseg train`: masks + frozen Gaussians → per-Gaussian affinity features in the workspace.

Order of work: check the inputs (cameras, fresh masks) before anything expensive; sample pixels and precompute
their contributions one view at a time (the memory budget is logged first); train; write the tensors atomically
and record them in the manifest with the model file and the masks as inputs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.errors import InputError, SplatsegError
from ..io.outputs import require_writable_dir
from ..io.scene_folder import load_scene, scene_dir_of
from ..masks.maskset import INDEX_FILE
from ..masks.prepare import MASKS_NAME, open_masks
from ..viewpoints.virtual import scene_cameras
from ..workspace import Workspace
from .click import ClickConfig
from .contrib_cache import DEFAULT_K, DEFAULT_PIXELS_PER_VIEW, build_cache, cache_budget_bytes
from .mask_stats import MaskStats, describe, finite_or_raise
from .method import method_class
from .neighbors import knn_neighbors
from .saga import SagaConfig
from .store import features_name
from .threads import compute_threads

log = logging.getLogger(__name__)

KNN = 8
MIN_GAUSSIANS = KNN + 1
"""Fewer Gaussians than this have no neighbourhood to smooth over (and nothing worth segmenting)."""


@dataclasses.dataclass(frozen=True)
class TrainReport:
    """What `train_features` did (the CLI prints it; the benchmark reads it)."""

    method: str
    path: Path
    """The features file in the workspace."""
    num_gaussians: int
    num_views: int
    iterations: int
    cache_megabytes: float
    precompute_seconds: float
    train_seconds: float
    seconds: float
    """Wall time of the whole call: loading, precompute, training, saving."""
    peak_rss_megabytes: float
    """The process's peak resident memory so far (resource.getrusage)."""
    mask_stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What the training masks looked like (`mask_stats.MaskStats.as_dict`); also in the manifest."""
    warnings: tuple[str, ...] = ()
    """What was odd about the masks (mostly uncovered, whole-image masks, one mask a view); also in the manifest."""

    def summary(self) -> str:
        return (
            f"trained {self.method} features for {self.num_gaussians} Gaussians from {self.num_views} views "
            f"({self.iterations} iterations) in {self.seconds:.1f} s (precompute {self.precompute_seconds:.1f} s, "
            f"cache {self.cache_megabytes:.1f} MB, peak memory {self.peak_rss_megabytes:.0f} MB) → {self.path}"
            + (f"; masks: {describe(self.mask_stats)}" if self.mask_stats else "")
        )


def train_features(
    scene_path: str | os.PathLike[str],
    *,
    method: str = "click",
    iterations: int | None = None,
    workspace: str | os.PathLike[str] | None = None,
    views: Sequence[str] | None = None,
    config: ClickConfig | SagaConfig | None = None,
    pixels_per_view: int = DEFAULT_PIXELS_PER_VIEW,
    k: int = DEFAULT_K,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainReport:
    """Train `method`'s features for SCENE from the workspace's masks (only `views`, when given: the benchmark
    holds some out) and save them; returns a report.

    `device` ("cpu", "cuda", "auto" = cuda when there is one, or any torch device): where the contributions are
    precomputed (the scene's tensors) and where the cache, the features, the optimiser and each step's work live.
    Pixel sampling, the 3D neighbours, HDBSCAN and the fine votes stay on the CPU; the saved tensors are always
    on the CPU, and a GPU run draws the same random pixels and Gaussians as a CPU run (one CPU generator)."""
    start = time.perf_counter()
    method_class(method)  # SplatsegError for an unknown name, before anything is read
    device = training_device(device)
    if iterations is not None and iterations <= 0:
        raise SplatsegError(f"--iterations must be positive, got {iterations}")
    scene_dir = scene_dir_of(scene_path)
    ws = Workspace(scene_dir, workspace)
    scene, model_path = load_scene(scene_path)
    if len(scene) < MIN_GAUSSIANS:
        raise InputError(
            f"{model_path} holds {len(scene)} Gaussian(s); training features needs at least {MIN_GAUSSIANS}"
        )
    masks = open_masks(ws, scene_path)  # before the cameras: a scene without them gets virtual ones made by prepare
    cameras = scene_cameras(scene_path, ws)
    require_writable_dir(ws.root)  # a read-only workspace fails now, not after the training

    camera_names = {c.name for c in cameras}
    names = [v for v in masks.views if v in camera_names]
    if views is not None:
        wanted = set(views)
        unknown = wanted - set(names)
        if unknown:
            raise InputError(f"no masks or camera for views {sorted(unknown)[:5]}; run `splatseg prepare` again")
        names = [v for v in names if v in wanted]
    if not names:
        raise InputError(f"none of the {len(masks.views)} mask views matches a camera of {scene_dir}")

    config = _config(method, config, iterations, seed)
    log.info(
        "precomputing contributions: %d views × %d pixels × K=%d, about %.1f MB",
        len(names),
        pixels_per_view,
        k,
        cache_budget_bytes(len(names), pixels_per_view, k) / 2**20,
    )
    stats = MaskStats()
    try:
        with compute_threads():
            t0 = time.perf_counter()
            with torch.no_grad():
                cache = build_cache(
                    scene.to(device),
                    cameras,
                    stats.observe(_trimmed(masks.read_view(v), config.min_overhang) for v in names),
                    pixels_per_view=pixels_per_view,
                    k=k,
                    seed=seed,
                    progress=progress,
                )
                neighbors = knn_neighbors(scene.means, KNN)  # [N, k] int32, CPU (scipy), saved as is
                cache = cache.to(device)
            _sync(device)
            precompute = time.perf_counter() - t0
            t1 = time.perf_counter()
            tensors = _run(method, cache, neighbors.to(device), config, progress)
            _sync(device)
            trained = time.perf_counter() - t1
    except torch.OutOfMemoryError as e:  # a scene too large for the GPU: one line, nothing written yet
        if device.type == "cpu":
            raise
        raise SplatsegError(
            f"--device {device}: the device ran out of memory ({str(e).splitlines()[0][:160]}); "
            "train with --device cpu, or free the GPU's memory"
        ) from None
    tensors["neighbors"] = neighbors
    for key in ("features", "gate_weight", "gate_bias"):
        if key in tensors:
            finite_or_raise(tensors[key].numpy(), f"the trained {key}")
    warnings = stats.warnings()
    for w in warnings:
        log.warning("warning: %s", w)  # `splatseg train` shows these on stderr

    params = {
        "method": method,
        "config": dataclasses.asdict(config),
        "views": names,
        "pixels_per_view": pixels_per_view,
        "k": k,
        "seed": seed,
        "num_gaussians": len(scene),
        "mask_stats": stats.as_dict(),
        "warnings": warnings,
    }
    inputs = {"model": model_path, "masks": ws.path(MASKS_NAME) / INDEX_FILE}
    path = ws.save_tensors(features_name(method), tensors, made_by="train", params=params, inputs=inputs)
    return TrainReport(
        method=method,
        path=path,
        num_gaussians=len(scene),
        num_views=len(names),
        iterations=config.iterations,
        cache_megabytes=cache.memory_bytes() / 2**20,
        precompute_seconds=precompute,
        train_seconds=trained,
        seconds=time.perf_counter() - start,
        peak_rss_megabytes=peak_rss_megabytes(),
        mask_stats=stats.as_dict(),
        warnings=tuple(warnings),
    )


def _trimmed(view, min_overhang: float):
    from ..masks.overhang import trim_overhangs

    return trim_overhangs(view, min_overhang=min_overhang)


def _run(method: str, cache, neighbors, config, progress: bool) -> dict[str, Any]:
    """Train and return the tensors to save (store.py lists them), on the CPU whatever the device."""
    tensors = method_class(method).train(cache, neighbors, config, progress)
    return {key: value.detach().cpu() for key, value in tensors.items()}


DEVICES = ("auto", "cpu", "cuda")
"""What `splatseg train --device` offers."""


def training_device(device: str | torch.device) -> torch.device:
    """ "auto" → cuda when torch sees a CUDA GPU, else cpu; "cuda" without one is a SplatsegError (checked before
    anything is read or computed)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise SplatsegError(f"--device {device}: not a device; choose one of {', '.join(DEVICES)}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SplatsegError(
            f"--device {device}: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
            "use --device cpu (or auto)"
        )
    return dev


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so the reported phase times are the work's and not its queueing's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(method: str, config, iterations: int | None, seed: int):
    expected = method_class(method).config_type
    if config is None:
        config = expected()
    if not isinstance(config, expected):
        raise TypeError(f"method {method!r} takes a {expected.__name__}, got {type(config).__name__}")
    changes: dict[str, Any] = {"seed": seed}
    if iterations is not None:
        changes["iterations"] = int(iterations)
    return dataclasses.replace(config, **changes)


def peak_rss_megabytes() -> float:
    """Peak resident set size of this process.

    Linux's VmHWM, when there is one: getrusage's ru_maxrss survives fork and exec, so a freshly spawned child
    would report its parent's peak. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024

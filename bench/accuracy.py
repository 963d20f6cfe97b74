"""Accuracy benchmark: click once on every object and every part, score the selection in views nobody trained on.

On a synthetic tabletop (ground truth per Gaussian and per pixel, at two levels), masks are prepared from the
labels through the SAM-like noise model (or clean, `noise=0`), each method is trained on all views but every
`holdout_every`-th, and then, for every object (coarse) and every part (fine), one pixel deep inside it is clicked
in the training view where it is biggest (the maximum of its mask's distance transform, so the click is far from
any boundary). The selection is rendered in each held-out view (pixels where the selected Gaussians carry more than
half of the opacity, as `backend.commands.render.selection_mask_image` does) and compared with the ground-truth
label map.
Reported per method: mIoU over objects and over parts, the floater fraction (selected Gaussians whose ground-truth
object or part is not the target), training seconds and peak memory (measured in a child process per method).

    python -m bench.accuracy --noise 1.0 --workdir /tmp/splatseg-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import queue as queue_module
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from backend.core.camera import Camera
from backend.core.scene import GaussianScene
from backend.features.field import FeatureField, load_field
from backend.io.cameras import load_cameras
from backend.io.images import read_label_map
from backend.render import pixel_center, rasterize_fragments

MIN_GT_PIXELS = 16
"""A target smaller than this in a held-out view is not scored there (a few pixels make IoU a coin toss)."""


@dataclasses.dataclass(frozen=True)
class Target:
    level: str  # "coarse" (an object) or "fine" (a part)
    label: int
    name: str
    variant: str = ""
    """Every target is clicked twice: as a person would (variant "") and without the floater filter
    ("unfiltered"). SAGA objects are also clicked without a scale but from the clicked Gaussians' stored object
    scale only ("object", the automatic scale before it read the workspace masks), at the field's fixed default
    scale ("default", what that click got before automatic scales) and at the scale of the best-matching mask
    ("oracle", the slider set right)."""


def accuracy_benchmark(
    *,
    noise: float = 1.0,
    methods: Sequence[str] = ("click", "saga"),
    preset: str = "tabletop",
    masks: str = "labels",
    seed: int = 0,
    views: int = 40,
    resolution: int = 256,
    num_gaussians: int = 80_000,
    workdir: str | Path,
    holdout_every: int = 4,
    iterations: dict[str, int] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    isolate: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the benchmark at one noise strength; returns a JSON-able dict (see the module docstring).

    The scene and the prepared masks are reused from `workdir` when a previous run made them with the same
    parameters, so noisy and clean runs share one scene. `isolate` trains each method in a child process, so its
    peak memory is its own. `masks="geometric"` prepares masks from splatseg's own renders instead of the labels
    (`noise` is then unused): the figure for machines without SAM weights.
    """
    workdir = Path(workdir)
    scene_dir = _synthetic_scene(
        workdir, preset=preset, seed=seed, views=views, resolution=resolution, num_gaussians=num_gaussians
    )
    ws_dir = scene_dir.parent / f"{scene_dir.name}-ws-{masks}-noise{noise:g}"
    prepared: dict[str, Any] = {}
    if not _masks_ready(scene_dir, ws_dir, noise, masks):
        job = {"workspace": str(ws_dir), "noise_strength": noise, "progress": progress, "source": masks}
        prepared = _run_isolated(_prepare, str(scene_dir), job) if isolate else _prepare(str(scene_dir), job)

    cameras = sorted(load_cameras(scene_dir), key=lambda c: c.name)
    held_out = cameras[::holdout_every]
    train_views = [c for i, c in enumerate(cameras) if i % holdout_every]
    truth = _GroundTruth(scene_dir)
    targets = truth.targets()
    clicks = {t: truth.click(t, train_views) for t in targets}
    renders = [_HeldOutView(truth.scene, cam, truth) for cam in held_out]

    result: dict[str, Any] = {
        "noise": noise,
        "preset": preset,
        "masks": masks,
        "scene": {
            "seed": seed,
            "views": views,
            "resolution": resolution,
            "num_gaussians": num_gaussians,
            "train_views": len(train_views),
            "held_out_views": len(held_out),
            "objects": sum(t.level == "coarse" for t in targets),
            "parts": sum(t.level == "fine" for t in targets),
        },
        "methods": {},
        "prepare": prepared,  # empty when the masks were already there
    }
    for method in methods:
        kwargs = {
            "method": method,
            "workspace": str(ws_dir),
            "views": [c.name for c in train_views],
            "seed": seed,
            "progress": progress,
            "iterations": (iterations or {}).get(method),
            "overrides": (overrides or {}).get(method, {}),
        }
        report = _train_isolated(str(scene_dir), kwargs) if isolate else _train(str(scene_dir), kwargs)
        field = load_field(scene_dir, method, workspace=ws_dir, scene=truth.scene)
        these = targets + [dataclasses.replace(t, variant="unfiltered") for t in targets]
        if field.uses_scale:
            these += [
                dataclasses.replace(t, variant=v)
                for v in ("oracle", "default", "object")
                for t in targets
                if t.level == "coarse"
            ]
        scores = _evaluate(
            field, truth, these, {t: clicks[dataclasses.replace(t, variant="")] for t in these}, renders, ws_dir
        )
        result["methods"][method] = {**scores, **report}
    return result


# ---- training in a child process -----------------------------------------------------------------------------------
def _train(scene: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    from backend.features.method import method_class
    from backend.features.train import train_features

    kwargs = dict(kwargs)
    overrides = kwargs.pop("overrides", None) or {}
    kwargs["config"] = method_class(kwargs["method"]).config_type(**overrides)
    r = train_features(scene, **kwargs)
    return {
        "train_seconds": round(r.seconds, 2),
        "precompute_seconds": round(r.precompute_seconds, 2),
        "iterations": r.iterations,
        "peak_memory_mb": round(r.peak_rss_megabytes, 1),
        "cache_mb": round(r.cache_megabytes, 1),
    }


def _prepare(scene: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    import time

    from backend.features.train import peak_rss_megabytes
    from backend.masks.prepare import prepare_masks

    t0 = time.perf_counter()
    prepare_masks(scene, **kwargs)
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_memory_mb": round(peak_rss_megabytes(), 1)}


def _child(fn, scene: str, kwargs: dict[str, Any], queue) -> None:
    try:
        queue.put(("ok", fn(scene, kwargs)))
    except BaseException as e:  # reported in the parent
        queue.put(("error", f"{type(e).__name__}: {e}"))


def _train_isolated(scene: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return _run_isolated(_train, scene, kwargs, what=f"training {kwargs['method']}")


def _run_isolated(fn, scene: str, kwargs: dict[str, Any], what: str = "preparing masks") -> dict[str, Any]:
    """`fn(scene, kwargs)` in a fresh process, so that the peak memory it reports is its own."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, scene, kwargs, queue))
    proc.start()
    while True:  # a child that dies without reporting (killed for memory, a crash) must not hang the benchmark
        try:
            status, value = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"{what} died without a report (exit code {proc.exitcode}); "
                    "out of memory, or run from a script without an `if __name__ == '__main__':` guard"
                ) from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{what} failed: {value}")
    return value


# ---- the scene and its ground truth --------------------------------------------------------------------------------
def _synthetic_scene(
    workdir: Path, *, preset: str = "tabletop", seed: int, views: int, resolution: int, num_gaussians: int
) -> Path:
    from backend.synthetic import write_synthetic_scene

    folder = workdir / f"{preset}-s{seed}-v{views}-r{resolution}-n{num_gaussians}"
    done = folder / ".complete"
    if not done.is_file():
        write_synthetic_scene(
            folder,
            preset=preset,
            seed=seed,
            views=views,
            resolution=resolution,
            num_gaussians=num_gaussians,
            progress=False,
        )
        done.write_text("ok\n")
    return folder


def _masks_ready(scene_dir: Path, ws_dir: Path, noise: float, source: str = "labels") -> bool:
    from backend.core.errors import SplatsegError
    from backend.masks.prepare import MASKS_NAME, open_masks
    from backend.workspace import Workspace

    ws = Workspace(scene_dir, ws_dir)
    try:
        open_masks(ws, scene_dir)
    except SplatsegError:
        return False
    entry = ws.entry(MASKS_NAME) or {}
    params = entry.get("params", {})
    if source == "geometric":  # made from the renders: no noise strength
        return params.get("source") == source
    return params.get("source") == source and float(params.get("noise", {}).get("strength", -1)) == float(noise)


class _GroundTruth:
    """Per-Gaussian and per-pixel labels of a synthetic scene."""

    def __init__(self, scene_dir: Path) -> None:
        from backend.io.scene_folder import load_scene

        self.scene_dir = scene_dir
        self.scene, _ = load_scene(scene_dir)
        labels = np.load(scene_dir / "gaussian_labels.npz")
        self.gaussian = {"coarse": labels["object"].astype(np.int64), "fine": labels["part"].astype(np.int64)}
        self.meta = json.loads((scene_dir / "labels.json").read_text())
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def targets(self) -> list[Target]:
        """Every object and part, except supports (labels.json "support"), which no mask covers."""
        support = {int(s) for s in self.meta.get("support", [])}
        p2o = {int(k): int(v) for k, v in self.meta["part_to_object"].items()}
        objs = [Target("coarse", int(k), v) for k, v in self.meta["objects"].items() if int(k) not in support]
        parts = [Target("fine", int(k), v) for k, v in self.meta["parts"].items() if p2o[int(k)] not in support]
        return sorted(objs, key=lambda t: t.label) + sorted(parts, key=lambda t: t.label)

    def label_map(self, view: str, level: str) -> np.ndarray:  # [H, W] uint16
        key = (view, level)
        if key not in self._maps:
            suffix = "object" if level == "coarse" else "part"
            self._maps[key] = read_label_map(self.scene_dir / "labels" / f"{view}_{suffix}.png")
        return self._maps[key]

    def click(self, target: Target, cameras: Sequence[Camera]) -> tuple[Camera, int, int] | None:
        """The training view and pixel deepest inside the target (largest distance to its boundary)."""
        best: tuple[float, Camera, int, int] | None = None
        for cam in cameras:
            gt = self.label_map(cam.name, target.level) == target.label
            if gt.sum() < MIN_GT_PIXELS:
                continue
            dist = ndimage.distance_transform_edt(np.pad(gt, 1))[1:-1, 1:-1]
            y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
            if best is None or dist[y, x] > best[0]:
                best = (float(dist[y, x]), cam, int(x), int(y))
        return None if best is None else best[1:]


class _HeldOutView:
    """A held-out camera's blend-weight matrix, computed once: a selection's mask image is one sparse product."""

    def __init__(self, scene: GaussianScene, camera: Camera, truth: _GroundTruth) -> None:
        frags = rasterize_fragments(scene, camera)
        self.camera = camera
        self.matrix = frags.matrix()  # [H·W, N] sparse
        self.alpha = frags.alpha().reshape(-1)  # [H·W]
        self.truth = {level: truth.label_map(camera.name, level).reshape(-1) for level in ("coarse", "fine")}

    def masks(self, selections: np.ndarray) -> np.ndarray:  # [N, T] bool → [H·W, T] bool
        sel = torch.from_numpy(selections.astype(np.float32))
        covered = (self.matrix @ sel) / self.alpha.clamp(min=1e-6)[:, None]
        return ((covered > 0.5) & (self.alpha[:, None] > 0.5)).numpy()


def _saga_scale(ws_dir: Path, camera: Camera, x: int, y: int, gt: np.ndarray, largest: float) -> float:
    """The 3D scale to query SAGA with for a target: between the best-matching mask's scale and the scale of the
    next larger mask under the click (SAGA groups a pixel with every mask smaller than the query scale); when no
    larger mask covers the click, above every mask (`largest`), where the grouping is the union of all masks."""
    from backend.masks.maskset import MaskSet
    from backend.masks.prepare import MASKS_NAME

    view = MaskSet(ws_dir / MASKS_NAME).read_view(camera.name)
    flat = view.masks.reshape(len(view.masks), -1)
    g = gt.reshape(-1)
    inter = (flat & g).sum(1)
    union = (flat | g).sum(1)
    iou = inter / np.maximum(union, 1)
    scales = view.scales.astype(np.float64)
    finite = np.isfinite(scales)
    if not finite.any():
        return 1.0
    best = int(np.argmax(np.where(finite, iou, -1)))
    s = scales[best]
    under = view.masks[:, y, x] & finite & (scales > s * 1.0001)
    if under.any():
        return float(np.sqrt(s * scales[under].min()))
    return float(max(largest, s) * 1.25)


def _evaluate(
    field: FeatureField,
    truth: _GroundTruth,
    targets: list[Target],
    clicks: dict[Target, tuple[Camera, int, int] | None],
    renders: list[_HeldOutView],
    ws_dir: Path,
) -> dict[str, Any]:
    n = field.num_gaussians
    selections = np.zeros((n, len(targets)), dtype=bool)
    floaters, latencies, clicked = [], [], []
    iou3d: dict[int, float] = {}
    for i, t in enumerate(targets):
        click = clicks[t]
        if click is None:
            continue
        cam, x, y = click
        kwargs: dict[str, Any] = {}
        if t.variant == "unfiltered":
            kwargs["filter_floaters"] = False
        if field.levels:  # click: a named level per target
            kwargs["level"] = t.level
        elif t.level == "coarse" and t.variant in ("", "unfiltered"):
            pass  # no scale: the field's automatic scale
        elif t.variant == "object":  # the automatic scale without the workspace masks: the clicked Gaussians' own
            kwargs["scale"] = field.auto_scale(cam, [pixel_center(x, y)], from_masks=False)
        elif t.variant == "default":
            kwargs["scale"] = field.default_scale  # what a click without the slider got before automatic scales
        else:
            gt = truth.label_map(cam.name, t.level) == t.label
            kwargs["scale"] = _saga_scale(ws_dir, cam, x, y, gt, field.quantiles.inverse(1.0))
        res = field.segment(cam, [pixel_center(x, y)], **kwargs)
        selections[:, i] = res.mask
        latencies.append(res.milliseconds)
        clicked.append(i)
        count = res.count
        wrong = int((truth.gaussian[t.level][res.mask] != t.label).sum())
        floaters.append(wrong / count if count else 0.0)
        gt3d = truth.gaussian[t.level] == t.label
        iou3d[i] = float((gt3d & res.mask).sum() / max(1, (gt3d | res.mask).sum()))

    ious: dict[int, list[float]] = {i: [] for i in clicked}
    for view in renders:
        pred = view.masks(selections)  # [H·W, T]
        for i in clicked:
            t = targets[i]
            gt = view.truth[t.level] == t.label
            if gt.sum() < MIN_GT_PIXELS:
                continue
            p = pred[:, i]
            ious[i].append(float((p & gt).sum() / max(1, (p | gt).sum())))
    per_target = []
    for i in clicked:
        t = targets[i]
        per_target.append(
            {
                "level": t.level,
                "name": t.name,
                "variant": t.variant,
                "iou": round(float(np.mean(ious[i])), 4) if ious[i] else None,
                "iou3d": round(iou3d[i], 4),
                "views": len(ious[i]),
                "floater_fraction": round(floaters[clicked.index(i)], 4),
                "selected": int(selections[:, i].sum()),
            }
        )

    def miou(level: str, variant: str = "") -> float:
        vals = [
            p["iou"] for p in per_target if p["level"] == level and p["iou"] is not None and p["variant"] == variant
        ]
        return round(float(np.mean(vals)), 4) if vals else float("nan")

    def miou3d(level: str, variant: str = "") -> float:
        vals = [p["iou3d"] for p in per_target if p["level"] == level and p["variant"] == variant]
        return round(float(np.mean(vals)), 4) if vals else float("nan")

    return {
        "miou_coarse": miou("coarse"),
        "miou_fine": miou("fine"),
        "miou3d_coarse": miou3d("coarse"),
        "miou3d_fine": miou3d("fine"),
        "miou_coarse_oracle_scale": miou("coarse", "oracle"),
        "miou3d_coarse_oracle_scale": miou3d("coarse", "oracle"),
        "miou_coarse_default_scale": miou("coarse", "default"),
        "miou3d_coarse_default_scale": miou3d("coarse", "default"),
        "miou_coarse_object_scale": miou("coarse", "object"),
        "miou3d_coarse_object_scale": miou3d("coarse", "object"),
        "miou_coarse_unfiltered": miou("coarse", "unfiltered"),
        "miou_fine_unfiltered": miou("fine", "unfiltered"),
        "miou3d_coarse_unfiltered": miou3d("coarse", "unfiltered"),
        "miou3d_fine_unfiltered": miou3d("fine", "unfiltered"),
        "floater_fraction_unfiltered": round(
            float(np.mean([f for f, t in zip(floaters, clicked) if targets[t].variant == "unfiltered"])), 4
        )
        if floaters
        else float("nan"),
        "floater_fraction": round(float(np.mean([f for f, t in zip(floaters, clicked) if not targets[t].variant])), 4)
        if floaters
        else float("nan"),
        "click_ms_p50": round(float(np.median(latencies)), 2) if latencies else float("nan"),
        "per_target": per_target,
    }


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one row per (method, noise)."""
    lines = [
        "| scene | method | masks | 2D mIoU objects | 2D mIoU parts | 3D mIoU objects | 3D mIoU parts "
        "| floater fraction | train s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kind = r.get("masks", "labels")
        masks = f"{kind} clean" if r["noise"] == 0 else f"{kind} ({r['noise']:g})"
        for method, m in r["methods"].items():
            lines.append(
                f"| {r.get('preset', 'tabletop')} | {method} | {masks} | "
                f"{m['miou_coarse']:.3f} | {m['miou_fine']:.3f} | "
                f"{m['miou3d_coarse']:.3f} | {m['miou3d_fine']:.3f} | "
                f"{m['floater_fraction']:.3f} | {m['train_seconds']:.1f} | {m['peak_memory_mb']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n")[0])
    p.add_argument("--noise", type=float, action="append", help="noise strength (repeatable; default 1 and 0)")
    p.add_argument("--method", action="append", choices=["click", "saga"], help="default: both")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--preset", default="tabletop", choices=["tabletop", "shelf"])
    p.add_argument(
        "--masks",
        default="labels",
        choices=["labels", "sam-like", "geometric"],
        help="mask model (default labels; geometric: from the renders, no noise runs)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=40)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--gaussians", type=int, default=80_000)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE", help="config override")
    args = p.parse_args(argv)
    methods = args.method or ["click", "saga"]
    overrides: dict[str, dict[str, Any]] = {}
    from backend.core.errors import SplatsegError
    from backend.features.method import method_class

    for item in args.set:  # checked here, not after the scene and its masks are built
        key, _, value = item.partition("=")
        method, _, field = key.partition(".")
        try:
            fields = {f.name for f in dataclasses.fields(method_class(method).config_type)}
        except SplatsegError as exc:
            p.error(f"--set {item}: {exc}")
        if field not in fields:
            p.error(f"--set {item}: {method} has no setting {field!r}; choose from {', '.join(sorted(fields))}")
        try:
            overrides.setdefault(method, {})[field] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f'--set {item}: the value must be JSON (true, 0.5, "text")')
    results = []
    for noise in (args.noise or [1.0, 0.0]) if args.masks != "geometric" else [0.0]:
        results.append(
            accuracy_benchmark(
                noise=noise,
                methods=methods,
                preset=args.preset,
                masks=args.masks,
                seed=args.seed,
                views=args.views,
                resolution=args.resolution,
                num_gaussians=args.gaussians,
                workdir=args.workdir,
                iterations={m: args.iterations for m in methods} if args.iterations else None,
                overrides=overrides,
            )
        )
        print(format_results(results[-1:]), flush=True)
    print(format_results(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---- click latency -------------------------------------------------------------------------------------------------
def click_latency_benchmark(
    *,
    num_gaussians: int = 1_000_000,
    clicks: int = 60,
    seed: int = 0,
    methods: Sequence[str] = ("click", "saga"),
) -> dict[str, Any]:
    """Milliseconds per `FeatureField.segment` call on a scaled-up tabletop (p50 / p95 over `clicks` clicks on
    random pixels that hit an object), per method and level.

    The features are made from the ground-truth labels (one random unit direction per object and per part, plus
    noise) instead of training at this size: a click's cost depends on the number of Gaussians, the feature width
    and the selection's size, not on how the features were learned.
    """
    import time

    import torch.nn.functional as F

    from backend.features.field import FeatureField
    from backend.features.neighbors import knn_neighbors
    from backend.features.threads import compute_threads
    from backend.synthetic import build_tabletop, orbit_cameras

    t0 = time.perf_counter()
    synth = build_tabletop(seed=seed, num_gaussians=num_gaussians)
    cameras = orbit_cameras(synth, views=8, resolution=512, seed=seed)
    g = torch.Generator().manual_seed(seed)
    n = num_gaussians

    def directions(labels: np.ndarray, dim: int) -> torch.Tensor:  # [N, dim] label direction + noise, unit
        table = F.normalize(torch.randn(int(labels.max()) + 1, dim, generator=g), dim=1)
        noisy = table[torch.from_numpy(labels.astype(np.int64))] + 0.05 * torch.randn(n, dim, generator=g)
        return F.normalize(noisy, dim=1)

    neighbors = knn_neighbors(synth.scene.means, 8)
    fields = {}
    if "click" in methods:
        click = torch.cat([directions(synth.object_labels, 12), directions(synth.part_labels, 12)], dim=1)
        fields["click"] = FeatureField(
            synth.scene, "click", {"features": click, "coarse_centroids": torch.zeros(0, 12), "neighbors": neighbors}
        )
    if "saga" in methods:
        saga = directions(synth.part_labels * 64 + synth.object_labels, 32)
        tensors = {
            "features": saga,
            "gate_weight": torch.randn(32, 1, generator=g),
            "gate_bias": torch.zeros(32),
            "quantiles": torch.linspace(0.01, 1.0, 100),
            "neighbors": neighbors,
        }
        fields["saga"] = FeatureField(synth.scene, "saga", tensors)
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {"num_gaussians": n, "clicks": clicks, "setup_seconds": round(setup, 1)}
    with compute_threads() as threads:
        result["threads"] = threads
        for method, field in fields.items():
            field.warm_up()
            for level in field.levels or (None,):
                times = []
                for i in range(clicks + 3):
                    cam = cameras[i % len(cameras)]
                    xy = (float(rng.uniform(0.3, 0.7) * cam.width), float(rng.uniform(0.3, 0.7) * cam.height))
                    res = field.segment(cam, [xy], level=level)
                    if i >= 3:  # the first clicks build caches (gated features, page-ins)
                        times.append(res.milliseconds)
                key = f"{method}_{level}" if level else method
                result[key] = {
                    "p50_ms": round(float(np.percentile(times, 50)), 2),
                    "p95_ms": round(float(np.percentile(times, 95)), 2),
                }
    return result

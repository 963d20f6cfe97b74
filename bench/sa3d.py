"""SA3D figures: accuracy with a perfect 2D predictor, time per view, and what SAM's embedding adds.

Accuracy is measured with `GroundTruthPredictor` so that it judges the lifting and the self-prompting alone: every
object of the tabletop scenes is clicked once (at its most interior pixel, in the view that shows most of it), the
loop runs with a budget of views, and the selection is rendered in every view the loop did not use and compared with
the ground-truth object map there (IoU per view, averaged per object). SAM's share of the time is measured with the
real vit_b architecture and random weights: its speed does not depend on its weights, and no checkpoint is needed.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from backend.lift import GeometryCache, GroundTruthPredictor, Sa3dOptions, segment_sa3d
from backend.lift.evaluate import heldout_ious, interior_pixel

from .common import Figure


@dataclasses.dataclass(frozen=True)
class ObjectResult:
    seed: int
    object_id: int
    name: str
    start_view: str
    views_used: int
    heldout_iou: float
    """Mean over the held-out views that show the object."""
    heldout_views: int
    seconds: float
    seconds_per_view: float
    """Median over the views of the loop's own time (rasterise, render the 3D mask, self-prompt, lift): the
    predictor's time is left out, it is SAM's share."""


def tabletop_accuracy(
    *,
    seeds: Sequence[int] = (0, 1),
    num_gaussians: int = 20_000,
    resolution: int = 128,
    num_cameras: int = 24,
    options: Sa3dOptions | None = None,
    objects: Sequence[str] | None = None,
    progress: bool = True,
) -> list[ObjectResult]:
    """Click every object (or those named) of each seeded tabletop once and score it in the held-out views."""
    from backend.synthetic import build_tabletop, orbit_cameras

    opts = options or Sa3dOptions(views=8)
    results: list[ObjectResult] = []
    for seed in seeds:
        synth = build_tabletop(seed=seed, num_gaussians=num_gaussians)
        cameras = orbit_cameras(synth, views=num_cameras, resolution=resolution, seed=seed)
        # Every view is rasterised once: for its ground truth, and again (from the cache) by the loop and the scoring.
        cache = GeometryCache(synth.scene, max_bytes=2 * 2**30)
        predictor = GroundTruthPredictor.from_gaussian_labels(
            synth.scene, synth.part_labels, synth.object_labels, geometry=cache
        )
        object_maps = {camera.name: predictor.label_maps(camera)[1] for camera in cameras}
        for object_id, name in synth.object_names.items():
            if objects is not None and name not in objects:
                continue
            areas = [np.count_nonzero(object_maps[c.name] == object_id) for c in cameras]
            start = cameras[int(np.argmax(areas))]
            pixel = interior_pixel(object_maps[start.name] == object_id)
            # The loop rasterises for itself (not from the cache), so its time per view is the real one.
            result = segment_sa3d(synth.scene, cameras, predictor, view=start, pixels=[pixel], options=opts)
            used = {s.camera.name for s in result.steps}
            ious = heldout_ious(synth.scene, cameras, result.mask, object_maps, object_id, skip=used, geometry=cache)
            r = ObjectResult(
                seed=seed,
                object_id=object_id,
                name=name,
                start_view=start.name,
                views_used=result.views_used,
                heldout_iou=float(np.mean(ious)) if ious else float("nan"),
                heldout_views=len(ious),
                seconds=result.seconds,
                seconds_per_view=statistics.median(s.seconds - s.predictor_seconds for s in result.steps),
            )
            results.append(r)
            if progress:
                print(
                    f"[sa3d] seed {seed} {name:7s} IoU {r.heldout_iou:.3f} over {r.heldout_views} held-out views "
                    f"({r.views_used} views, {r.seconds_per_view:.2f} s/view)",
                    flush=True,
                )
    return results


def sam_embedding_seconds(*, model_type: str = "vit_b", image_size: int = 256, repeat: int = 2) -> dict[str, float]:
    """Seconds per SAM image embedding and per prompt decode, with the real architecture and random weights."""
    from segment_anything import sam_model_registry

    from backend.core.camera import look_at
    from backend.lift import SamPredictorAdapter

    torch.manual_seed(0)
    sam = sam_model_registry[model_type](checkpoint=None).eval()
    adapter = SamPredictorAdapter(sam, cache_size=1)
    rng = np.random.default_rng(0)
    embed, decode = [], []
    for i in range(repeat + 1):  # the first call warms up
        cam = look_at(
            f"bench_{i}",
            np.array([0.0, -3.0, 1.0]),
            np.zeros(3),
            np.array([0.0, 0.0, 1.0]),
            width=image_size,
            height=image_size,
            fov_y_deg=50.0,
        )
        image = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        e0, d0 = adapter.embed_seconds, adapter.decode_seconds
        adapter.set_view(cam, image)
        adapter.predict([(image_size / 2, image_size / 2)], [1], multimask=True)
        if i > 0:
            embed.append(adapter.embed_seconds - e0)
            decode.append(adapter.decode_seconds - d0)
    return {"embed": statistics.median(embed), "decode": statistics.median(decode)}


def bench_sa3d(*, quick: bool, workdir=None) -> list[Figure]:
    """The README's SA3D rows (a `splatseg bench` section)."""
    t0 = time.perf_counter()
    results = tabletop_accuracy(seeds=(0,) if quick else (0, 1))
    figures: list[Figure] = []
    ious = [r.heldout_iou for r in results if r.name != "table"]
    worst = min((r for r in results if r.name != "table"), key=lambda r: r.heldout_iou)
    figures.append(
        Figure(
            "sa3d",
            "held-out object IoU, ground-truth predictor, ≤ 8 views (mean over objects)",
            float(np.mean(ious)),
            "ratio",
            f"min {worst.heldout_iou:.3f} ({worst.name}, seed {worst.seed}); {len(ious)} objects, 20k Gaussians, "
            "128², 24 cameras",
        )
    )
    per_view = statistics.median(r.seconds_per_view for r in results)
    fastest = min(r.seconds_per_view for r in results)
    figures.append(
        Figure(
            "sa3d",
            "time per view without SAM (rasterise, render the 3D mask, self-prompt, lift), CPU",
            per_view,
            "s",
            f"median over objects; fastest object {fastest:.2f} s/view; 20k Gaussians, 128²",
        )
    )
    sam = sam_embedding_seconds(repeat=1 if quick else 3)
    total = per_view + sam["embed"] + sam["decode"]
    figures.append(
        Figure(
            "sa3d",
            "SAM vit_b image embedding (random weights), CPU",
            sam["embed"],
            "s",
            f"{100 * sam['embed'] / total:.0f}% of a view with SAM; decode {sam['decode'] * 1000:.0f} ms",
        )
    )
    figures.append(
        Figure("sa3d", "time per view with SAM vit_b, CPU", total, "s", f"section {time.perf_counter() - t0:.0f} s")
    )
    return figures

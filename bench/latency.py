"""The click path's figures at 1M Gaussians, the fast path beside the previous one in the same run.

- **Click → selection** (`FeatureField.segment`: rays, similarity, threshold, floater filter) for click features at
  the coarse and fine levels and for SAGA features, three paths: the new one (the ray in NumPy, `RayCaster.fast`;
  `PrunedBank.vectorised` runs; the floater filter reading its cells in block order,
  `FeatureField.cells_in_block_order`; the fine level's growth on the selection's block positions by one compiled
  search, `NeighbourGrowth.fast` and `.compiled`, and its pieces from growth's mask, `SeparatePieces.fast`; the
  coarse level's hidden patches changing the click's mask in place, `FeatureField.hidden_on_mask`; the floater
  filter's kept Gaussians from one per-cell table, `FloaterFilter.keep_by_cell`; the compiled kernels: the ray cast +
  blend, `RayCaster.compiled`, the floater filter writing the click's mask from block positions,
  `FloaterFilter.compiled`, the hidden patches' `follow`, `HiddenPatches.compiled`, the blocked product's run
  search and threshold step, `PrunedBank.compiled`, the ray's blend into the clicked feature and seeds,
  `FeatureField.blend_compiled`; the fine level's pieces reading the features by node,
  `FeatureField.pieces_by_node`),
  the previous one (those off) and the reference (torch ray, whole-bank product: field.fast = False), p50 and
  p95, the median share of the bank `PrunedBank` read, and how many clicks' selections differ between the new path
  and the previous one (0 expected: the ray kernel's weights differ from torch's only by float32 rounding).
  Features are made from the tabletop's ground truth (one direction per object and part, plus noise), SAGA's as
  one 32-d direction per object with a gate of ones, so the field's real code runs; the click field gets the
  scene's real 8 nearest neighbours (the floater filter's cells, the fine level's growth), as training stores them,
  and a `training_weight` with the objects' bases hidden (`_hidden_training_weight`), so a coarse click pays for
  the hidden patches' rule (features/hidden.py) as a trained field's does.
- **SAGA without a scale** (`bench_saga_auto`): the automatic scale on its grid, a click at a scale whose bank is
  not built (the exact unbuilt path) and the same click once the background builder has built it, beside the
  previous path (off-grid scale, the gated and pruned banks built in the click) on a few clicks.
- **This session's parts** (`session_parts`): a coarse and a fine click's CPU time with the compiled run search,
  the ray's compiled blend and the pieces read by node, beside the same clicks without them, interleaved.
- **CPU time of a coarse click** (`time.thread_time`, far below the wall clock on a loaded box) and its parts: the
  ray cast, blend and query, the blocked product, the floater filter, the hidden patches.
- **Ray cast + blend** of a click as one compiled kernel (`RayCaster.weights`) beside NumPy (`compiled` off) and
  torch (`weights_torch`), and torch's
  nearest-candidates-first blend (`front`) beside `weights_reference`.
- **Look + chunk diff** per browser after a click (what `ClientView.on_change` does: the look's parts and
  `LayeredSplats.update`, beside the same with its kernels' NumPy references (`compiled` False), the previous path,
  the look's array and the selection-aware `ChunkedSplats.update`, and the one before it, comparing every chunk), a
  second layered browser shown the same look after the first (what each further browser pays: the per-look counts
  and mixed rows already made), and **bytes per one-object change** as a share of the whole splat buffer, for both
  (bench.viewer's figures, at the same size).

`splatseg bench --quick --section latency --json F` writes the keys `click_coarse_p50_ms`, `click_fine_p50_ms`,
`saga_p50_ms`, `look_diff_p50_ms` (the first browser; `look_diff_next_browser_p50_ms` each further one;
`look_diff_numpy_p50_ms` without the kernels),
`bytes_per_object_change_fraction` (and p95s, previous and reference p50s,
`saga_auto_p50_ms` and `saga_auto_first_p50_ms` with their p95s and previous path,
selection mismatches, `click_{coarse,fine}_cpu_session_ms` with `_before_ms`
and `click_{coarse,fine}_session_mismatches` (`session_parts`),
`click_coarse_cpu_*_ms` with `click_coarse_cpu_segment_previous_ms`, `click_fine_cpu_*_ms`
from bench/fine_click.py), `ray_kernel_p50_ms` (and its CPU time), `ray_numpy_p50_ms`, `ray_torch_p50_ms`,
`ray_p50_ms` and `ray_reference_p50_ms`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .common import Figure, percentile
from .fine_click import fine_click_figures, fine_click_parts
from .viewer import _click_pixels, _CountingSceneApi, bench_bytes, write_click_scene


def _saga_tensors(object_labels: np.ndarray, dim: int = 32, noise: float = 0.15, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    lab = torch.from_numpy(object_labels.astype(np.int64))
    centres = F.normalize(torch.randn(int(lab.max()) + 1, dim, generator=g), dim=1)
    feats = F.normalize(centres[lab] + noise * torch.randn(len(lab), dim, generator=g), dim=1)
    return {
        "features": feats,
        "gate_weight": torch.zeros(dim, 1),
        "gate_bias": torch.full((dim,), 20.0),  # sigmoid → 1: every channel open at every scale
        "quantiles": torch.linspace(0.01, 1.0, 50),
    }


def _hidden_training_weight(synth, seed: int = 3) -> torch.Tensor:  # [N] float32
    """A `training_weight` as training leaves it on a tabletop (docs: features/hidden.py): the support's larger
    splats cover each object's lowest 3 cm in every view, and nothing sees the table top under an object, so those
    Gaussians get a small weight (uniform in [0, 0.6), below half the median), every other one ~3 (log-normal);
    ~14% of the 1M scene is hidden, in patches at the objects' bases, and a coarse click pays for the rule."""
    rng = np.random.default_rng(seed)
    lab = synth.object_labels
    means = synth.scene.means.double().numpy()
    base = (lab >= 2) & (means[:, 2] < 0.03)
    cell = np.floor(means[:, :2] / 0.01).astype(np.int64)  # 1 cm columns in x, y
    key = cell[:, 0] * (1 << 20) + cell[:, 1]
    under = (lab == 1) & (np.abs(means[:, 2]) < 0.005) & np.isin(key, key[base])
    weight = np.exp(rng.normal(np.log(3.0), 0.3, len(lab)))
    hidden = base | under
    weight[hidden] = rng.uniform(0.0, 0.6, int(hidden.sum()))
    return torch.from_numpy(weight.astype(np.float32))


def _saga_auto_tensors(synth, dim: int = 32, seed: int = 2) -> dict:
    """SAGA tensors for clicks without a scale: features by object (as `_saga_tensors`), a gate that changes with
    the scale (so each scale has its own bank), a quantile table over the objects' sizes and each Gaussian's
    stored object scale (`object_scales`: what a browser's click starts its automatic scale from)."""
    tensors = _saga_tensors(synth.object_labels, dim=dim, seed=seed)
    g = torch.Generator().manual_seed(seed)
    lab = synth.object_labels.astype(np.int64)
    means = synth.scene.means.double().numpy()
    size = np.zeros(int(lab.max()) + 1)
    for o in np.unique(lab):  # twice the RMS radius of the object's centres
        p = means[lab == o]
        size[o] = 2.0 * np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean())
    per = torch.from_numpy(size[lab].astype(np.float32))
    tensors["auto_scale"] = per
    tensors["quantiles"] = torch.from_numpy(np.quantile(size[size > 0], np.linspace(0, 1, 50)).astype(np.float32))
    tensors["gate_weight"] = 4.0 * torch.randn(dim, 1, generator=g)
    tensors["gate_bias"] = 2.0 + torch.randn(dim, generator=g)
    return tensors


def bench_saga_auto(synth, cameras, pixels, *, previous_clicks: int = 3) -> dict[str, float]:
    """SAGA clicks without a scale (the automatic scale) at a scale the field has no bank for ("first") and again
    once the background builder has made it ("repeated"), beside the previous path (the automatic scale off the
    grid, `PlateauScale`, and the bank built in the click) on the first `previous_clicks` clicks, interleaved.
    Every first click's selection is compared with the reference path's (whole gated bank) at the same scale."""
    from backend.features.auto_scale import PlateauScale
    from backend.features.bank_cache import BankCache
    from backend.features.field import FeatureField

    field = FeatureField(synth.scene, "saga", _saga_auto_tensors(synth)).warm_up()
    grid_rule = field.impl.AUTO_SCALE

    def forget() -> None:  # every bank the field built: the next click's scale is new to it
        field.wait_for_banks()
        field._pruned = BankCache(field._pruned.budget)
        field._block_cells.clear()
        field.impl._scale_banks.clear()

    def click(cam, px) -> tuple[float, object]:  # wall ms (this thread's CPU ms in `cpu`), result
        t0, c0 = time.perf_counter(), time.thread_time()
        res = field.segment(cam, [px])
        cpu.append((time.thread_time() - c0) * 1e3)
        return (time.perf_counter() - t0) * 1e3, res

    first, again, previous, mismatched, scales = [], [], [], 0, set()
    cpu: list[float] = []
    first_cpu, again_cpu, previous_cpu = [], [], []
    for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
        order = ("new", "previous") if k % 2 else ("previous", "new")
        for variant in order:
            if variant == "previous" and k >= previous_clicks:
                continue
            forget()
            if variant == "previous":
                field.build_in_background, field.impl.AUTO_SCALE = False, PlateauScale()
                previous.append(click(cam, px)[0])
                previous_cpu.append(cpu[-1])
                field.build_in_background, field.impl.AUTO_SCALE = True, grid_rule
                continue
            ms, res = click(cam, px)
            first.append(ms)
            first_cpu.append(cpu[-1])
            scales.add(res.scale)
            field.wait_for_banks()
            again.append(click(cam, px)[0])
            again_cpu.append(cpu[-1])
            field.fast = False
            mismatched += not np.array_equal(res.mask, field.segment(cam, [px], scale=res.scale).mask)
            field.fast = True
    forget()
    return {
        "saga_auto_first_p50_ms": percentile(first, 50),
        "saga_auto_first_p95_ms": percentile(first, 95),
        "saga_auto_p50_ms": percentile(again, 50),
        "saga_auto_p95_ms": percentile(again, 95),
        "saga_auto_first_previous_p50_ms": percentile(previous, 50),
        "saga_auto_cpu_p50_ms": percentile(again_cpu, 50),
        "saga_auto_first_cpu_p50_ms": percentile(first_cpu, 50),
        "saga_auto_first_previous_cpu_p50_ms": percentile(previous_cpu, 50),
        "saga_auto_previous_clicks": len(previous),
        "saga_auto_selection_mismatches": mismatched,
        "saga_auto_distinct_scales": len(scales),
        "saga_auto_builder_errors": len(field._builder.errors),
    }


def session_parts(field, cameras, pixels) -> dict[str, float]:
    """A click's CPU time with this session's parts (the compiled run search, `PrunedBank.runs_compiled`; the
    compiled blend of the ray into the query and seeds, `FeatureField.blend_compiled`; the pieces reading the
    features by node, `FeatureField.pieces_by_node`) beside the same click without them ("before"), interleaved,
    per level, and how many selections differ (0 expected: the blend equals torch's to float32 rounding)."""
    out: dict[str, float] = {}
    prunes = [pruned for _, pruned in field._pruned.values()]

    def parts(on: bool) -> None:
        field.blend_compiled = field.pieces_by_node = on
        for pruned in prunes:
            pruned.runs_compiled = on

    for level in ("coarse", "fine"):
        cpu: dict[bool, list[float]] = {True: [], False: []}
        mismatched = 0
        for rep in range(2):
            for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
                masks = {}
                for on in (True, False) if (k + rep) % 2 else (False, True):
                    parts(on)
                    c0 = time.thread_time()
                    masks[on] = field.segment(cam, [px], level=level).mask
                    cpu[on].append((time.thread_time() - c0) * 1e3)
                mismatched += rep == 0 and not np.array_equal(masks[True], masks[False])
        parts(True)
        out[f"click_{level}_cpu_session_ms"] = percentile(cpu[True], 50)
        out[f"click_{level}_cpu_session_before_ms"] = percentile(cpu[False], 50)
        out[f"click_{level}_session_mismatches"] = mismatched
    return out


def _time_clicks(field, cameras, pixels, **kwargs) -> list[float]:
    out = []
    for cam, px in zip(cameras, pixels, strict=True):
        t0 = time.perf_counter()
        field.segment(cam, [px], **kwargs)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_latency(num_gaussians: int, *, clicks: int, workdir: Path) -> dict[str, float]:
    from backend.features.field import FeatureField
    from backend.features.store import read_features
    from backend.features.threads import compute_threads
    from backend.io.scene_folder import find_model
    from backend.workspace import Workspace
    from viewer.session import Session
    from viewer.splat_layers import LayeredSplats
    from viewer.splats import ChunkedSplats, SplatChunks

    scene_dir = workdir / f"latency_{num_gaussians}"
    synth, cams = write_click_scene(scene_dir, num_gaussians)
    # With the scene's real 8 nearest neighbours and a training weight whose hidden patches a coarse click follows.
    stored = read_features(Workspace(scene_dir), "click", inputs={"model": find_model(scene_dir)})
    tensors = {**stored, "training_weight": _hidden_training_weight(synth)}
    click = FeatureField(synth.scene, "click", tensors).warm_up()
    saga = FeatureField(synth.scene, "saga", _saga_tensors(synth.object_labels)).warm_up()
    per_camera = max(1, clicks // len(cams))
    cameras, pixels = [], []
    for ci, cam in enumerate(cams):
        for px in _click_pixels(synth.scene, cam, synth.object_labels, per_camera, seed=ci):
            cameras.append(cam)
            pixels.append(px)
    out: dict[str, float] = {"clicks": len(pixels)}
    caster = click._ray_caster()
    # Three paths, interleaved so that a burst of load on the box hits them alike: the new one (the ray in NumPy,
    # `RayCaster.fast`; `PrunedBank.vectorised` runs; the floater filter's cells in block order; the fine level's
    # growth over the backbone, then the rest, on block positions: `NeighbourGrowth.fast`), the previous one
    # (all three off: the path before them) and the reference (torch ray, whole-bank product: field.fast = False).
    variants = {"new": (True, True), "previous": (True, False), "reference": (False, False)}  # field, ray, runs

    def use(field, variant: str) -> None:
        fast, newer = variants[variant]
        field.fast, field._ray_caster().fast, field.cells_in_block_order = fast, newer, newer
        field.hidden_on_mask = newer
        field._floater_filter().keep_by_cell = newer
        # The compiled kernels (backend/core/jit.py): the ray cast + blend, the floater filter writing the mask,
        # the hidden patches' `follow`; off: NumPy's ray (torch's when `fast` is off too) and the NumPy/SciPy paths.
        field._ray_caster().compiled = newer
        field.blend_compiled = field.pieces_by_node = newer  # the ray's blend compiled; pieces read by node
        field._floater_filter().compiled = newer
        for patches in field._hidden.values():
            patches.compiled = newer
        for _, pruned in field._pruned.values():
            pruned.vectorised = pruned.compiled = newer
        for _, growth in field._growths.values():
            growth.fast = growth.compiled = newer
        for _, pieces in field._piece_finders.values():
            pieces.fast = newer

    for name, field, kwargs in (
        ("click_coarse", click, {"level": "coarse"}),
        ("click_fine", click, {"level": "fine"}),
        ("saga", saga, {}),
    ):
        times: dict[str, list[float]] = {v: [] for v in variants}
        for rep in range(2):
            for v in variants if rep % 2 == 0 else list(variants)[::-1]:
                use(field, v)
                _time_clicks(field, cameras[:2], pixels[:2], **kwargs)  # warm: lazy blocks, allocator
                times[v] += _time_clicks(field, cameras, pixels, **kwargs)
        mismatched = 0  # clicks whose selection differs between the new path and the previous one
        for cam, px in zip(cameras, pixels, strict=True):
            use(field, "new")
            new_mask = field.segment(cam, [px], **kwargs).mask
            use(field, "previous")
            mismatched += not np.array_equal(new_mask, field.segment(cam, [px], **kwargs).mask)
        use(field, "new")
        out[f"{name}_selection_mismatches"] = mismatched
        for v, key in (("new", ""), ("previous", "_previous"), ("reference", "_reference")):
            out[f"{name}{key}_p50_ms"] = percentile(times[v], 50)
            out[f"{name}{key}_p95_ms"] = percentile(times[v], 95)
        level, scale = field._granularity(kwargs.get("level"), None)
        bank = field._bank(level, scale)
        shares = []
        for cam, px in zip(cameras, pixels, strict=True):
            q, _ = field._queries(cam, [px], level, scale)
            if q.shape[0]:
                shares.append(field._pruned_bank(level, scale, bank).select(q, None, field.default_threshold(level))[1])
        out[f"{name}_bank_read_share"] = float(np.median(shares)) if shares else 0.0

    # Where a coarse click's CPU time goes (time.thread_time: the time this thread ran, which on a loaded box is far
    # below the wall clock): the ray, the blocked product, the floater filter, and the whole `segment`.
    # The compiled path's parts: the ray kernel, the floater filter writing the mask from block positions
    # (`FloaterFilter.into_mask`), the hidden patches' kernel; and the whole click on the previous path beside it.
    parts: dict[str, list[float]] = {"ray": [], "product": [], "floaters": [], "hidden": [], "segment": []}
    previous_cpu: list[float] = []
    pruned = click._pruned_bank("coarse", None, click._bank("coarse", None))
    cells = click._cells_in_block_order("coarse", None)
    patches = click._hidden_patches("coarse")
    filt = click._floater_filter()
    with compute_threads():
        for cam, px in zip(cameras, pixels, strict=True):
            t0 = time.thread_time()
            q, seeds = click._queries(cam, [px], "coarse", None)
            t1 = time.thread_time()
            positions, _ = pruned.select_positions(q, None, click.default_threshold("coarse"))
            t2 = time.thread_time()
            chosen = filt.into_mask(positions, pruned.perm, cells, seeds, np.zeros(click.num_gaussians, dtype=bool))
            t3 = time.thread_time()
            patches.follow(chosen, seeds)
            t4 = time.thread_time()
            click.segment(cam, [px], level="coarse")
            t5 = time.thread_time()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                parts[key].append(dt * 1e3)
            use(click, "previous")
            t6 = time.thread_time()
            click.segment(cam, [px], level="coarse")
            previous_cpu.append((time.thread_time() - t6) * 1e3)
            use(click, "new")
    for key, values in parts.items():
        out[f"click_coarse_cpu_{key}_ms"] = percentile(values, 50)
    out["click_coarse_cpu_segment_previous_ms"] = percentile(previous_cpu, 50)
    out.update(session_parts(click, cameras, pixels))
    out.update(fine_click_parts(click, cameras, pixels))  # the same for a fine click, with its growth (fine_click.py)

    # The ray alone: in NumPy (`RayCaster.weights`, the default on a CPU) beside torch (`weights_torch`, the
    # previous path), then nearest candidates first (torch, `front`) beside blending every candidate.
    ray: dict[str, list[float]] = {"kernel": [], "numpy": [], "torch": [], "front": [], "every": []}
    ray_cpu: dict[str, list[float]] = {"kernel": [], "numpy": []}

    def numpy_ray(cam, px):  # `NumpyRay` (the path before the kernel)
        caster.compiled = False
        try:
            return caster.weights(cam, px)
        finally:
            caster.compiled = True

    with compute_threads():  # as `FeatureField.segment` casts it: one torch thread on a busy machine
        for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
            trio = [("kernel", caster.weights), ("numpy", numpy_ray), ("torch", caster.weights_torch)]
            for key, fn in trio if k % 2 else trio[::-1]:
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(cam, px)
                ray[key].append((time.perf_counter() - t0) * 1e3)
                if key in ray_cpu:
                    ray_cpu[key].append((time.thread_time() - c0) * 1e3)
        caster.front = 256  # RayCaster.FRONT is 0 (off): this measures whether turning it on pays
        for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
            for front in (True, False) if k % 2 else (False, True):
                t0 = time.perf_counter()
                caster.weights(cam, px) if front else caster.weights_reference(cam, px)
                ray["front" if front else "every"].append((time.perf_counter() - t0) * 1e3)
        caster.front = 0
    out.update(bench_saga_auto(synth, cameras, pixels))
    out["ray_kernel_p50_ms"] = percentile(ray["kernel"], 50)
    out["ray_kernel_cpu_p50_ms"] = percentile(ray_cpu["kernel"], 50)
    out["ray_numpy_cpu_p50_ms"] = percentile(ray_cpu["numpy"], 50)
    out["ray_numpy_p50_ms"] = percentile(ray["numpy"], 50)
    out["ray_torch_p50_ms"] = percentile(ray["torch"], 50)
    out["ray_p50_ms"] = percentile(ray["front"], 50)
    out["ray_reference_p50_ms"] = percentile(ray["every"], 50)

    session = Session(synth.scene, workspace=Workspace(scene_dir), field=click)
    # Three clients side by side: the layered splats (the fast path), the selection-aware `ChunkedSplats` (the
    # previous path) and `ChunkedSplats` comparing every chunk (the one before it), each with its layers prefetched.
    chunks = SplatChunks(synth.scene)
    layered = LayeredSplats(_CountingSceneApi(), chunks, session.rgba())
    second = LayeredSplats(_CountingSceneApi(), chunks, session.rgba())  # a second browser beside the first
    numpy_layers = LayeredSplats(_CountingSceneApi(), chunks, session.rgba())  # the kernels' NumPy references
    numpy_layers.compiled = False
    previous = ChunkedSplats(_CountingSceneApi(), chunks, session.rgba())
    full = ChunkedSplats(_CountingSceneApi(), chunks, session.rgba())
    full.incremental = False
    for client in (layered, second, numpy_layers):
        client.prefetch(session.look_parts()[2], session.tint_layer())
    for s in (previous, full):
        s.prefetch_dim(session.look_layers()[2])
    clients = [layered, previous, full]
    # Wall time and this thread's CPU time: on a box loaded far beyond its cores the wall time of a few-ms step is
    # mostly waiting for a core; the CPU time is what the step itself costs.
    spent: list[list[tuple[float, float]]] = [[], [], [], []]
    next_browser: list[tuple[float, float]] = []  # the second browser, after the first (the per-look counts made)
    shares: list[list[float]] = [[], [], []]  # bytes sent per click (these clicks' selections) / whole buffer
    for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
        session.click(cam, px, positive=True, who="bench")
        for action in ("click", "clear"):
            if action == "clear":
                session.edit("clear")
            # The layered client and its NumPy twin alternate first and second (the selection fresh in cache for
            # both alike); the previous paths, whose ~20 ms update flushes the caches, come after them.
            turns = [0, 3, 1, 2] if k % 2 else [3, 0, 1, 2]
            look = (0.0, 0.0)
            for j in turns:
                t0, c0 = time.perf_counter(), time.thread_time()
                if j == 3:  # the same with the kernels' NumPy references (`LayeredSplats.compiled` False)
                    parts, plain, dimmed = session.look_parts()
                    stats = numpy_layers.update(parts, plain=plain, dimmed=dimmed)
                    took = (time.perf_counter() - t0, time.thread_time() - c0)
                elif j == 0:  # the look's parts (what `ClientView` asks the session for) + the layered update
                    parts, plain, dimmed = session.look_parts()
                    stats = layered.update(parts, plain=plain, dimmed=dimmed)
                    took = (time.perf_counter() - t0, time.thread_time() - c0)
                    t1, c1 = time.perf_counter(), time.thread_time()
                    parts, plain, dimmed = session.look_parts()
                    second.update(parts, plain=plain, dimmed=dimmed)
                    if action == "click":
                        next_browser.append(((time.perf_counter() - t1) * 1e3, (time.thread_time() - c1) * 1e3))
                else:  # the look made into its array once (paid by both previous paths alike) + their update
                    if j == 1:  # 1 always goes before 2
                        rgba, plain, dimmed = session.look_layers()
                        look = (time.perf_counter() - t0, time.thread_time() - c0)
                        t0, c0 = time.perf_counter(), time.thread_time()
                    stats = clients[j].update(rgba, plain=plain, dimmed=dimmed)
                    took = (look[0] + time.perf_counter() - t0, look[1] + time.thread_time() - c0)
                if action == "click":
                    spent[j].append((took[0] * 1e3, took[1] * 1e3))
                    if j < 3:
                        shares[j].append(stats.share)
    keys = ("look_diff", "look_diff_reference", "look_diff_full", "look_diff_numpy")
    for key, times in zip(keys, spent, strict=True):
        wall, cpu = [t[0] for t in times[2:]], [t[1] for t in times[2:]]
        out[f"{key}_p50_ms"] = percentile(wall, 50)
        out[f"{key}_p95_ms"] = percentile(wall, 95)
        out[f"{key}_cpu_p50_ms"] = percentile(cpu, 50)
        out[f"{key}_cpu_p95_ms"] = percentile(cpu, 95)
    out["look_diff_next_browser_p50_ms"] = percentile([t[0] for t in next_browser[2:]], 50)
    out["look_diff_next_browser_p95_ms"] = percentile([t[0] for t in next_browser[2:]], 95)
    out["look_diff_next_browser_cpu_p50_ms"] = percentile([t[1] for t in next_browser[2:]], 50)
    out["click_bytes_fraction"] = float(np.mean(shares[0]))
    out["click_bytes_reference_fraction"] = float(np.mean(shares[1]))
    del session, layered, second, numpy_layers, previous, full, click, saga, synth
    b = bench_bytes(num_gaussians)
    out["bytes_per_object_change_fraction"] = b["change_mean"]
    out["bytes_first_selection_fraction"] = b["first_mean"]
    out["bytes_prefetch_fraction"] = b["dim_prefetch_share"]
    ref = bench_bytes(num_gaussians, reference=True)
    out["bytes_per_object_change_reference_fraction"] = ref["change_mean"]
    out["look_diff_objects_cpu_p50_ms"] = b["click_cpu_p50_ms"]
    out["look_diff_objects_reference_cpu_p50_ms"] = ref["click_cpu_p50_ms"]
    return out


def latency_figures(r: dict[str, Any], label: str) -> list[Figure]:
    figures = []
    for name, title in (("click_coarse", "click, coarse"), ("click_fine", "click, fine"), ("saga", "SAGA")):
        p50, p95 = r[f"{name}_p50_ms"], r[f"{name}_p95_ms"]
        prev, ref = r[f"{name}_previous_p50_ms"], r[f"{name}_reference_p50_ms"]
        note = (
            f"p95 {p95:.1f} ms; previous (ray in torch, per-block runs, cells gathered by id, growth by components, "
            f"hidden patches over ids, no compiled kernels) "
            f"p50 {prev:.1f} ms, "
            f"p95 {r[f'{name}_previous_p95_ms']:.1f} ms: "
            f"×{prev / max(p50, 1e-9):.2f} faster; reference (torch ray, whole-bank product) p50 {ref:.1f} ms: "
            f"×{ref / max(p50, 1e-9):.2f}; {100 * r[f'{name}_bank_read_share']:.0f}% of the bank read; "
            f"{int(r[f'{name}_selection_mismatches'])} of {int(r['clicks'])} selections differ from the previous path"
        )
        figures.append(Figure("latency", f"{title}: click → selection p50, {label}", p50, "ms", note, f"{name}_p50_ms"))
        figures.append(Figure("latency", f"{title}: p95, {label}", p95, "ms", "", f"{name}_p95_ms"))
        figures.append(Figure("latency", f"{title}: previous p50, {label}", prev, "ms", "", f"{name}_previous_p50_ms"))
        figures.append(Figure("latency", f"{title}: reference p50, {label}", ref, "ms", "", f"{name}_reference_p50_ms"))
    cpu = {k: r.get(f"click_coarse_cpu_{k}_ms", 0.0) for k in ("ray", "product", "floaters", "hidden", "segment")}
    figures.append(
        Figure(
            "latency",
            f"click, coarse: CPU time of a click p50, {label}",
            cpu["segment"],
            "ms",
            f"time.thread_time: ray cast + blend + query {cpu['ray']:.2f}, blocked product {cpu['product']:.2f}, "
            f"floater filter writing the mask {cpu['floaters']:.2f}, hidden patches (`HiddenPatches.follow`) "
            f"{cpu['hidden']:.2f} (medians of each part, compiled kernels); the previous path (no kernels) "
            f"{r.get('click_coarse_cpu_segment_previous_ms', 0.0):.2f} ms: "
            f"×{r.get('click_coarse_cpu_segment_previous_ms', 0.0) / max(cpu['segment'], 1e-9):.2f}",
            "click_coarse_cpu_segment_ms",
        )
    )
    for level in ("coarse", "fine"):
        if f"click_{level}_cpu_session_ms" in r:
            new, before = r[f"click_{level}_cpu_session_ms"], r[f"click_{level}_cpu_session_before_ms"]
            figures.append(
                Figure(
                    "latency",
                    f"click, {level}: CPU time with this session's parts p50, {label}",
                    new,
                    "ms",
                    f"the compiled run search, the ray's compiled blend into the query and seeds, the pieces read "
                    f"by node; without them (interleaved, same clicks) {before:.2f} ms: "
                    f"×{before / max(new, 1e-9):.2f}; "
                    f"{int(r[f'click_{level}_session_mismatches'])} of {int(r['clicks'])} selections differ",
                    f"click_{level}_cpu_session_ms",
                )
            )
    figures += fine_click_figures(r, label)
    if "saga_auto_p50_ms" in r:
        figures.append(
            Figure(
                "latency",
                f"SAGA without a scale (automatic, on the grid), repeated click p50, {label}",
                r["saga_auto_p50_ms"],
                "ms",
                f"p95 {r['saga_auto_p95_ms']:.1f} ms; through the bank the background builder made after the first "
                f"click at that scale; first click at a scale without a bank (exact unbuilt path, "
                f"`SagaMethod.select_unbuilt`) p50 {r['saga_auto_first_p50_ms']:.1f} ms, p95 "
                f"{r['saga_auto_first_p95_ms']:.1f} ms; previous path (off-grid scale, bank built in the click) p50 "
                f"{r['saga_auto_first_previous_p50_ms']:.0f} ms over {int(r['saga_auto_previous_clicks'])} clicks: "
                f"×{r['saga_auto_first_previous_p50_ms'] / max(r['saga_auto_first_p50_ms'], 1e-9):.0f}; "
                f"{int(r['saga_auto_selection_mismatches'])} first-click selections differ from the reference; "
                f"{int(r['saga_auto_distinct_scales'])} distinct scales; this thread's CPU time p50: repeated "
                f"{r['saga_auto_cpu_p50_ms']:.1f} ms, first {r['saga_auto_first_cpu_p50_ms']:.1f} ms, previous first "
                f"{r['saga_auto_first_previous_cpu_p50_ms']:.0f} ms",
                "saga_auto_p50_ms",
            )
        )
        figures.append(
            Figure(
                "latency",
                f"SAGA without a scale, first click at a new scale p50, {label}",
                r["saga_auto_first_p50_ms"],
                "ms",
                "",
                "saga_auto_first_p50_ms",
            )
        )
    if "ray_kernel_p50_ms" in r:
        figures.append(
            Figure(
                "latency",
                f"ray cast + blend of a click p50 (compiled kernel), {label}",
                r["ray_kernel_p50_ms"],
                "ms",
                f"NumPy (the previous path) p50 {r['ray_numpy_p50_ms']:.2f} ms: "
                f"×{r['ray_numpy_p50_ms'] / max(r['ray_kernel_p50_ms'], 1e-9):.2f}; CPU time p50 "
                f"{r['ray_kernel_cpu_p50_ms']:.2f} ms, NumPy {r['ray_numpy_cpu_p50_ms']:.2f} ms; weights equal "
                f"NumPy's to float32 rounding (tests/test_ray_kernel.py)",
                "ray_kernel_p50_ms",
            )
        )
    figures.append(
        Figure(
            "latency",
            f"ray cast + blend of a click p50 (NumPy), {label}",
            r["ray_numpy_p50_ms"],
            "ms",
            f"in torch (the previous path) p50 {r['ray_torch_p50_ms']:.1f} ms: "
            f"×{r['ray_torch_p50_ms'] / max(r['ray_numpy_p50_ms'], 1e-9):.2f}; bit-identical weights",
            "ray_numpy_p50_ms",
        )
    )
    figures.append(Figure("latency", f"ray in torch p50, {label}", r["ray_torch_p50_ms"], "ms", "", "ray_torch_p50_ms"))
    figures.append(
        Figure(
            "latency",
            f"ray cast + blend of a click p50, nearest 256 first (off by default), {label}",
            r["ray_p50_ms"],
            "ms",
            f"blending every candidate (the previous path) p50 {r['ray_reference_p50_ms']:.1f} ms: "
            f"×{r['ray_reference_p50_ms'] / max(r['ray_p50_ms'], 1e-9):.2f}",
            "ray_p50_ms",
        )
    )
    figures.append(
        Figure(
            "latency", f"ray: every candidate p50, {label}", r["ray_reference_p50_ms"], "ms", "", "ray_reference_p50_ms"
        )
    )
    look_ratio = r["look_diff_reference_p50_ms"] / max(r["look_diff_p50_ms"], 1e-9)
    full_ratio = r["look_diff_full_p50_ms"] / max(r["look_diff_p50_ms"], 1e-9)
    numpy_ratio = r["look_diff_numpy_p50_ms"] / max(r["look_diff_p50_ms"], 1e-9)
    figures.append(
        Figure(
            "latency",
            f"look + chunk diff after a click p50, {label}",
            r["look_diff_p50_ms"],
            "ms",
            f"p95 {r['look_diff_p95_ms']:.1f} ms; layered splats (viewer/splat_layers.py), compiled counts and "
            f"blend (viewer/_layer_kernels.py); their NumPy references p50 {r['look_diff_numpy_p50_ms']:.2f} ms "
            f"(p95 {r['look_diff_numpy_p95_ms']:.1f}, CPU p50 {r['look_diff_numpy_cpu_p50_ms']:.2f}): "
            f"×{numpy_ratio:.2f}; previous path "
            f"(`ChunkedSplats`, selection-aware) p50 {r['look_diff_reference_p50_ms']:.1f} ms: ×{look_ratio:.1f}; "
            f"comparing every chunk {r['look_diff_full_p50_ms']:.1f} ms: ×{full_ratio:.1f}; CPU time p50 / p95 "
            f"{r['look_diff_cpu_p50_ms']:.2f} / {r['look_diff_cpu_p95_ms']:.2f} ms, previous "
            f"{r['look_diff_reference_cpu_p50_ms']:.2f} / {r['look_diff_reference_cpu_p95_ms']:.2f} ms: "
            f"×{r['look_diff_reference_cpu_p50_ms'] / max(r['look_diff_cpu_p50_ms'], 1e-9):.1f}",
            "look_diff_p50_ms",
        )
    )
    figures.append(
        Figure(
            "latency",
            f"look + chunk diff after a click, CPU time p50, {label}",
            r["look_diff_cpu_p50_ms"],
            "ms",
            f"this thread's CPU time (the wall time on a box loaded beyond its cores is mostly waiting); previous "
            f"path {r['look_diff_reference_cpu_p50_ms']:.2f} ms; bytes per click (after a clear, these clicks' own "
            f"selections) {100 * r['click_bytes_fraction']:.1f}% of the buffer, previous path "
            f"{100 * r['click_bytes_reference_fraction']:.1f}%",
            "look_diff_cpu_p50_ms",
        )
    )
    figures.append(
        Figure(
            "latency",
            f"look + chunk diff after a click, each further browser p50, {label}",
            r["look_diff_next_browser_p50_ms"],
            "ms",
            f"p95 {r['look_diff_next_browser_p95_ms']:.1f} ms, CPU time p50 "
            f"{r['look_diff_next_browser_cpu_p50_ms']:.2f} ms: a second browser shown the same look reads the "
            f"selected counts per chunk the first made (`LookParts.chunk_counts`, the one pass over the selection "
            f"a click costs) and pays its own mixed chunks only",
            "look_diff_next_browser_p50_ms",
        )
    )
    figures.append(
        Figure(
            "latency",
            f"look + diff, previous path (`ChunkedSplats`) p50, {label}",
            r["look_diff_reference_p50_ms"],
            "ms",
            f"p95 {r['look_diff_reference_p95_ms']:.1f} ms",
            "look_diff_reference_p50_ms",
        )
    )
    figures.append(
        Figure(
            "latency",
            f"bytes per one-object change, {label}",
            r["bytes_per_object_change_fraction"],
            "ratio",
            f"share of the whole splat buffer; previous path "
            f"{100 * r['bytes_per_object_change_reference_fraction']:.1f}%; first selection "
            f"{100 * r['bytes_first_selection_fraction']:.1f}%; the dimmed and tinted layers, sent once after the "
            f"first frame: {100 * r['bytes_prefetch_fraction']:.0f}%; look + diff CPU time p50 for these whole-object "
            f"selections {r['look_diff_objects_cpu_p50_ms']:.2f} ms, previous path "
            f"{r['look_diff_objects_reference_cpu_p50_ms']:.2f} ms",
            "bytes_per_object_change_fraction",
        )
    )
    return figures

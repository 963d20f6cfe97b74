"""One CLIP embedding per global cluster (Click-Gaussian's text localisation), and their place in the workspace.

Every cluster of every level is rendered alone (its Gaussians only, on black, as LangSplat masks its crops) from
the views that see it best in the full scene, framed by its box with a margin at the CLIP input size; the crops'
image embeddings are averaged and normalised. A query is then a text embedding against a few hundred vectors, not
a CLIP pass over images: milliseconds, with the minutes spent once in `splatseg prepare-text`.

The code only needs `[N] int` cluster labels per level (-1 = none), wherever they come from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.core.camera import Camera
from backend.core.errors import StaleCacheError
from backend.core.scene import GaussianScene
from backend.render import Backend, render, resolve_backend
from backend.workspace import Workspace

from .clip import ClipEncoder
from .views import FOOTPRINT_SIGMAS, best_views, cluster_visibility, crop_box, crop_camera, in_frame_counts, low_res

CPU_RENDER_DIVISOR = 2
"""On the CPU reference renderer, crops are rendered at 1/this of CLIP's input size and upsampled."""

LEVELS: tuple[str, ...] = ("coarse", "fine")
EMBEDDINGS_FILE = "language/cluster_embeddings.safetensors"
MADE_BY = "prepare-text"
DEFAULT_VIEWS_PER_CLUSTER = 10  # Click-Gaussian renders each cluster from about ten views
DEFAULT_MARGIN = 0.1

ProgressFn = Callable[[float | None, str], None]
"""progress(fraction or None, status): the viewer's job runner's signature."""


@dataclasses.dataclass
class LevelEmbeddings:
    """The clusters of one level and their embeddings, in ascending label order."""

    ids: np.ndarray  # [C] int64 cluster label values
    counts: np.ndarray  # [C] int64 Gaussians in each cluster
    embeddings: Tensor  # [C, D] float32, unit rows; zero rows for clusters no view could show
    views: np.ndarray  # [C, K] int64 indices of the cameras the crops came from, -1 = fewer

    @property
    def seen(self) -> np.ndarray:  # [C] bool: has an embedding
        return (self.views >= 0).any(axis=1) & (self.embeddings.abs().sum(dim=1) > 0).numpy()


@dataclasses.dataclass
class ClusterEmbeddings:
    levels: dict[str, LevelEmbeddings]
    identity: dict[str, str]
    """The CLIP that made them: clip_model, clip_weights (fingerprint), clip_source."""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    """How they were made (views per cluster, margin, cameras, seconds): recorded in the manifest."""


def labels_digest(labels: np.ndarray) -> str:
    """16 hex digits of the labels' content: clusters recomputed with the same sizes still read as changed."""
    data = np.ascontiguousarray(np.asarray(labels).astype(np.int64).reshape(-1))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def cluster_columns(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels [N] int → (ids [C] ascending, column [N] int64 in 0..C-1 or -1, counts [C])."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = ids >= 0
    remap = np.full(ids.shape[0], -1, dtype=np.int64)
    remap[keep] = np.arange(int(keep.sum()))
    return ids[keep], remap[inverse.reshape(-1)], counts[keep].astype(np.int64)


def compute_cluster_embeddings(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    labels: Mapping[str, np.ndarray],  # level → [N] int, -1 = none
    encoder: ClipEncoder,
    *,
    views_per_cluster: int = DEFAULT_VIEWS_PER_CLUSTER,
    margin: float = DEFAULT_MARGIN,
    backend: Backend = "auto",
    progress: bool | ProgressFn = False,
) -> ClusterEmbeddings:
    """Render, crop, encode and average every cluster of every level (see the module docstring)."""
    if not cameras:
        raise ValueError("cluster embeddings need at least one camera")
    t0 = time.perf_counter()
    report = _progress(progress)
    if resolve_backend(backend) == "gsplat" and scene.device.type != "cuda":
        scene = scene.to("cuda")  # once, not once per render (gsplat would copy the scene each time)
    n = len(scene)
    levels = [lvl for lvl in labels if lvl in LEVELS] + [lvl for lvl in labels if lvl not in LEVELS]
    columns, ids, counts = {}, {}, {}
    for lvl in levels:
        if np.asarray(labels[lvl]).shape[0] != n:
            raise ValueError(f"{lvl} labels have {np.asarray(labels[lvl]).shape[0]} entries for {n} Gaussians")
        ids[lvl], columns[lvl], counts[lvl] = cluster_columns(labels[lvl])
    sizes = [ids[lvl].shape[0] for lvl in levels]

    # 1. Which views see which cluster (one low-resolution pass per view for every cluster of every level).
    means = scene.means.detach().cpu().numpy()
    vis = [np.zeros((len(cameras), s)) for s in sizes]
    framed = [np.zeros((len(cameras), s), dtype=np.int64) for s in sizes]
    with torch.no_grad():
        for v, camera in enumerate(cameras):
            report(0.2 * v / len(cameras), f"visibility: view {v + 1}/{len(cameras)}")
            cols = [columns[lvl] for lvl in levels]
            for i, (w, f) in enumerate(
                zip(
                    cluster_visibility(scene, low_res(camera), cols, sizes, backend=backend),
                    in_frame_counts(means, camera, cols, sizes),
                    strict=True,
                )
            ):
                vis[i][v], framed[i][v] = w, f
    chosen = {lvl: best_views(vis[i], framed[i], views_per_cluster) for i, lvl in enumerate(levels)}

    # 2. Render each cluster alone from its views, framed at the CLIP input size; encode in batches.
    dim, size = encoder.embed_dim, encoder.image_size
    # The CPU reference renderer costs ~3 s per 224² crop, six times CLIP's encode of it, and its cost grows with
    # the pixel count: it renders at half the input size and the encoder upsamples the crop (a quarter of the
    # time; CLIP's embedding of an object's silhouette and colours barely changes). gsplat renders at full size.
    render_size = size if resolve_backend(backend) == "gsplat" else max(size // CPU_RENDER_DIVISOR, 32)
    sums = {lvl: torch.zeros(sizes[i], dim) for i, lvl in enumerate(levels)}
    used = {lvl: np.full((sizes[i], views_per_cluster), -1, dtype=np.int64) for i, lvl in enumerate(levels)}
    batch: list[Tensor] = []
    owners: list[tuple[str, int]] = []

    def flush() -> None:
        if not batch:
            return
        emb = encoder.encode_images(torch.stack(batch))  # [B, D]
        for (lvl, c), e in zip(owners, emb, strict=True):
            sums[lvl][c] += e
        batch.clear()
        owners.clear()

    total = sum(sizes)
    done = 0
    background = torch.zeros(3, device=scene.device)
    radii_all = FOOTPRINT_SIGMAS * scene.scales.max(dim=1).values.detach().cpu().numpy()
    with torch.no_grad():
        for lvl in levels:
            for c in range(ids[lvl].shape[0]):
                report(0.2 + 0.8 * done / max(total, 1), f"CLIP-encoding clusters: {done}/{total}")
                done += 1
                members = np.flatnonzero(columns[lvl] == c)
                part = scene.subset(torch.from_numpy(members))
                slot = 0
                for v in chosen[lvl][c]:
                    if v < 0:
                        break
                    box = crop_box(cameras[v], means[members], radii_all[members], margin=margin)
                    if box is None:
                        continue
                    out = render(
                        part, crop_camera(cameras[v], box, render_size), background=background, backend=backend
                    )
                    batch.append(out.rgb.detach().clamp(0, 1).cpu())  # [r, r, 3]; the encoder resizes to `size`
                    owners.append((lvl, c))
                    used[lvl][c, slot] = v
                    slot += 1
                    if len(batch) >= encoder.batch_size:
                        flush()
            flush()
    report(1.0, f"CLIP-encoded {total} clusters")

    seconds = time.perf_counter() - t0
    out_levels = {
        lvl: LevelEmbeddings(
            ids=ids[lvl], counts=counts[lvl], embeddings=F.normalize(sums[lvl], dim=-1), views=used[lvl]
        )
        for lvl in levels
    }
    params = {
        "views_per_cluster": views_per_cluster,
        "margin": margin,
        "image_size": size,
        "render_size": render_size,
        "cameras": [c.name for c in cameras],
        "clusters": {lvl: int(ids[lvl].shape[0]) for lvl in levels},
        "labels_digest": {lvl: labels_digest(labels[lvl]) for lvl in levels},
        "seconds": round(seconds, 3),
    }
    return ClusterEmbeddings(levels=out_levels, identity=dict(encoder.identity), params=params)


def _progress(progress: bool | ProgressFn) -> ProgressFn:
    """A callback for the viewer, a tqdm bar on the command line, or nothing."""
    if callable(progress):
        return progress
    if not progress:
        return lambda fraction, status: None
    from tqdm import tqdm

    bar = tqdm(total=1000, desc="prepare-text", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def update(fraction: float | None, status: str) -> None:
        if fraction is not None:
            bar.n = round(1000 * fraction)
        bar.set_description_str(f"prepare-text ({status})", refresh=False)
        bar.refresh()
        if fraction is not None and fraction >= 1.0:
            bar.close()

    return update


# ---- the workspace -------------------------------------------------------------------------------------------------


def save_embeddings(
    workspace: Workspace,
    emb: ClusterEmbeddings,
    *,
    inputs: Mapping[str, str | Path],
    extra_params: Mapping[str, Any] | None = None,
) -> Path:
    """Write the embeddings and record who made them (`prepare-text`), with which CLIP, from which inputs."""
    tensors: dict[str, np.ndarray | Tensor] = {}
    for lvl, le in emb.levels.items():
        tensors[f"{lvl}.ids"] = le.ids
        tensors[f"{lvl}.counts"] = le.counts
        tensors[f"{lvl}.embeddings"] = le.embeddings.float().contiguous()
        tensors[f"{lvl}.views"] = le.views
    params = {**emb.params, **emb.identity, "levels": list(emb.levels), **(extra_params or {})}
    return workspace.save_tensors(EMBEDDINGS_FILE, tensors, made_by=MADE_BY, params=params, inputs=inputs)


def load_embeddings(workspace: Workspace, *, inputs: Mapping[str, str | Path] | None = None) -> ClusterEmbeddings:
    """Read the embeddings, after checking that the model and clusters they were made from are unchanged."""
    if not workspace.has(EMBEDDINGS_FILE):
        raise StaleCacheError(
            f"this scene has no text embeddings yet; run `splatseg prepare-text {workspace.scene_dir}` first"
        )
    workspace.check_fresh(EMBEDDINGS_FILE, inputs=inputs)
    entry = workspace.entry(EMBEDDINGS_FILE) or {}
    params = dict(entry.get("params", {}))
    tensors = workspace.load_tensors(EMBEDDINGS_FILE, verify=False)
    levels = {}
    for lvl in params.get("levels", LEVELS):
        if f"{lvl}.ids" not in tensors:
            continue
        levels[lvl] = LevelEmbeddings(
            ids=tensors[f"{lvl}.ids"].numpy().astype(np.int64),
            counts=tensors[f"{lvl}.counts"].numpy().astype(np.int64),
            embeddings=tensors[f"{lvl}.embeddings"].float(),
            views=tensors[f"{lvl}.views"].numpy().astype(np.int64),
        )
    identity = {k: str(params.pop(k, "")) for k in ("clip_model", "clip_weights", "clip_source")}
    return ClusterEmbeddings(levels=levels, identity=identity, params=params)

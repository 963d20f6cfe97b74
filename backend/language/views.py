"""Where to look at a cluster from: per-view visibility of every cluster, and a camera framing one cluster.

Click-Gaussian localises text by rendering each global cluster on its own from the views that see it best and
CLIP-encoding the renders. "Sees it best" is the cluster's accumulated blend weight in the full scene's render
(occlusion included: a mug behind a lamp is not seen from behind the lamp), measured at low resolution since it
only ranks views. The crop is not cut out of a full-size render: the camera's intrinsics are changed so the
cluster's box, with a margin, fills an image exactly the CLIP input size, which keeps small parts as sharp as big
objects and makes every render the same (small) cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.scene import GaussianScene
from backend.render import Backend, rasterize_fragments, render, resolve_backend

VISIBILITY_RESOLUTION = 160  # long side of the visibility renders, pixels
_ONEHOT_CHUNK = 32  # clusters per one-hot render on the gsplat path (memory: N × 32 floats)
_NEAR = 1e-2  # camera-space z below which a Gaussian is behind or at the camera
FOOTPRINT_SIGMAS = 3.0  # a Gaussian's footprint radius in standard deviations


def low_res(camera: Camera, long_side: int = VISIBILITY_RESOLUTION) -> Camera:
    """The same view with its long side at most `long_side` pixels (intrinsics scaled)."""
    scale = long_side / max(camera.width, camera.height)
    if scale >= 1.0:
        return camera
    return camera.scaled(max(1, round(camera.width * scale)), max(1, round(camera.height * scale)))


def cluster_visibility(
    scene: GaussianScene,
    camera: Camera,
    columns: Sequence[np.ndarray],  # per level: [N] int cluster column in 0..C_l-1, -1 = no cluster
    sizes: Sequence[int],  # per level: C_l
    *,
    backend: Backend = "auto",
) -> list[np.ndarray]:  # per level: [C_l] float64 accumulated blend weight (pixels' worth of coverage)
    """Each cluster's accumulated blend weight over the view: Σ over pixels of its Gaussians' alpha·transmittance.

    The reference renderer gives per-Gaussian weights directly (one pass for every cluster of every level); gsplat
    renders one-hot cluster features in chunks, which is the same sum by linearity.
    """
    if resolve_backend(backend) == "torch":
        frags = rasterize_fragments(scene, camera)
        per_gaussian = torch.zeros(len(scene), dtype=torch.float64, device=frags.weight.device)
        per_gaussian.index_add_(0, frags.gaussian, frags.weight.double())
        weight = per_gaussian.cpu().numpy()
        return [_sum_by_column(col, weight, size) for col, size in zip(columns, sizes, strict=True)]
    return visibility_by_render(scene, camera, columns, sizes, backend=backend)


def visibility_by_render(
    scene: GaussianScene,
    camera: Camera,
    columns: Sequence[np.ndarray],
    sizes: Sequence[int],
    *,
    backend: Backend = "auto",
) -> list[np.ndarray]:  # per level: [C_l] float64
    """`cluster_visibility` through `render(features=one-hot)` in chunks of clusters: works with any backend, and
    is the reference the fragment path is tested against."""
    out = []
    for col, size in zip(columns, sizes, strict=True):
        totals = np.zeros(size, dtype=np.float64)
        col_t = torch.as_tensor(col, dtype=torch.int64, device=scene.device)
        for start in range(0, size, _ONEHOT_CHUNK):
            stop = min(start + _ONEHOT_CHUNK, size)
            rows = torch.nonzero((col_t >= start) & (col_t < stop)).squeeze(1)
            onehot = torch.zeros(len(scene), stop - start, device=scene.device)
            onehot[rows, col_t[rows] - start] = 1.0
            feats = render(scene, camera, features=onehot, backend=backend).features  # [H, W, chunk]
            totals[start:stop] = feats.sum(dim=(0, 1)).double().cpu().numpy()
        out.append(totals)
    return out


def in_frame_counts(
    means: np.ndarray,  # [N, 3] world positions
    camera: Camera,
    columns: Sequence[np.ndarray],
    sizes: Sequence[int],
) -> list[np.ndarray]:  # per level: [C_l] int64 Gaussians whose centre projects inside the image
    """How many of each cluster's Gaussians the view frames: the tie-break when occlusion hides a cluster from every
    view (then it is rendered alone from the views that at least point at it)."""
    z, u, v = _project(means, camera)
    inside = (z > _NEAR) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return [_sum_by_column(col, inside.astype(np.float64), size).astype(np.int64) for col, size in zip(columns, sizes)]


def best_views(
    visibility: np.ndarray,  # [V, C] accumulated weight per view and cluster
    framed: np.ndarray,  # [V, C] Gaussians framed per view and cluster
    k: int,
) -> np.ndarray:  # [C, k] int64 view indices, best first, -1 = fewer useful views
    """The k views with the largest visibility per cluster (ties and invisible clusters by Gaussians framed);
    views that neither see nor frame the cluster are never used."""
    _num_views, num_clusters = visibility.shape
    out = np.full((num_clusters, k), -1, dtype=np.int64)
    for c in range(num_clusters):
        useful = np.flatnonzero((visibility[:, c] > 0) | (framed[:, c] > 0))
        order = np.lexsort((useful, -framed[useful, c], -visibility[useful, c]))
        chosen = useful[order[:k]]
        out[c, : chosen.size] = chosen
    return out


@dataclasses.dataclass(frozen=True)
class CropBox:
    """A square in the view's pixel coordinates (may extend past the image: the cluster is rendered alone)."""

    x0: float
    y0: float
    side: float


def crop_box(
    camera: Camera,
    means: np.ndarray,  # [M, 3] the cluster's Gaussian centres
    radii: np.ndarray,  # [M] world-space footprint radius (3σ of the largest axis)
    *,
    margin: float = 0.1,
    trim: float = 0.02,
) -> CropBox | None:
    """The cluster's box in this view, made square, grown by `margin` of its side on every side.

    The box is taken between the `trim` and 1 - `trim` quantiles of the Gaussians' footprints, so a few stray
    Gaussians far from the object do not shrink the object to a dot; it is clipped to the image first, so a huge
    cluster (the floor) is framed as the view frames it. None when nothing of the cluster is in front of the camera.
    """
    z, u, v = _project(means, camera)
    front = z > _NEAR
    if not front.any():
        return None
    z, u, v = z[front], u[front], v[front]
    r = camera.fx * radii[front] / z
    lo_q, hi_q = (trim, 1.0 - trim) if z.size >= 20 else (0.0, 1.0)
    x_lo, x_hi = np.quantile(u - r, lo_q), np.quantile(u + r, hi_q)
    y_lo, y_hi = np.quantile(v - r, lo_q), np.quantile(v + r, hi_q)
    x_lo, x_hi = max(x_lo, 0.0), min(x_hi, float(camera.width))
    y_lo, y_hi = max(y_lo, 0.0), min(y_hi, float(camera.height))
    if x_hi <= x_lo or y_hi <= y_lo:
        return None
    side = max(x_hi - x_lo, y_hi - y_lo, 2.0) * (1.0 + 2.0 * margin)
    return CropBox(0.5 * (x_lo + x_hi) - 0.5 * side, 0.5 * (y_lo + y_hi) - 0.5 * side, side)


def crop_camera(camera: Camera, box: CropBox, size: int) -> Camera:
    """A `size`×`size` camera that sees exactly `box` of `camera`'s image (same pose, new intrinsics)."""
    s = size / box.side
    K = camera.K.copy()
    K[0, 0] *= s
    K[1, 1] *= s
    K[0, 2] = (camera.cx - box.x0) * s
    K[1, 2] = (camera.cy - box.y0) * s
    K[0, 1] *= s
    return dataclasses.replace(camera, name=f"{camera.name}:crop", width=size, height=size, K=K, image_path=None)


def _project(means: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # → z, u, v [N]
    w2c = camera.world_to_camera
    p = means.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = p[:, 2]
    safe = np.where(np.abs(z) > 1e-12, z, 1e-12)
    u = camera.fx * p[:, 0] / safe + camera.K[0, 1] * p[:, 1] / safe + camera.cx
    v = camera.fy * p[:, 1] / safe + camera.cy
    return z, u, v


def _sum_by_column(col: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:  # → [size] float64
    ok = col >= 0
    return np.bincount(col[ok], weights=weight[ok], minlength=size)[:size].astype(np.float64)

"""Which way is up: from the cameras when there are any, else from the shape of the content.

Cameras: people hold cameras upright, so the mean of their up vectors (−y of each OpenCV camera) is the scene's up.

Without cameras, the content's weighted principal axes (weights from `content_bounds`): the axis whose spread stands
apart from the other two is vertical — the longest for a standing subject (a person, a statue), the shortest for a
flat scene (a room, a landscape, a table top). When that axis lies within 30° of a coordinate axis it is snapped to
it and signed by the convention of the tool that most often makes such captures: −y for y (COLMAP and every
OpenCV-convention trainer, where a level camera's y points down), +z for z (Blender, nerfstudio); otherwise the
axis points away from the denser end (a floor, the bottom of an object resting on it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend.core.camera import Camera
from backend.core.scene import GaussianScene

from .bounds import content_bounds

_SNAP_COS = np.cos(np.deg2rad(30.0))


def up_from_cameras(cameras: Sequence[Camera]) -> np.ndarray | None:  # [3] unit, or None
    """Mean of the cameras' up vectors; None when they cancel out (cameras all around with rolls)."""
    if not cameras:
        return None
    ups = np.stack([-c.world_to_camera[1, :3] for c in cameras])  # row 1 of R: camera y (down) in world axes
    mean = ups.mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0.3 else None


def estimate_up(scene: GaussianScene, cameras: Sequence[Camera] = ()) -> np.ndarray:  # [3] unit
    from_cameras = up_from_cameras(cameras)
    if from_cameras is not None:
        return from_cameras
    bounds = content_bounds(scene)
    means = scene.means.detach().cpu().double().numpy()
    w = bounds.weights
    centered = means - bounds.center
    cov = (centered * w[:, None]).T @ centered  # [3, 3]
    eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
    logs = np.log(np.maximum(eigvals, 1e-12))
    axis = eigvecs[:, 2] if logs[2] - logs[1] > logs[1] - logs[0] else eigvecs[:, 0]
    snapped = int(np.argmax(np.abs(axis)))
    if abs(axis[snapped]) >= _SNAP_COS and snapped in (1, 2):
        up = np.zeros(3)
        up[snapped] = -1.0 if snapped == 1 else 1.0
        return up
    # Away from the denser end: the weighted mean lies nearer the heavy end than the midpoint of the extent does.
    t = centered @ axis
    lo, hi = np.percentile(t, 2), np.percentile(t, 98)
    heavy_low = float((t * w).sum()) < (lo + hi) / 2
    return axis if heavy_low else -axis

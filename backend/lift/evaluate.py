"""Scoring a 3D selection against ground truth: the pixel a person would click, and IoU in held-out views.

Shared by the SA3D benchmark and its tests, so both measure the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .lifting import ViewGeometry, view_geometry

MIN_OBJECT_PIXELS = 16
"""Held-out views that show less of the object than this are left out of its IoU (a few boundary pixels decide it)."""


def interior_pixel(mask: np.ndarray) -> tuple[float, float]:  # mask [H, W] bool → (x, y) pixel centre
    """The mask pixel farthest from its edge: where a person clicks to mean the object and not its border."""
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return float(x) + 0.5, float(y) + 0.5


def heldout_ious(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    selection: np.ndarray,  # [N] bool
    object_maps: dict[str, np.ndarray],  # view name → [H, W] object labels
    object_id: int,
    *,
    skip: set[str],
    min_pixels: int = MIN_OBJECT_PIXELS,
    geometry: Callable[[Camera], ViewGeometry] | None = None,
) -> list[float]:
    """IoU of the rendered selection with the object's ground truth in every view not in `skip`."""
    sel = torch.as_tensor(selection)
    rasterise = geometry or (lambda camera: view_geometry(scene, camera))
    ious = []
    for camera in cameras:
        if camera.name in skip:
            continue
        gt = object_maps[camera.name] == object_id
        if np.count_nonzero(gt) < min_pixels:
            continue
        rendered = rasterise(camera).selection_mask(sel).cpu().numpy()
        ious.append(np.count_nonzero(rendered & gt) / np.count_nonzero(rendered | gt))
    return ious

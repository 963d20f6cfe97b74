"""`--masks geometric`: multi-scale segments of splatseg's own renders, for machines without SAM weights.

Rougher than SAM: segments follow depth and normal discontinuities and colour edges, not objects. Per view the
Gaussians are rendered (RGB, expected depth, alpha); normals come from the depth map's back-projected points. An
image of colour (CIELAB), log-depth and normal channels is segmented by Felzenszwalb's graph method (scikit-image)
at several scales, from parts to wholes, plus each connected piece of the foreground: overlapping masks of several
granularities, the same kind of stack SAM's automatic generator gives, that the 3D-scale machinery then orders.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..core.camera import Camera
from ..core.scene import GaussianScene
from ..render import Backend, render
from ..render.memo import RenderMemo
from .maskset import ViewMasks

SCALES = (100.0, 500.0, 2500.0)
"""Felzenszwalb scales at 256 pixels; scaled with the image area. Larger: coarser segments."""
_MIN_AREA = 0.002
_MAX_MASKS = 96
_MAX_PIECE = 0.3
_FOREGROUND = 0.5
_DEPTH_WEIGHT = 40.0
_NORMAL_WEIGHT = 25.0


class GeometricMasks:
    """Per view: render → RGB-D + normals → multi-scale Felzenszwalb segments → `ViewMasks`."""

    def __init__(self, scene: GaussianScene, *, backend: Backend = "auto", renders: RenderMemo | None = None) -> None:
        self.scene = scene
        self.backend = backend
        self.renders = renders
        """Renders already made (the virtual views' photos), used instead of rendering the view again."""

    def __call__(self, camera: Camera) -> ViewMasks:
        if self.renders is not None:
            out = self.renders.render(self.scene, camera, backend=self.backend)
        else:
            with torch.no_grad():
                out = render(self.scene, camera, backend=self.backend)
        rgb = out.rgb.clamp(0, 1).cpu().numpy()
        return geometric_view_masks(rgb, out.depth.cpu().numpy(), out.alpha.cpu().numpy(), camera)


def geometric_view_masks(
    rgb: np.ndarray,  # [H, W, 3] float in [0, 1]
    depth: np.ndarray,  # [H, W] expected depth (camera z)
    alpha: np.ndarray,  # [H, W] accumulated opacity
    camera: Camera,
) -> ViewMasks:
    from skimage.color import rgb2lab
    from skimage.measure import label
    from skimage.segmentation import felzenszwalb

    h, w = alpha.shape
    foreground = alpha > _FOREGROUND
    features = _features(rgb2lab(rgb) / 100.0, depth, alpha, camera)
    min_area = max(int(_MIN_AREA * h * w), 4)
    area_factor = (h * w) / 256.0**2
    masks: list[np.ndarray] = []
    pieces = label(foreground, connectivity=1)
    # A separate piece of foreground is an object when it is not most of the picture (a table top with everything
    # on it would otherwise be the coarsest mask of every pixel, and Click-Gaussian's coarse level would be "all").
    masks += [m for i in range(1, pieces.max() + 1) if (m := pieces == i).sum() < _MAX_PIECE * h * w]
    for scale in SCALES:
        with warnings.catch_warnings():  # "third dimension of 7": intended, the channels are colour, depth, normal
            warnings.simplefilter("ignore", RuntimeWarning)
            segments = felzenszwalb(features, scale=scale * area_factor, sigma=0.5, min_size=min_area, channel_axis=-1)
        for s in range(segments.max() + 1):
            m = segments == s
            inside = m & foreground
            if inside.sum() >= min_area and inside.sum() >= 0.5 * m.sum():
                masks.append(inside)
    masks = [m for m in masks if m.sum() >= min_area]
    masks = _dedupe(masks)[:_MAX_MASKS]
    stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    n = len(stack)
    return ViewMasks(
        name=camera.name, masks=stack, scores=np.ones(n, np.float32), scales=np.full(n, np.nan, np.float32)
    )


def _features(lab: np.ndarray, depth: np.ndarray, alpha: np.ndarray, camera: Camera) -> np.ndarray:  # [H, W, 7]
    h, w = depth.shape
    valid = alpha > 1e-3
    z = np.where(valid, depth, 0.0)  # the renderers already return the expected depth (accumulated / alpha)
    zmed = float(np.median(z[valid])) if valid.any() else 1.0
    logz = np.where(valid, np.log(np.maximum(z, 1e-6) / max(zmed, 1e-6)), 0.0)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    points = np.stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z], axis=-1)
    dx = np.gradient(points, axis=1)
    dy = np.gradient(points, axis=0)
    normals = np.cross(dx, dy)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)
    normals[~valid] = 0.0
    return np.concatenate(
        [lab, _DEPTH_WEIGHT / 100.0 * logz[..., None] * 10, _NORMAL_WEIGHT / 100.0 * normals * 4], axis=-1
    ).astype(np.float64)


def _dedupe(masks: list[np.ndarray], iou: float = 0.9) -> list[np.ndarray]:
    """Drop near-duplicates (IoU > `iou`), keeping the first; larger masks first."""
    masks = sorted(masks, key=lambda m: -int(m.sum()))
    kept: list[np.ndarray] = []
    flat: list[np.ndarray] = []
    for m in masks:
        f = m.ravel()
        area = f.sum()
        if any((f & g).sum() / (area + g.sum() - (f & g).sum()) > iou for g in flat if abs(int(g.sum()) - area) < area):
            continue
        kept.append(m)
        flat.append(f)
    return kept

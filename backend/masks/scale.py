"""SAGA's 3D scale of a 2D mask: how big the thing it covers is in the world, from the view's rendered depth.

SAGA gates its affinity features by a 3D scale, so "the mug" and "the mug's handle" in one view are told apart by
size in metres rather than by pixels (which change with distance). A mask's scale is 2·‖std‖ of the world points
under it: the mask is eroded first because depth at an object's edge blends foreground and background, and only
pixels the Gaussians cover (alpha > 0.5) count. Everything is one pass of matrix products over the view's pixels,
chunked over masks so a 1080p view with hundreds of masks stays within a few hundred MB (SAGA #75, #94).
"""

from __future__ import annotations

import numpy as np

from ..core.camera import Camera

ERODE_PX = 2
"""Erosion before back-projection: edge pixels carry blended depth that drags the std toward the background."""
MIN_POINTS = 10
"""Fewer valid points than this leave the scale unknown (NaN) rather than guessed from a handful of pixels."""
ALPHA_MIN = 0.5
_CHUNK_ELEMENTS = 1 << 23  # masks × valid pixels per chunk: 64 MB of float64


def backproject(depth: np.ndarray, camera: Camera) -> np.ndarray:  # depth [H, W] camera z → [H, W, 3] world
    """World points of every pixel centre at its depth (pixel centres at integer + 0.5, as `Camera` says)."""
    h, w = depth.shape
    if (h, w) != (camera.height, camera.width):
        raise ValueError(f"depth is {w}×{h} but camera {camera.name!r} is {camera.width}×{camera.height}")
    z = depth.astype(np.float64)
    u = (np.arange(w) + 0.5 - camera.cx) / camera.fx  # [W]
    v = (np.arange(h) + 0.5 - camera.cy) / camera.fy  # [H]
    cam = np.stack([u[None, :] * z, v[:, None] * z, z], axis=-1)  # [H, W, 3]
    c2w = camera.camera_to_world
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def erode_masks(masks: np.ndarray, px: int = ERODE_PX) -> np.ndarray:  # [M, H, W] bool → [M, H, W] bool
    """Each mask shrunk by `px` pixels in-plane (never across masks); the image frame does not erode."""
    if px <= 0 or masks.size == 0:
        return masks
    from scipy import ndimage  # here, not at the top: `segment` and `view` import this module but never erode

    structure = ndimage.generate_binary_structure(2, 1)[None]  # [1, 3, 3]: no erosion along M
    return ndimage.binary_erosion(masks, structure, iterations=px, border_value=1)


def mask_scales(
    masks: np.ndarray,  # [M, H, W] bool
    points: np.ndarray,  # [H, W, 3] world point of each pixel
    valid: np.ndarray,  # [H, W] bool: pixels whose depth is trusted
    *,
    erode_px: int = ERODE_PX,
    min_points: int = MIN_POINTS,
) -> np.ndarray:  # [M] float32, NaN where fewer than min_points valid points
    """2·‖std‖ of the valid world points under each eroded mask.

    A mask too thin for the full erosion is eroded as far as it can be while keeping `min_points` valid pixels
    (down to not at all): a thin mask is better measured with some edge pixels than not measured.
    """
    m, h, w = masks.shape
    scales = np.full(m, np.nan, dtype=np.float32)
    flat_valid = valid.reshape(-1)
    if m == 0 or not flat_valid.any():
        return scales
    pts = points.reshape(-1, 3)[flat_valid].astype(np.float64)  # [P, 3]
    pts -= pts.mean(0)  # centred, so E[x²] - E[x]² does not cancel catastrophically
    pts_sq = pts * pts
    chunk = max(1, _CHUNK_ELEMENTS // max(1, h * w * (erode_px + 1)))
    for start in range(0, m, chunk):
        block = masks[start : start + chunk]  # [C, H, W]
        use = block.reshape(len(block), -1)[:, flat_valid]  # [C, P], erosion 0
        level = block
        for _ in range(max(erode_px, 0)):  # each step one pixel deeper, kept where enough pixels remain
            level = erode_masks(level, 1)
            deeper = level.reshape(len(block), -1)[:, flat_valid]
            use = np.where((deeper.sum(1) >= min_points)[:, None], deeper, use)
        weights = use.astype(np.float64)
        n = weights.sum(1)  # [C]
        s1 = weights @ pts  # [C, 3]
        s2 = weights @ pts_sq
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n[:, None]
            var = np.clip((s2 - n[:, None] * mean * mean) / (n[:, None] - 1), 0.0, None)  # unbiased, as torch.std
            scale = 2.0 * np.sqrt(var.sum(1))
        scale[n < min_points] = np.nan
        scales[start : start + len(block)] = scale
    return scales


def view_mask_scales(
    masks: np.ndarray,  # [M, H, W] bool
    depth: np.ndarray,  # [H, W] rendered expected camera z
    alpha: np.ndarray,  # [H, W] rendered accumulated opacity
    camera: Camera,
    *,
    erode_px: int = ERODE_PX,
    min_points: int = MIN_POINTS,
) -> np.ndarray:  # [M] float32
    """The scales of one view's masks from its render (`render(scene, camera).depth/.alpha`)."""
    valid = (alpha > ALPHA_MIN) & (depth > 0) & np.isfinite(depth)
    return mask_scales(masks, backproject(depth, camera), valid, erode_px=erode_px, min_points=min_points)

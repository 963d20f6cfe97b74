"""A browser's viewport as a `Camera`, so a click becomes a pixel the backend understands.

viser reports each client's camera in the OpenCV convention (x right, y down, z forward: `CameraHandle.wxyz`
documents `look_direction = R[:, 2]`, `up = -R[:, 1]`), with `wxyz`/`position` the camera-to-world pose, `fov` the
vertical field of view in radians and the canvas size in pixels; pointer events give screen positions in [0, 1]
with (0, 0) the top-left corner. That is `backend.core.camera.Camera`'s convention, so no axis flips happen here.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.errors import SplatsegError
from backend.core.rotations import quat_to_rotmat, rotmat_to_quat

MAX_VIEWPORT = 8192
"""Largest canvas side (pixels) a client's camera may claim."""


def quat_to_matrix(wxyz: np.ndarray) -> np.ndarray:  # [4] → [3, 3] float64 (normalised first)
    q = np.asarray(wxyz, dtype=np.float64)
    return quat_to_rotmat(torch.from_numpy(q / np.linalg.norm(q))).numpy()


def matrix_to_quat(R: np.ndarray) -> np.ndarray:  # [3, 3] rotation → [4] wxyz with w ≥ 0
    return rotmat_to_quat(np.asarray(R, dtype=np.float64)[None])[0]


def camera_from_viewport(
    *,
    position: np.ndarray,  # [3] camera centre in world coordinates
    wxyz: np.ndarray,  # [4] camera-to-world rotation (OpenCV axes)
    fov_y: float,  # vertical field of view, radians
    width: int,
    height: int,
    name: str = "browser",
) -> Camera:
    """The pinhole camera the browser draws with: square pixels, principal point at the canvas centre.

    The size is the browser's word, so it is clamped: a canvas larger than MAX_VIEWPORT a side is scaled down (same
    aspect and field of view; screen positions are fractions of the canvas, so clicks land on the same spot), and
    a box select over it allocates at most MAX_VIEWPORT² pixels.
    """
    width, height = max(int(width), 1), max(int(height), 1)
    if max(width, height) > MAX_VIEWPORT:
        shrink = MAX_VIEWPORT / max(width, height)
        width, height = max(int(width * shrink), 1), max(int(height * shrink), 1)
    wxyz, position = np.asarray(wxyz, dtype=np.float64), np.asarray(position, dtype=np.float64)
    if not (0.0 < float(fov_y) < math.pi) or not np.isfinite(position).all() or not np.linalg.norm(wxyz) > 0:
        raise SplatsegError("the browser reported an invalid camera; reload the page")
    f = 0.5 * height / math.tan(0.5 * float(fov_y))
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    R = quat_to_matrix(np.asarray(wxyz))
    w2c = np.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ np.asarray(position, dtype=np.float64)
    return Camera(name=name, width=width, height=height, K=K, world_to_camera=w2c)


def camera_from_handle(handle, *, name: str = "browser") -> Camera:  # handle: viser.CameraHandle
    return camera_from_viewport(
        position=np.asarray(handle.position),
        wxyz=np.asarray(handle.wxyz),
        fov_y=float(handle.fov),
        width=int(handle.image_width),
        height=int(handle.image_height),
        name=name,
    )


def screen_to_pixel(camera: Camera, screen_pos: tuple[float, float]) -> tuple[float, float]:
    """viser's [0, 1] screen position → pixel position in `camera` (pixel centres at integer + 0.5).

    The position is the browser's word: a NaN or infinite one is refused here, before it joins a prompt (whose every
    re-run would then fail on it) or reaches the click's integer pixel lookups."""
    x, y = float(screen_pos[0]), float(screen_pos[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise SplatsegError("the browser reported an invalid screen position; reload the page")
    return x * camera.width, y * camera.height


def viewport_of(camera: Camera) -> dict[str, object]:
    """The inverse: viser camera settings (position, wxyz, fov) that show `camera`'s view (for the initial view)."""
    c2w = camera.camera_to_world
    return {
        "position": c2w[:3, 3].copy(),
        "wxyz": matrix_to_quat(c2w[:3, :3]),
        "fov": 2.0 * math.atan(0.5 * camera.height / camera.fy),
    }

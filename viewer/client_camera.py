"""A browser's viewport as a `Camera`, so a click becomes a pixel the backend understands.

viser reports each client's camera in the OpenCV convention (x right, y down, z forward: `CameraHandle.wxyz`
documents `look_direction = R[:, 2]`, `up = -R[:, 1]`), with `wxyz`/`position` the camera-to-world pose, `fov` the
vertical field of view in radians and the canvas size in pixels; pointer events give screen positions in [0, 1]
with (0, 0) the top-left corner. That is exactly `backend.camera.Camera`'s convention, so no axis flips happen here.
"""

from __future__ import annotations

import math

import numpy as np

from backend.camera import Camera
from backend.errors import SplatsegError

MAX_VIEWPORT = 8192
"""Largest canvas side (pixels) a client's camera may claim."""


def quat_to_matrix(wxyz: np.ndarray) -> np.ndarray:  # [4] → [3, 3]
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:  # [3, 3] rotation → [4] wxyz with w ≥ 0
    m = np.asarray(R, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


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
    """viser's [0, 1] screen position → pixel position in `camera` (pixel centres at integer + 0.5)."""
    return float(screen_pos[0]) * camera.width, float(screen_pos[1]) * camera.height


def viewport_of(camera: Camera) -> dict[str, object]:
    """The inverse: viser camera settings (position, wxyz, fov) that show `camera`'s view (for the initial view)."""
    c2w = camera.camera_to_world
    return {
        "position": c2w[:3, 3].copy(),
        "wxyz": matrix_to_quat(c2w[:3, :3]),
        "fov": 2.0 * math.atan(0.5 * camera.height / camera.fy),
    }

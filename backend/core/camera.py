"""`Camera`: one pinhole view, in the OpenCV convention every loader converts to.

Convention (the one COLMAP, INRIA 3DGS and gsplat use): camera axes x right, y down, z forward (into the scene);
`world_to_camera` maps world points to that frame; pixel (u, v) = (fx·x/z + cx, fy·y/z + cy), with pixel centres at
integer + 0.5, so the top-left pixel covers [0, 1)². Loaders of OpenGL/Blender cameras (y up, z backward) flip the
y and z axes on the way in.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class Camera:
    name: str
    """The image stem: `--view NAME` on the command line, `images/NAME.png` on disk."""
    width: int
    height: int
    K: np.ndarray  # [3, 3] float64 intrinsics
    world_to_camera: np.ndarray  # [4, 4] float64, OpenCV convention
    image_path: str | None = None
    """Where the photo of this view is, when the scene has one."""

    def __post_init__(self) -> None:
        if self.K.shape != (3, 3) or self.world_to_camera.shape != (4, 4):
            raise ValueError(f"camera {self.name!r}: K must be 3×3 and world_to_camera 4×4")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: size {self.width}×{self.height} is not positive")
        if not (np.isfinite(self.K).all() and np.isfinite(self.world_to_camera).all()):
            raise ValueError(f"camera {self.name!r}: intrinsics or pose contain NaN/Inf")

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def camera_to_world(self) -> np.ndarray:  # [4, 4], a fresh array
        """The pose's inverse, kept with the pose's bytes it was made from: a click casts its ray from it, and
        `np.linalg.inv` is ~20 µs of a 3 ms click; the arrays are NumPy's and can be changed in place, so a changed
        pose is inverted again."""
        key = self.world_to_camera.tobytes()
        hit = self.__dict__.get("_inverse")
        if hit is None or hit[0] != key:
            hit = (key, np.linalg.inv(self.world_to_camera))
            object.__setattr__(self, "_inverse", hit)
        return hit[1].copy()

    @property
    def center(self) -> np.ndarray:  # [3] camera position in world coordinates
        return self.camera_to_world[:3, 3]

    def scaled(self, width: int, height: int) -> Camera:
        """The same view at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return dataclasses.replace(self, width=width, height=height, K=K)

    def ray(self, pixel: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """World-space (origin [3], unit direction [3]) of the ray through a pixel position (x, y).

        Pixel centres are at integer + 0.5: the centre of pixel column i, row j is (i + 0.5, j + 0.5).
        """
        x, y = pixel
        d_cam = np.array([(x - self.cx) / self.fx, (y - self.cy) / self.fy, 1.0])
        c2w = self.camera_to_world
        d = c2w[:3, :3] @ d_cam
        return c2w[:3, 3].copy(), d / np.linalg.norm(d)

    def viewmat(self, device: torch.device | str = "cpu") -> Tensor:  # [4, 4] float32
        return torch.as_tensor(self.world_to_camera, dtype=torch.float32, device=device)

    def intrinsics(self, device: torch.device | str = "cpu") -> Tensor:  # [3, 3] float32
        return torch.as_tensor(self.K, dtype=torch.float32, device=device)


def look_at(
    name: str,
    eye: np.ndarray,  # [3]
    target: np.ndarray,  # [3]
    up: np.ndarray,  # [3] world up
    *,
    width: int,
    height: int,
    fov_y_deg: float,
) -> Camera:
    """A camera at `eye` looking at `target`, with image-up along `up` (OpenCV: camera y points down)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    f = 0.5 * height / np.tan(np.deg2rad(fov_y_deg) / 2)
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return Camera(name=name, width=width, height=height, K=K, world_to_camera=w2c)

"""Virtual cameras on elevation rings around the content, for scenes that came without any.

The cameras look at the content's centre from far enough that its radius fills most of the frame, in OpenCV
convention (`backend.camera.look_at`). Rings sit at elevations below, level with and above the subject (two rings
below 24 views), each ring's cameras evenly spaced in azimuth and offset between rings so no two views repeat.
"""

from __future__ import annotations

import numpy as np

from backend.core.camera import Camera, look_at

from .bounds import ContentBounds

FOV_Y_DEG = 50.0
_ELEVATIONS_3 = (-10.0, 20.0, 50.0)
_ELEVATIONS_2 = (5.0, 35.0)


def orbit_cameras(
    bounds: ContentBounds,
    up: np.ndarray,  # [3] unit world up
    *,
    views: int = 48,
    resolution: int = 512,
    margin: float = 1.15,
    prefix: str = "virtual",
) -> list[Camera]:
    """`views` square cameras of `resolution` pixels named PREFIX_000…, ring by ring."""
    if views < 1 or resolution < 8:
        raise ValueError(f"need at least one view and 8 pixels, got {views} views at {resolution}")
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    elevations = _ELEVATIONS_3 if views >= 24 else _ELEVATIONS_2
    elevations = elevations[: min(len(elevations), views)]
    per_ring = [views // len(elevations) + (i < views % len(elevations)) for i in range(len(elevations))]
    # Any unit vector perpendicular to up starts azimuth 0.
    helper = np.eye(3)[int(np.argmin(np.abs(up)))]
    e1 = np.cross(up, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    distance = margin * bounds.radius / np.sin(np.deg2rad(FOV_Y_DEG) / 2)
    cameras: list[Camera] = []
    for ring, (elevation, count) in enumerate(zip(elevations, per_ring)):
        el = np.deg2rad(elevation)
        for j in range(count):
            az = 2 * np.pi * (j + 0.5 * ring) / count
            direction = np.cos(el) * (np.cos(az) * e1 + np.sin(az) * e2) + np.sin(el) * up
            eye = bounds.center + distance * direction
            name = f"{prefix}_{len(cameras):03d}"
            cameras.append(
                look_at(name, eye, bounds.center, up, width=resolution, height=resolution, fov_y_deg=FOV_Y_DEG)
            )
    return cameras

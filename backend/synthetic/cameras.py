"""Orbit cameras around a synthetic scene: the views `synth` renders and the benchmarks score."""

from __future__ import annotations

import math

import numpy as np

from backend.core.camera import Camera, look_at
from backend.core.errors import SplatsegError

from .scene import SyntheticScene

# ---- cameras -------------------------------------------------------------------------------------------------------

_ELEVATIONS_DEG = (25.0, 40.0, 55.0)
_FOV_DEG = 50.0


def orbit_cameras(synth: SyntheticScene, *, views: int, resolution: int, seed: int) -> list[Camera]:
    """`views` cameras around the table, cycling through three elevations (25°, 40°, 55°) while the azimuth steps
    once round, all looking at the table's centre; a little seeded jitter keeps the views from being exactly
    symmetric, as a hand-held capture is not."""
    if views < 1:
        raise SplatsegError(f"--views must be at least 1, got {views}")
    if resolution < 8:
        raise SplatsegError(f"--resolution must be at least 8 pixels, got {resolution}")
    rng = np.random.default_rng(seed)
    # Close enough that the objects fill the frame; the table's far corners may leave it in side views.
    distance = 0.8 * synth.radius / math.sin(math.radians(_FOV_DEG / 2))
    step = 2 * math.pi / views
    cameras = []
    for i in range(views):
        azimuth = i * step + rng.uniform(-0.2, 0.2) * step
        elevation = math.radians(_ELEVATIONS_DEG[i % len(_ELEVATIONS_DEG)] + rng.uniform(-2.0, 2.0))
        d = distance * rng.uniform(0.95, 1.05)
        offset = d * np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        cameras.append(
            look_at(
                f"view_{i:03d}",
                synth.center + offset,
                synth.center,
                np.array([0.0, 0.0, 1.0]),
                width=resolution,
                height=resolution,
                fov_y_deg=_FOV_DEG,
            )
        )
    return cameras

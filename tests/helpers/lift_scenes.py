"""Tiny hand-made scenes for the SA3D tests: balls of opaque surface discs, cheap to rasterise at 48–64 px."""

from __future__ import annotations

import math

import numpy as np
import torch

from backend.core.camera import Camera, look_at
from backend.core.scene import GaussianScene


def disc_quats(normals: np.ndarray) -> np.ndarray:  # [N, 3] unit → [N, 4] wxyz turning local z onto the normal
    n = normals * np.where(normals[:, 2:3] < 0, -1.0, 1.0)  # a disc looks the same from both sides
    q = np.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], axis=1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def ball(center: tuple[float, float, float], radius: float, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """n points spread evenly on a sphere (Fibonacci), their normals, and their spacing."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    theta = math.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    normals = np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)
    spacing = radius * math.sqrt(4 * math.pi / n)
    return np.asarray(center) + radius * normals, normals, spacing


def disc_scene(
    parts: list[tuple[np.ndarray, np.ndarray, float]],  # (points [n, 3], normals [n, 3], spacing)
    *,
    colors: list[tuple[float, float, float]] | None = None,
    opacity: float = 0.95,
) -> tuple[GaussianScene, np.ndarray]:  # scene, labels [N] int (1 + part index)
    """Opaque discs on the given surfaces, sized to close them (as `backend.synthetic` does)."""
    means, quats, scales, cols, labels = [], [], [], [], []
    for k, (points, normals, spacing) in enumerate(parts):
        n = len(points)
        sigma = 1.1 * spacing
        means.append(points)
        quats.append(disc_quats(normals))
        scales.append(np.tile([sigma, sigma, 0.2 * sigma], (n, 1)))
        cols.append(np.tile(colors[k] if colors else (0.3 + 0.2 * k, 0.5, 0.7 - 0.2 * k), (n, 1)))
        labels.append(np.full(n, k + 1))
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(np.concatenate(means)),
        quats=torch.from_numpy(np.concatenate(quats)),
        scales=torch.from_numpy(np.concatenate(scales)),
        opacities=torch.full((sum(len(p[0]) for p in parts),), opacity, dtype=torch.float64),
        colors=torch.from_numpy(np.concatenate(cols)),
    )
    return scene, np.concatenate(labels)


def blobs(points: np.ndarray, sigma: float, *, opacity: float = 0.9) -> GaussianScene:  # points [n, 3]
    """Round Gaussians (no orientation to hide behind): floaters."""
    n = len(points)
    return GaussianScene.from_activated(
        means=torch.as_tensor(points, dtype=torch.float64),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), sigma, dtype=torch.float64),
        opacities=torch.full((n,), opacity, dtype=torch.float64),
        colors=torch.full((n, 3), 0.5, dtype=torch.float64),
    )


def two_balls(n: int = 900) -> tuple[GaussianScene, np.ndarray]:
    """Ball 1 at x = −0.35, ball 2 at x = +0.35, radius 0.25."""
    return disc_scene([ball((-0.35, 0.0, 0.0), 0.25, n), ball((0.35, 0.0, 0.0), 0.25, n)])


def ring_cameras(
    count: int,
    *,
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    distance: float = 2.2,
    elevation_deg: float = 20.0,
    size: int = 48,
    fov_deg: float = 50.0,
    start_deg: float = -90.0,
) -> list[Camera]:
    """`count` cameras evenly round `center`; the first looks along +y (from −y)."""
    c = np.asarray(center, dtype=np.float64)
    cams = []
    for i in range(count):
        az = math.radians(start_deg + 360.0 * i / count)
        el = math.radians(elevation_deg)
        eye = c + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        cams.append(
            look_at(f"cam_{i:02d}", eye, c, np.array([0.0, 0.0, 1.0]), width=size, height=size, fov_y_deg=fov_deg)
        )
    return cams

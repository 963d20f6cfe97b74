"""Shared fixtures: small random scenes and cameras, built in memory (no network, no model weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.core.camera import Camera, look_at
from backend.core.scene import GaussianScene


def random_scene(n: int = 2000, *, seed: int = 0, sh_degree: int = 0, spread: float = 0.5) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene.from_activated(
        means=torch.randn(n, 3, generator=g) * spread,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.03 + 0.005,
        opacities=torch.rand(n, generator=g) * 0.6 + 0.35,
        colors=torch.rand(n, 3, generator=g),
        sh_degree=sh_degree,
    )
    if sh_degree > 0:
        scene.sh[:, 1:] = torch.randn(n, scene.sh.shape[1] - 1, 3, generator=g) * 0.2
    return scene


def front_camera(size: int = 64, *, name: str = "front", distance: float = 3.0) -> Camera:
    return look_at(
        name,
        np.array([0.0, -distance, 0.8]),
        np.zeros(3),
        np.array([0.0, 0.0, 1.0]),
        width=size,
        height=size,
        fov_y_deg=50.0,
    )


@pytest.fixture
def small_scene() -> GaussianScene:
    return random_scene()


@pytest.fixture
def camera() -> Camera:
    return front_camera()

"""The ground-truth stand-in for a feature field (tests/helpers/fakes.py) answers with the true object."""

from __future__ import annotations

import numpy as np
import torch

from backend.core.scene import GaussianScene
from tests.helpers.fakes import LabelField


def test_label_field_answers_with_the_true_object():
    from backend.core.camera import look_at

    # Two blobs, left (label 1) and right (label 2), in front of a camera.
    g = torch.Generator().manual_seed(0)
    left = torch.randn(200, 3, generator=g) * 0.05 + torch.tensor([-0.5, 0.0, 0.0])
    right = torch.randn(200, 3, generator=g) * 0.05 + torch.tensor([0.5, 0.0, 0.0])
    n = 400
    scene = GaussianScene.from_activated(
        means=torch.cat([left, right]),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.03),
        opacities=torch.full((n,), 0.9),
        colors=torch.rand(n, 3, generator=g),
    )
    labels = np.repeat([1, 2], 200)
    cam = look_at(
        "c", np.array([0.0, -3.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=100, height=100, fov_y_deg=40
    )
    field = LabelField(scene, labels, labels)
    u_left = cam.fx * -0.5 / 3.0 + cam.cx
    result = field.segment(cam, [(u_left, 50.0)])
    assert result.mask[:200].all() and not result.mask[200:].any()

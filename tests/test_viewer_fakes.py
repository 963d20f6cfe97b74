"""A ground-truth stand-in for a trained feature field, for viewer tests that must not depend on training.

`LabelField` answers a click with the synthetic scene's true object (or part) under the clicked pixel, through the
same `RayCaster` a real field's `ray_feature` uses, so a viewer test checks the viewer's plumbing (camera, pixel,
set operations, looks) against an answer known exactly.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.scene import GaussianScene
from backend.render import RayCaster


@dataclasses.dataclass
class FakeResult:
    mask: np.ndarray  # [N] bool
    scores: np.ndarray  # [N] float32
    milliseconds: float


class LabelField:
    method = "click"
    levels = ("coarse", "fine")

    def __init__(self, scene: GaussianScene, objects: np.ndarray, parts: np.ndarray) -> None:
        self.scene = scene
        self.labels = {"coarse": np.asarray(objects), "fine": np.asarray(parts)}
        self.caster = RayCaster(scene)
        self.calls: list[tuple[Camera, list, list, dict]] = []

    def gaussian_at(self, camera: Camera, pixel: tuple[float, float]) -> int | None:
        with torch.no_grad():
            ids, weights = self.caster.weights(camera, pixel)
        return None if ids.numel() == 0 else int(ids[int(torch.argmax(weights))])

    def segment(self, camera, positives, negatives=(), *, level=None, scale=None, threshold=None) -> FakeResult:
        t0 = time.perf_counter()
        self.calls.append((camera, list(positives), list(negatives), {"level": level, "threshold": threshold}))
        labels = self.labels[level or "coarse"]
        mask = np.zeros(len(labels), dtype=bool)
        for p in positives:
            g = self.gaussian_at(camera, p)
            if g is not None:
                mask |= labels == labels[g]
        for p in negatives:
            g = self.gaussian_at(camera, p)
            if g is not None:
                mask &= labels != labels[g]
        return FakeResult(mask, mask.astype(np.float32), (time.perf_counter() - t0) * 1e3)

    def cluster_labels(self, level=None, *, scale=None) -> np.ndarray:
        return self.labels[level or "coarse"]

    def gaussian_features(self, level=None, scale=None) -> torch.Tensor:
        labels = torch.from_numpy(self.labels[level or "coarse"].astype(np.int64))
        return torch.nn.functional.one_hot(labels).float()


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

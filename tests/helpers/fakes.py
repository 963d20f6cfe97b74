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
    uses_scale = False
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

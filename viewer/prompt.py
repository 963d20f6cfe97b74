"""The prompt being refined: the points of the object being selected now, all in one view."""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.core.camera import Camera
from backend.core.selection import SelectOp


@dataclasses.dataclass
class Prompt:
    """The points of the object being selected now: all in one view, refined click by click."""

    id: int
    camera: Camera
    base: np.ndarray  # [N] bool: the selection before the prompt's first click
    positives: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    negatives: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    op: SelectOp = "replace"

    def same_view(self, camera: Camera) -> bool:
        return (
            camera.width == self.camera.width
            and camera.height == self.camera.height
            and np.allclose(camera.world_to_camera, self.camera.world_to_camera, atol=1e-6)
            and np.allclose(camera.K, self.camera.K, atol=1e-6)
        )

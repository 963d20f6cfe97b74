"""Renders kept by view, so that one `prepare` renders each view of a scene once rather than three times.

Without cameras, `prepare` renders every virtual view for its photo, then again for the geometric (or SAM) masks,
then again for the masks' 3D scales (SAGA's depth). On a CPU that is the whole cost of `prepare` (the reference
renderer takes seconds a view for a capture of 150k Gaussians), so the first render is kept and handed to the other
two. A render is deterministic for a given scene and camera, so a kept one is the render that would have been made:
results do not change. Memory is bounded: renders past `budget_bytes` are not kept (and are made again when asked).
"""

from __future__ import annotations

import torch

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .output import RenderOutput

DEFAULT_BUDGET_BYTES = 256 << 20
"""48 views of 512² (the virtual cameras' defaults) in RGB, depth and alpha as float32 is 240 MB."""


def _key(camera: Camera) -> tuple:
    return (camera.name, camera.width, camera.height, camera.K.tobytes(), camera.world_to_camera.tobytes())


def _nbytes(out: RenderOutput) -> int:
    return sum(t.numel() * t.element_size() for t in (out.rgb, out.alpha, out.depth, out.features) if t is not None)


class RenderMemo:
    """RGB, depth and alpha renders of ONE scene, by camera (name, size, intrinsics and pose)."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._kept: dict[tuple, RenderOutput] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, camera: Camera, out: RenderOutput) -> bool:
        """Keep `out` as `camera`'s render if it fits in the budget; whether it was kept."""
        kept = RenderOutput(rgb=out.rgb.detach(), alpha=out.alpha.detach(), depth=out.depth.detach())
        size = _nbytes(kept)
        key = _key(camera)
        if key in self._kept:
            self._bytes -= _nbytes(self._kept.pop(key))
        if self._bytes + size > self.budget_bytes:
            return False
        self._kept[key] = kept
        self._bytes += size
        return True

    def get(self, camera: Camera) -> RenderOutput | None:
        return self._kept.get(_key(camera))

    def forget(self, camera: Camera) -> None:
        out = self._kept.pop(_key(camera), None)
        if out is not None:
            self._bytes -= _nbytes(out)

    def render(self, scene: GaussianScene, camera: Camera, *, backend="auto") -> RenderOutput:
        """`camera`'s kept render, else a new render of `scene` (kept when it fits)."""
        out = self.get(camera)
        if out is None:
            from . import render

            with torch.no_grad():
                out = render(scene, camera, backend=backend)
            self.keep(camera, out)
        return self.get(camera) or out

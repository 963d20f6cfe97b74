"""Which view to self-prompt next.

Self-prompting only works where the 3D mask built so far already covers most of what the next view sees of the
object: the prompt points come from rendering it. So the next view is always a neighbour of a view already done
(nearest cameras first). But neighbours a few degrees apart add almost nothing, and a budget of 8 views spent on
them leaves the object's far side unseen. The rule: among the views within `max_step_deg` of a done view (angles
measured at the object), take the one farthest from all done views; when none is that close, the nearest one.
With `max_step_deg` = 0 it is plain nearest-first; at the default 45° eight views go once round an orbit capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..core.camera import Camera

DEFAULT_MAX_STEP_DEG = 45.0


def sees_point(camera: Camera, point: np.ndarray) -> bool:  # point [3]
    """Whether `point` is in front of the camera and projects inside its image."""
    p = camera.world_to_camera[:3, :3] @ point + camera.world_to_camera[:3, 3]
    if p[2] <= 1e-6:
        return False
    u = camera.fx * p[0] / p[2] + camera.cx
    v = camera.fy * p[1] / p[2] + camera.cy
    return 0.0 <= u < camera.width and 0.0 <= v < camera.height


def _directions(cameras: Sequence[Camera], center: np.ndarray) -> np.ndarray:  # → [C, 3] unit, object → camera
    d = np.stack([c.center for c in cameras]) - center[None, :]
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def next_view(
    cameras: Sequence[Camera],
    done: Iterable[str],  # names of the views already used
    center: np.ndarray,  # [3] the object's centre (the current selection's)
    *,
    max_step_deg: float = DEFAULT_MAX_STEP_DEG,
    skip: Iterable[str] = (),
) -> Camera | None:
    """The next view to self-prompt in, or None when no camera that sees `center` is left."""
    done_set, skip_set = set(done), set(skip)
    visited = [c for c in cameras if c.name in done_set]
    todo = [c for c in cameras if c.name not in done_set and c.name not in skip_set and sees_point(c, center)]
    if not todo:
        return None
    if not visited:
        return todo[0]
    cos = _directions(todo, center) @ _directions(visited, center).T  # [T, V]
    gap = np.degrees(np.arccos(np.clip(cos.max(axis=1), -1.0, 1.0)))  # [T] angle to the nearest done view
    near = gap <= max_step_deg + 1e-9
    index = int(np.argmax(np.where(near, gap, -np.inf))) if near.any() else int(np.argmin(gap))
    return todo[index]

"""`--predictor FOLDER`: SA3D asks a folder of precomputed per-view masks instead of SAM.

The folder is the one `prepare --masks FOLDER` reads (one `.npy`/`.npz` mask stack or PNG label map per view,
named by the view's image stem; `backend/masks/folder.py` checks each file). Masks from another segmenter, or
hand-drawn ones, can then drive SA3D offline. A prompt is answered like SAM's multimask answer: the view's masks
under the positive points, smallest first; a negative point on a candidate zeroes its score.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Sequence

import numpy as np

from ..core.camera import Camera
from ..masks.maskset import ViewMasks
from .predictor import Point


class FolderPredictor:
    """Answers prompts from per-view mask stacks (`masks(camera)` → `ViewMasks` or None for a view without a file)."""

    needs_image = False

    def __init__(self, masks: Callable[[Camera], ViewMasks | None], *, cache_size: int = 16) -> None:
        self._masks = masks
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._cache_size = cache_size
        self._view: np.ndarray | None = None  # [M, H, W] bool

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], cameras: Sequence[Camera]) -> FolderPredictor:
        from ..masks.folder import FolderMasks

        return cls(FolderMasks(folder, cameras))

    def set_view(self, camera: Camera, image: np.ndarray | None = None) -> None:
        stack = self._cache.get(camera.name)
        if stack is None:
            view = self._masks(camera)
            stack = view.masks if view is not None else np.zeros((0, camera.height, camera.width), dtype=bool)
            self._cache[camera.name] = stack
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(camera.name)
        self._view = stack

    def predict(
        self,
        points: Sequence[Point],
        labels: Sequence[int],  # 1 = on the object, 0 = not on it
        box: tuple[float, float, float, float] | None = None,  # x0, y0, x1, y1
        multimask: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:  # masks [K, H, W] bool, scores [K] float32
        if self._view is None:
            raise RuntimeError("set_view must be called before predict")
        stack = self._view
        m, h, w = stack.shape
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        ix = np.clip(pts[:, 0].astype(np.int64), 0, w - 1)
        iy = np.clip(pts[:, 1].astype(np.int64), 0, h - 1)
        pos = lab == 1
        if pos.any():
            hits = stack[:, iy[pos], ix[pos]].sum(axis=1)  # [M] positive points each mask covers
            chosen = np.flatnonzero((hits == hits.max()) & (hits > 0)) if m else np.zeros(0, dtype=np.int64)
        elif box is not None and m:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            window = (slice(None), slice(max(y0, 0), max(y1, 0) + 1), slice(max(x0, 0), max(x1, 0) + 1))
            inside = stack[window].reshape(m, -1).sum(1)
            area = stack.reshape(m, -1).sum(1)
            chosen = np.flatnonzero(inside > 0.5 * np.maximum(area, 1))  # masks mostly inside the box
        else:
            chosen = np.zeros(0, dtype=np.int64)
        if len(chosen) == 0:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        areas = stack[chosen].reshape(len(chosen), -1).sum(1)
        chosen = chosen[np.argsort(areas, kind="stable")]  # small to large, as SAM's candidates
        masks = stack[chosen]
        scores = np.ones(len(chosen), dtype=np.float32)
        neg = ~pos
        if neg.any():
            scores[masks[:, iy[neg], ix[neg]].any(axis=1)] = 0.0
        if not multimask:
            return masks[-1:], scores[-1:]
        return masks, scores

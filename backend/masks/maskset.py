"""`MaskSet`: the 2D masks of every view, stored compactly in the workspace and read one view at a time.

Whatever the source (SAM's automatic generator, a user's folder, synthetic labels), masks end up here: per view a
stack of M overlapping boolean masks of any granularity, each with a score and a 3D scale (SAGA), plus
Click-Gaussian's two per-pixel levels (coarse = index of the largest mask covering the pixel, fine = the smallest).
A view is one `.npz` holding the masks as packed bits (H·W/8 bytes a mask), so a 200-view scene with 100 masks a
view at 1080p stays around 5 GB on disk and is never all in memory, let alone on a GPU (SAGA #9, #58, #65).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..io.atomic import atomic_path, write_text_atomic

INDEX_FILE = "index.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class ViewMasks:
    """The masks of one view."""

    name: str
    masks: np.ndarray  # [M, H, W] bool, overlapping, any granularity
    scores: np.ndarray  # [M] float32 confidence (SAM's predicted IoU; 1 for labels)
    scales: np.ndarray  # [M] float32 3D scale of each mask (SAGA: 2·‖std‖ of its back-projected points); NaN = unknown

    def __post_init__(self) -> None:
        m = self.masks.shape[0]
        if self.masks.ndim != 3 or self.masks.dtype != np.bool_:
            raise ValueError(f"view {self.name!r}: masks must be a bool array [M, H, W]")
        if self.scores.shape != (m,) or self.scales.shape != (m,):
            raise ValueError(f"view {self.name!r}: scores and scales need one value per mask ({m})")

    @property
    def height(self) -> int:
        return self.masks.shape[1]

    @property
    def width(self) -> int:
        return self.masks.shape[2]

    def coarse_scale_at(self, x: int, y: int) -> float:
        """The 3D scale of the largest mask covering pixel (x, y) (SAM's "whole" there); NaN when none covers it or
        the pixel is outside the view."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return float("nan")
        covering = np.flatnonzero(self.masks[:, y, x])
        if covering.size == 0:
            return float("nan")
        areas = self.masks[covering].reshape(covering.size, -1).sum(1)
        return float(self.scales[covering[int(np.argmax(areas))]])

    def levels(self) -> tuple[np.ndarray, np.ndarray]:  # coarse [H, W], fine [H, W] int32 mask index, -1 = none
        """Click-Gaussian's granularity prior: per pixel, the largest and the smallest mask that covers it."""
        h, w = self.height, self.width
        coarse = np.full((h, w), -1, dtype=np.int32)
        fine = np.full((h, w), -1, dtype=np.int32)
        if len(self.masks) == 0:
            return coarse, fine
        areas = self.masks.reshape(len(self.masks), -1).sum(1)
        # Paint small-to-large for coarse (largest wins) and large-to-small for fine (smallest wins).
        for i in np.argsort(areas, kind="stable"):
            coarse[self.masks[i]] = i
        for i in np.argsort(-areas, kind="stable"):
            fine[self.masks[i]] = i
        return coarse, fine


def _is_view_name(value: object) -> bool:
    """A view name is a file stem in the mask folder: no separators, no `..` (a damaged index must not escape)."""
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value


class MaskSet:
    """A workspace folder of per-view mask files plus an index (view names, sizes, the source that made them)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ---- writing ---------------------------------------------------------------------------------------------
    def write_view(self, view: ViewMasks) -> None:
        m, h, w = view.masks.shape
        with atomic_path(self._view_path(view.name)) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                bits=np.packbits(view.masks.reshape(m, h * w), axis=1),
                shape=np.array([m, h, w], dtype=np.int64),
                scores=view.scores.astype(np.float32),
                scales=view.scales.astype(np.float32),
            )

    def write_index(self, views: list[str], *, source: str, params: dict) -> None:
        """Written last: a MaskSet without its index is an interrupted prepare and is not used."""
        index = {"format": FORMAT_VERSION, "source": source, "params": params, "views": sorted(views)}
        write_text_atomic(self.root / INDEX_FILE, json.dumps(index, indent=1))

    # ---- reading ---------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.root / INDEX_FILE).is_file()

    @property
    def index(self) -> dict:
        if not self.exists():
            raise InputError(f"no masks in {self.root}; run `splatseg prepare SCENE` first")
        path = self.root / INDEX_FILE
        rerun = "delete it and run `splatseg prepare SCENE` again"
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path} is not valid JSON ({e}); {rerun}") from None
        views = index.get("views") if isinstance(index, dict) else None
        if (
            not isinstance(views, list)
            or not all(
                isinstance(v, str) and v and "/" not in v and "\\" not in v and v not in (".", "..") for v in views
            )
            or not isinstance(index.get("source"), str)
        ):
            raise InputError(f"{path} is not a splatseg mask index (views must be a list of view names); {rerun}")
        return index

    @property
    def views(self) -> list[str]:
        return list(self.index["views"])

    def read_view(self, name: str) -> ViewMasks:
        path = self._view_path(name)
        if not path.is_file():
            raise InputError(f"no masks for view {name!r} in {self.root}; run `splatseg prepare SCENE` again")
        try:
            with np.load(path, allow_pickle=False) as data:
                m, h, w = (int(v) for v in data["shape"])
                bits = data["bits"]
                if m < 0 or h <= 0 or w <= 0 or bits.shape != (m, (h * w + 7) // 8):
                    raise ValueError(f"shape {m}×{h}×{w} does not match {bits.shape[0]} packed masks")
                masks = np.unpackbits(bits, axis=1, count=h * w).reshape(m, h, w).astype(bool)
                return ViewMasks(name=name, masks=masks, scores=data["scores"], scales=data["scales"])
        except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
            raise InputError(f"{path} is damaged ({e}); run `splatseg prepare SCENE` again") from None

    def __iter__(self) -> Iterator[ViewMasks]:
        """Stream the views one at a time (never all in memory)."""
        for name in self.views:
            yield self.read_view(name)

    def _view_path(self, name: str) -> Path:
        return self.root / f"{name}.npz"

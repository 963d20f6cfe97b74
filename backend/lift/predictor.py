"""Promptable 2D mask predictors: what SA3D asks in every view.

SA3D needs one thing from a 2D model: given a view and a few prompt points (or a box), the candidate masks under
them. `MaskPredictor` is that contract; `SamPredictorAdapter` answers it with segment-anything, and
`GroundTruthPredictor` answers it from a synthetic scene's label maps, so the lifting and the self-prompting can be
tested and measured on their own, without SAM's mistakes and without its weights.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch

from ..core.camera import Camera
from ..core.errors import InputError

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

    from ..core.scene import GaussianScene
    from .lifting import ViewGeometry

Point = tuple[float, float]
"""(x, y) in the pixels of the camera given to `set_view` (pixel centres at integer + 0.5)."""

Granularity = Literal["whole", "part", "best"]
"""Which of a multimask answer a click means: the largest mask, the smallest, or the one the model scores best."""


class MaskPredictor(Protocol):
    """A 2D segmenter that answers prompts in one view at a time."""

    needs_image: bool
    """Whether `set_view` uses the image (the loop skips loading or rendering it when not)."""

    def set_view(self, camera: Camera, image: np.ndarray | None) -> None:  # image [H, W, 3] uint8 RGB
        """Make `camera`'s view the one later prompts refer to (expensive work, e.g. an embedding, goes here)."""
        ...

    def predict(
        self,
        points: Sequence[Point],
        labels: Sequence[int],  # 1 = on the object, 0 = not on it
        box: tuple[float, float, float, float] | None = None,  # x0, y0, x1, y1
        multimask: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:  # masks [K, H, W] bool, scores [K] float32
        """Candidate masks for the prompt, with the model's confidence in each."""
        ...


def choose_by_granularity(masks: np.ndarray, scores: np.ndarray, granularity: Granularity) -> int:
    """Index of the candidate a first click means (masks [K, H, W], scores [K]).

    SA3D shows the user SAM's three candidates; headless, "whole" (the largest non-empty one) is what a click on an
    object usually means, "part" the smallest non-empty one, "best" the highest predicted IoU.
    """
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    nonempty = np.flatnonzero(areas > 0)
    if len(nonempty) == 0:
        return int(np.argmax(scores))
    if granularity == "whole":
        return int(nonempty[np.argmax(areas[nonempty])])
    if granularity == "part":
        return int(nonempty[np.argmin(areas[nonempty])])
    return int(nonempty[np.argmax(scores[nonempty])])


# ---- ground truth --------------------------------------------------------------------------------------------------

LabelSource = Callable[[Camera], tuple[np.ndarray, np.ndarray]]
"""camera → (part map [H, W], object map [H, W]) integer labels, 0 = background."""


def _mode(values: np.ndarray) -> int:
    uniq, counts = np.unique(values, return_counts=True)
    return int(uniq[np.argmax(counts)])


class GroundTruthPredictor:
    """Answers a prompt with the labelled part and object under it: a perfect, consistent SAM for synthetic scenes.

    A point prompt's label is the most common one under the positive points; the multimask answer is
    [part, object] (SAM's candidates also go from small to large), a single-mask answer the object. A negative point
    that falls on a candidate zeroes that candidate's score. A box alone takes the most common non-zero label in the
    box. Each view's label maps are read once.
    """

    needs_image = False

    def __init__(self, labels: LabelSource, *, cache_size: int = 64) -> None:
        self._labels = labels
        self._cache: collections.OrderedDict[str, tuple[np.ndarray, np.ndarray]] = collections.OrderedDict()
        self._cache_size = cache_size
        self._maps: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_scene_dir(cls, scene_dir: str | os.PathLike[str]) -> GroundTruthPredictor:
        """From `labels/<view>_part.png` and `_object.png`, as `splatseg synth` writes them."""
        from ..masks.labels import has_labels, read_view_labels

        folder = Path(scene_dir)
        if not has_labels(folder):
            raise InputError(
                f"{folder} has no labels/ folder: ground-truth prompts need a synthetic scene (`splatseg synth`); "
                "use SAM instead"
            )
        return cls(lambda camera: read_view_labels(folder, camera.name))

    @classmethod
    def from_gaussian_labels(
        cls,
        scene: GaussianScene,
        part_labels: np.ndarray,  # [N] int, 0 = background
        object_labels: np.ndarray,  # [N] int
        *,
        geometry: Callable[[Camera], ViewGeometry] | None = None,
    ) -> GroundTruthPredictor:
        """Label maps rendered on demand from per-Gaussian labels, by the rule `splatseg synth` writes them with
        (the label with the largest accumulated weight where alpha > 0.5). `geometry` (e.g. a `GeometryCache`)
        shares the views' rasterisation with the loop."""
        from ..synthetic import label_map, one_hot_labels
        from .lifting import view_geometry

        rasterise = geometry or (lambda camera: view_geometry(scene, camera))
        num_parts, num_objects = int(part_labels.max()) + 1, int(object_labels.max()) + 1
        features = torch.cat([one_hot_labels(part_labels, num_parts), one_hot_labels(object_labels, num_objects)], 1)
        features = features.to(scene.device)

        def maps(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
            geo = rasterise(camera)
            rendered, alpha = geo.composite(features), geo.alpha()
            return label_map(rendered[..., :num_parts], alpha), label_map(rendered[..., num_parts:], alpha)

        return cls(maps)

    def label_maps(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:  # (part [H, W], object [H, W])
        """The view's ground truth (cached), for scoring a selection against it."""
        self.set_view(camera)
        assert self._maps is not None
        return self._maps

    def set_view(self, camera: Camera, image: np.ndarray | None = None) -> None:
        maps = self._cache.get(camera.name)
        if maps is None:
            part, obj = self._labels(camera)
            if part.shape != (camera.height, camera.width) or obj.shape != part.shape:
                raise InputError(
                    f"view {camera.name!r}: label maps are {part.shape[1]}×{part.shape[0]} but the camera is "
                    f"{camera.width}×{camera.height}"
                )
            maps = (np.asarray(part), np.asarray(obj))
            self._cache[camera.name] = maps
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(camera.name)
        self._maps = maps

    def predict(
        self,
        points: Sequence[Point],
        labels: Sequence[int],
        box: tuple[float, float, float, float] | None = None,
        multimask: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._maps is None:
            raise RuntimeError("set_view must be called before predict")
        part_map, obj_map = self._maps
        h, w = part_map.shape
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        ix = np.clip(pts[:, 0].astype(np.int64), 0, w - 1)
        iy = np.clip(pts[:, 1].astype(np.int64), 0, h - 1)
        pos = lab == 1
        if pos.any():
            part_id, obj_id = _mode(part_map[iy[pos], ix[pos]]), _mode(obj_map[iy[pos], ix[pos]])
        elif box is not None:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            window = (slice(max(y0, 0), max(y1, 0) + 1), slice(max(x0, 0), max(x1, 0) + 1))
            inside_p, inside_o = part_map[window], obj_map[window]
            part_id = _mode(inside_p[inside_p > 0]) if (inside_p > 0).any() else 0
            obj_id = _mode(inside_o[inside_o > 0]) if (inside_o > 0).any() else 0
        else:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        masks = np.stack([part_map == part_id, obj_map == obj_id])  # [2, H, W]
        scores = np.ones(2, dtype=np.float32)
        neg = ~pos
        for k in range(2):
            if neg.any() and masks[k][iy[neg], ix[neg]].any():
                scores[k] = 0.0
        if not multimask:
            return masks[1:], scores[1:]
        return masks, scores


# ---- SAM -----------------------------------------------------------------------------------------------------------


class SamPredictorAdapter:
    """segment-anything's `SamPredictor` behind `MaskPredictor`, with the image embedding cached per view.

    The embedding is nearly all of SAM's cost (the ViT encoder; the prompt decoder takes milliseconds), and the
    self-prompting loop, the viewer and a user re-running from the same view ask the same view again, so the last
    `cache_size` embeddings are kept (vit_h: 4 MB each). `embed_seconds` and `decode_seconds` add up the time spent
    in each half, for the benchmark.
    """

    needs_image = True

    def __init__(self, sam: Sam, *, cache_size: int = 8) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self._cache: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()
        self._cache_size = cache_size
        self.embed_seconds = 0.0
        self.decode_seconds = 0.0
        self.embeddings = 0
        """How many images went through the encoder (cache misses)."""

    def set_view(self, camera: Camera, image: np.ndarray | None) -> None:
        if image is None:
            raise ValueError(f"view {camera.name!r}: SAM needs the image")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"view {camera.name!r}: SAM takes an [H, W, 3] uint8 image, got {image.shape}")
        # The name alone could collide (two viewer viewports); the size and a cheap image digest make it safe.
        key = (camera.name, image.shape, float(image[::7, ::7].mean()), camera.world_to_camera.tobytes())
        p = self.predictor
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            p.features, p.original_size, p.input_size = cached
            p.is_image_set = True
            return
        t0 = time.perf_counter()
        p.set_image(image)
        self.embed_seconds += time.perf_counter() - t0
        self.embeddings += 1
        self._cache[key] = (p.features, p.original_size, p.input_size)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def predict(
        self,
        points: Sequence[Point],
        labels: Sequence[int],
        box: tuple[float, float, float, float] | None = None,
        multimask: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(pts) == 0 and box is None:
            h, w = self.predictor.original_size
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        t0 = time.perf_counter()
        masks, scores, _ = self.predictor.predict(
            point_coords=pts if len(pts) else None,
            point_labels=lab if len(pts) else None,
            box=np.asarray(box, dtype=np.float32) if box is not None else None,
            multimask_output=multimask,
        )
        self.decode_seconds += time.perf_counter() - t0
        return masks.astype(bool), scores.astype(np.float32)


PREDICTORS = ("sam", "labels")
"""The named predictors; anything else given to `--predictor` is a folder of per-view masks."""


def check_predictor(predictor: str, scene_dir: str | os.PathLike[str] | None = None) -> None:
    """Refuse a `--predictor` that is neither a named predictor nor a folder (or `labels` for a scene without
    them), before any work."""
    if predictor not in PREDICTORS and not Path(predictor).is_dir():
        raise InputError(
            f"--predictor {predictor}: not sam, labels or a folder; give sam (default), labels (a synthetic scene's "
            "ground truth) or a folder of per-view masks"
        )
    if predictor == "labels" and scene_dir is not None:
        from ..masks.labels import has_labels

        if not has_labels(scene_dir):
            raise InputError(
                f"--predictor labels needs a synthetic scene's labels/ folder, and {scene_dir} has none; "
                "use --predictor sam or a folder of masks"
            )


def make_predictor(
    scene_dir: str | os.PathLike[str],
    predictor: str = "sam",
    *,
    cameras: Sequence[Camera] | None = None,
    sam_checkpoint: str | os.PathLike[str] | None = None,
    sam_model: str | None = None,
) -> tuple[MaskPredictor, str]:  # the predictor, and what the report calls it ("sam", "labels" or the folder)
    """SAM (the default); "labels": a synthetic scene's ground truth; any other value: a folder of per-view masks
    for CAMERAS (`prepare --masks FOLDER`'s layout)."""
    check_predictor(predictor, scene_dir)
    if predictor == "labels":
        return GroundTruthPredictor.from_scene_dir(scene_dir), "labels"
    if predictor == "sam":
        from ..masks.sam import load_sam

        return SamPredictorAdapter(load_sam(sam_model, sam_checkpoint)), "sam"  # type: ignore[arg-type]
    folder = Path(predictor)
    if cameras is None:
        from ..io.cameras import load_cameras

        cameras = load_cameras(scene_dir)
    from .folder_predictor import FolderPredictor

    return FolderPredictor.from_folder(folder, cameras), str(folder)

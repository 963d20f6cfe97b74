"""`--masks sam-like`: masks with the statistics of SAM's automatic mask generator, made from ground-truth labels.

`noise.py` perturbs a complete labelling: every pixel of its views is covered (table and walls are objects) and
every mask is an object or a part. SAM's automatic generator is not like that, and training must survive what it
really returns (the figures in the README's accuracy table are measured on this model):

- uncovered pixels: the support an object stands on and the background get no mask at all (scene labels listed
  under "support" in `labels.json`, and label 0), and random holes are bitten out of masks (`p_hole`);
- nested multimask levels: a point gives whole / part / subpart, so an object comes with its parts and some parts
  with a subpart (a part cut in two, `p_subpart`);
- merges: an object together with the patch of support around it (`p_support_merge`), an object together with a
  touching or near neighbour (`p_neighbour_merge`);
- per-view inconsistent granularity: in a view, an object may come only whole (`p_whole_only`: no parts) or only
  in parts (`p_parts_only`: no whole);
- small spurious masks on the support and background (`spurious_per_view` on average);
- boundary jitter (±`jitter_px`), drops (`p_drop`), and masks under `min_area_fraction` of the image removed.

Every rate is multiplied by `strength` (probabilities clipped to 1); 0 gives the clean nested masks (objects and
parts, support and background still uncovered). Seeded by (seed, view name), like `noise.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.camera import Camera
from ..core.errors import InputError
from .labels import read_view_labels
from .maskset import ViewMasks
from .noise import _jitter, _split, _unique, part_objects, view_rng


@dataclasses.dataclass(frozen=True)
class SamLikeConfig:
    """The sam-like model's rates at strength 1 (README: "sam-like masks")."""

    strength: float = 1.0
    seed: int = 0
    p_subpart: float = 0.25
    """A part also comes cut in two (SAM's third, smallest multimask level)."""
    p_whole_only: float = 0.15
    """In this view an object comes only whole: its parts are missing."""
    p_parts_only: float = 0.15
    """In this view an object comes only as parts: the whole is missing."""
    p_support_merge: float = 0.12
    """The object's whole mask also takes the support around it (a ring of `support_ring` × its size)."""
    support_ring: float = 0.35
    p_neighbour_merge: float = 0.10
    """Two objects within `neighbour_px` pixels of each other come as one extra mask."""
    neighbour_px: int = 6
    p_hole: float = 0.15
    """A mask loses a random disc (radius up to a quarter of its size): pixels of the object nobody covers."""
    spurious_per_view: float = 2.0
    """Mean number of small masks on the support or background (texture, shading, reflections)."""
    p_drop: float = 0.10
    jitter_px: float = 1.0
    min_area_fraction: float = 5e-4

    def __post_init__(self) -> None:
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"noise strength must be a finite number ≥ 0, got {self.strength}")

    def rate(self, p: float) -> float:
        return float(min(1.0, max(0.0, p * self.strength)))


def sam_like_masks(
    part_map: np.ndarray,  # [H, W] part ids, 0 = background
    object_map: np.ndarray,  # [H, W] object ids, 0 = background
    support: set[int] | frozenset[int],  # object ids that never get a mask of their own
    config: SamLikeConfig,
    *,
    view: str,
) -> tuple[np.ndarray, np.ndarray]:  # masks [M, H, W] bool, scores [M] float32 (predicted IoU)
    """One view's sam-like mask stack (see the module docstring)."""
    if part_map.shape != object_map.shape or part_map.ndim != 2:
        raise ValueError(f"part and object maps must be the same [H, W], got {part_map.shape} and {object_map.shape}")
    h, w = part_map.shape
    rng = view_rng(config.seed, view)
    owner = part_objects(part_map, object_map)
    support_px = np.isin(object_map, list(support)) if support else np.zeros((h, w), bool)
    objects = [int(o) for o in np.unique(object_map) if o != 0 and int(o) not in support]
    masks: list[np.ndarray] = []
    wholes: dict[int, np.ndarray] = {}
    for o in objects:
        whole = object_map == o
        wholes[o] = whole
        parts = [p for p, oo in owner.items() if oo == o]
        u = rng.random()
        whole_only = u < config.rate(config.p_whole_only)
        parts_only = not whole_only and u < config.rate(config.p_whole_only) + config.rate(config.p_parts_only)
        if not parts_only or len(parts) < 2:
            if rng.random() < config.rate(config.p_support_merge):
                size = np.sqrt(whole.sum())
                ring = ndimage.binary_dilation(whole, iterations=max(1, int(config.support_ring * size)))
                masks.append(whole | (ring & support_px))
            else:
                masks.append(whole)
        if whole_only and len(parts) >= 2:
            continue
        for p in parts:
            pm = (part_map == p) & ~support_px  # label maps disagree on a boundary pixel now and then
            if len(parts) >= 2:
                masks.append(pm)
            if rng.random() < config.rate(config.p_subpart) and pm.sum() >= 8:
                masks.extend(half for half in _split(pm, rng) if half.any())
    # Neighbour merges: objects whose masks come within neighbour_px of each other.
    p_nb = config.rate(config.p_neighbour_merge)
    if p_nb > 0:
        grown = {o: ndimage.binary_dilation(m, iterations=config.neighbour_px) for o, m in wholes.items()}
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                if (grown[a] & wholes[b]).any() and rng.random() < p_nb:
                    masks.append(wholes[a] | wholes[b])
    # Spurious small masks on what no object mask covers (support, background).
    free = ~np.isin(object_map, objects)
    n_spurious = rng.poisson(config.spurious_per_view * config.strength) if config.strength > 0 else 0
    for _ in range(n_spurious):
        ys, xs = np.nonzero(free)
        if ys.size == 0:
            break
        k = rng.integers(ys.size)
        r = rng.uniform(0.01, 0.04) * min(h, w)
        yy, xx = np.ogrid[:h, :w]
        blob = ((yy - ys[k]) ** 2 + ((xx - xs[k]) * rng.uniform(0.5, 2.0)) ** 2 < r * r) & free
        masks.append(blob)
    # Holes, drops, jitter, small masks.
    p_hole = config.rate(config.p_hole)
    out = []
    for m in _unique(masks):
        if p_hole > 0 and rng.random() < p_hole and m.sum() >= 16:
            ys, xs = np.nonzero(m)
            k = rng.integers(ys.size)
            r = rng.uniform(0.1, 0.25) * np.sqrt(m.sum())
            yy, xx = np.ogrid[:h, :w]
            m = m & ((yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 >= r * r)
        out.append(m)
    p_drop = config.rate(config.p_drop)
    if p_drop > 0:
        out = [m for m, u in zip(out, rng.random(len(out))) if u >= p_drop]
    radius = round(config.jitter_px * config.strength)
    if radius > 0:
        out = [_jitter(m, int(r)) for m, r in zip(out, rng.integers(-radius, radius + 1, len(out)))]
    min_area = max(1, int(np.ceil(config.min_area_fraction * h * w)))
    out = [m for m in _unique(out) if m.sum() >= min_area]
    if not out:
        return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
    scores = np.clip(rng.normal(0.95, 0.03 * max(config.strength, 0.1), len(out)), 0.86, 1.0).astype(np.float32)
    return np.stack(out), scores


def read_support(scene_dir: str | os.PathLike[str]) -> frozenset[int]:
    """The support object ids a synthetic scene's `labels.json` lists (none for tabletop)."""
    try:
        meta = json.loads((Path(scene_dir) / "labels.json").read_text())
    except (OSError, ValueError):
        return frozenset()
    support = meta.get("support", []) if isinstance(meta, dict) else []
    return frozenset(int(s) for s in support if isinstance(s, int))


class SamLikeMasks:
    """The `sam-like` mask source: per view, ground-truth labels → `sam_like_masks` → `ViewMasks`."""

    def __init__(self, scene_dir: str | os.PathLike[str], config: SamLikeConfig | None = None) -> None:
        from .labels import has_labels

        self.scene_dir = Path(scene_dir)
        self.config = config if config is not None else SamLikeConfig()
        if not has_labels(self.scene_dir):
            raise InputError(
                f"--masks sam-like needs a synthetic scene's labels/ folder ({self.scene_dir / 'labels'} does not "
                "exist); write one with `splatseg synth`, or use --masks sam or --masks PATH"
            )
        self.support = read_support(self.scene_dir)

    def __call__(self, camera: Camera) -> ViewMasks:
        part, obj = read_view_labels(self.scene_dir, camera.name)
        if part.shape != (camera.height, camera.width):
            raise InputError(
                f"view {camera.name!r}: its label maps are {part.shape[1]}×{part.shape[0]} but the camera is "
                f"{camera.width}×{camera.height}; rewrite the scene with `splatseg synth`"
            )
        masks, scores = sam_like_masks(part, obj, self.support, self.config, view=camera.name)
        return ViewMasks(
            name=camera.name, masks=masks, scores=scores, scales=np.full(len(masks), np.nan, dtype=np.float32)
        )

"""A noise model that turns ground-truth label maps into masks that disagree from view to view the way SAM's do.

Training from perfect labels hides the hard part of SAGA and Click-Gaussian: SAM's automatic generator returns a
different set of masks in every view (a mug's handle is its own mask here, merged with the body there, cut in two
elsewhere; small things vanish; edges wander by a pixel or two), and the contrastive losses have to average that
out in 3D. The `labels` mask source passes a synthetic scene's ground truth through this model so the demo and the
benchmark see that inconsistency, with known answers to score against.

Per view, starting from the ground truth at two granularities (one mask per object and one per part, overlapping,
as SAM returns whole and part masks together):

1. merge: each pair of touching parts of the same object is fused with probability `p_merge`;
2. split: each part mask is cut in two along a random line through its centroid with probability `p_split`;
3. masks identical to another (a merged-away object, an object with one visible part) are kept once;
4. masks smaller than `min_area_fraction` of the image are dropped (SAM's point grid misses them);
5. each mask is dropped with probability `p_drop`;
6. each mask grows or shrinks by a random 0..`jitter_px` pixels (boundary jitter).

Every knob is multiplied by `strength`: 0 is the clean ground truth, 1 the default below, 2 twice as noisy.
The randomness is seeded by (seed, view name), so a view gets the same masks on every run and in any order.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
"""4-connectivity (scipy's `generate_binary_structure(2, 1)`), spelled out so importing this module (every
`segment` and `view` start-up reaches it) does not import scipy.ndimage."""


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """How far the `labels` mask source strays from ground truth; the rates are those at strength 1."""

    strength: float = 1.0
    """Multiplies every rate below (probabilities clipped to 1); 0 reproduces the ground truth exactly."""
    seed: int = 0
    """Combined with the view name, so views differ from each other but not from run to run."""
    p_merge: float = 0.15
    """Chance that two touching parts of one object come as one mask (SAM often misses a handle or a lid)."""
    p_split: float = 0.10
    """Chance that a part comes as two half masks (SAM cuts along shading or texture edges)."""
    p_drop: float = 0.10
    """Chance that a mask is missing (filtered by SAM's predicted-IoU and stability thresholds)."""
    jitter_px: float = 1.0
    """Largest boundary shift in pixels (random dilation or erosion), rounded after scaling by strength."""
    min_area_fraction: float = 1e-3
    """Masks below this share of the image are dropped: about one cell of SAM's default 32×32 point grid."""

    def __post_init__(self) -> None:
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"noise strength must be a finite number ≥ 0, got {self.strength}")

    def rate(self, p: float) -> float:
        return float(min(1.0, max(0.0, p * self.strength)))

    @property
    def jitter_radius(self) -> int:
        return round(self.jitter_px * self.strength)

    def min_area(self, height: int, width: int) -> int:
        return int(np.ceil(self.min_area_fraction * self.strength * height * width))


CLEAN = NoiseConfig(strength=0.0)


def view_rng(seed: int, view: str) -> np.random.Generator:
    """A generator fixed by (seed, view name); crc32 rather than hash(), which Python salts per process."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(view.encode("utf-8"))])


def ground_truth_masks(part_map: np.ndarray, object_map: np.ndarray) -> np.ndarray:  # [H, W] ×2 → [M, H, W] bool
    """One mask per object, then one per part (ids ascending; 0 = background has none), exact duplicates once."""
    return noisy_masks(part_map, object_map, CLEAN, view="")


def part_objects(part_map: np.ndarray, object_map: np.ndarray) -> dict[int, int]:
    """Each visible part's object: the object label under most of its pixels (label maps are made independently,
    so a boundary pixel may disagree; the majority does not)."""
    sel = (part_map > 0) & (object_map > 0)
    pairs, counts = np.unique(
        np.stack([part_map[sel].astype(np.int64), object_map[sel].astype(np.int64)]), axis=1, return_counts=True
    )
    best: dict[int, tuple[int, int]] = {}
    for (p, o), c in zip(pairs.T.tolist(), counts.tolist()):
        if p not in best or c > best[p][1]:
            best[p] = (o, c)
    return {p: o for p, (o, _) in best.items()}


def touching_pairs(part_map: np.ndarray) -> list[tuple[int, int]]:  # [H, W] → sorted (a, b) with a < b
    """Pairs of part labels that share an edge (4-neighbourhood)."""
    a = np.concatenate([part_map[:, :-1].ravel(), part_map[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([part_map[:, 1:].ravel(), part_map[1:, :].ravel()]).astype(np.int64)
    keep = (a != b) & (a > 0) & (b > 0)
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    return [tuple(p) for p in np.unique(np.stack([lo, hi], axis=1), axis=0).tolist()]


def noisy_masks(
    part_map: np.ndarray,  # [H, W] integer part ids, 0 = background
    object_map: np.ndarray,  # [H, W] integer object ids, 0 = background
    config: NoiseConfig,
    *,
    view: str,
) -> np.ndarray:  # [M, H, W] bool, overlapping: objects first, then (merged / split) parts
    """The masks "SAM" returns for one view (see the module docstring for the steps)."""
    if part_map.shape != object_map.shape or part_map.ndim != 2:
        raise ValueError(f"part and object maps must be the same [H, W], got {part_map.shape} and {object_map.shape}")
    h, w = part_map.shape
    rng = view_rng(config.seed, view)
    objects = [int(o) for o in np.unique(object_map) if o != 0]
    groups = _merge_parts(part_map, object_map, config.rate(config.p_merge), rng)

    masks = [object_map == o for o in objects]
    p_split = config.rate(config.p_split)
    for group in groups:
        mask = np.isin(part_map, group)
        if p_split > 0 and rng.random() < p_split:
            masks.extend(half for half in _split(mask, rng) if half.any())
        else:
            masks.append(mask)

    masks = _unique(masks)
    min_area = config.min_area(h, w)
    masks = [m for m in masks if m.sum() >= max(min_area, 1)]
    p_drop = config.rate(config.p_drop)
    if p_drop > 0:
        masks = [m for m, u in zip(masks, rng.random(len(masks))) if u >= p_drop]
    radius = config.jitter_radius
    if radius > 0:
        masks = [_jitter(m, int(r)) for m, r in zip(masks, rng.integers(-radius, radius + 1, len(masks)))]
        masks = [m for m in masks if m.any()]
    if not masks:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack(masks)


def _merge_parts(
    part_map: np.ndarray, object_map: np.ndarray, p_merge: float, rng: np.random.Generator
) -> list[list[int]]:
    """Visible parts grouped by random merges of touching parts of one object (union-find); ids ascending."""
    parts = [int(p) for p in np.unique(part_map) if p != 0]
    parent = {p: p for p in parts}

    def root(p: int) -> int:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    if p_merge > 0:
        owner = part_objects(part_map, object_map)
        for a, b in touching_pairs(part_map):
            same_object = owner.get(a) is not None and owner.get(a) == owner.get(b)
            if same_object and rng.random() < p_merge:
                ra, rb = root(a), root(b)
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for p in parts:
        groups.setdefault(root(p), []).append(p)
    return [groups[r] for r in sorted(groups)]


def _split(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # [H, W] → two halves
    """Cut along a line through the centroid at a uniformly random angle."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    theta = rng.uniform(0.0, np.pi)
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    side = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta) >= 0
    return mask & side, mask & ~side


def _unique(masks: list[np.ndarray]) -> list[np.ndarray]:
    seen: set[bytes] = set()
    out = []
    for m in masks:
        key = np.packbits(m).tobytes()
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _jitter(mask: np.ndarray, r: int) -> np.ndarray:  # [H, W] bool
    """Grow (r > 0) or shrink (r < 0) by |r| pixels; the image frame does not erode (the object goes on past it)."""
    from scipy import ndimage

    if r > 0:
        return ndimage.binary_dilation(mask, _CROSS, iterations=r)
    if r < 0:
        return ndimage.binary_erosion(mask, _CROSS, iterations=-r, border_value=1)
    return mask

"""A granularity rule for mask stacks: a whole mask that spills far beyond the masks inside it loses the spill.

SAM's automatic generator sometimes returns an object together with the patch of table or shelf around it (its
"whole" level), and Click-Gaussian's coarse level (the largest mask over a pixel) then pulls the support's
Gaussians to the object in that view. The spill is recognisable inside the view: the merged mask contains the
object's part masks, and most of its area lies outside all of them (the support has no part masks; SAM leaves it
uncovered). A whole mask with its parts, or with a part missing, spills far less. Such a mask is cut back to the
union of the masks it contains; the cut pixels then belong to whatever else covers them, or to no mask.
"""

from __future__ import annotations

import numpy as np

from .maskset import ViewMasks

DEFAULT_MIN_OVERHANG = 0.5
"""Share of a mask's area outside the masks it contains above which the outside is cut off."""


def trim_overhangs(view: ViewMasks, *, min_overhang: float = DEFAULT_MIN_OVERHANG) -> ViewMasks:
    """A copy of `view` in which each mask that contains other masks but lies mostly (≥ `min_overhang` of its
    area) outside them is cut back to their union. `min_overhang` ≥ 1 changes nothing."""
    m = len(view.masks)
    if m < 2 or min_overhang >= 1.0:
        return view
    flat = view.masks.reshape(m, -1)
    areas = flat.sum(1)
    inter = flat.astype(np.float32) @ flat.T.astype(np.float32)  # [M, M] pairwise overlaps in pixels
    contained = (inter >= 0.95 * areas[None, :]) & (areas[None, :] < 0.9 * areas[:, None])  # [i, j]: j inside i
    masks = view.masks
    changed = False
    for i in np.flatnonzero(contained.any(1)):
        inner = flat[contained[i]].any(0)
        outside = flat[i] & ~inner
        if outside.sum() >= min_overhang * areas[i]:
            if not changed:
                masks = view.masks.copy()
                changed = True
            masks[i] = (flat[i] & inner).reshape(view.masks.shape[1:])
    if not changed:
        return view
    return ViewMasks(name=view.name, masks=masks, scores=view.scores, scales=view.scales)

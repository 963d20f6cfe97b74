"""What the training masks look like, gathered while the views stream past, and the warnings it calls for.

A user's mask folder can be nearly empty, hold one mask per view, or masks that each cover the whole image.
Training still finishes on such input (uncovered pixels are a segment of their own, a lone mask gives one group),
but its features then mean little, and the person should be told why in the report and in the manifest rather
than guess from a bad selection later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from ..masks.maskset import ViewMasks

UNCOVERED_WARN = 0.9
"""Share of pixels without any mask above which training warns."""
WHOLE_IMAGE = 0.95
"""A mask covering at least this share of its image counts as a whole-image mask."""


@dataclasses.dataclass
class MaskStats:
    """Counts over the views seen so far (`observe` passes each view through unchanged)."""

    views: int = 0
    pixels: int = 0
    uncovered: int = 0
    masks: int = 0
    whole_image: int = 0
    measured: int = 0  # masks with a finite 3D scale (depth under them)
    views_with_one_mask: int = 0
    views_without_masks: int = 0

    def observe(self, views: Iterable[ViewMasks]) -> Iterator[ViewMasks]:
        for view in views:
            m, h, w = view.masks.shape
            self.views += 1
            self.pixels += h * w
            covered = int(view.masks.any(0).sum()) if m else 0
            self.uncovered += h * w - covered
            self.masks += m
            self.measured += int(np.isfinite(view.scales).sum())
            if m:
                areas = view.masks.reshape(m, -1).sum(1)
                self.whole_image += int((areas >= WHOLE_IMAGE * h * w).sum())
            self.views_with_one_mask += int(m == 1)
            self.views_without_masks += int(m == 0)
            yield view

    @property
    def uncovered_fraction(self) -> float:
        return self.uncovered / self.pixels if self.pixels else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "views": self.views,
            "uncovered_fraction": round(self.uncovered_fraction, 4),
            "masks_per_view": round(self.masks / max(1, self.views), 2),
            "whole_image_masks": self.whole_image,
            "views_with_one_mask": self.views_with_one_mask,
            "views_without_masks": self.views_without_masks,
        }

    def warnings(self) -> list[str]:
        out = []
        if self.views and self.uncovered_fraction >= UNCOVERED_WARN:
            out.append(
                f"{percent(self.uncovered_fraction)} of pixels have no mask: their Gaussians only learn to differ "
                "from the masked ones; check the mask folder, or prepare with SAM"
            )
        if self.masks and self.whole_image >= 0.5 * self.masks:
            out.append(
                f"{self.whole_image} of {self.masks} masks cover the whole image: they group everything together "
                "and teach no segmentation"
            )
        if self.views and self.views_with_one_mask + self.views_without_masks == self.views and self.masks:
            out.append(
                f"every view has at most one mask ({self.masks} masks in {self.views} views): the features can "
                "tell a masked thing from the rest but no part from another; give overlapping masks of several "
                "granularities"
            )
        if self.masks and not self.measured:
            out.append("no mask covers an opaque pixel of the scene (no 3D scale could be measured)")
        if self.views and self.views_without_masks == self.views:
            out.append(f"none of the {self.views} views has a mask: the features carry no segmentation")
        return out


def describe(stats: dict[str, float | int]) -> str:
    """What training saw (`MaskStats.as_dict`), for its summary line: "62% of pixels have no mask, 3.1 masks a view"."""
    uncovered = percent(float(stats["uncovered_fraction"]))
    return f"{uncovered} of pixels have no mask, {stats['masks_per_view']} masks a view"


def percent(fraction: float) -> str:
    """A share as a whole percentage that reads 0% or 100% only when it is exactly that (99.8% is not "100%")."""
    value = 100 * fraction
    if 0 < value < 1 or 99 < value < 100:
        return f"{value:.1f}%".replace("100.0%", "99.9%").replace("0.0%", "0.1%")
    return f"{value:.0f}%"


def finite_or_raise(array: np.ndarray, what: str) -> None:
    """Training must never save NaN features; fail loudly in the trainer rather than silently in a click."""
    if not np.isfinite(array).all():
        raise RuntimeError(f"{what} has non-finite values; this is a bug, please report it with the mask folder")

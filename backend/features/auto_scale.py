"""How SAGA picks a query scale when the user gave none (no slider): one class per rule.

Both rules start from the clicked pixel's whole-mask scale `start` (the largest workspace mask under the click, or
the clicked Gaussians' stored object scale), name the scales they want to look at (`candidates`), and pick one
given the selection's size at each (`choose`; `SagaMethod` counts all candidates in one batched product).

`MarginScale` multiplies the start by a fixed margin. One object's whole-mask scale varies from view to view (it
is measured on the visible part), so the scale at which every view's masks of the object count as whole is not
the clicked view's: on the tabletop the margin needed is ×3 and more, on the shelf a large one takes in support.

`PlateauScale` reads the answer off the selection instead: it grows the scale in half-octave steps from `start`
to one step above every training mask and returns the first scale from which the selection no longer grows by
more than `tolerance` (its plateau). Above every mask SAGA groups the union of all masks, so the plateau is the
largest grouping the masks support, taken at the smallest scale that reaches it.

`GridPlateauScale` (the default) is the plateau rule on a grid shared by every click: the start is rounded to the
nearest eighth of an octave below or above the largest training mask's scale (top · 2^(k/8)) and the sweep steps
by four grid points (a half octave), so every candidate, and therefore every picked scale, is a grid point. Clicks
then meet few distinct automatic scales, and the gated, pruned bank each needs (seconds to build at 1M Gaussians)
is kept and reused (`bank_cache.py`). A half-octave grid (rounding by up to a quarter octave) cost 0.003–0.005 of
3D mIoU on both presets; the eighth-octave grid left them within ±0.002 (README, accuracy section).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class MarginScale:
    """The clicked whole-mask scale times `margin` (the automatic scale before `PlateauScale`)."""

    margin: float = 1.5

    def candidates(self, start: float, top: float) -> list[float]:
        return [start * self.margin]

    def choose(self, scales: Sequence[float], counts: Sequence[int]) -> float:
        return scales[0]


@dataclasses.dataclass(frozen=True)
class PlateauScale:
    """The first scale, going up from `start` in steps of `step`, whose selection is within `tolerance` of every
    larger scale's, up to one step above `top` (the largest training mask's scale)."""

    step: float = math.sqrt(2.0)
    tolerance: float = 0.05
    max_steps: int = 16
    """A bound on the sweep (a start far below `top`, e.g. a speck's mask): 16 half-octaves span ×256."""

    def candidates(self, start: float, top: float) -> list[float]:
        scales = [start]
        while scales[-1] <= top and len(scales) <= self.max_steps:
            scales.append(scales[-1] * self.step)
        return scales

    def choose(self, scales: Sequence[float], counts: Sequence[int]) -> float:  # counts[i]: selection at scales[i]
        after = counts[-1]
        best = scales[-1]
        for s, c in zip(reversed(scales), reversed(counts)):  # largest to smallest
            after = max(after, c)
            if after <= c * (1.0 + self.tolerance):
                best = s
        return best


@dataclasses.dataclass(frozen=True)
class GridPlateauScale(PlateauScale):
    """`PlateauScale` with the start rounded (in log scale) onto the grid top · b^k, b = step^(1 / points_per_step)
    and k an integer, sweeping by `points_per_step` grid points: every candidate is a grid point, so clicks share
    their scales (and the banks built for them)."""

    points_per_step: int = 4

    @property
    def base(self) -> float:
        return self.step ** (1.0 / self.points_per_step)

    def candidates(self, start: float, top: float) -> list[float]:
        base = self.base
        k = grid_index(start, top, base)
        if k is None or not grid_scale(top, base, k) > 0:  # no grid (or below float range): the plain rule
            return super().candidates(start, top)
        scales = [grid_scale(top, base, k)]
        while scales[-1] <= top and len(scales) <= self.max_steps:
            k += self.points_per_step
            scales.append(grid_scale(top, base, k))
        return scales


def grid_index(scale: float, top: float, base: float) -> int | None:
    """k of the grid point top · base^k nearest `scale` in log scale; None when there is no grid."""
    if not (scale > 0 and top > 0 and base > 1 and math.isfinite(scale) and math.isfinite(top)):
        return None
    return round(math.log(scale / top) / math.log(base))


def grid_scale(top: float, base: float, k: int) -> float:
    """The grid point top · base^k, computed as one power (never by repeated multiplication), so the same k always
    gives the same float: the bank cache's key."""
    return top * base**k

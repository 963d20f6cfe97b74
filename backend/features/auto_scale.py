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

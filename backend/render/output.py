"""What every renderer backend returns."""

from __future__ import annotations

import dataclasses

from torch import Tensor


@dataclasses.dataclass
class RenderOutput:
    rgb: Tensor  # [H, W, 3] linear blend of per-Gaussian colours (not clamped to 1), plus the background
    alpha: Tensor  # [H, W] accumulated opacity, 1 - final transmittance
    depth: Tensor  # [H, W] expected camera-space z: Σ w·z / alpha, 0 where alpha = 0
    features: Tensor | None = None  # [H, W, C] Σ w·f (no background, not normalised by alpha)

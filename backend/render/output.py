"""What every renderer backend returns."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass
class RenderOutput:
    rgb: Tensor  # [H, W, 3] linear blend of per-Gaussian colours (not clamped to 1), plus the background
    alpha: Tensor  # [H, W] accumulated opacity, 1 - final transmittance
    depth: Tensor  # [H, W] expected camera-space z: Σ w·z / alpha, 0 where alpha = 0
    features: Tensor | None = None  # [H, W, C] Σ w·f (no background, not normalised by alpha)


def to_uint8(rgb: Tensor) -> np.ndarray:  # rgb [H, W, 3] float → [H, W, 3] uint8
    """Quantise a rendered image the one way splatseg does everywhere (clamp to [0, 1], round to nearest)."""
    return (rgb.detach().clamp(0.0, 1.0) * 255.0 + 0.5).floor().to(torch.uint8).cpu().numpy()

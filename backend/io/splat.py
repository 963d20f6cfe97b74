"""antimatter15's `.splat`: no header, 32 bytes per Gaussian, little-endian.

Per record: position 3×float32, scale 3×float32 (standard deviations, not logs), colour 4×uint8 (r, g, b as the
base colour C0·f_dc + 0.5, a = opacity), rotation 4×uint8 (w, x, y, z of the unit quaternion as v·128 + 128). The
format keeps no SH beyond the base colour, so a .splat loads as SH degree 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from backend.core.errors import InputError
from backend.core.scene import SH_C0, GaussianScene

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
_OPACITY_EPS = 1e-6
_MIN_SCALE = 1e-12


def read_splat(path: str | os.PathLike[str]) -> GaussianScene:
    """Decode a .splat into a `GaussianScene` on the CPU (file order kept)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a .splat model")
    size = path.stat().st_size
    if size == 0 or size % RECORD.itemsize:
        raise InputError(
            f"{path}: {size} bytes is not a whole number of 32-byte .splat records; the file is truncated or not a "
            ".splat, export it again"
        )
    records = np.fromfile(path, dtype=RECORD)
    means = records["position"].astype(np.float32)
    scales = records["scale"].astype(np.float32)
    if not (np.isfinite(means).all() and np.isfinite(scales).all()):
        raise InputError(f"{path}: positions or scales hold NaN/Inf; the file is damaged, export it again")
    if (scales < 0).any():
        raise InputError(f"{path}: negative scales; this is not an antimatter15 .splat, export it again")
    rgba = records["rgba"].astype(np.float32) / 255.0
    alpha = np.clip(rgba[:, 3], _OPACITY_EPS, 1 - _OPACITY_EPS)
    quats = (records["rot"].astype(np.float32) - 128.0) / 128.0  # [N, 4] wxyz
    zero = ~(quats != 0).any(axis=1)
    quats[zero] = (1.0, 0.0, 0.0, 0.0)  # a degenerate rotation byte pattern means "no rotation"
    sh = ((rgba[:, :3] - 0.5) / SH_C0).astype(np.float32)[:, None, :]
    return GaussianScene(
        means=torch.from_numpy(np.ascontiguousarray(means)),
        quats=torch.from_numpy(quats),
        log_scales=torch.from_numpy(np.log(np.maximum(scales, _MIN_SCALE))),
        logit_opacities=torch.from_numpy(np.log(alpha / (1 - alpha)).astype(np.float32)),
        sh=torch.from_numpy(sh),
    )

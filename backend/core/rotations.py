"""Quaternions (wxyz, as INRIA 3DGS, gsplat and viser store them) and rotation matrices: the one conversion each way."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:  # quats [N, 4] wxyz, unit → [N, 3, 3]
    w, x, y, z = quats.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:  # R [N, 3, 3] rotations → [N, 4] wxyz with w ≥ 0
    """Shepperd's method, vectorised: pick per row the largest of |w|, |x|, |y|, |z| to divide by, so no row loses
    precision."""
    m = R
    d0, d1, d2 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    squares = np.stack([1 + d0 + d1 + d2, 1 + d0 - d1 - d2, 1 - d0 + d1 - d2, 1 - d0 - d1 + d2], axis=1)
    pick = np.argmax(squares, axis=1)
    big = 0.5 * np.sqrt(np.clip(squares[np.arange(len(m)), pick], 1e-12, None))
    inv = 0.25 / big
    a21, a12, a02, a20, a10, a01 = m[:, 2, 1], m[:, 1, 2], m[:, 0, 2], m[:, 2, 0], m[:, 1, 0], m[:, 0, 1]
    candidates = np.stack(
        [
            np.stack([big, (a21 - a12) * inv, (a02 - a20) * inv, (a10 - a01) * inv], axis=1),
            np.stack([(a21 - a12) * inv, big, (a01 + a10) * inv, (a02 + a20) * inv], axis=1),
            np.stack([(a02 - a20) * inv, (a01 + a10) * inv, big, (a12 + a21) * inv], axis=1),
            np.stack([(a10 - a01) * inv, (a02 + a20) * inv, (a12 + a21) * inv, big], axis=1),
        ],
        axis=1,
    )  # [N, 4 choices, 4]
    q = candidates[np.arange(len(m)), pick]
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)  # w ≥ 0: one canonical sign

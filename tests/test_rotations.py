"""The one quaternion ↔ matrix pair (backend/core/rotations.py) against viser's SO3 and against each other."""

from __future__ import annotations

import numpy as np
import torch
import viser.transforms as vtf

from backend.core.rotations import quat_to_rotmat, rotmat_to_quat


def test_quaternions_round_trip_and_match_viser():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[:3] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]  # the branches of Shepperd's method where w is not largest
    R = quat_to_rotmat(torch.from_numpy(q)).numpy()
    for i in range(0, 500, 50):
        np.testing.assert_allclose(R[i], vtf.SO3(q[i]).as_matrix(), atol=1e-12)
    back = rotmat_to_quat(R)
    canonical = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    np.testing.assert_allclose(np.abs((back * canonical).sum(1)), 1.0, atol=1e-9)  # same rotation (q ~ -q)
    assert (back[:, 0] >= 0).all()

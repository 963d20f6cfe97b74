"""k nearest 3D neighbours of every Gaussian, computed once (scipy cKDTree) for the spatial smoothness loss and the
floater filter."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def knn_neighbors(means: Tensor | np.ndarray, k: int = 8) -> Tensor:  # means [N, 3] → [N, k] int32, self excluded
    pts = np.ascontiguousarray(means.detach().cpu().numpy() if isinstance(means, Tensor) else means, dtype=np.float64)
    n = len(pts)
    if n == 0:
        return torch.zeros(0, k, dtype=torch.int32)
    from scipy.spatial import cKDTree  # here: the click path imports this module but reads stored neighbours

    kk = min(k + 1, n)
    _, idx = cKDTree(pts).query(pts, k=kk, workers=-1)
    idx = np.asarray(idx).reshape(n, kk)[:, 1:]  # column 0 is the point itself (or a duplicate at distance 0)
    if idx.shape[1] < k:  # fewer Gaussians than k + 1: repeat the last neighbour (or self)
        pad = idx[:, -1:] if idx.shape[1] else np.arange(n)[:, None]
        idx = np.concatenate([idx, np.repeat(pad, k - idx.shape[1], axis=1)], axis=1)
    return torch.from_numpy(idx.astype(np.int32))

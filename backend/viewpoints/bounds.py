"""A robust estimate of where a scene's content is: ignoring far floaters and the background shells of captures.

Trained captures surround the subject with a sparse shell of large, faint Gaussians (sky, walls far away) and
scatter floaters. Counting every Gaussian, their bounding box is many times the subject. Here each Gaussian
weighs its opacity times the number of Gaussians in its voxel (density): the subject is where many opaque
Gaussians crowd together. The centre is the weighted median, the radius a weighted percentile of the distance to it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.core.scene import GaussianScene

_GRID = 64


@dataclasses.dataclass(frozen=True)
class ContentBounds:
    center: np.ndarray  # [3]
    radius: float
    """Distance from `center` within which `percentile` % of the weighted content lies."""
    weights: np.ndarray  # [N] the per-Gaussian weights used (opacity × voxel density), summing to 1


def content_bounds(scene: GaussianScene, *, percentile: float = 90.0) -> ContentBounds:
    means = scene.means.detach().cpu().double().numpy()  # [N, 3]
    if len(means) == 0:
        raise ValueError("an empty scene has no content to look at")
    weights = _density_weights(means, scene.opacities.detach().cpu().double().numpy())
    center = np.array([weighted_quantile(means[:, i], weights, 0.5) for i in range(3)])
    distance = np.linalg.norm(means - center, axis=1)
    radius = float(weighted_quantile(distance, weights, percentile / 100.0))
    return ContentBounds(center=center, radius=max(radius, 1e-6), weights=weights)


def _density_weights(means: np.ndarray, opacity: np.ndarray) -> np.ndarray:  # [N, 3], [N] -> [N]
    """opacity × (Gaussians in the same voxel of a grid over the central 98 % box), normalised."""
    lo, hi = np.percentile(means, 1, axis=0), np.percentile(means, 99, axis=0)
    size = np.maximum(hi - lo, 1e-9)
    cell = np.clip(((means - lo) / size * _GRID).astype(np.int64), -1, _GRID)  # outside the box: cells -1 and GRID
    key = ((cell[:, 0] + 1) * (_GRID + 2) + cell[:, 1] + 1) * (_GRID + 2) + cell[:, 2] + 1
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    w = opacity * counts[inverse]
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:  # [N], [N]
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])

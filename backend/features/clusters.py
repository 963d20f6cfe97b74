"""Global clusters (Click-Gaussian's Global Feature-guided Learning): what the 2D masks of all views agree on.

Each 2D mask of each view gets one feature, the average of the rendered features of its pixels (a sparse product
with the cached contributions). SAM's masks disagree from view to view (a handle merged with its mug here, split
there), but most views see most things the same way, so mask features pile up in a few dense clumps, one per
consistent thing, with the odd views' masks scattered between. HDBSCAN finds the clumps and calls the scatter
noise; the clumps' centroids are the global clusters. Each Gaussian is then assigned to the centroid it is closest
to (when it is close enough), and training pulls it there and pushes it from the others, which irons out what the
inconsistent views taught. The final clusters serve segment-everything and text queries.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclasses.dataclass
class GlobalClusters:
    """One level's global clusters and the Gaussians assigned to them."""

    centroids: Tensor  # [C, D] unit vectors
    labels: Tensor  # [N] int64 cluster of each Gaussian, -1 = none (too far from every centroid)

    @property
    def num_clusters(self) -> int:
        return self.centroids.shape[0]

    @staticmethod
    def empty(num_gaussians: int, dim: int) -> GlobalClusters:
        return GlobalClusters(torch.zeros(0, dim), torch.full((num_gaussians,), -1, dtype=torch.int64))


def mask_average_features(
    rendered: Tensor,  # [R, D] rendered feature of every cached pixel
    mask_of_row: Tensor,  # [R] int global mask id of each pixel at this level
    num_masks: int,
) -> tuple[Tensor, Tensor]:  # (features [M, D] unit, pixel counts [M])
    """The normalised mean rendered feature of each mask over its sampled pixels (masks without one: zero).
    Pixels with mask id −1 (no mask covers them) are left out."""
    d = rendered.shape[1]
    inside = mask_of_row >= 0
    rows = mask_of_row[inside].long()
    sums = torch.zeros(num_masks, d, dtype=rendered.dtype)
    sums.index_add_(0, rows, F.normalize(rendered[inside], dim=1))
    counts = torch.bincount(rows, minlength=num_masks).to(rendered.dtype)
    return F.normalize(sums, dim=1), counts


def hdbscan_labels(
    points: np.ndarray,  # [M, D] unit vectors
    *,
    min_cluster_size: int,
    min_samples: int | None = None,
) -> np.ndarray:  # [M] int cluster label, -1 = noise
    """HDBSCAN on unit vectors (Euclidean distance there is a monotone function of cosine).

    Leaf clusters, not the default excess-of-mass selection: masks that merge two parts in a few views put mask
    features on a bridge between the parts' clumps, and excess of mass then prefers the merged cluster, which GFL
    would pull together. Leaves keep the clumps apart; centroids that really are one thing are fused afterwards
    (`merge_close`).
    """
    if len(points) < max(2, min_cluster_size):
        return np.full(len(points), -1, dtype=np.int64)
    import hdbscan

    with warnings.catch_warnings():  # hdbscan warns through sklearn about deprecated arguments it passes itself
        warnings.simplefilter("ignore")
        clusterer = hdbscan.HDBSCAN(
            min_cluster_size=int(min_cluster_size),
            min_samples=int(min_samples) if min_samples else None,
            cluster_selection_method="leaf",
            metric="euclidean",
            core_dist_n_jobs=1,
        )
        return clusterer.fit_predict(points.astype(np.float64)).astype(np.int64)


def cluster_centroids(
    mask_features: Tensor,  # [M, D] unit
    mask_weights: Tensor,  # [M] ≥ 0 (0 = not sampled)
    *,
    min_cluster_size: int,
    merge_cos: float = 0.95,
) -> Tensor:  # [C, D] unit centroids
    """HDBSCAN over the masks' features, then weighted mean per cluster; near-duplicate centroids are merged."""
    keep = mask_weights > 0
    feats, weights = mask_features[keep], mask_weights[keep]
    labels = torch.from_numpy(hdbscan_labels(feats.numpy(), min_cluster_size=min_cluster_size))
    if labels.numel() == 0 or int(labels.max()) < 0:
        return mask_features.new_zeros(0, mask_features.shape[1])
    num = int(labels.max()) + 1
    valid = labels >= 0
    sums = torch.zeros(num, feats.shape[1])
    sums.index_add_(0, labels[valid], feats[valid] * weights[valid, None])
    centroids = F.normalize(sums, dim=1)
    return merge_close(centroids, merge_cos)


def merge_close(centroids: Tensor, merge_cos: float) -> Tensor:  # [C, D] → [C', D]
    """Greedily fuse centroids whose cosine exceeds `merge_cos` (union-find over the similarity graph)."""
    c = centroids.shape[0]
    if c < 2:
        return centroids
    sim = centroids @ centroids.T
    parent = list(range(c))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in torch.nonzero(torch.triu(sim > merge_cos, diagonal=1)).tolist():
        parent[find(i)] = find(j)
    roots = torch.tensor([find(i) for i in range(c)])
    _, group = torch.unique(roots, return_inverse=True)
    merged = torch.zeros(int(group.max()) + 1, centroids.shape[1])
    merged.index_add_(0, group, centroids)
    return F.normalize(merged, dim=1)


def assign_to_clusters(
    features: Tensor,  # [N, D]
    centroids: Tensor,  # [C, D] unit
    *,
    confidence: float,
    chunk: int = 1 << 18,
) -> Tensor:  # [N] int64, -1 where the best cosine is below `confidence`
    n = features.shape[0]
    out = torch.full((n,), -1, dtype=torch.int64)
    if centroids.shape[0] == 0:
        return out
    with torch.no_grad():
        for s in range(0, n, chunk):
            sim = F.normalize(features[s : s + chunk].float(), dim=1) @ centroids.T
            best, idx = sim.max(dim=1)
            out[s : s + chunk] = torch.where(best >= confidence, idx, torch.full_like(idx, -1))
    return out

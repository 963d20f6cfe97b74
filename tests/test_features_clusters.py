"""Global Feature-guided Learning's clustering: mask averages, HDBSCAN, centroids and assignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.features.clusters import (
    assign_to_clusters,
    cluster_centroids,
    mask_average_features,
    merge_close,
)


def _planted(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three directions, 30 noisy mask features around each, and 10 scattered (inconsistent-view) masks."""
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(3, 12, generator=g), dim=1)
    around = [F.normalize(c + 0.05 * torch.randn(30, 12, generator=g), dim=1) for c in centers]
    scatter = F.normalize(torch.randn(10, 12, generator=g), dim=1)
    return centers, torch.cat([*around, scatter]), torch.ones(100)


def test_gfl_clustering_finds_the_planted_clusters() -> None:
    centers, feats, weights = _planted()
    centroids = cluster_centroids(feats, weights, min_cluster_size=5)
    assert centroids.shape == (3, 12)
    best = (centroids @ centers.T).max(dim=0).values  # each planted centre has a found centroid near it
    assert torch.all(best > 0.99)


def test_assignment_respects_the_confidence() -> None:
    centers, _, _ = _planted()
    near = F.normalize(centers[1] + 0.02 * torch.ones(12), dim=0)
    far = F.normalize(centers.sum(0) * -1, dim=0)
    labels = assign_to_clusters(torch.stack([near, far, centers[2]]), centers, confidence=0.9)
    assert labels.tolist() == [1, -1, 2]


def test_mask_average_features_ignore_unlabelled_pixels() -> None:
    rendered = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [5.0, 5.0]])
    mask_of_row = torch.tensor([0, 1, 1, -1])
    feats, counts = mask_average_features(rendered, mask_of_row, 3)
    assert torch.allclose(feats[0], torch.tensor([1.0, 0.0]))
    assert torch.allclose(feats[1], torch.tensor([0.0, 1.0]))
    assert counts.tolist() == [1.0, 2.0, 0.0]


def test_near_duplicate_centroids_are_merged() -> None:
    a = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [0.0, 1.0, 0.0]]), dim=1)
    assert merge_close(a, 0.99).shape[0] == 2

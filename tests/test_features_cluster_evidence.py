"""A Gaussian keeps its fine global cluster only where its views do not deny it (`features.cluster_evidence`)."""

from __future__ import annotations

import numpy as np
import torch

from backend.features.cluster_evidence import checked_labels, checked_labels_reference, cluster_presence


def test_checked_labels_match_the_reference_on_random_votes() -> None:
    rng = np.random.default_rng(0)
    n, cols, masks, clusters = 200, 6, 30, 4
    mask_cluster = torch.from_numpy(rng.integers(-1, clusters, masks))
    mask_view = torch.from_numpy(rng.integers(-1, cols, masks))
    votes = torch.from_numpy(np.where(rng.random((n, cols)) < 0.3, -1, rng.integers(0, masks, (n, cols))))
    votes = votes.to(torch.int32)
    labels = torch.from_numpy(rng.integers(-1, clusters, n))
    presence = cluster_presence(mask_cluster, mask_view, clusters, cols)
    for max_against in (0.5, 0.25, 0.0):
        got = checked_labels(labels, votes, mask_cluster, presence, max_against=max_against)
        assert torch.equal(
            got, checked_labels_reference(labels, votes, mask_cluster, presence, max_against=max_against)
        )
        assert torch.equal(got, checked_labels(labels, votes, mask_cluster, presence, max_against=max_against, chunk=7))
    got = checked_labels(labels, votes, mask_cluster, presence)
    assert ((got == -1) & (labels >= 0)).any() and (got >= 0).any()  # both kept and dropped assignments happen


def test_a_body_gaussian_by_the_lid_leaves_the_lid_cluster() -> None:
    # Reference views 0–3. Masks: 0, 1, 2 are the lid's own masks in views 0, 1, 2 (cluster 0); 3, 4 the body's in
    # views 0, 1 (cluster 1); 5 a merged lid+body mask in view 3 (no cluster); 6 the body's in view 2 (no cluster).
    mask_cluster = torch.tensor([0, 0, 0, 1, 1, -1, -1])
    mask_view = torch.tensor([0, 1, 2, 0, 1, 3, 2])
    presence = cluster_presence(mask_cluster, mask_view, 2, 4)
    assert presence.tolist() == [[True, True, True, False], [True, True, False, False]]
    votes = torch.tensor(
        [
            [0, 1, 2, 5],  # a lid Gaussian
            [3, 4, 6, 5],  # a body Gaussian whose feature drifted to the lid's cluster: three views deny it
            [3, -1, -1, 5],  # a body Gaussian seen once apart from the lid, and in the merge
            [-1, -1, -1, 5],  # only the merged view: nothing denies the feature's cluster
        ],
        dtype=torch.int32,
    )
    labels = torch.tensor([0, 0, 0, 0])
    assert checked_labels(labels, votes, mask_cluster, presence).tolist() == [0, -1, -1, 0]
    assert checked_labels(torch.tensor([0, 1, 1, -1]), votes, mask_cluster, presence).tolist() == [0, 1, 1, -1]

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


def test_global_clusters_drop_the_assignment_the_views_deny() -> None:
    import dataclasses

    from backend.features.click import ClickConfig, compute_global_clusters
    from backend.features.contrib_cache import ContributionCache
    from backend.features.fine_agreement import gaussian_fine_votes

    # Gaussians 0–3 are part A, 4–7 part B; every view (4) has one mask per part, one pixel per Gaussian. Gaussian 3
    # lies in A's mask in every view but its feature drifted to B's.
    n, views = 8, 4
    fine, mask_start = [], [0]
    for _ in range(views):
        off = mask_start[-1]
        fine.append(np.where(np.arange(n) < 4, off, off + 1))
        mask_start.append(off + 2)
    rows = n * views
    fine_t = torch.from_numpy(np.concatenate(fine).astype(np.int32))
    cache = ContributionCache(
        views=[f"v{i}" for i in range(views)],
        view_start=torch.arange(0, rows + 1, n),
        ids=torch.from_numpy(np.tile(np.arange(n), views)[:, None].astype(np.int32)),
        weights=torch.ones(rows, 1, dtype=torch.float16),
        pixels=torch.zeros(rows, 2, dtype=torch.int16),
        coarse=fine_t.clone(),
        fine=fine_t,
        cover=[torch.from_numpy(np.stack([np.arange(n) < 4, np.arange(n) >= 4], 1)) for _ in range(views)],
        mask_start=torch.tensor(mask_start),
        mask_scale=torch.ones(mask_start[-1]),
        mask_area=torch.ones(mask_start[-1]),
        num_gaussians=n,
    )
    config = ClickConfig()
    a, b = torch.zeros(config.dim), torch.zeros(config.dim)
    a[0] = a[config.coarse_dim] = 1.0
    b[0] = b[config.coarse_dim + 1] = 1.0
    feats = torch.stack([a, a, a, b, b, b, b, b])
    votes = gaussian_fine_votes(cache)
    plain = compute_global_clusters(feats, cache, dataclasses.replace(config, fine_cluster_evidence=None), None, votes)
    checked = compute_global_clusters(feats, cache, config, None, votes)
    fine_plain, fine_checked = plain["fine"].labels, checked["fine"].labels
    assert plain["fine"].num_clusters == 2 and fine_plain[3] == fine_plain[4] != fine_plain[0]
    assert fine_checked[3] == -1  # four views put it in A's mask while B's cluster has a mask there
    assert torch.equal(fine_checked[[0, 1, 2, 4, 5, 6, 7]], fine_plain[[0, 1, 2, 4, 5, 6, 7]])

"""Cross-view agreement of the fine level (`features.fine_agreement`) and the gated fine loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backend.features import losses
from backend.features.click import ClickConfig, _fine_gate
from backend.features.contrib_cache import ContributionCache
from backend.features.fine_agreement import (
    fill_votes,
    fill_votes_reference,
    gaussian_fine_votes,
    gaussian_fine_votes_reference,
    mask_agreement,
    pixel_agreement,
)


def _cache(ids: list[np.ndarray], weights: list[np.ndarray], fine: list[np.ndarray], masks: list[int], n: int):
    """A cache with what the votes need: per view, each pixel's contributors, weights and fine mask (local id)."""
    view_start, mask_start, fine_g = [0], [0], []
    for f, m in zip(fine, masks):
        fine_g.append(np.where(f >= 0, f + mask_start[-1], -1))
        view_start.append(view_start[-1] + len(f))
        mask_start.append(mask_start[-1] + m)
    rows = view_start[-1]
    fine_t = torch.from_numpy(np.concatenate(fine_g).astype(np.int32))
    return ContributionCache(
        views=[f"v{i}" for i in range(len(fine))],
        view_start=torch.tensor(view_start),
        ids=torch.from_numpy(np.concatenate(ids).astype(np.int32)),
        weights=torch.from_numpy(np.concatenate(weights).astype(np.float16)),
        pixels=torch.zeros(rows, 2, dtype=torch.int16),
        coarse=fine_t.clone(),
        fine=fine_t,
        cover=[torch.zeros(len(f), m, dtype=torch.bool) for f, m in zip(fine, masks)],
        mask_start=torch.tensor(mask_start),
        mask_scale=torch.ones(mask_start[-1]),
        mask_area=torch.ones(mask_start[-1]),
        num_gaussians=n,
    )


def test_votes_match_the_reference_on_random_caches() -> None:
    rng = np.random.default_rng(0)
    n, k = 50, 4
    ids, weights, fine, masks = [], [], [], []
    for _ in range(5):
        p, m = int(rng.integers(20, 60)), int(rng.integers(1, 6))
        ids.append(rng.integers(0, n, (p, k)))
        w = np.sort(rng.random((p, k)), axis=1)[:, ::-1] * rng.choice([0.1, 1.0], (p, 1))
        weights.append(w)
        fine.append(np.where(rng.random(p) < 0.1, -1, rng.integers(0, m, p)))
        masks.append(m)
    cache = _cache(ids, weights, fine, masks, n)
    for max_views in (32, 3):
        got = gaussian_fine_votes(cache, max_views=max_views)
        assert got.shape[1] == min(5, max_views)
        assert torch.equal(got, gaussian_fine_votes_reference(cache, max_views=max_views))
        assert (got >= 0).any() and (got < 0).any()  # both votes and abstentions happen


def test_a_view_that_merges_two_parts_loses_the_pull_the_others_contradict() -> None:
    # Gaussians 0 and 1 are two parts; view 0 puts both in one fine mask (a merge), views 1–3 keep them apart.
    ids = [np.array([[0], [1]])] * 4
    weights = [np.ones((2, 1))] * 4
    fine = [np.array([0, 0]), np.array([0, 1]), np.array([1, 0]), np.array([0, 1])]
    cache = _cache(ids, weights, fine, [1, 2, 2, 2], n=2)
    votes = gaussian_fine_votes(cache)
    agree, both = pixel_agreement(votes[[0, 1]])
    assert both[0, 1] == 4 and abs(float(agree[0, 1]) - 0.25) < 1e-6 and float(agree[0, 0]) == 1.0
    merged, split, _ = _fine_gate(cache, votes, torch.tensor([0, 1]), ClickConfig(fine_split_agreement=0.75))
    assert merged[0, 1] and not merged[0, 0] and not split[0, 1]
    # Too few views seeing both: the view's own evidence stands.
    merged, _, _ = _fine_gate(cache, votes, torch.tensor([0, 1]), ClickConfig(fine_agreement_min_views=5))
    assert not merged.any()


def test_a_gated_pull_contributes_nothing_and_the_push_stays() -> None:
    torch.manual_seed(0)
    rendered = torch.randn(4, 6, requires_grad=True)
    coarse = torch.tensor([0, 0, 0, 0])
    fine = torch.tensor([1, 1, 2, 2])
    drop = torch.zeros(4, 4, dtype=torch.bool)
    drop[0, 1] = drop[1, 0] = True  # pixels 0 and 1: one fine mask here, apart elsewhere
    kw = dict(coarse_dim=3, margin_coarse=0.2, margin_fine=0.75)
    _, gated = losses.two_level_contrastive(rendered, coarse, fine, fine_gate=(drop, None), **kw)
    _, plain = losses.two_level_contrastive(rendered, coarse, fine, **kw)
    # only the (2, 3) pull is left; the push over the four cross pairs is unchanged
    sim = losses.cosine_matrix(rendered)
    expected_pull = 1 - sim[2, 3]
    assert not torch.allclose(gated, plain)
    push_plain = plain - ((1 - sim[0, 1]) + (1 - sim[2, 3])) / 2
    assert torch.allclose(gated, expected_pull + push_plain, atol=1e-6)


def test_filled_votes_match_the_reference_and_keep_own_votes() -> None:
    rng = np.random.default_rng(1)
    n, k, v = 60, 5, 4
    votes = torch.from_numpy(np.where(rng.random((n, v)) < 0.6, -1, rng.integers(0, 3, (n, v))).astype(np.int32))
    neighbors = torch.from_numpy(rng.integers(0, n, (n, k)))
    weights = torch.from_numpy(rng.choice([0.0, 0.25, 0.5, 1.0], (n, k)).astype(np.float32))  # sums stay exact
    for w in (None, weights):
        got = fill_votes(votes, neighbors, w, hops=2)
        assert torch.equal(got, fill_votes_reference(votes, neighbors, w, hops=2))
        assert torch.equal(got, fill_votes(votes, neighbors, w, hops=2, chunk=7))  # chunks read the same hop
        own = votes >= 0
        assert torch.equal(got[own], votes[own])
        assert (got >= 0).sum() > own.sum()


def test_a_face_only_merging_views_see_borrows_its_surface_votes() -> None:
    # Gaussian 0 (a leg's face) votes only in view 0, where the leg is merged into the table (mask 7, like the top's
    # Gaussian 2). Its neighbour 1 (the rest of the leg) votes "leg" (mask 3) in views 1–3, where the top votes 9.
    votes = torch.tensor([[7, -1, -1, -1], [7, 3, 3, 3], [7, 9, 9, 9]], dtype=torch.int32)
    neighbors = torch.tensor([[1, 1], [0, 0], [2, 2]])
    agree_before, both_before = pixel_agreement(votes[[0, 2]])
    assert both_before[0, 1] == 1 and float(agree_before[0, 1]) == 1.0  # one view: looks like one thing
    filled = fill_votes(votes, neighbors)
    assert filled[0].tolist() == [7, 3, 3, 3]
    agree, both = pixel_agreement(filled[[0, 2]])
    assert both[0, 1] == 4 and abs(float(agree[0, 1]) - 0.25) < 1e-6


def test_a_mask_that_merges_two_parts_scores_lower_agreement_than_a_part() -> None:
    # Gaussians 0–3 are part A, 4–7 part B. View 0 merges A and B into mask 0; views 1–3 have A and B apart.
    n = 8
    ids, weights, fine, masks = [np.arange(n)[:, None]], [np.ones((n, 1))], [np.zeros(n, int)], [1]
    for _ in range(3):
        ids.append(np.arange(n)[:, None])
        weights.append(np.ones((n, 1)))
        fine.append((np.arange(n) >= 4).astype(int))
        masks.append(2)
    cache = _cache(ids, weights, fine, masks, n)
    agreement = mask_agreement(cache, gaussian_fine_votes(cache))
    merged, part_a = float(agreement[0]), float(agreement[1])
    assert part_a == 1.0 and merged < 0.6


def test_merged_pairs_can_be_pushed_instead() -> None:
    torch.manual_seed(1)
    rendered = torch.randn(4, 6)
    coarse, fine = torch.tensor([0, 0, 0, 0]), torch.tensor([1, 1, 2, 2])
    drop = torch.zeros(4, 4, dtype=torch.bool)
    drop[0, 1] = drop[1, 0] = True
    kw = dict(coarse_dim=3, margin_coarse=0.2, margin_fine=0.0)  # margin 0: every pair with cos > 0 is pushed
    _, pushed = losses.two_level_contrastive(rendered, coarse, fine, fine_gate=(drop, None, drop), **kw)
    _, apart = losses.two_level_contrastive(rendered, coarse, torch.tensor([1, 5, 2, 2]), **kw)
    assert torch.allclose(pushed, apart)  # exactly as if this view had given 0 and 1 masks of their own


def test_the_batch_gate_equals_the_all_pairs_agreement() -> None:
    rng = np.random.default_rng(2)
    n, views = 40, 6
    ids = [rng.integers(0, n, (50, 2)) for _ in range(views)]
    weights = [np.ones((50, 2))] * views
    fine = [rng.integers(0, 3, 50) for _ in range(views)]
    cache = _cache(ids, weights, fine, [3] * views, n)
    votes = gaussian_fine_votes(cache)
    pick = torch.from_numpy(rng.choice(cache.num_rows, 64, replace=False))
    config = ClickConfig(fine_agreement=0.5, fine_agreement_min_views=2)
    merged, _, _ = _fine_gate(cache, votes, pick, config)
    agree, both = pixel_agreement(votes.index_select(0, cache.ids[pick, 0].long()))
    f = cache.fine[pick]
    expected = (f[:, None] == f[None, :]) & (both >= 2) & (agree < 0.5) & ~torch.eye(64, dtype=torch.bool)
    assert merged.any() and torch.equal(merged, expected)


def test_training_pushes_two_parts_apart_that_one_view_merges() -> None:
    from backend.features.click import train_click

    # Gaussians 0–3 are part A, 4–7 part B of one object. Every view has the object's mask (coarse); view 0 also one
    # mask over both parts (a merge), views 1–3 one mask per part. One pixel per Gaussian per view.
    n, views = 8, 4
    coarse, fine, view_start, mask_start = [], [], [0], [0]
    for v in range(views):
        off = mask_start[-1]
        coarse.append(np.full(n, off))
        fine.append(np.full(n, off + 1) if v == 0 else np.where(np.arange(n) < 4, off + 1, off + 2))
        view_start.append(view_start[-1] + n)
        mask_start.append(off + (2 if v == 0 else 3))
    rows = view_start[-1]
    cache = ContributionCache(
        views=[f"v{i}" for i in range(views)],
        view_start=torch.tensor(view_start),
        ids=torch.from_numpy(np.tile(np.arange(n), views)[:, None].astype(np.int32)),
        weights=torch.ones(rows, 1, dtype=torch.float16),
        pixels=torch.zeros(rows, 2, dtype=torch.int16),
        coarse=torch.from_numpy(np.concatenate(coarse).astype(np.int32)),
        fine=torch.from_numpy(np.concatenate(fine).astype(np.int32)),
        cover=[torch.ones(n, int(mask_start[v + 1] - mask_start[v]), dtype=torch.bool) for v in range(views)],
        mask_start=torch.tensor(mask_start),
        mask_scale=torch.ones(mask_start[-1]),
        mask_area=torch.ones(mask_start[-1]),
        num_gaussians=n,
    )
    neighbors = torch.tensor([[(i + 1) % 4 + 4 * (i // 4)] for i in range(n)])  # within each part only
    base = dict(iterations=25, batch_pixels=n, weight_knn=0.0, gfl_start=1.0, fill_unseen=False, seed=0)

    def fine_cos(config: ClickConfig) -> float:  # cosine of the two parts' mean fine halves
        f = train_click(cache, neighbors, config, progress=False).features[:, config.coarse_dim :]
        a, b = F.normalize(f[:4].mean(0), dim=0), F.normalize(f[4:].mean(0), dim=0)
        return float(a @ b)

    plain = fine_cos(ClickConfig(**base, fine_agreement=None, fine_cluster_agreement=None))
    gated = fine_cos(ClickConfig(**base))
    assert gated < plain - 0.1  # measured: 0.19 without the gate, −0.12 with it

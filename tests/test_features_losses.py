"""The contrastive losses and regularisers on hand-built cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from backend.features import losses


def test_positive_pairs_pull_until_identical() -> None:
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    positive = torch.ones(2, 2, dtype=torch.bool)
    assert losses.pair_contrastive(losses.cosine_matrix(same), positive, margin=0.2).item() == pytest.approx(0.0)
    assert losses.pair_contrastive(losses.cosine_matrix(opposite), positive, margin=0.2).item() == pytest.approx(2.0)
    # The gradient moves the two features towards each other.
    x = opposite.clone().requires_grad_(True)
    losses.pair_contrastive(losses.cosine_matrix(x + torch.tensor([0.0, 0.1])), positive, margin=0.2).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_negatives_beyond_the_margin_cost_nothing() -> None:
    # cos = 0.1 < margin 0.3: no loss and no gradient.
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.1, (1 - 0.01) ** 0.5])
    x = torch.stack([a, b]).requires_grad_(True)
    negative = torch.eye(2, dtype=torch.bool)  # only the diagonal is "positive" (and ignored)
    loss = losses.pair_contrastive(losses.cosine_matrix(x), negative, margin=0.3)
    assert loss.item() == pytest.approx(0.0)
    loss.backward()
    assert torch.count_nonzero(x.grad) == 0
    # Inside the margin they are pushed: cos 0.9 → 0.9 − 0.3.
    c = torch.tensor([0.9, (1 - 0.81) ** 0.5])
    near = losses.pair_contrastive(losses.cosine_matrix(torch.stack([a, c])), negative, margin=0.3)
    assert near.item() == pytest.approx(0.6, abs=1e-5)


def test_fine_negatives_leave_the_coarse_half_alone() -> None:
    # Two pixels of one object (same coarse mask) in two different parts: the fine loss pushes them apart, but its
    # gradient must not reach the coarse half (the stop-gradient of the granularity prior).
    g = torch.Generator().manual_seed(0)
    rendered = torch.randn(6, 8, generator=g)
    rendered[:, 4:] = rendered[0, 4:] + 0.01 * torch.randn(6, 4, generator=g)  # fine halves alike: a violation
    rendered.requires_grad_(True)
    coarse = torch.zeros(6, dtype=torch.long)
    fine = torch.arange(6)  # every pixel its own part: no fine positives, only fine negatives
    _, loss_f = losses.two_level_contrastive(rendered, coarse, fine, coarse_dim=4, margin_coarse=0.2, margin_fine=0.5)
    assert loss_f.item() > 0
    loss_f.backward()
    assert torch.count_nonzero(rendered.grad[:, :4]) == 0
    assert torch.count_nonzero(rendered.grad[:, 4:]) > 0


def test_fine_positives_pull_both_halves_and_coarse_level_ignores_fine_labels() -> None:
    rendered = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], requires_grad=True)
    same = torch.zeros(2, dtype=torch.long)
    loss_c, loss_f = losses.two_level_contrastive(
        rendered, same, same, coarse_dim=2, margin_coarse=0.2, margin_fine=0.5
    )
    assert loss_c.item() == pytest.approx(1.0)  # one positive pair at cos 0
    assert loss_f.item() == pytest.approx(1.0)
    loss_f.backward()
    assert torch.count_nonzero(rendered.grad[:, :2]) > 0


def test_unlabelled_pixels_are_nobodys_positive() -> None:
    labels = torch.tensor([-1, -1, 3, 3])
    same = losses.same_group(labels)
    assert not same[0, 1] and not same[0, 0]
    assert same[2, 3] and same[3, 3]


def test_hypersphere_and_rendered_norm() -> None:
    unit = F.normalize(torch.randn(10, 6), dim=1)
    assert losses.hypersphere(unit).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.hypersphere(2 * unit).item() == pytest.approx(1.0, abs=1e-5)
    halves = torch.cat([unit[:, :3] / unit[:, :3].norm(dim=1, keepdim=True), 3 * unit[:, 3:]], 1)
    split = losses.hypersphere(halves, splits=(3, 3)).item()
    assert split == pytest.approx(0.5 * ((3 * unit[:, 3:].norm(dim=1) - 1) ** 2).mean().item(), abs=1e-5)
    assert losses.rendered_norm(0.5 * unit).item() == pytest.approx(0.25, abs=1e-6)


def test_knn_smoothness_is_zero_for_equal_neighbours_and_positive_otherwise() -> None:
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    neighbors = torch.tensor([[1], [0], [0]])
    assert losses.knn_smoothness(feats, neighbors, torch.tensor([0, 1])).item() == 0.0
    assert losses.knn_smoothness(feats, neighbors, torch.tensor([2])).item() == pytest.approx(2.0)


def test_cluster_pull_push() -> None:
    centroids = torch.eye(3)
    at_home = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assigned = torch.tensor([0, 1])
    assert losses.cluster_pull_push(at_home, centroids, assigned, margin=0.3).item() == pytest.approx(0.0)
    between = torch.tensor([[1.0, 1.0, 0.0]]) / 2**0.5  # cos 0.707 to both: pulled to 0, pushed from 1
    value = losses.cluster_pull_push(between, centroids, torch.tensor([0]), margin=0.3).item()
    expected_pull = 1 - 2**-0.5
    expected_push = (2**-0.5 - 0.3) / 2  # mean over the two other centroids (one at cos 0)
    assert value == pytest.approx(expected_pull + expected_push, abs=1e-5)

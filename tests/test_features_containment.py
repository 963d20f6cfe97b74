"""Masks that contain other masks of their view, and the fine pulls their leftover pixels no longer get."""

from __future__ import annotations

import numpy as np
import torch

from backend.features import losses
from backend.features.containment import container_masks, container_masks_reference, residual_pairs
from tests.helpers.cover_caches import cover_cache


def test_containers_match_the_reference_on_random_covers() -> None:
    rng = np.random.default_rng(0)
    covers = []
    for _ in range(6):
        p, m = int(rng.integers(10, 40)), int(rng.integers(0, 6))
        base = rng.random((p, m)) < rng.random(m)[None, :]
        if m >= 2:  # make some masks nested (a whole and its part), some with a stray pixel outside
            base[:, 0] |= base[:, 1]
            base[int(rng.integers(p)), 1] = True
        covers.append(base)
    cache = cover_cache(covers)
    for inside in (0.9, 1.0, 0.5):
        got = container_masks(cache, inside=inside)
        assert torch.equal(got, container_masks_reference(cache, inside=inside))
    assert container_masks(cache).any() and not container_masks(cache).all()


def test_the_rest_of_a_whole_is_neither_pulled_nor_pushed_among_itself() -> None:
    # One view: the object's mask (0) covers pixels 0–9, the body's (1) pixels 0–4; pixels 5–9 are the rest (the
    # coffee 5–6 and the handle 8–9, say). Mask 2 (pixels 10–11) contains nothing.
    cover = np.zeros((12, 3), dtype=bool)
    cover[:10, 0] = True
    cover[:5, 1] = True
    cover[10:, 2] = True
    cache = cover_cache([cover])
    container = container_masks(cache)
    assert container.tolist() == [True, False, False]
    fine = cache.fine
    rest = residual_pairs(fine, container)
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[5:10, 5:10] = True
    assert torch.equal(rest, expected)
    # in the loss: the rest's pairs lose their pull; their push against the body stays
    torch.manual_seed(0)
    rendered = torch.randn(12, 6)
    kw = dict(coarse_dim=3, margin_coarse=0.2, margin_fine=0.0)
    _, gated = losses.two_level_contrastive(rendered, cache.coarse, fine, fine_gate=(rest, None, None), **kw)
    relabelled = fine.clone()
    relabelled[5:10] = torch.arange(100, 105, dtype=relabelled.dtype)  # each its own mask: no pull among them
    _, own = losses.two_level_contrastive(rendered, cache.coarse, relabelled, **kw)
    # `own` also pushes the rest's pixels apart from each other: the gated loss must not
    sim = losses.cosine_matrix(rendered)
    neg_own = (cache.coarse[:, None] == cache.coarse[None, :]) & (relabelled[:, None] != relabelled[None, :])
    neg_gated = neg_own & ~expected
    push = lambda neg: (torch.relu(sim) * neg * (1 - torch.eye(12))).sum() / (neg.float() * (1 - torch.eye(12))).sum()  # noqa: E731
    assert torch.allclose(gated - push(neg_gated), own - push(neg_own), atol=1e-6)  # the same pulls


def test_training_no_longer_pulls_two_unmasked_parts_of_a_whole_together() -> None:
    import torch.nn.functional as F

    from backend.features.click import ClickConfig, train_click

    # Gaussians 0–3 are a mug's body (a mask of its own in every view), 4–7 its coffee and 8–11 its handle, which
    # no view masks: their pixels' finest mask is the whole mug's. One pixel per Gaussian per view.
    n, views = 12, 4
    cover = np.zeros((n, 2), dtype=bool)
    cover[:, 0] = True  # the mug
    cover[:4, 1] = True  # its body
    cache = cover_cache([cover] * views)
    neighbors = torch.tensor([[(i + 1) % 4 + 4 * (i // 4)] for i in range(n)])  # within each part only
    base = dict(iterations=25, batch_pixels=n, weight_knn=0.0, gfl_start=1.0, fill_unseen=False, seed=0)

    def rest_cos(config: ClickConfig) -> float:  # cosine of the coffee's and the handle's mean fine halves
        f = train_click(cache, neighbors, config, progress=False).features[:, config.coarse_dim :]
        a, b = F.normalize(f[4:8].mean(0), dim=0), F.normalize(f[8:].mean(0), dim=0)
        return float(a @ b)

    pulled = rest_cos(ClickConfig(**base, fine_residual_pull=True))
    left = rest_cos(ClickConfig(**base, fine_residual_pull=False))
    assert pulled > 0.5 and left < pulled - 0.3, (pulled, left)  # measured: 0.84 pulled, −0.02 left alone

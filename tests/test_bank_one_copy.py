"""The field keeps one copy of each bank (the `PrunedBank`'s blocked one): every reader of it gets the same bits as
from the bank in Gaussian order (the reference layout, which the field kept beside it before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features.field import FeatureField
from backend.features.grow import NeighbourGrowth
from backend.features.hidden import feature_pairs
from backend.features.neighbors import knn_neighbors
from backend.features.pieces import SeparatePieces
from backend.features.pruned import PrunedBank


def _bank(n: int, dim: int, seed: int, *, adversarial: bool = False) -> torch.Tensor:  # [D, N] unit columns
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(7, dim, generator=g), dim=1)
    lab = torch.randint(0, 7, (n,), generator=g)
    bank = F.normalize(centres[lab] + 0.3 * torch.randn(n, dim, generator=g), dim=1)
    if adversarial:  # duplicated columns, a zero one, non-finite ones (the dead block), a lone column at the end
        bank[5:40] = bank[4]
        bank[41] = 0.0
        bank[42, 0] = float("nan")
        bank[43, 1] = float("inf")
        bank[-1] = -bank[0]
    return bank.T.contiguous()


@pytest.mark.parametrize(("n", "dim", "adversarial"), [(3000, 12, False), (2500, 24, True), (2, 12, False)])
def test_the_blocked_copy_gives_back_the_bank_and_its_scores_bit_for_bit(n, dim, adversarial) -> None:
    bank = _bank(n, dim, seed=n + dim, adversarial=adversarial)
    pruned = PrunedBank(bank, blocks=16, sample=1000)
    np.testing.assert_array_equal(pruned.in_gaussian_order(), bank.numpy())  # NaN where NaN: the same bits
    # The tiles are the only copy: the bank handed in is read, not kept, and each column sits at its block position.
    assert not np.shares_memory(pruned.tiles, bank.numpy())
    assert pruned.tiles.shape == (-(-n // 16), dim, 16)
    np.testing.assert_array_equal(pruned.columns_between(0, n), bank.numpy()[:, pruned.perm])
    np.testing.assert_array_equal(pruned.rows(np.arange(n)), bank.numpy()[:, pruned.perm].T)
    if n > 16:
        np.testing.assert_array_equal(pruned.tiles[-1, :, n % 16 or 16 :], 0.0)  # the last tile's spare columns
    assert pruned.rank.dtype == np.int32
    np.testing.assert_array_equal(pruned.perm[pruned.rank], np.arange(n))
    g = torch.Generator().manual_seed(1)
    for p in (0, 1, 3):
        queries = F.normalize(torch.randn(p, dim, generator=g), dim=1)
        expected = FeatureField._scores(queries, bank).numpy()  # the whole bank in Gaussian order
        np.testing.assert_array_equal(pruned.scores(queries.numpy()), expected)


def test_growth_over_the_blocked_copy_has_the_same_cosines_and_graph() -> None:
    n = 4000
    g = torch.Generator().manual_seed(2)
    means = torch.randn(n, 3, generator=g)
    neighbors = knn_neighbors(means, 8).numpy()
    bank = _bank(n, 24, seed=3)
    pruned = PrunedBank(bank, blocks=16, sample=1000)
    reference = NeighbourGrowth(neighbors, bank.T, order=pruned.perm)
    blocked = NeighbourGrowth(neighbors, pruned, order=pruned.perm, rank=pruned.rank)
    np.testing.assert_array_equal(blocked.cos, reference.cos)
    np.testing.assert_array_equal(blocked.rank, reference.rank)
    cut = float(np.quantile(reference.cos, 0.3))
    for name in ("indptr", "backbone_end", "indices", "component"):
        np.testing.assert_array_equal(getattr(blocked._symmetric(cut), name), getattr(reference._symmetric(cut), name))
    with pytest.raises(ValueError, match="inverse"):
        NeighbourGrowth(neighbors, bank.T, rank=pruned.rank)  # a rank without its order


@pytest.mark.parametrize("with_clusters", [False, True])
def test_pieces_and_hidden_pairs_read_the_blocked_copy_as_the_bank(with_clusters: bool) -> None:
    n = 3000
    g = torch.Generator().manual_seed(4)
    neighbors = knn_neighbors(torch.randn(n, 3, generator=g), 6).numpy()
    bank = _bank(n, 12, seed=5)
    pruned = PrunedBank(bank, blocks=16, sample=1000)
    clusters = np.random.default_rng(0).integers(-1, 3, n) if with_clusters else None
    plain = SeparatePieces(neighbors, bank, clusters)
    blocked = SeparatePieces(neighbors, pruned, clusters, columns=pruned.rank)
    rng = np.random.default_rng(6)
    for _ in range(20):
        selected = np.sort(rng.choice(n, size=rng.integers(50, 2000), replace=False))
        grown = np.sort(rng.choice(selected, size=rng.integers(1, selected.size), replace=False))
        seeds = grown[:2]
        for cut in (-1.0, 0.0, 0.5):
            np.testing.assert_array_equal(
                blocked(selected, grown, seeds, piece_cos=cut), plain(selected, grown, seeds, piece_cos=cut)
            )
    a, b = rng.integers(0, n, 50_000), rng.integers(0, n, 50_000)
    for cos in (0.0, 0.5, 0.9):
        expected = feature_pairs((a, b), bank.numpy(), cos, chunk=7000)
        got = feature_pairs((a, b), pruned, cos, chunk=7000, columns=pruned.rank)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_a_warmed_field_keeps_one_copy_and_selects_as_a_field_that_never_blocked_its_banks() -> None:
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=20_000)
    g = torch.Generator().manual_seed(7)
    lab = torch.from_numpy(synth.part_labels.astype(np.int64))
    centres = torch.randn(int(lab.max()) + 1, 24, generator=g)
    raw = centres[lab] + 0.3 * torch.randn(len(lab), 24, generator=g)
    feats = torch.cat([F.normalize(raw[:, :12], dim=1), F.normalize(raw[:, 12:], dim=1)], dim=1)
    tensors = {"features": feats, "coarse_centroids": torch.zeros(0, 12)}
    field = FeatureField(synth.scene, "click", dict(tensors)).warm_up()
    plain = FeatureField(synth.scene, "click", dict(tensors))
    plain.fast = False  # never makes a `PrunedBank`: every reader takes the banks in Gaussian order
    assert field.impl._banks == {}  # the method forgot them: the blocked copies are the only ones
    assert ("coarse", None) in field._pruned and ("fine", None) in field._pruned  # the growth's blocked fine bank
    assert all(bank is None for bank, _ in field._pruned.values())
    for level in ("coarse", "fine"):
        np.testing.assert_array_equal(field.gaussian_features(level).numpy(), plain.gaussian_features(level).numpy())
    cam = orbit_cameras(synth, views=1, resolution=120, seed=0)[0]
    rng = np.random.default_rng(0)
    pixels = [(float(x), float(y)) for x, y in rng.uniform(0.2, 0.8, (8, 2)) * (cam.width, cam.height)]
    selected = 0
    for i, px in enumerate(pixels):
        for level in ("coarse", "fine"):
            neg = [pixels[i - 1]] if i % 3 == 0 else []
            got, expected = field.segment(cam, [px], neg, level=level), plain.segment(cam, [px], neg, level=level)
            np.testing.assert_array_equal(got.mask, expected.mask)
            np.testing.assert_array_equal(got.scores, expected.scores)
            selected += expected.count
    assert selected > 0
    assert field.impl._banks == {}  # no click brought them back


@pytest.mark.parametrize("method", ["click", "saga"])
def test_banks_evicted_and_rebuilt_select_as_the_reference(method: str) -> None:
    """One bank kept at a time: each click at another granularity evicts the previous `PrunedBank` and rebuilds it
    later (a new block order); the growth, pieces and hidden pairs made over the old one must not be read with the
    new one's rank, and scores read after the eviction are still the bank's."""
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=8000)
    g = torch.Generator().manual_seed(7)
    lab = torch.from_numpy(synth.part_labels.astype(np.int64))
    dim = 24 if method == "click" else 32
    raw = torch.randn(int(lab.max()) + 1, dim, generator=g)[lab] + 0.3 * torch.randn(len(lab), dim, generator=g)
    if method == "click":
        feats = torch.cat([F.normalize(raw[:, :12], dim=1), F.normalize(raw[:, 12:], dim=1)], dim=1)
        tensors = {"features": feats, "coarse_centroids": torch.zeros(0, 12)}
        grains = [{"level": "coarse"}, {"level": "fine"}]
    else:
        tensors = {
            "features": F.normalize(raw, dim=1),
            "gate_weight": torch.randn(32, 1, generator=g),
            "gate_bias": torch.zeros(32),
            "quantiles": torch.linspace(0.01, 1.0, 50),
        }
        grains = [{"scale": 0.05}, {"scale": 0.2}, {"scale": 0.6}]
    field = FeatureField(synth.scene, method, dict(tensors))
    field.build_in_background = False
    field._pruned.keep, field._pruned.budget = 1, 1  # every new granularity evicts the last one's bank
    field.warm_up()
    plain = FeatureField(synth.scene, method, dict(tensors))
    plain.fast = False
    cam = orbit_cameras(synth, views=1, resolution=96, seed=0)[0]
    rng = np.random.default_rng(0)
    pixels = [(float(x), float(y)) for x, y in rng.uniform(0.25, 0.75, (3, 2)) * (cam.width, cam.height)]
    held, selected = [], 0
    for _ in range(2):
        for i, px in enumerate(pixels):
            for grain in grains:
                neg = [pixels[i - 1]] if i == 0 else []
                got, expected = field.segment(cam, [px], neg, **grain), plain.segment(cam, [px], neg, **grain)
                np.testing.assert_array_equal(got.mask, expected.mask)
                held.append((got, expected))
                selected += expected.count
    assert selected > 0 and len(field._pruned) == 1
    for got, expected in held:  # most of their banks are evicted by now
        np.testing.assert_array_equal(got.scores, expected.scores)

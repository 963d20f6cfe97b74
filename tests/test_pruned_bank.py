"""`PrunedBank` (the click's fast path) selects exactly what the whole-bank reference selects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features.pruned import PrunedBank, reference_select


def _grouped_bank(n: int, dim: int, groups: int, noise: float, seed: int) -> torch.Tensor:  # [D, N] unit columns
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(groups, dim, generator=g), dim=1)
    lab = torch.randint(0, groups, (n,), generator=g)
    return F.normalize(centres[lab] + noise * torch.randn(n, dim, generator=g), dim=1).T.contiguous()


@pytest.mark.parametrize(
    ("dim", "groups", "noise", "blocks"),
    [(12, 20, 0.15, 64), (24, 50, 0.3, 16), (32, 5, 1.0, 64), (12, 1, 5.0, 8)],  # tight … pure noise
)
def test_pruned_selection_equals_reference_on_random_banks(dim, groups, noise, blocks):
    bank = _grouped_bank(20_000, dim, groups, noise, seed=dim + groups)
    pruned = PrunedBank(bank, blocks=blocks, sample=4000)
    rng = torch.Generator().manual_seed(1)
    for trial in range(12):
        # Queries from the bank itself (a click blends nearby features) and from nowhere in particular.
        cols = torch.randint(0, bank.shape[1], (3,), generator=rng)
        pos = bank[:, cols[: 1 + trial % 3]].T.clone()
        if trial % 2:
            pos = F.normalize(pos + 0.2 * torch.randn(pos.shape, generator=rng), dim=1)
        neg = None if trial % 3 else F.normalize(torch.randn(2, dim, generator=rng), dim=1)
        for thr in (0.5, 0.85, 0.95):
            ids, read = pruned.select(pos, neg, thr)
            np.testing.assert_array_equal(np.sort(ids), reference_select(pos, neg, bank, thr))
            assert 0.0 <= read <= 1.0


def test_pruned_bank_skips_most_of_a_grouped_scene():
    bank = _grouped_bank(20_000, 12, 40, 0.1, seed=3)
    pruned = PrunedBank(bank, blocks=64, sample=4000)
    _, read = pruned.select(bank[:, :1].T.clone(), None, 0.85)
    assert read < 0.25  # one object's blocks, not the scene


def _scene_features(object_labels: np.ndarray, part_labels: np.ndarray, noise: float, seed: int) -> torch.Tensor:
    """Click features grouped by the scene's own objects (coarse half) and parts (fine half), [N, 24]."""
    g = torch.Generator().manual_seed(seed)

    def half(labels: np.ndarray) -> torch.Tensor:
        lab = torch.from_numpy(labels.astype(np.int64))
        centres = F.normalize(torch.randn(int(lab.max()) + 1, 12, generator=g), dim=1)
        return F.normalize(centres[lab] + noise * torch.randn(len(lab), 12, generator=g), dim=1)

    return torch.cat([half(object_labels), half(part_labels)], dim=1)


def test_field_fast_path_equals_reference_path_on_a_scene():
    """`FeatureField.segment` with `fast` on and off on the tabletop: the same masks (positives, negatives, both
    levels, floater filter on and off), and `scores` still the whole product."""
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=30_000)
    feats = _scene_features(synth.object_labels, synth.part_labels, noise=0.3, seed=2)
    field = FeatureField(synth.scene, "click", {"features": feats, "coarse_centroids": torch.zeros(0, 12)})
    cam = orbit_cameras(synth, views=1, resolution=120, seed=0)[0]
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0.15, 0.85, 12) * cam.width, rng.uniform(0.15, 0.85, 12) * cam.height
    pixels = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    selected = 0
    for i in range(0, len(pixels), 2):
        for level in ("coarse", "fine"):
            for kwargs in ({}, {"filter_floaters": False}, {"threshold": 0.6}):
                neg = [pixels[i + 1]] if i % 4 == 0 else []
                field.fast = True
                fast = field.segment(cam, [pixels[i]], neg, level=level, **kwargs)
                field.fast = False
                ref = field.segment(cam, [pixels[i]], neg, level=level, **kwargs)
                np.testing.assert_array_equal(fast.mask, ref.mask)
                np.testing.assert_array_equal(fast.scores, ref.scores)
                selected += ref.count
    assert selected > 0  # the clicks hit something


def test_non_finite_features_select_as_the_reference_and_do_not_hide_others():
    bank = _grouped_bank(5000, 12, 6, 0.1, seed=7)
    bank[:, ::97] = float("nan")
    bank[3, 5::131] = float("inf")
    pruned = PrunedBank(bank, blocks=16, sample=2000)
    for col in (1, 2, 3, 10, 4000):
        q = bank[:, col][None].clone()
        got = np.sort(pruned.select(q, None, 0.85)[0])
        np.testing.assert_array_equal(got, reference_select(q, None, bank, 0.85))
        assert got.size > 0
    nan_q = torch.full((1, 12), float("nan"))
    assert pruned.select(nan_q, None, 0.85)[0].size == reference_select(nan_q, None, bank, 0.85).size == 0

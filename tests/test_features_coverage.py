"""The uncovered share of each Gaussian (backend/features/coverage.py) and the coarse click's drop of bare ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.features.contrib_cache import ContributionCache
from backend.features.coverage import drop_uncovered, uncovered_share


def _cache(ids, weights, coarse, stands_for, n) -> ContributionCache:
    r = len(coarse)
    return ContributionCache(
        views=["v"],
        view_start=torch.tensor([0, r]),
        ids=torch.tensor(ids, dtype=torch.int32),
        weights=torch.tensor(weights, dtype=torch.float16),
        pixels=torch.zeros(r, 2, dtype=torch.int16),
        coarse=torch.tensor(coarse, dtype=torch.int32),
        fine=torch.tensor(coarse, dtype=torch.int32),
        cover=[torch.zeros(r, 1, dtype=torch.bool)],
        mask_start=torch.tensor([0, 1]),
        mask_scale=torch.ones(1),
        mask_area=torch.ones(1),
        num_gaussians=n,
        stands_for=None if stands_for is None else torch.tensor(stands_for, dtype=torch.float32),
    )


def test_uncovered_share_matches_a_plain_loop_and_counts_each_row_for_its_area() -> None:
    # Gaussian 0 renders in masked pixels, 1 in both, 2 only where no mask is, 3 nowhere.
    ids = [[0, 1], [1, 0], [1, 2], [2, 1]]
    weights = [[0.5, 0.25], [0.5, 0.25], [0.5, 0.5], [0.75, 0.25]]
    coarse = [0, 0, -1, -1]
    stands = [1.0, 1.0, 10.0, 10.0]  # masked rows sampled ten times as densely as bare ones
    share = uncovered_share(_cache(ids, weights, coarse, stands, 4)).numpy()
    expected = []
    for g in range(3):
        tot = bare = 0.0
        for row in range(4):
            for j in range(2):
                if ids[row][j] == g:
                    w = weights[row][j] * stands[row]
                    tot += w
                    bare += w * (coarse[row] < 0)
        expected.append(bare / tot)
    assert share[:3] == pytest.approx(expected, rel=1e-3)
    assert share[3] == 0.0  # unseen: nothing says it is bare
    # Without the areas each row counts once: Gaussian 1 looks mostly masked (2 of 3 rows' weight).
    plain = uncovered_share(_cache(ids, weights, coarse, None, 4)).numpy()
    assert plain[1] == pytest.approx((0.5 + 0.25) / (0.25 + 0.5 + 0.5 + 0.25), rel=1e-3)
    assert share[1] > 0.8 > plain[1]


def test_drop_uncovered_keeps_the_object_and_spares_a_click_on_the_bare_floor() -> None:
    share = torch.tensor([0.1, 0.2, 0.95, 0.9, float("nan"), 0.85])
    selected = np.array([0, 1, 2, 3, 4, 5])
    assert drop_uncovered(selected, np.array([0, 1]), share, 0.8).tolist() == [0, 1, 4]
    assert drop_uncovered(selected, np.array([2, 3]), share, 0.8).tolist() == selected.tolist()  # floor clicked
    assert drop_uncovered(selected, np.array([4]), share, 0.8).tolist() == selected.tolist()  # unknown: keep all


@pytest.fixture
def tiny_scene(tmp_path_factory: pytest.TempPathFactory):
    from tests.helpers.feature_scenes import prepared_tiny_scene

    return prepared_tiny_scene(tmp_path_factory)


def test_click_coarse_level_drops_the_bare_support_and_the_fine_level_does_not(tiny_scene) -> None:
    # Every Gaussian gets one feature, so a click selects everything; the ground (no mask covers it) is bare.
    from backend.features.field import FeatureField
    from backend.features.neighbors import knn_neighbors
    from backend.render import pixel_center

    n = len(tiny_scene.scene)
    ground = tiny_scene.labels == 0
    feats = torch.ones(n, 24)
    tensors = {
        "features": feats,
        "coarse_labels": torch.zeros(n, dtype=torch.int32),
        "fine_labels": torch.zeros(n, dtype=torch.int32),
        "coarse_centroids": torch.ones(1, 12),
        "fine_centroids": torch.ones(1, 24),
        "neighbors": knn_neighbors(tiny_scene.scene.means, 8),
        "uncovered_share": torch.from_numpy(np.where(ground, 0.95, 0.1).astype(np.float32)),
    }
    field = FeatureField(tiny_scene.scene, "click", tensors)
    cam = tiny_scene.cameras[0]
    x, y = tiny_scene.deepest_pixel(cam.name, (3,))  # on B
    coarse = field.segment(cam, [pixel_center(x, y)], level="coarse").mask
    assert coarse[~ground].all() and not coarse[ground].any()
    assert field.segment(cam, [pixel_center(x, y)], level="fine").mask[ground].any()  # parts: not this rule
    assert field.segment(cam, [pixel_center(x, y)], level="coarse", filter_floaters=False).mask.all()
    # A click on the bare ground keeps the ground (the clicked Gaussians are bare themselves).
    lab = tiny_scene.label_maps[cam.name]
    gy, gx = np.argwhere(lab == 0)[len(np.argwhere(lab == 0)) // 2]
    on_ground = field.segment(cam, [pixel_center(int(gx), int(gy))], level="coarse").mask
    assert on_ground[ground].sum() > 0.5 * ground.sum()
    # A features file without the tensor (trained before it existed) selects as before.
    del tensors["uncovered_share"]
    assert (
        FeatureField(tiny_scene.scene, "click", tensors)
        .segment(cam, [pixel_center(x, y)], level="coarse")
        .mask[ground]
        .any()
    )

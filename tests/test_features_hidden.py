"""Hidden Gaussians follow the seen Gaussians of their own surface (backend/features/hidden.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.features.hidden import (
    HiddenPatches,
    feature_pairs,
    follow_seen_reference,
    hidden_mask,
    splat_normals,
    surface_pairs,
)
from backend.features.neighbors import knn_neighbors


def _wall_on_floor() -> dict[str, np.ndarray]:
    """A floor (z = 0, normals up) with a wall standing on it (y = 0, normals along y); the wall's lowest rows and
    the floor next to it are hidden, as an object's base and the support around it are under the support's
    splats."""
    rng = np.random.default_rng(0)
    step = 0.05
    g = np.arange(-0.5, 0.5 + 1e-9, step)
    fx, fy = np.meshgrid(g, g)
    floor = np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)], 1)
    wx, wz = np.meshgrid(g, np.arange(step, 1.0 + 1e-9, step))
    wall = np.stack([wx.ravel(), np.zeros(wx.size), wz.ravel()], 1)
    means = np.concatenate([floor, wall]) + rng.normal(0, 0.002, (len(floor) + len(wall), 3))
    normals = np.concatenate([np.tile([0.0, 0.0, 1.0], (len(floor), 1)), np.tile([0.0, 1.0, 0.0], (len(wall), 1))])
    is_wall = np.arange(len(means)) >= len(floor)
    hidden = np.where(is_wall, means[:, 2] < 0.22, np.abs(means[:, 1]) < 0.12)
    return {"means": means, "normals": normals.astype(np.float32), "is_wall": is_wall, "hidden": hidden}


def _patches(scene: dict[str, np.ndarray], normal_cos: float = 0.9) -> tuple[HiddenPatches, tuple]:
    nb = knn_neighbors(torch.from_numpy(scene["means"]).float(), 8).numpy()
    pairs = surface_pairs(nb, scene["normals"], np.ones(len(nb), dtype=bool), np.ones(len(nb)), normal_cos)
    return HiddenPatches(scene["hidden"], pairs), pairs


def test_a_click_on_the_wall_takes_its_hidden_base_and_a_click_on_the_floor_gives_it_back() -> None:
    s = _wall_on_floor()
    patches, pairs = _patches(s)
    wall, hidden = s["is_wall"], s["hidden"]
    # The wall's click: its features selected only the seen wall (the base looked like the floor).
    on_wall = patches(np.flatnonzero(wall & ~hidden))
    assert set(on_wall.tolist()) == set(np.flatnonzero(wall).tolist())
    # The floor's click: its features selected the whole floor and the wall's hidden base with it.
    on_floor = patches(np.flatnonzero(~wall | hidden))
    assert set(on_floor.tolist()) == set(np.flatnonzero(~wall).tolist())
    # What was clicked stays, hidden or not: a click on the wall's base keeps the base.
    base = np.flatnonzero(wall & hidden)
    assert np.isin(base, patches(np.flatnonzero(~wall | hidden), base[:1])).all()
    # Without the normals' test the wall's base and the hidden floor are one patch: the floor's links outvote the
    # wall's, so a click on the wall loses its base (what the crease test is for).
    merged, _ = _patches(s, normal_cos=-1.0)
    assert not np.isin(np.flatnonzero(wall & hidden), merged(np.flatnonzero(wall & ~hidden))).all()
    for selected in (np.flatnonzero(wall & ~hidden), np.flatnonzero(~wall | hidden)):
        assert patches(selected).tolist() == follow_seen_reference(selected, hidden, pairs).tolist()


@pytest.mark.parametrize("keep_selected", [False, True])
def test_hidden_patches_match_the_plain_search_on_random_graphs(keep_selected: bool) -> None:
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(1, 60))
        nb = rng.integers(0, n, size=(n, 4))
        normals = rng.normal(size=(n, 3)).astype(np.float32)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        flat = rng.random(n) < 0.7
        pairs = surface_pairs(nb, normals, flat, rng.uniform(1, 3, n), 0.5)
        hidden = rng.random(n) < rng.random()
        patches = HiddenPatches(hidden, pairs, keep_selected=keep_selected)
        for _ in range(4):
            selected = np.flatnonzero(rng.random(n) < rng.random())
            fast = patches(selected)
            ref = follow_seen_reference(selected, hidden, pairs, keep_selected=keep_selected)
            assert fast.tolist() == ref.tolist(), trial
            seeds = rng.integers(0, n, size=3)
            fast = patches(selected, seeds)
            ref = follow_seen_reference(selected, hidden, pairs, seeds, keep_selected=keep_selected)
            assert fast.tolist() == ref.tolist(), trial
            if keep_selected:
                assert np.isin(selected, fast).all()
            # the ids path (the previous one) and the selection in any order, repeated ids included
            assert patches.follow_ids(selected, seeds).tolist() == fast.tolist(), trial
            shuffled = rng.permutation(np.concatenate([selected, selected[: len(selected) // 2]]))
            assert patches(shuffled, seeds).tolist() == fast.tolist(), trial
        # seen Gaussians selected, but none linked to a patch: no votes, yet every linked patch is dropped
        unlinked = np.flatnonzero(~hidden & (np.diff(patches.link_ptr) == 0))
        selected = np.concatenate([unlinked, np.flatnonzero(hidden)])
        ref = follow_seen_reference(selected, hidden, pairs, keep_selected=keep_selected)
        assert patches(selected).tolist() == ref.tolist(), trial
    assert HiddenPatches(np.zeros(3, bool), (np.zeros(0, np.int64),) * 2)(np.zeros(0, np.int64)).size == 0


def test_at_a_part_level_the_patches_follow_the_features_and_only_add() -> None:
    # The wall's hidden base and the hidden floor beside it as one smooth surface across a seam (normals not
    # tested), as the hidden faces between two stacked books are: with the surface alone the floor's links outvote
    # the wall's. With the features (the wall's base carries the wall's), the patch splits at the seam.
    s = _wall_on_floor()
    wall, hidden = s["is_wall"], s["hidden"]
    nb = knn_neighbors(torch.from_numpy(s["means"]).float(), 8).numpy()
    n = len(nb)
    pairs = surface_pairs(nb, s["normals"], np.ones(n, dtype=bool), np.ones(n), -1.0)
    features = np.where(wall[:, None], [[1.0, 0.0]], [[0.0, 1.0]]).astype(np.float32)
    a, b = feature_pairs(pairs, np.ascontiguousarray(features.T), 0.9)
    assert (wall[a] == wall[b]).all() and a.size == int((wall[pairs[0]] == wall[pairs[1]]).sum())
    by_surface = HiddenPatches(hidden, pairs)
    by_features = HiddenPatches(hidden, (a, b), keep_selected=True)
    seen_wall = np.flatnonzero(wall & ~hidden)
    assert not np.isin(np.flatnonzero(wall & hidden), by_surface(seen_wall)).all()
    assert set(by_features(seen_wall).tolist()) == set(np.flatnonzero(wall).tolist())
    # Hidden floor Gaussians the features selected with the wall stay (the rule only adds at a part level).
    stray = np.flatnonzero(~wall & hidden)[:5]
    assert np.isin(stray, by_features(np.concatenate([seen_wall, stray]))).all()
    assert not np.isin(stray, HiddenPatches(hidden, (a, b))(np.concatenate([seen_wall, stray]))).any()


def test_surface_pairs_keep_agreeing_or_round_neighbours_once() -> None:
    nb = np.array([[1, 2], [0, 2], [0, 1]])
    normals = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0]], dtype=np.float32)  # 0, 1 agree up to sign; 2 is across
    size = np.ones(3)
    a, b = surface_pairs(nb, normals, np.ones(3, bool), size, 0.9)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1)]
    a, b = surface_pairs(nb, normals, np.array([True, True, False]), size, 0.9)  # 2 is round: no normal to disagree
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (1, 2)]
    # A splat three times the size of its neighbours is another surface (a support under an object's bottom).
    a, b = surface_pairs(nb, normals, np.array([True, True, False]), np.array([1.0, 3.0, 1.5]), 0.9)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 2), (1, 2)]


def test_splat_normals_are_the_shortest_axis_and_round_splats_have_none() -> None:
    half = math.radians(30) / 2  # a turn of 30° about x: the local z axis becomes (0, −sin 30°, cos 30°)
    quats = torch.tensor([[math.cos(half), math.sin(half), 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    scales = torch.tensor([[0.1, 0.1, 0.01], [0.1, 0.09, 0.08]])
    normals, flat, size = splat_normals(quats, scales)
    assert np.abs(normals[0]) == pytest.approx([0.0, 0.5, math.sqrt(3) / 2], abs=1e-6)
    assert flat.tolist() == [True, False]
    assert size == pytest.approx([0.1, math.sqrt(0.1 * 0.09)])


def test_hidden_is_relative_to_the_median_of_the_seen_gaussians() -> None:
    w = np.array([0.0, 0.1, 1.0, 2.0, 3.0])
    assert hidden_mask(w, 0.5).tolist() == [True, True, False, False, False]  # median of the seen: 1.5
    assert not hidden_mask(np.zeros(4), 0.5).any()  # no weights at all: nothing to compare with


@pytest.fixture
def tiny_scene(tmp_path_factory: pytest.TempPathFactory):
    from tests.helpers.feature_scenes import prepared_tiny_scene

    return prepared_tiny_scene(tmp_path_factory)


def test_a_click_lets_hidden_gaussians_follow_and_old_features_files_select_as_before(tiny_scene) -> None:
    # Two feature groups: B (label 3) and everything else. Some of B's Gaussians are hidden and carry the other
    # group's feature, as an object's base carries the support's: the click on B takes them back.
    from backend.features.field import FeatureField
    from backend.render import pixel_center

    n = len(tiny_scene.scene)
    target = tiny_scene.labels == 3
    means = tiny_scene.scene.means.numpy()
    low = target & (means[:, 2] <= np.quantile(means[target, 2], 0.15))
    feats = torch.zeros(n, 24)
    feats[:, 0] = 1.0
    feats[:, 12] = 1.0
    feats[target & ~low, 1] = 5.0
    feats[target & ~low, 13] = 5.0
    weight = np.where(low, 0.01, 1.0).astype(np.float32)
    tensors = {
        "features": feats,
        "coarse_labels": torch.zeros(n, dtype=torch.int32),
        "fine_labels": torch.zeros(n, dtype=torch.int32),
        "coarse_centroids": torch.ones(1, 12),
        "fine_centroids": torch.ones(1, 24),
        "neighbors": knn_neighbors(tiny_scene.scene.means, 8),
    }
    cam = tiny_scene.cameras[0]
    x, y = tiny_scene.deepest_pixel(cam.name, (3,))
    before = FeatureField(tiny_scene.scene, "click", tensors).segment(cam, [pixel_center(x, y)], level="coarse").mask
    assert not before[low].any()  # no stored weight (trained before it was kept): as before
    field = FeatureField(tiny_scene.scene, "click", {**tensors, "training_weight": torch.from_numpy(weight)})
    after = field.segment(cam, [pixel_center(x, y)], level="coarse").mask
    assert after[low].mean() > 0.5 and not (after & ~target).any()
    assert (after & ~low).tolist() == (before & ~low).tolist()  # the seen Gaussians are the features' call
    field.hidden_on_mask = False  # the previous path, over the selection's ids
    assert field.segment(cam, [pixel_center(x, y)], level="coarse").mask.tolist() == after.tolist()
    field.hidden_on_mask = True
    fine = field.segment(cam, [pixel_center(x, y)], level="fine").mask
    # Parts: the patches follow the features too, and the hidden ones carry the other group's feature.
    assert not fine[low].any()
    assert field._hidden_patches("fine").keep_selected and not field._hidden_patches("coarse").keep_selected
    unfiltered = field.segment(cam, [pixel_center(x, y)], level="coarse", filter_floaters=False).mask
    assert not unfiltered[low].any()  # a clean-up step: off with the floater filter
    # A features file whose weights are for another scene is refused when loaded (`load_field`'s check), in one line.
    from backend.core.errors import SplatsegError
    from backend.features.field import _check_tensors

    _check_tensors("click", {**tensors, "training_weight": torch.ones(n)}, n)
    with pytest.raises(SplatsegError, match="training_weight"):
        _check_tensors("click", {**tensors, "training_weight": torch.ones(n + 1)}, n)

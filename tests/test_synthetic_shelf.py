"""The shelf preset: mesh unions sampled on their outer surface, a support that sam-like masks never cover."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.masks.labels import read_view_labels
from backend.masks.sam_like import SamLikeConfig, read_support, sam_like_masks
from backend.synthetic import write_synthetic_scene
from backend.synthetic.shelf import BOARD_HALF, Primitive, build_shelf


@pytest.fixture(scope="module")
def shelf():
    return build_shelf(seed=3, num_gaussians=8000)


def test_labels_are_sane(shelf) -> None:
    assert 0.85 * 8000 < shelf.num_gaussians <= 8000
    assert shelf.support == (1,) and shelf.object_names[1] == "shelf"
    obj, part = shelf.object_labels, shelf.part_labels
    for p, o in shelf.part_to_object.items():
        assert (part == p).sum() >= 10, shelf.part_names[p]
        assert (obj[part == p] == o).all()
    assert ((part == 0) == (obj == 0)).all()
    assert len(shelf.object_names) == 6 and len(shelf.part_names) == 16


def test_objects_stand_on_the_board_and_floaters_exist(shelf) -> None:
    z = shelf.scene.means[:, 2].numpy()
    xy = shelf.scene.means[:, :2].numpy()
    for o in range(2, 7):
        sel = shelf.object_labels == o
        assert abs(z[sel].min()) < 0.005, shelf.object_names[o]  # touching the board's top (z = 0)
        assert (np.abs(xy[sel]) <= np.array(BOARD_HALF) + 0.01).all()
    air = (shelf.object_labels == 0) & (z > 0.3) & (np.abs(xy) < 1.0).all(1)
    assert air.sum() >= 50  # floaters: unlabelled Gaussians hanging above the shelf


def test_union_surface_has_no_hidden_samples() -> None:
    body = Primitive("cylinder", (0.05, 0.05, 0.1))
    inner = np.array([[0.0, 0.0, 0.05], [0.049, 0.0, 0.05]])
    outer = np.array([[0.051, 0.0, 0.05], [0.0, 0.0, 0.11], [0.05, 0.0, 0.05]])
    assert body.inside(inner).all() and not body.inside(outer).any()
    synth = build_shelf(seed=0, num_gaussians=8000)
    mug = synth.object_labels == 2
    handle = (synth.part_labels == 4) & mug
    means = synth.scene.means.numpy()
    # The handle's Gaussians lie outside the body: distance to the body's axis ≥ its radius.
    centre = means[(synth.part_labels == 3)].mean(0)
    r = np.hypot(*(means[handle][:, :2] - centre[:2]).T)
    assert (r > 0.045 - 1e-3).all()


def test_written_scene_marks_the_support_and_sam_like_leaves_it_uncovered(tmp_path) -> None:
    out = tmp_path / "shelf"
    write_synthetic_scene(out, preset="shelf", views=2, resolution=48, num_gaussians=6000, progress=False)
    meta = json.loads((out / "labels.json").read_text())
    assert meta["preset"] == "shelf" and meta["support"] == [1]
    assert read_support(out) == {1}
    part, obj = read_view_labels(out, "view_000")
    assert (obj == 1).mean() > 0.05 and len(set(np.unique(obj).tolist()) - {0, 1}) >= 3
    masks, _ = sam_like_masks(part, obj, read_support(out), SamLikeConfig(strength=0.0), view="view_000")
    assert not masks.any(0)[obj == 1].any()

"""`splatseg segment --method sa3d`: the same one JSON line as the feature methods, and the selection file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.io.images import read_label_map
from backend.io.selection import load_selection
from backend.lift.evaluate import interior_pixel

SEGMENT_KEYS = {
    "count",
    "milliseconds",
    "method",
    "level",
    "scale",
    "threshold",
    "view",
    "pixels",
    "negatives",
    "num_gaussians",
    "total_milliseconds",
}
"""What `splatseg segment` prints for every method (backend/segment.py)."""


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sa3d_cli") / "scene"
    args = ["synth", str(out), "--views", "3", "--resolution", "48", "--gaussians", "6000", "--seed", "2"]
    assert main(args) == 0
    return out


def test_segment_sa3d_prints_one_json_line_and_writes_the_mask(scene, tmp_path, capsys):
    objects = read_label_map(scene / "labels" / "view_000_object.png")
    labels = np.load(scene / "gaussian_labels.npz")["object"]
    ids, counts = np.unique(objects[objects > 1], return_counts=True)  # 0 background, 1 the table
    target = int(ids[np.argmax(counts)])
    x, y = interior_pixel(objects == target)
    capsys.readouterr()
    mask_out = tmp_path / "sel.npy"
    code = main(
        [
            *("segment", str(scene), "--method", "sa3d", "--view", "view_000"),
            *("--pixel", f"{int(x)},{int(y)}", "--views", "2", "--mask-out", str(mask_out)),
            *("--predictor", "labels"),
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) >= SEGMENT_KEYS | {"mask_out"}
    assert report["method"] == "sa3d" and report["predictor"] == "labels" and report["views_tried"] <= 2
    mask = load_selection(mask_out, len(labels))
    assert report["count"] == int(mask.sum()) > 0
    assert np.count_nonzero(mask & (labels == target)) >= 0.9 * np.count_nonzero(mask)  # the clicked object


def test_segment_sa3d_refuses_feature_options(scene, capsys):
    code = main(["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", "5,5", "--scale", "0.5"])
    assert code == 2
    assert "--method sa3d" in capsys.readouterr().err


def _object_click(scene: Path) -> tuple[int, int, int]:
    objects = read_label_map(scene / "labels" / "view_000_object.png")
    ids, counts = np.unique(objects[objects > 1], return_counts=True)
    target = int(ids[np.argmax(counts)])
    x, y = interior_pixel(objects == target)
    return int(x), int(y), target


def test_sa3d_uses_sam_unless_told_otherwise_even_on_a_labelled_scene(scene, tmp_path, capsys):
    """The scene has labels/, but the ground truth is only used when asked for by name."""
    x, y, _ = _object_click(scene)
    missing = tmp_path / "no_such_sam.pth"
    args = ["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", f"{x},{y}"]
    assert main([*args, "--sam-checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sam-checkpoint" in err[0] and "not found" in err[0]


def test_sa3d_predictor_folder_of_masks(scene, tmp_path, capsys):
    """`--predictor FOLDER`: per-view masks from elsewhere (here the object label maps, as .npy stacks)."""
    from backend.masks.folder import label_map_masks

    x, y, target = _object_click(scene)
    folder = tmp_path / "my_masks"
    folder.mkdir()
    for path in sorted((scene / "labels").glob("*_object.png")):
        np.save(folder / f"{path.name.removesuffix('_object.png')}.npy", label_map_masks(read_label_map(path)))
    labels = np.load(scene / "gaussian_labels.npz")["object"]
    mask_out = tmp_path / "sel.npy"
    args = ["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", f"{x},{y}", "--views", "2"]
    capsys.readouterr()
    assert main([*args, "--predictor", str(folder), "--mask-out", str(mask_out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["predictor"] == str(folder)
    mask = load_selection(mask_out, len(labels))
    assert report["count"] == int(mask.sum()) > 0
    assert np.count_nonzero(mask & (labels == target)) >= 0.9 * np.count_nonzero(mask)


def test_sa3d_predictor_that_is_not_one_is_one_line(scene, tmp_path, capsys):
    args = ["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", "5,5"]
    assert main([*args, "--predictor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--predictor" in err[0] and "sam, labels or a folder" in err[0]


def test_sa3d_old_masks_flag_still_works_with_a_warning(scene, capsys):
    x, y, _ = _object_click(scene)
    args = ["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", f"{x},{y}", "--views", "1"]
    capsys.readouterr()
    assert main([*args, "--masks", "labels"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["predictor"] == "labels"
    assert "--masks is deprecated" in captured.err
    assert main([*args, "--masks", "labels", "--predictor", "sam"]) == 2

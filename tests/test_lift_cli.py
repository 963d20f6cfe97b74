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
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) >= SEGMENT_KEYS | {"mask_out"}
    assert report["method"] == "sa3d" and report["masks"] == "labels" and report["views_tried"] <= 2
    mask = load_selection(mask_out, len(labels))
    assert report["count"] == int(mask.sum()) > 0
    assert np.count_nonzero(mask & (labels == target)) >= 0.9 * np.count_nonzero(mask)  # the clicked object


def test_segment_sa3d_refuses_feature_options(scene, capsys):
    code = main(["segment", str(scene), "--method", "sa3d", "--view", "view_000", "--pixel", "5,5", "--scale", "0.5"])
    assert code == 2
    assert "--method sa3d" in capsys.readouterr().err

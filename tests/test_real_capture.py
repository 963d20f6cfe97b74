"""The real biker capture (SuperSplat compressed PLY, no cameras) through prepare --masks geometric, train, segment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.io.compressed_ply import read_compressed_ply
from backend.io.ply import write_ply
from backend.viewpoints import estimate_up

REAL = Path("/work/shared/data/real/biker.compressed.ply")


@pytest.mark.skipif(not REAL.is_file(), reason="real capture not on this machine")
def test_biker_without_cameras_prepare_geometric_train_segment(tmp_path: Path, capsys) -> None:
    scene = read_compressed_ply(REAL)
    np.testing.assert_allclose(estimate_up(scene), [0, -1, 0])
    # Every 24th Gaussian (6k) keeps the shape and makes the CPU renders and training of this test 24× cheaper.
    folder = tmp_path / "biker"
    folder.mkdir()
    write_ply(folder / "biker.ply", scene.subset(torch.arange(0, len(scene), 24)))

    assert main(["prepare", str(folder), "--masks", "geometric", "--views", "4", "--resolution", "40"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [".splatseg", "biker.ply"]
    names = [e["img_name"] for e in json.loads((folder / ".splatseg" / "cameras.json").read_text())]
    assert len(names) == 4
    assert main(["train", str(folder), "--method", "click", "--iterations", "8"]) == 0
    capsys.readouterr()
    sel = tmp_path / "sel.npy"
    assert main(["segment", str(folder), "--view", names[1], "--pixel", "20,20", "--mask-out", str(sel)]) == 0
    mask = np.load(sel, allow_pickle=False)
    assert 0 < mask.sum() < len(mask)  # a non-empty proper subset

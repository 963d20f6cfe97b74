"""`splatseg segment` and `backend.segment.segment`: one JSON line, the files it writes, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli import main
from backend.core.errors import SplatsegError
from backend.io.ply import read_ply
from backend.segment import segment
from tests.helpers.feature_scenes import TinyScene, prepared_tiny_scene, trained_tiny_scene


@pytest.fixture
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return prepared_tiny_scene(tmp_path_factory)


@pytest.fixture
def trained_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return trained_tiny_scene(tmp_path_factory)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_segment_prints_one_json_line_and_writes_the_selection(trained_scene: TinyScene, tmp_path, capsys) -> None:
    x, y = trained_scene.deepest_pixel("view_00", (3,))
    sel, ply = tmp_path / "sel.npy", tmp_path / "sel.ply"
    code, out, err = _run(
        capsys,
        "segment",
        str(trained_scene.folder),
        "--view",
        "view_00",
        "--pixel",
        f"{x},{y}",
        "--mask-out",
        str(sel),
        "--out",
        str(ply),
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["method"] == "click" and report["level"] == "coarse"
    assert isinstance(report["count"], int) and report["count"] > 0
    assert 0 < report["milliseconds"] < 10_000
    mask = np.load(sel)
    assert mask.dtype == bool and mask.shape == (len(trained_scene.scene),) and mask.sum() == report["count"]
    assert len(read_ply(ply)) == report["count"]


def test_negatives_and_levels_change_the_selection(trained_scene: TinyScene, capsys) -> None:
    folder = str(trained_scene.folder)
    a = trained_scene.deepest_pixel("view_00", (1, 2))
    upper = trained_scene.deepest_pixel("view_00", (2,))
    _, out, _ = _run(capsys, "segment", folder, "--view", "view_00", "--pixel", f"{a[0]},{a[1]}")
    whole = json.loads(out)["count"]
    _, out, _ = _run(capsys, "segment", folder, "--view", "view_00", "--pixel", f"{a[0]},{a[1]}", "--level", "fine")
    assert json.loads(out)["count"] < whole
    _, out, _ = _run(
        capsys,
        "segment",
        folder,
        "--view",
        "view_00",
        "--pixel",
        f"{a[0]},{a[1]}",
        "--negative",
        f"{upper[0]},{upper[1]}",
        "--level",
        "fine",
    )
    assert json.loads(out)["count"] <= whole
    _, out, _ = _run(capsys, "segment", folder, "--view", "view_00", "--pixel", f"{a[0]},{a[1]}", "--method", "saga")
    assert json.loads(out)["method"] == "saga" and json.loads(out)["scale"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--view", "view_00", "--pixel", "64,3"], "outside view 'view_00'"),
        (["--view", "view_00", "--pixel=-1,3"], "outside"),
        (["--view", "nope", "--pixel", "3,3"], "unknown view 'nope'"),
        (["--view", "view_00", "--pixel", "3,3", "--method", "saga", "--level", "fine"], "--level is for click"),
        (["--view", "view_00", "--pixel", "3,3", "--scale", "0.1"], "--scale is for SAGA"),
    ],
)
def test_segment_errors_are_one_line(trained_scene: TinyScene, capsys, extra: list[str], message: str) -> None:
    code, out, err = _run(capsys, "segment", str(trained_scene.folder), *extra)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_features_say_to_train(tiny_scene: TinyScene, tmp_path, capsys) -> None:
    code, _, err = _run(
        capsys,
        "segment",
        str(tiny_scene.folder),
        "--view",
        "view_00",
        "--pixel",
        "3,3",
        "--workspace",
        str(tmp_path / "empty"),
    )
    assert code == 2 and "splatseg train" in err


def test_python_api(trained_scene: TinyScene) -> None:
    x, y = trained_scene.deepest_pixel("view_01", (3,))
    res = segment(trained_scene.folder, "view_01", [(x, y)])
    assert res.mask.shape == (len(trained_scene.scene),) and res.count > 0 and res.milliseconds > 0
    with pytest.raises(SplatsegError, match="outside"):
        segment(trained_scene.folder, "view_01", [(1000, 0)])

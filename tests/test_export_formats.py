"""`export --format mesh|points`: the file is in the format its name asks for, and trimesh loads it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.cli import main
from backend.io.ply import write_ply
from tests.conftest import random_scene


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("meshes")
    scene = random_scene(3000, seed=5, spread=0.3)
    path = root / "model.ply"
    write_ply(path, scene)
    mask = (scene.means.norm(dim=1) < 0.4).numpy()  # a ball: a mesh with some extent
    np.save(root / "sel.npy", mask)
    return path, root / "sel.npy", int(mask.sum())


def _export(model, fmt: str, out: Path, capsys) -> dict:
    path, sel, _ = model
    assert main(["export", str(path), "--selection", str(sel), "--format", fmt, "-o", str(out)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _only_geometry(loaded):
    if isinstance(loaded, trimesh.Scene):  # GLB loads as a scene of one geometry
        (loaded,) = loaded.geometry.values()
    return loaded


MAGIC = {".glb": b"glTF", ".ply": b"ply\n", ".obj": None, ".stl": None}


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".stl", ".ply"])
def test_mesh_is_written_in_the_format_its_name_asks_for(model, suffix, tmp_path, capsys) -> None:
    out = tmp_path / f"sel{suffix}"
    report = _export(model, "mesh", out, capsys)
    if MAGIC[suffix] is not None:
        assert out.read_bytes()[:4] == MAGIC[suffix]
    loaded = _only_geometry(trimesh.load(out, file_type=suffix[1:]))
    assert isinstance(loaded, trimesh.Trimesh)
    assert len(loaded.faces) > 0 and loaded.is_watertight
    assert len(loaded.vertices) == report["count"]  # STL repeats vertices per face; trimesh merges them on load


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply"])
def test_points_are_written_in_the_format_their_name_asks_for(model, suffix, tmp_path, capsys) -> None:
    out = tmp_path / f"pts{suffix}"
    report = _export(model, "points", out, capsys)
    if MAGIC[suffix] is not None:
        assert out.read_bytes()[:4] == MAGIC[suffix]
    loaded = _only_geometry(trimesh.load(out, file_type=suffix[1:]))
    assert isinstance(loaded, trimesh.PointCloud)
    assert len(loaded.vertices) == report["count"] == model[2]


@pytest.mark.parametrize(
    ("fmt", "name"), [("mesh", "sel.fbx"), ("mesh", "sel"), ("points", "pts.stl"), ("points", "pts.GLTF")]
)
def test_unknown_suffix_is_one_line_before_any_work(fmt, name, tmp_path, capsys) -> None:
    out = tmp_path / name
    # The scene does not exist: the suffix is refused before anything is loaded.
    code = main(["export", str(tmp_path / "missing"), "--selection", "x.npy", "--format", fmt, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    choices = ".glb, .obj, .stl, .ply" if fmt == "mesh" else ".glb, .obj, .ply"
    assert f"--format {fmt} writes {choices} by the output's name" in err[0]

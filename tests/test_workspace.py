"""The workspace: safetensors caches, the manifest, and stale-cache detection when the model changes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch

import backend
import backend.workspace as workspace_module
from backend.core.errors import InputError, StaleCacheError
from backend.workspace import Workspace, file_sha256


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    folder = tmp_path / "scene"
    model = folder / "point_cloud" / "iteration_30000" / "point_cloud.ply"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"ply\n" + bytes(range(256)) * 40)
    return folder


def model_of(scene: Path) -> Path:
    return scene / "point_cloud" / "iteration_30000" / "point_cloud.ply"


def save_features(ws: Workspace, scene: Path) -> None:
    ws.save_tensors(
        "features.safetensors",
        {"features": np.ones((4, 2), np.float32)},
        made_by="train",
        params={"iterations": 10},
        inputs={"model": model_of(scene)},
    )


def test_default_root_is_not_created_until_written(scene: Path) -> None:
    ws = Workspace(scene)
    assert ws.root == scene / ".splatseg"
    assert ws.path("masks/view_0.npz") == scene / ".splatseg" / "masks" / "view_0.npz"
    assert not ws.root.exists() and not ws.has("anything")
    assert ws.entry("anything") is None


def test_explicit_root(scene: Path, tmp_path: Path) -> None:
    ws = Workspace(scene, root=tmp_path / "elsewhere")
    save_features(ws, scene)
    assert (tmp_path / "elsewhere" / "features.safetensors").is_file()
    assert not (scene / ".splatseg").exists()


def test_never_inside_a_file(scene: Path) -> None:
    with pytest.raises(InputError, match="is a file"):
        Workspace(model_of(scene))
    with pytest.raises(InputError, match="does not exist"):
        Workspace(scene / "typo")
    with pytest.raises(InputError, match="is a file, not a folder"):
        Workspace(scene, root=model_of(scene))


@pytest.mark.parametrize("name", ["", "../x", "/etc/x", "a/../../b", "manifest.json"])
def test_names_stay_inside(scene: Path, name: str) -> None:
    with pytest.raises(ValueError):
        Workspace(scene).path(name)


def test_tensors_round_trip_and_manifest(scene: Path) -> None:
    ws = Workspace(scene)
    tensors = {
        "features": np.random.default_rng(0).standard_normal((100, 12)).astype(np.float32),
        "labels": np.arange(100, dtype=np.int64),
        "mask": np.arange(100) % 3 == 0,
        "half": torch.linspace(0, 1, 7, dtype=torch.float16),
        "strided": torch.arange(20.0)[::2],
    }
    path = ws.save_tensors(
        "features/click.safetensors",
        tensors,
        made_by="train",
        params={"method": "click", "lr": 1e-3, "out": Path("x.npy"), "seed": np.int64(3)},
        inputs={"model": model_of(scene)},
    )
    assert path == ws.root / "features" / "click.safetensors"
    back = ws.load_tensors("features/click.safetensors")
    assert set(back) == set(tensors)
    for key, value in tensors.items():
        expected = torch.as_tensor(value)
        assert back[key].dtype == expected.dtype, key
        assert torch.equal(back[key], expected), key
    with safetensors.safe_open(str(path), "pt") as f:  # a plain safetensors file, no pickle
        assert set(f.keys()) == set(tensors)

    entry = ws.entry("features/click.safetensors")
    assert entry is not None
    assert entry["made_by"] == "train"
    assert entry["params"] == {"method": "click", "lr": 1e-3, "out": "x.npy", "seed": 3}
    assert entry["splatseg_version"] == backend.__version__
    assert entry["time"].endswith("+00:00")
    model = model_of(scene)
    assert entry["inputs"] == {
        "model": {
            "path": "point_cloud/iteration_30000/point_cloud.ply",  # relative: the scene folder may move
            "size": model.stat().st_size,
            "mtime_ns": model.stat().st_mtime_ns,
            "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        }
    }
    on_disk = json.loads(ws.manifest_path.read_text())
    assert on_disk["files"]["features/click.safetensors"] == entry
    assert ws.has("features/click.safetensors")


def test_record_keeps_other_entries_and_leaves_no_temp_files(scene: Path) -> None:
    ws = Workspace(scene)
    save_features(ws, scene)
    masks = ws.path("masks.npz")
    np.savez(masks, a=np.zeros(3))
    ws.record("masks.npz", made_by="prepare", params={"masks": "labels"}, inputs={"model": model_of(scene)})
    assert sorted(ws.manifest()["files"]) == ["features.safetensors", "masks.npz"]
    assert sorted(p.name for p in ws.root.iterdir()) == ["features.safetensors", "manifest.json", "masks.npz"]
    with pytest.raises(FileNotFoundError):
        ws.record("not_written.npz", made_by="prepare", params={}, inputs={})


def test_changed_model_makes_cache_stale(scene: Path) -> None:
    ws = Workspace(scene)
    save_features(ws, scene)
    ws.check_fresh("features.safetensors")

    model = model_of(scene)
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF  # same size, different content
    model.write_bytes(bytes(data))
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(StaleCacheError) as info:
        ws.check_fresh("features.safetensors")
    message = str(info.value)
    assert "features.safetensors was computed from an older point_cloud.ply (sha256 changed)" in message
    assert f"run `splatseg train {scene}` again" in message
    with pytest.raises(StaleCacheError):
        ws.load_tensors("features.safetensors")
    assert ws.load_tensors("features.safetensors", verify=False)["features"].shape == (4, 2)


def test_grown_model_is_stale_without_hashing(scene: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_features(Workspace(scene), scene)
    with model_of(scene).open("ab") as f:
        f.write(b"more Gaussians")
    monkeypatch.setattr(workspace_module, "file_sha256", _no_hashing)
    with pytest.raises(StaleCacheError, match="size changed"):
        Workspace(scene).check_fresh("features.safetensors")


def _no_hashing(path: object) -> str:
    raise AssertionError("hashed a file whose size and mtime were unchanged or whose size changed")


def test_unchanged_model_is_not_rehashed(scene: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_features(Workspace(scene), scene)
    monkeypatch.setattr(workspace_module, "file_sha256", _no_hashing)
    Workspace(scene).check_fresh("features.safetensors")  # a new instance: no in-memory hash cache


def test_touched_model_stays_fresh_and_mtime_is_updated(scene: Path) -> None:
    ws = Workspace(scene)
    save_features(ws, scene)
    model = model_of(scene)
    new_mtime = model.stat().st_mtime_ns + 5 * 10**9
    os.utime(model, ns=(new_mtime, new_mtime))
    ws.check_fresh("features.safetensors")
    entry = Workspace(scene).entry("features.safetensors")
    assert entry is not None and entry["inputs"]["model"]["mtime_ns"] == new_mtime


def test_other_model_file_is_stale(scene: Path) -> None:
    ws = Workspace(scene)
    save_features(ws, scene)
    later = scene / "point_cloud" / "iteration_40000" / "point_cloud.ply"
    later.parent.mkdir()
    later.write_bytes(model_of(scene).read_bytes())
    ws.check_fresh("features.safetensors", inputs={"model": model_of(scene)})
    with pytest.raises(StaleCacheError, match="iteration_40000"):
        ws.check_fresh("features.safetensors", inputs={"model": later})


def test_deleted_model_and_missing_cache(scene: Path) -> None:
    ws = Workspace(scene)
    with pytest.raises(StaleCacheError, match="has not been computed"):
        ws.check_fresh("features.safetensors")
    save_features(ws, scene)
    ws.path("features.safetensors").unlink()
    assert not ws.has("features.safetensors")
    with pytest.raises(StaleCacheError, match="has not been computed"):
        ws.load_tensors("features.safetensors")
    save_features(ws, scene)
    model_of(scene).unlink()
    with pytest.raises(StaleCacheError, match="no longer exists"):
        ws.check_fresh("features.safetensors")


def test_moved_scene_folder_keeps_its_cache(scene: Path, tmp_path: Path) -> None:
    save_features(Workspace(scene), scene)
    moved = tmp_path / "moved"
    scene.rename(moved)
    Workspace(moved).check_fresh("features.safetensors")


def test_damaged_manifest_and_cache_are_user_errors(scene: Path) -> None:
    ws = Workspace(scene)
    save_features(ws, scene)
    ws.path("features.safetensors").write_bytes(b"garbage")
    with pytest.raises(StaleCacheError, match="damaged"):
        ws.load_tensors("features.safetensors", verify=False)
    ws.manifest_path.write_text("{not json")
    with pytest.raises(StaleCacheError, match="not valid JSON"):
        ws.entry("features.safetensors")


def test_input_files_are_never_written(scene: Path) -> None:
    model = model_of(scene)
    before = (model.read_bytes(), model.stat().st_mtime_ns)
    ws = Workspace(scene)
    save_features(ws, scene)
    ws.check_fresh("features.safetensors")
    ws.load_tensors("features.safetensors")
    assert (model.read_bytes(), model.stat().st_mtime_ns) == before


def test_file_sha256_streams_large_files(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 7, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()

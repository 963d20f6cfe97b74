"""Finding the model in the folder layouts INRIA 3DGS, nerfstudio splatfacto and gsplat leave behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch

from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.ply import write_ply
from backend.io.scene_folder import find_model, load_scene, scene_dir_of


def tiny_scene(n: int = 4, *, value: float = 0.0) -> GaussianScene:
    return GaussianScene(
        means=torch.full((n, 3), float(value)),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        log_scales=torch.full((n, 3), -3.0),
        logit_opacities=torch.zeros(n),
        sh=torch.zeros(n, 1, 3),
    )


def write_model(path: Path, n: int = 4, value: float = 0.0) -> Path:
    write_ply(path, tiny_scene(n, value=value))
    return path


def write_ckpt(path: Path, n: int = 4, value: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = tiny_scene(n, value=value)
    splats = {
        "means": s.means,
        "quats": s.quats,
        "scales": s.log_scales,
        "opacities": s.logit_opacities,
        "sh0": s.sh,
        "shN": torch.zeros(n, 0, 3),
    }
    torch.save({"step": 0, "splats": splats}, path)
    return path


def write_point_cloud(path: Path) -> Path:
    records = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1")])
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")]).write(str(path))
    return path


def test_inria_highest_iteration_wins(tmp_path: Path) -> None:
    for iteration in (7000, 30000, 500):  # 7000 sorts after 30000 as text: the number must decide
        write_model(tmp_path / "point_cloud" / f"iteration_{iteration}" / "point_cloud.ply", value=iteration)
    (tmp_path / "cameras.json").write_text("[]")
    model = find_model(tmp_path)
    assert model == tmp_path / "point_cloud" / "iteration_30000" / "point_cloud.ply"
    scene, path = load_scene(tmp_path)
    assert path == model and float(scene.means[0, 0]) == 30000.0


def test_point_cloud_nested_deeper(tmp_path: Path) -> None:
    model = write_model(tmp_path / "output" / "abc123" / "point_cloud" / "iteration_7000" / "point_cloud.ply")
    assert find_model(tmp_path) == model


def test_workspace_and_hidden_folders_are_skipped(tmp_path: Path) -> None:
    write_model(tmp_path / ".splatseg" / "exports" / "point_cloud.ply")
    write_model(tmp_path / ".git" / "point_cloud.ply")
    model = write_model(tmp_path / "point_cloud" / "iteration_10" / "point_cloud.ply")
    assert find_model(tmp_path) == model


def test_splatfacto_export_is_picked_among_other_plys(tmp_path: Path) -> None:
    write_point_cloud(tmp_path / "sparse_pc.ply")  # nerfstudio's COLMAP point cloud: not a model
    (tmp_path / "notes.ply").write_text("not a ply")
    model = write_model(tmp_path / "splat.ply")
    assert find_model(tmp_path) == model


def test_point_cloud_ply_beats_export_and_checkpoint(tmp_path: Path) -> None:
    write_model(tmp_path / "splat.ply")
    write_ckpt(tmp_path / "ckpts" / "ckpt_100_rank0.pt")
    model = write_model(tmp_path / "point_cloud" / "iteration_1" / "point_cloud.ply")
    assert find_model(tmp_path) == model


def test_gsplat_highest_step_wins(tmp_path: Path) -> None:
    write_ckpt(tmp_path / "results" / "ckpts" / "ckpt_6999_rank0.pt", value=6999)
    write_ckpt(tmp_path / "results" / "ckpts" / "ckpt_29999_rank0.pt", value=29999)
    write_ckpt(tmp_path / "results" / "ckpts" / "ckpt_999_rank0.pt", value=999)
    scene, model = load_scene(tmp_path)
    assert model.name == "ckpt_29999_rank0.pt" and float(scene.means[0, 0]) == 29999.0


def test_multi_gpu_checkpoint_is_refused(tmp_path: Path) -> None:
    write_ckpt(tmp_path / "ckpts" / "ckpt_99_rank0.pt")
    write_ckpt(tmp_path / "ckpts" / "ckpt_99_rank1.pt")
    with pytest.raises(InputError, match="multi-GPU"):
        find_model(tmp_path)


def test_several_runs_are_ambiguous(tmp_path: Path) -> None:
    write_model(tmp_path / "run_a" / "point_cloud" / "iteration_10" / "point_cloud.ply")
    write_model(tmp_path / "run_b" / "point_cloud" / "iteration_20" / "point_cloud.ply")
    with pytest.raises(InputError, match=r"several 3DGS models.*run_a.*run_b.*give the one you mean"):
        find_model(tmp_path)
    assert find_model(tmp_path / "run_a").parts[-3:] == ("point_cloud", "iteration_10", "point_cloud.ply")
    exports = tmp_path / "exports"
    exports.mkdir()
    write_model(exports / "one.ply")
    write_model(exports / "two.ply")
    with pytest.raises(InputError, match=r"several 3DGS models \(one.ply, two.ply\)"):
        find_model(exports)


def test_no_model(tmp_path: Path) -> None:
    write_point_cloud(tmp_path / "points3D.ply")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError) as info:
        find_model(tmp_path)
    assert str(info.value) == (
        f"no 3DGS model in {tmp_path}: expected point_cloud.ply, a splatfacto .ply export or a gsplat ckpt_*.pt"
    )


def test_missing_scene(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        find_model(tmp_path / "typo")
    with pytest.raises(InputError, match="no such file or folder"):
        scene_dir_of(tmp_path / "typo")


def test_model_file_given_directly(tmp_path: Path) -> None:
    inria = write_model(tmp_path / "run" / "point_cloud" / "iteration_7000" / "point_cloud.ply")
    ckpt = write_ckpt(tmp_path / "gs" / "ckpts" / "ckpt_5.pt")
    loose = write_model(tmp_path / "downloads" / "garden.ply")
    assert find_model(inria) == inria and find_model(ckpt) == ckpt and find_model(loose) == loose
    # The scene folder is where the trainer's run lives (cameras.json sits there), not the iteration folder.
    assert scene_dir_of(inria) == tmp_path / "run"
    assert scene_dir_of(ckpt) == tmp_path / "gs"
    assert scene_dir_of(loose) == tmp_path / "downloads"
    assert scene_dir_of(tmp_path / "run") == tmp_path / "run"
    scene, path = load_scene(ckpt)
    assert path == ckpt and len(scene) == 4


def test_other_file_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cameras.json"
    path.write_text("[]")
    with pytest.raises(InputError, match="not a model file"):
        find_model(path)

"""gsplat checkpoints: reading the splats, and refusing anything that is not plain tensors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.errors import InputError
from backend.io.checkpoint import read_gsplat_checkpoint
from backend.io.ply import read_ply, write_ply


def random_splats(n: int, degree: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.randn(n, 3, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k - 1, 3, generator=g),
    }


def save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def expect_input_error(path: Path, *fragments: str) -> str:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InputError) as info:
        read_gsplat_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return message


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip(tmp_path: Path, degree: int) -> None:
    splats = random_splats(100, degree)
    path = save(tmp_path / "ckpt_29999_rank0.pt", {"step": 29999, "splats": splats})
    scene = read_gsplat_checkpoint(path)
    assert len(scene) == 100 and scene.sh_degree == degree
    assert torch.equal(scene.means, splats["means"])
    assert torch.equal(scene.quats, splats["quats"])
    assert torch.equal(scene.log_scales, splats["scales"])
    assert torch.equal(scene.logit_opacities, splats["opacities"])
    assert torch.equal(scene.sh[:, :1], splats["sh0"])
    assert torch.equal(scene.sh[:, 1:], splats["shN"])
    assert scene.sh.is_contiguous() and scene.extras == {}


def test_checkpoint_to_ply_keeps_values(tmp_path: Path) -> None:
    splats = random_splats(30, 3)
    scene = read_gsplat_checkpoint(save(tmp_path / "ckpt_1.pt", {"splats": splats}))
    write_ply(tmp_path / "model.ply", scene)
    back = read_ply(tmp_path / "model.ply")
    assert torch.equal(back.sh, scene.sh) and torch.equal(back.log_scales, splats["scales"])


def test_half_precision_and_parameters_are_accepted(tmp_path: Path) -> None:
    splats = {k: torch.nn.Parameter(v.half()) for k, v in random_splats(10, 1).items()}
    scene = read_gsplat_checkpoint(save(tmp_path / "ckpt_1.pt", {"splats": splats}))
    assert scene.means.dtype == torch.float32 and not scene.means.requires_grad
    assert torch.equal(scene.means, splats["means"].detach().float())


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "ckpt_1.pt", {"splats": random_splats(4, 0), "config": Path("/etc/passwd")})
    expect_input_error(path, "refuses to unpickle", "weights_only")


def test_numpy_arrays_are_refused(tmp_path: Path) -> None:
    splats = {k: v.numpy() for k, v in random_splats(4, 0).items()}
    expect_input_error(save(tmp_path / "ckpt_1.pt", {"splats": splats}), "weights_only")


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"PK\x03\x04 broken zip"])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ckpt_1.pt"
    path.write_bytes(content)
    expect_input_error(path, "not a", "PyTorch checkpoint")


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = save(tmp_path / "ckpt_1.pt", {"splats": random_splats(1000, 3)})
    path.write_bytes(path.read_bytes()[:-5000])
    expect_input_error(path, "not a readable PyTorch checkpoint")


def test_no_splats(tmp_path: Path) -> None:
    expect_input_error(save(tmp_path / "a.pt", {"step": 3, "model": {}}), "no 'splats'", "step, model")
    expect_input_error(save(tmp_path / "b.pt", [torch.zeros(3)]), "no 'splats'", "list")


def test_missing_tensors(tmp_path: Path) -> None:
    splats = random_splats(4, 0)
    del splats["quats"]
    expect_input_error(save(tmp_path / "c.pt", {"splats": splats}), "lacks quats")


def test_appearance_colours_are_a_clear_error(tmp_path: Path) -> None:
    splats = random_splats(4, 0)
    del splats["sh0"], splats["shN"]
    splats["colors"] = torch.zeros(4, 3)
    splats["features"] = torch.zeros(4, 32)
    expect_input_error(save(tmp_path / "c.pt", {"splats": splats}), "appearance", "--app_opt")


@pytest.mark.parametrize(
    ("key", "shape", "fragment"),
    [("means", (4, 2), "expected [4, 3]"), ("shN", (4, 5, 3), "K = 1, 4, 9 or 16"), ("opacities", (4, 1), "[4]")],
)
def test_bad_shapes(tmp_path: Path, key: str, shape: tuple[int, ...], fragment: str) -> None:
    splats = random_splats(4, 1)
    splats[key] = torch.zeros(shape)
    expect_input_error(save(tmp_path / "c.pt", {"splats": splats}), f"splats['{key}']", fragment)


def test_integer_tensor_is_refused(tmp_path: Path) -> None:
    splats = random_splats(4, 0)
    splats["means"] = torch.zeros(4, 3, dtype=torch.int64)
    expect_input_error(save(tmp_path / "c.pt", {"splats": splats}), "torch.int64", "float tensor")


def test_nonfinite_values_are_counted(tmp_path: Path) -> None:
    splats = random_splats(50, 1)
    splats["opacities"][[2, 10]] = float("nan")
    splats["shN"][10, 0, 1] = float("inf")
    splats["shN"][40, 2, 2] = float("inf")
    path = save(tmp_path / "c.pt", {"splats": splats})
    message = expect_input_error(path, "3 of 50 Gaussians", "opacities", "shN", "first at index 2")
    assert "means" not in message
    scene = read_gsplat_checkpoint(path, allow_nonfinite=True)
    np.testing.assert_array_equal((~scene.finite_mask()).nonzero().flatten().numpy(), [2, 10, 40])

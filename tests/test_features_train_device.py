"""Training on a device without a GPU: `train_features(device=...)` run on an emulated accelerator
(tests/helpers/device_emulation.py) that refuses CPU tensors mixed into device operations, as CUDA does, and gives
bit-identical numbers to the CPU path when the device path is right. This is what the one GPU run rests on: a
`torch.zeros(())`, a CPU index or a mask built from a cache tensor left on the CPU fails here first."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import safetensors.torch
import torch

from backend.cli import main
from backend.core.errors import SplatsegError
from backend.features.click import ClickConfig
from backend.features.saga import SagaConfig
from backend.features.train import train_features, training_device
from tests.helpers.device_emulation import DEVICE, DeviceMixError, EmulatedDevice, OnDevice
from tests.helpers.feature_scenes import TinyScene, prepared_tiny_scene


def test_the_emulated_device_refuses_what_cuda_refuses() -> None:
    """Each of these would fail on a GPU; the emulation must fail on them too, or the training test proves
    nothing."""
    with EmulatedDevice():
        x = torch.arange(6.0).reshape(3, 2).to(DEVICE)
        assert isinstance(x, OnDevice) and x.device == DEVICE
        with pytest.raises(DeviceMixError):
            x.index_select(0, torch.tensor([0, 2]))  # a CPU index
        with pytest.raises(DeviceMixError):
            torch.cat([x, torch.zeros(1, 2)])
        with pytest.raises(DeviceMixError):
            x + torch.ones(3, 2)
        with pytest.raises(DeviceMixError):
            torch.randperm(3, generator=torch.Generator(), device=DEVICE)
        with pytest.raises(TypeError):
            x.numpy()
        with pytest.raises(TypeError):
            np.asarray(x)
        # what a GPU allows: 0-dim CPU tensors as scalars, .item(), .tolist(), .cpu()
        y = x * torch.tensor(2.0) + 1
        assert isinstance(y, OnDevice) and y.sum().item() == 36.0 and y.tolist()[0] == [1.0, 3.0]
        back = y.cpu()
        assert type(back) is torch.Tensor and back.device.type == "cpu" and back[2, 1].item() == 11.0
        made = torch.zeros(2, device=x.device)
        assert isinstance(made, OnDevice)
        p = torch.nn.Parameter(torch.ones(4, 3).to(DEVICE))
        (p * p).sum().backward()
        torch.optim.Adam([p], lr=0.1).step()
        assert isinstance(p.grad, OnDevice) and torch.allclose(p.detach().cpu(), torch.full((4, 3), 0.9))


def _saved(report) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(report.path)


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():  # NaN marks unseen Gaussians (auto_scale): compare bits, not values
        return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))
    return torch.equal(a, b)


CLICK = ClickConfig(
    iterations=24,
    batch_pixels=128,
    gfl_start=0.25,
    gfl_every=8,
    knn_sample=512,
    fill_min_iterations=10,
    fine_split_agreement=0.6,  # the split gate's path too
)
SAGA = SagaConfig(iterations=12, batch_pixels=96, knn_sample=512)


CLICK_OTHER_BRANCHES = dataclasses.replace(CLICK, knn_colour_sigma=None, fine_part_level=True, hard_negatives=True)


@pytest.mark.parametrize(
    ("method", "config"),
    [("click", CLICK), ("click", CLICK_OTHER_BRANCHES), ("saga", SAGA)],
    ids=["click", "click2", "saga"],
)
def test_training_on_a_device_matches_the_cpu_bit_for_bit(
    method: str, config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every step's work on the (emulated) device, nothing mixed with CPU tensors, the same random draws, and the
    saved tensors plain CPU tensors equal bit for bit to a CPU training's."""
    tiny: TinyScene = prepared_tiny_scene(tmp_path_factory)
    runs = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the CPU kernels' reductions in one order for both runs
    try:
        for name in ("cpu", "device"):
            folder = tmp_path_factory.mktemp(f"{method}-{name}") / "scene"
            shutil.copytree(tiny.folder, folder)
            kwargs = dict(method=method, config=config, pixels_per_view=300, progress=False)
            if name == "cpu":
                report = train_features(folder, device="cpu", **kwargs)
            else:
                with EmulatedDevice():
                    report = train_features(folder, device=DEVICE, **kwargs)
            runs[name] = _saved(report)
    finally:
        torch.set_num_threads(previous)
    assert runs["cpu"].keys() == runs["device"].keys()
    for key, value in runs["device"].items():
        assert type(value) is torch.Tensor and value.device.type == "cpu", key
        assert _bitwise_equal(runs["cpu"][key], value), key


def test_device_choice(tmp_path, capsys) -> None:
    assert training_device("cpu") == torch.device("cpu")
    assert training_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SplatsegError, match="not a device"):
        training_device("warp-drive")
    if torch.cuda.is_available():
        return
    with pytest.raises(SplatsegError, match="no CUDA GPU"):
        training_device("cuda")
    # the CLI: one line, exit 2, before the (missing) scene is even looked at
    assert main(["train", str(tmp_path / "nowhere"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err and "Traceback" not in err


def test_a_device_without_room_is_one_line_and_writes_nothing(tmp_path_factory) -> None:
    """Training a scene too large for the GPU stops with one line that says what to do (not CUDA's traceback), and
    leaves no features file."""
    tiny: TinyScene = prepared_tiny_scene(tmp_path_factory)
    folder = tmp_path_factory.mktemp("small-device") / "scene"
    shutil.copytree(tiny.folder, folder)
    with pytest.raises(SplatsegError, match=r"ran out of memory.*--device cpu") as e, EmulatedDevice(memory=4096):
        train_features(folder, device=DEVICE, method="click", pixels_per_view=300, progress=False)
    assert "\n" not in str(e.value)
    assert not list(folder.rglob("*.safetensors"))

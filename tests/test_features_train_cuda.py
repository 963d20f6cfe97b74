"""Training on a real CUDA GPU (run by `bench/gpu.sh`'s CUDA tests): the tiny scene trained with
`device="cuda"` gives the CPU training's features up to float rounding (the same random draws; CUDA's sums and
Adam's multi-tensor step round differently, so not bit for bit), saved as CPU tensors."""

from __future__ import annotations

import shutil

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from backend.features.click import ClickConfig
from backend.features.saga import SagaConfig
from backend.features.train import train_features
from tests.helpers.feature_scenes import prepared_tiny_scene

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="trains on a CUDA GPU"),
]


@pytest.mark.parametrize(
    ("method", "config"),
    [
        ("click", ClickConfig(iterations=24, batch_pixels=128, gfl_start=0.25, gfl_every=8, knn_sample=512)),
        ("saga", SagaConfig(iterations=12, batch_pixels=96, knn_sample=512)),
    ],
)
def test_cuda_training_matches_the_cpu(method: str, config, tmp_path_factory: pytest.TempPathFactory) -> None:
    tiny = prepared_tiny_scene(tmp_path_factory)
    saved = {}
    for device in ("cpu", "cuda"):
        folder = tmp_path_factory.mktemp(f"{method}-{device}") / "scene"
        shutil.copytree(tiny.folder, folder)
        torch.cuda.reset_peak_memory_stats()
        report = train_features(
            folder, method=method, config=config, pixels_per_view=300, progress=False, device=device
        )
        if device == "cuda":
            assert torch.cuda.max_memory_allocated() > 0  # it did run on the GPU
        saved[device] = safetensors.torch.load_file(report.path)
    cpu, gpu = saved["cpu"], saved["cuda"]
    assert cpu.keys() == gpu.keys()
    for key, value in gpu.items():
        assert value.device.type == "cpu" and value.dtype == cpu[key].dtype and value.shape == cpu[key].shape, key
    assert torch.equal(cpu["neighbors"], gpu["neighbors"])
    cos = F.cosine_similarity(cpu["features"], gpu["features"], dim=1)
    print(f"{method}: CPU vs CUDA features, cosine median {cos.median():.6f}, min {cos.min():.6f}")
    assert torch.isfinite(gpu["features"]).all() and float(cos.median()) > 0.99

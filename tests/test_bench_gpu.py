"""`bench/gpu.sh` on a machine without CUDA: one clear line and exit 0; `--cpu-parts` runs the steps that need no
GPU and writes the JSON and the README rows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from bench.gpu import main, readme_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA answer")
def test_without_cuda_it_says_so_and_measures_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert main(["--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_shell_script_runs_the_module(tmp_path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--cpu-parts" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU steps would run")
def test_cpu_parts_write_the_json(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert main(["--json", str(out), "--cpu-parts", "--click-size", "20000"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == {}, result["errors"]
    assert result["gpu_machine_click_coarse_p50_ms"] > 0 and "not measured" in result["gpu_training"]
    assert any("click → selection" in row for row in result["readme_rows"])


def test_readme_rows_name_only_measured_figures() -> None:
    rows = readme_rows(
        {"machine": "m", "gsplat_render_1m_p50_ms": 4.2, "cuda_tests_rc": 0, "cuda_tests_summary": "9 passed"}
    )
    assert rows == [
        "| gpu | gsplat render 1280×720, 1M Gaussians p50 | 4.2 ms | m |",
        "| gpu | CUDA tests (`pytest -m cuda`) | rc 0 | 9 passed |",
    ]

"""`splatseg segment` exits cleanly after a SAGA click at an unbuilt scale: that click has its bank built in a daemon
thread (`BankBuilder`), and a process that exited while the thread was inside torch aborted (exit 134, "terminate
called without an active exception") after printing its answer. Run as a real process: only its exit shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backend.cli import main


def test_a_saga_segment_process_exits_zero(tmp_path):
    from backend.synthetic import write_synthetic_scene

    scene = tmp_path / "scene"
    write_synthetic_scene(scene, views=3, resolution=32, num_gaussians=2000)
    assert main(["prepare", str(scene), "--masks", "labels"]) == 0
    assert main(["train", str(scene), "--method", "saga", "--iterations", "3"]) == 0
    view = json.loads((scene / "cameras.json").read_text())[0]["img_name"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "backend.cli", "segment", str(scene), "--view", view, "--pixel", "16,16"]
    done = subprocess.run([*argv, "--method", "saga"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["method"] == "saga"

"""The command line contract: synth → render reproduces the images; user mistakes are one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.cli import main


@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "scene"
    assert main(["synth", str(out), "--views", "3", "--resolution", "64", "--gaussians", "12000", "--seed", "1"]) == 0
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_render_reproduces_the_synthetic_images(synth_scene, tmp_path):
    out = tmp_path / "view.png"
    assert main(["render", str(synth_scene), "--view", "view_001", "--backend", "torch", "-o", str(out)]) == 0
    rendered = np.asarray(Image.open(out).convert("RGB"))
    original = np.asarray(Image.open(synth_scene / "images" / "view_001.png").convert("RGB"))
    assert rendered.shape == original.shape == (64, 64, 3)
    assert _psnr(rendered, original) >= 40.0
    assert rendered.std() > 5  # not a blank image


def test_render_depth_and_mask(synth_scene, tmp_path):
    depth = tmp_path / "d.npy"
    assert main(["render", str(synth_scene), "--view", "view_000", "--what", "depth", "-o", str(depth)]) == 0
    d = np.load(depth)
    assert d.shape == (64, 64) and (d > 0).mean() > 0.9
    labels = np.load(synth_scene / "gaussian_labels.npz")
    sel = labels["object"] == labels["object"][labels["object"] > 0][0]
    np.save(tmp_path / "sel.npy", sel)
    mask = tmp_path / "m.png"
    args = [
        "render",
        str(synth_scene),
        "--view",
        "view_000",
        "--what",
        "mask",
        "--selection",
        str(tmp_path / "sel.npy"),
    ]
    assert main([*args, "-o", str(mask)]) == 0
    m = np.asarray(Image.open(mask))
    assert set(np.unique(m)) <= {0, 255}


def test_export_command_writes_the_selected_gaussians(synth_scene, tmp_path, capsys):
    from backend.io.ply import read_ply

    labels = np.load(synth_scene / "gaussian_labels.npz")
    sel = labels["part"] == 3
    np.save(tmp_path / "sel.npy", sel)
    out = tmp_path / "part.ply"
    assert main(["export", str(synth_scene), "--selection", str(tmp_path / "sel.npy"), "-o", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["count"] == int(sel.sum()) == len(read_ply(out))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["render", "{scene}", "--view", "nope", "-o", "{tmp}/x.png"], "nope"),
        (["render", "{tmp}/missing", "--view", "v", "-o", "{tmp}/x.png"], "missing"),
        (["render", "{scene}", "--view", "view_000", "-o", "{tmp}/x.jpg"], ".png"),
        (["render", "{scene}", "--view", "view_000", "--what", "mask", "-o", "{tmp}/x.png"], "--selection"),
        (["render", "{scene}", "--view", "view_000", "--bogus-flag", "-o", "{tmp}/x.png"], "--bogus-flag"),
        (["synth", "{tmp}/s", "--preset", "moon"], "moon"),
        (["synth", "{tmp}/s", "--views", "0"], "positive"),
        (["export", "{scene}", "--selection", "{tmp}/short.npy", "-o", "{tmp}/o.ply"], "entries"),
        (["export", "{scene}", "--selection", "{tmp}/short.npy", "-o", "{scene}/point_cloud.ply"], "overwrite"),
        (["export", "{scene}", "--selection", "{tmp}/short.npy", "--format", "mesh", "-o", "{tmp}/m.fbx"], ".glb"),
        (["view", "{scene}", "--port", "18790", "--predictor", "sma"], "--predictor sma"),
    ],
)
def test_user_mistakes_are_one_line(synth_scene, tmp_path, args, needle):
    np.save(tmp_path / "short.npy", np.ones(5, dtype=bool))
    before = (synth_scene / "point_cloud.ply").read_bytes()
    result = _run(*[a.format(scene=synth_scene, tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert (synth_scene / "point_cloud.ply").read_bytes() == before  # input untouched


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("demo", "synth", "prepare", "train", "view", "segment", "query", "render", "export", "bench"):
        assert command in result.stdout


def test_allow_origin_must_be_an_origin(capsys) -> None:
    from backend.cli import build_parser, main

    args = build_parser().parse_args(["view", "scene", "--allow-origin", "https://splats.example.org/"])
    assert args.allow_origin == ["https://splats.example.org"]  # as browsers send it: no trailing slash
    with pytest.raises(SystemExit) as e:
        main(["view", "scene", "--allow-origin", "splats.example.org"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not http(s)://HOST[:PORT]" in err and len(err.strip().splitlines()) == 1

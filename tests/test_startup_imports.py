"""Start-up cost of the CLI: what `splatseg --help` and `splatseg segment` import, checked in a fresh interpreter.

A scripted user pays the start-up once per call, and torch's import is most of it; everything else a command does
not need (the viewer's server, CLIP, mesh and image-processing libraries, scipy's ndimage and spatial trees) must stay
unimported, or the cost creeps back one top-level import at a time. The timings are in `python -m bench.startup`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.feature_scenes import TinyScene, trained_tiny_scene

REPO = Path(__file__).resolve().parents[1]

NOT_FOR_ANY_COMMAND = (
    "viser",
    "open_clip",
    "trimesh",
    "skimage",
    "hdbscan",
    "sklearn",
    "gsplat",
    "segment_anything",
    "pycolmap",
    "matplotlib",
    "scipy.ndimage",
    "scipy.spatial",
    "viewer",
    "bench",
)
"""Never imported by `--help` or by `segment` with trained click features (the click path's floater filter does
need scipy.sparse's connected components)."""

_PROBE = """
import json, sys
from backend.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imported(*argv: str) -> tuple[int, set[str]]:
    """Run the CLI in a fresh interpreter; its exit code and every module it had imported at the end."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, cwd=REPO, timeout=300, check=False
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_help_imports_neither_torch_nor_numpy() -> None:
    for argv in (["--help"], ["segment", "--help"], ["view", "--help"]):
        code, modules = _imported(*argv)
        assert code == 0
        assert _heavy(modules, ("torch", "numpy", "PIL", "scipy", *NOT_FOR_ANY_COMMAND)) == [], argv


@pytest.fixture
def trained_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return trained_tiny_scene(tmp_path_factory)


def test_segment_imports_only_what_a_click_needs(trained_scene: TinyScene) -> None:
    x, y = trained_scene.deepest_pixel("view_00", (1,))
    code, modules = _imported("segment", str(trained_scene.folder), "--view", "view_00", "--pixel", f"{x},{y}")
    assert code == 0
    assert "torch" in modules and "backend.features.field" in modules  # the probe saw the real command run
    assert _heavy(modules, NOT_FOR_ANY_COMMAND) == []


def test_the_spelled_out_cross_is_scipys() -> None:
    from scipy import ndimage

    from backend.masks.noise import _CROSS

    assert _CROSS.dtype == bool
    assert np.array_equal(_CROSS, ndimage.generate_binary_structure(2, 1))

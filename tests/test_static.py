"""The viewer's static files (viewer/static/) are what the panel and theme use, and ship with the package."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from viewer import app, panels
from viewer.assets import help_text, theme

ROOT = Path(__file__).resolve().parents[1]


def test_panel_and_theme_read_the_static_files():
    assert (ROOT / "viewer/static/help.md").read_text(encoding="utf-8") == panels.HELP
    assert "Shift + drag" in help_text()
    assert tuple(theme()["brand_color"]) == app.BRAND and len(app.BRAND) == 3
    assert theme()["control_width"] in ("small", "medium", "large")


def test_static_files_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["viewer"]
    for f in (ROOT / "viewer/static").iterdir():
        rel = f.relative_to(ROOT / "viewer").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in pyproject's package-data"

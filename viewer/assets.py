"""What the viewer serves besides the scene: the help text and the theme, read from `viewer/static/` through
`importlib.resources` so they are found the same way in a checkout and in an installed package."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


def read_static(name: str) -> str:
    return resources.files("viewer").joinpath("static", name).read_text(encoding="utf-8")


@functools.cache
def help_text() -> str:
    return read_static("help.md")


@functools.cache
def theme() -> dict[str, Any]:
    """`panel_label`, `brand_color` (RGB) and `control_width` for `configure_theme`."""
    return json.loads(read_static("theme.json"))

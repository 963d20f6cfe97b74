"""The synthetic presets by name: `synth --preset NAME`."""

from __future__ import annotations

from collections.abc import Callable

from .scene import SyntheticScene
from .shelf import build_shelf
from .tabletop import build_tabletop

PRESETS: dict[str, Callable[..., SyntheticScene]] = {"tabletop": build_tabletop, "shelf": build_shelf}

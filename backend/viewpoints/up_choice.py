"""The up direction a person chose in the viewer, remembered in the workspace (`up.json`).

The estimate of `up.py` can be wrong (a capture lying on its side, an .spz written in other axes turned 180°), so the
viewer offers "estimated" or one of the six axis directions; the choice is stored so the next `splatseg view` of the
scene starts upright. Only the choice's name is stored, never a vector from the browser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from backend.core.camera import Camera
from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.atomic import atomic_open
from backend.workspace import Workspace

from .up import estimate_up

UP_FILE = "up.json"
ESTIMATED = "estimated"
AXES: dict[str, tuple[float, float, float]] = {
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}
CHOICES: tuple[str, ...] = (ESTIMATED, *AXES)


def resolve_up(choice: str, scene: GaussianScene, cameras: Sequence[Camera] = ()) -> np.ndarray:  # [3] unit
    """The up vector CHOICE names: an axis, or the estimate from the cameras or the content."""
    if choice not in CHOICES:
        raise InputError(f"unknown up direction {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == ESTIMATED:
        return estimate_up(scene, cameras)
    return np.array(AXES[choice])


def saved_up(workspace: Workspace) -> str:
    """The stored choice, or "estimated" when none is stored (or the file is not one splatseg wrote)."""
    path = workspace.path(UP_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ESTIMATED
    choice = data.get("up") if isinstance(data, dict) else None
    return choice if choice in CHOICES else ESTIMATED


def save_up(workspace: Workspace, choice: str) -> None:
    if choice not in CHOICES:
        raise InputError(f"unknown up direction {choice!r}; choose one of {', '.join(CHOICES)}")
    path = workspace.path(UP_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        json.dump({"up": choice}, f)

"""Argument checks several commands share: the output-is-not-an-input check and a similarity threshold's range."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import SplatsegError
from ..io.outputs import check_outputs


def check_threshold(value: float | None, low: float = 0.0) -> None:
    """--threshold is a similarity in [low, 1]; NaN or out-of-range values would silently select nothing or all."""
    if value is not None and not (low <= value <= 1.0):
        raise SplatsegError(f"--threshold must be a number in [{low:g}, 1], got {value}")


def check_command_outputs(args: argparse.Namespace, *outputs: tuple[str, Path | None]) -> None:
    """Refuse (before any work) an output that names one of the scene's inputs; see `backend.io.outputs`."""
    check_outputs(args.scene, outputs, workspace=getattr(args, "workspace", None))

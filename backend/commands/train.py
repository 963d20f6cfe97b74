"""`splatseg train`: progress and the memory budget on stderr, the summary line on stdout."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..features.train import train_features


def run(args: argparse.Namespace) -> int:
    return train_command(
        args.scene, method=args.method, iterations=args.iterations, workspace=args.workspace, device=args.device
    )


def train_command(
    scene: Path,
    *,
    method: str = "click",
    iterations: int | None = None,
    workspace: Path | None = None,
    device: str = "auto",
) -> int:
    """`splatseg train`: progress and the memory budget on stderr, the summary line on stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("backend.features")
    package.addHandler(handler)
    previous = package.level
    package.setLevel(logging.INFO)
    try:
        report = train_features(
            scene, method=method, iterations=iterations, workspace=workspace, progress=True, device=device
        )
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)
    print(report.summary())
    return 0

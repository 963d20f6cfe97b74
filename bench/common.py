"""What every benchmark section shares: the one `Figure` row, the one timer and percentile, the one machine line."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch


@dataclasses.dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    note: str = ""


def machine_description() -> str:
    """Printed beside every table, so figures from different machines (or a loaded one) are not compared by accident."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), {gpu}, "
        f"load average {load:.1f} at start, torch {torch.__version__}, Python {platform.python_version()}"
    )


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:  # → seconds per run
    """Run `fn` `warmup` times untimed, then `repeat` times timed (report a median: these machines are noisy)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))

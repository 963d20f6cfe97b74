"""How many CPU threads torch should use for the many small operations of training and clicking.

Every parallel torch operation ends at an OpenMP barrier where all its threads must have run. On a machine whose
cores are all busy (other processes, a shared two-core box), one of the threads is usually waiting for a time
slice, so each operation costs a scheduler quantum (~10 ms) instead of microseconds: a training step became 40×
slower with two threads than with one on a loaded two-core machine. When the load average says the cores are
taken, one thread is used; otherwise torch's own setting stands.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

BUSY_SHARE = 0.75
"""Load average (1 min) per core above which the machine counts as busy."""

_CORES = os.cpu_count() or 1
"""Read once: `os.cpu_count` reads a file in /sys on each call (~30–100 µs on a loaded box), once per click."""


def suggested_threads() -> int:
    current = torch.get_num_threads()
    cores = _CORES
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return current
    return 1 if load > BUSY_SHARE * cores else current


@contextlib.contextmanager
def compute_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with `threads` torch threads (default: `suggested_threads()`), then restore the setting."""
    previous = torch.get_num_threads()
    target = suggested_threads() if threads is None else max(1, int(threads))
    if target != previous:
        torch.set_num_threads(target)
    try:
        yield target
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


_BLAS = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """NumPy's BLAS (OpenBLAS) on one thread for the block.

    Its idle worker threads spin for a while after each call; on two cores they then compete with torch's OpenMP
    threads, which made a click at 1M Gaussians 60% slower. One thread does a matrix-vector product over 1M
    features in under a millisecond anyway. The controller is built once (~1 ms); a limit then costs ~10 µs.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(user_api="blas")
    with _BLAS.limit(limits=1):
        yield

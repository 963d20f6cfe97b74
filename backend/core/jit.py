"""Compiled CPU kernels: numba's ``njit``, imported and compiled only when a kernel is first called.

The click path's loops over a few thousand candidates or a selection's graph rows (a breadth-first search, a
per-candidate projection) cost more in NumPy's per-call overhead than in arithmetic. A kernel here is a plain Python
function over NumPy arrays; ``kernel`` compiles it with numba on its first call (``nogil``, so the viewer's other
threads run beside it; ``cache``, so a later process loads the machine code instead of compiling). numba is
imported only then, so commands that never call a kernel (``splatseg --help``, a small CLI click) do not pay its
~0.3 s import. Every kernel keeps a NumPy or SciPy reference beside it and a test comparing the two.
``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python (for debugging).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()


def kernel(fn: F) -> F:
    """Wrap ``fn`` so that its first call compiles it with ``numba.njit(cache=True, nogil=True)``.

    The wrapper adds one Python call (~0.1 µs); ``wrapper.py_func`` is the uncompiled function.
    """
    return _lazy(fn, vectorise=False)


def vector_kernel(fn: F) -> F:
    """``kernel`` for a function written for LLVM's SLP vectoriser (a few independent float32 sums in locals, as
    features/_lane_kernels.py has them): numba turns that pass off by default, so the first call, which compiles,
    runs with it on. The vectoriser packs arithmetic that is already written out; without it (a kernel loaded from a
    cache some other build made, or ``NUMBA_DISABLE_JIT``) the same code runs, with the same bits, more slowly.
    Callers pass one set of argument types, so no later call compiles without it."""
    return _lazy(fn, vectorise=True)


def _lazy(fn: F, *, vectorise: bool) -> F:
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        if not compiled:
            with _LOCK:
                if not compiled:
                    dispatcher = _compile(fn)
                    if vectorise:  # this first call compiles for its argument types, the vectoriser on
                        result = _with_slp(dispatcher, args)
                        compiled.append(dispatcher)
                        return result
                    compiled.append(dispatcher)
        return compiled[0](*args)

    call.py_func = fn  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]


def _with_slp(dispatcher: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    import numba

    before = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        return dispatcher(*args)
    finally:
        numba.config.SLP_VECTORIZE = before


def _compile(fn: Callable[..., Any]) -> Callable[..., Any]:
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable place for numba's cache (a read-only install, no home): compile each time
        return numba.njit(nogil=True)(fn)


def compile_now(*kernels_and_args: tuple[Callable[..., Any], tuple[Any, ...]]) -> None:
    """Call each kernel once on tiny arguments, so that compiling (or loading the cache) happens at warm-up, not
    inside the first click."""
    for fn, args in kernels_and_args:
        fn(*args)

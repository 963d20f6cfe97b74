"""The one exception type that means "the user gave us something wrong".

The CLI prints a `SplatsegError` as a single line on stderr and exits non-zero; anything else is a bug and keeps
its traceback. Messages say what is wrong *and* how to fix it.
"""

from __future__ import annotations


class SplatsegError(Exception):
    """A user-facing error: bad input, missing file, stale cache, wrong flag."""


class InputError(SplatsegError):
    """An input file (PLY, cameras, masks, checkpoint) is malformed or inconsistent."""


class StaleCacheError(SplatsegError):
    """A workspace file was computed from inputs that have since changed."""

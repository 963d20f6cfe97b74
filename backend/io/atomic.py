"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything splatseg writes (exports, workspace caches, synthetic scenes) goes through here, so an interrupted run or
a full disk never leaves a truncated file where a good one was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    For libraries that want a file name rather than a file object (PIL, numpy, safetensors).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    mode = 0o666 & ~_umask()
    os.chmod(tmp_path, mode)  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        yield tmp_path
        # Again: a library may have replaced the file (safetensors writes its own temporary and renames it, 0600).
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; it replaces `path` only if the block succeeds."""
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)

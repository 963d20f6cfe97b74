"""Reading a user's `.npy` safely: the header is read and checked before a single element is allocated.

`np.load` trusts the header: a 100-byte file claiming 10¹² entries ends in `ArrayMemoryError`, a truncated file in
an error that speaks of pickles, a 0-byte file in `EOFError`. Here the header is parsed with numpy's own
`read_magic` / `read_array_header_*` (the format's reference reader), the shape is checked by the caller's rule and
against the bytes the file really holds, and only then is the array read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from backend.core.errors import InputError

NpyHeader = tuple[tuple[int, ...], bool, np.dtype]
"""(shape, fortran_order, dtype) as numpy's format reader returns them."""


def read_npy_header(path: str | os.PathLike[str]) -> tuple[NpyHeader, int]:
    """The header of a `.npy` file and the offset of its data; `InputError` for anything that is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10_000)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10_000)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except (ValueError, EOFError, SyntaxError) as e:
                what = "is empty" if path.stat().st_size == 0 else f"has no valid .npy header ({e})"
                raise InputError(f"{path} {what}; save arrays with numpy.save") from None
            offset = f.tell()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a .npy file") from None
    return (tuple(int(s) for s in shape), bool(fortran), dtype), offset


def load_npy(
    path: str | os.PathLike[str],
    *,
    check_shape: Callable[[tuple[int, ...]], str | None],
) -> np.ndarray:
    """Read a plain-number `.npy` after `check_shape(shape)` (a problem in words, or None) has approved its header.

    Refuses object (pickle) arrays by their header, and files shorter than their header says (truncated).
    """
    path = Path(path)
    (shape, _fortran, dtype), offset = read_npy_header(path)
    if dtype.hasobject:
        raise InputError(f"{path} holds Python objects (pickle), which splatseg never loads; save plain numbers")
    problem = check_shape(shape)
    if problem:
        raise InputError(f"{path}: {problem}")
    needed = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise InputError(
            f"{path} is truncated: its header says {shape} {dtype} ({needed} bytes) but the file has {size}; "
            "write it again"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path} is not a readable .npy file ({e})") from None

"""A strict reader for binary little-endian PLYs of scalar properties, sized from the header *after* checking it.

The compressed PLY formats (SuperSplat/PlayCanvas) hold several elements of fixed-size records. Their header is
untrusted: a count of 10¹² vertices must be refused by comparing the bytes it implies with the file's size, before
any array is made. The records are then memory-mapped views, one structured array per element.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from backend.core.errors import InputError

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 20


def read_binary_ply(path: str | os.PathLike[str], what: str) -> dict[str, np.ndarray]:
    """{element name: structured [count] array} of a binary little-endian PLY; `what` names the format in errors."""
    path = Path(path)
    size = path.stat().st_size
    elements, header_len = _parse_header(path, what)
    offset = header_len
    out: dict[str, np.ndarray] = {}
    for name, count, dtype in elements:
        need = count * dtype.itemsize
        if offset + need > size:
            raise InputError(
                f"{path}: its header declares {count} {name!r} records ({need} bytes) but the file holds only "
                f"{max(size - offset, 0)} bytes after it; the {what} is truncated or corrupt, export it again"
            )
        out[name] = (
            np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,)) if count else np.empty(0, dtype)
        )
        offset += need
    return out


def _parse_header(path: Path, what: str) -> tuple[list[tuple[str, int, np.dtype]], int]:
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    end = head.find(b"end_header\n")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(f"{path} is not a {what} (no PLY header); give the file the exporter wrote")
    lines = head[:end].decode("ascii", errors="replace").splitlines()
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if words[1:2] != ["binary_little_endian"]:
                raise InputError(f"{path}: a {what} must be binary_little_endian, this one is {' '.join(words[1:])}")
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and len(words) == 3 and words[1] in _TYPES and elements:
            elements[-1][2].append((words[2], "<" + _TYPES[words[1]]))
        else:
            raise InputError(f"{path}: unexpected header line {line.strip()[:60]!r} for a {what}; export it again")
    typed = []
    for name, count, props in elements:
        if not props or len({p for p, _ in props}) != len(props):
            raise InputError(f"{path}: element {name!r} has no properties or repeats one; export it again")
        typed.append((name, count, np.dtype(props)))
    return typed, end + len(b"end_header\n")

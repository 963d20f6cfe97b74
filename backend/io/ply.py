"""3DGS model PLYs in the INRIA layout (also what nerfstudio splatfacto, SuperSplat and gsplat export).

One `vertex` element, one row per Gaussian, float32 properties in this order:
`x y z  nx ny nz  f_dc_0..2  f_rest_0..M-1  opacity  scale_0..2  rot_0..3` (rot_0 = w), M = 3·(K-1) for K SH
coefficients per channel. f_rest is channel-major: f_rest_{c·(K-1)+j} is coefficient 1+j of channel c, which is
why the reshape below goes through [N, 3, K-1]. Values are stored pre-activation (log-scales, logit-opacities), the
same form `GaussianScene` holds, so a read → write round trip is bit-exact.

nerfstudio's splatfacto exports a model trained with SH degree 0 with uint8 `red green blue` in place of `f_dc_*`;
those are read as the DC term (c/255 - 0.5)/C0, so such an export loads like any other.

Any other per-Gaussian property (normals, an int32 `segment` label, …) is kept in `GaussianScene.extras` with its
dtype and written back after the standard ones, so a labelled export survives a round trip through splatseg.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import plyfile
import torch

from backend.core.errors import InputError
from backend.core.scene import SH_C0, GaussianScene
from backend.io.atomic import atomic_open

POSITION = ("x", "y", "z")
NORMALS = ("nx", "ny", "nz")
F_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
OPACITY = ("opacity",)
SCALES = ("scale_0", "scale_1", "scale_2")
ROTATION = ("rot_0", "rot_1", "rot_2", "rot_3")
REQUIRED = POSITION + F_DC + OPACITY + SCALES + ROTATION
RGB = ("red", "green", "blue")

OPACITY_LOGIT_LIMIT = 20.0
"""An infinite logit-opacity is read as ±20. SuperSplat and splat-transform write +inf (opacity exactly 1) when they
decompress a .compressed.ply to .ply; sigmoid(20) is 1.0 in float32 (and sigmoid(-20) 2e-9), so the look is the
same and every later computation stays finite. NaN opacity is still an error."""

_F_REST = re.compile(r"f_rest_(\d+)\Z")
_VALID_F_REST_COUNTS = {3 * ((d + 1) ** 2 - 1): d for d in range(4)}  # 0, 9, 24, 45 → degree 0..3

# PLY scalar types plyfile can write; anything else is converted (or refused) before writing.
_PLY_DTYPES = {np.dtype(t) for t in ("i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8")}


def f_rest_names(num_coeffs: int) -> list[str]:
    """The f_rest property names for K = `num_coeffs` SH coefficients per channel, in file order."""
    return [f"f_rest_{i}" for i in range(3 * (num_coeffs - 1))]


def _sh_column_order(num_coeffs: int) -> list[str]:
    """Property names in the order of `sh.reshape(N, K·3)`: coefficient-major, channel-minor.

    Gathering the file's columns in this order turns the channel-major f_rest block into `[N, K, 3]` directly.
    """
    rest = num_coeffs - 1
    names = list(F_DC)
    for j in range(rest):
        names += [f"f_rest_{c * rest + j}" for c in range(3)]
    return names


def _short_list(names: list[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


# ---- reading ---------------------------------------------------------------------------------------------------


def read_ply(path: str | os.PathLike[str], *, allow_nonfinite: bool = False) -> GaussianScene:
    """Read a 3DGS PLY (binary either endianness, or ASCII) into a `GaussianScene` on the CPU.

    NaN/Inf parameters are an error unless `allow_nonfinite`: dropping those rows would shift every later index, and
    a selection `.npy` must index the file's Gaussians as they are.
    """
    path = Path(path)
    vertex = _read_vertex_element(path)
    names = [p.name for p in vertex.properties]
    # List properties (rare in a vertex element) have no [N] form, so they are not kept as extras.
    scalar_names = [p.name for p in vertex.properties if not isinstance(p, plyfile.PlyListProperty)]
    # splatfacto's degree-0 export: colours instead of f_dc (a COLMAP point cloud has colours but no opacity etc.).
    rgb_dc = not any(name in names for name in F_DC) and all(
        name in names for name in RGB + OPACITY + SCALES + ROTATION
    )
    num_coeffs = _check_properties(path, names + list(F_DC) if rgb_dc else names)

    std_names = list(POSITION + ROTATION + SCALES + OPACITY) + _sh_column_order(num_coeffs)
    data = vertex.data  # structured [N], memory-mapped for binary files
    n = len(data)
    extra_names = [name for name in scalar_names if name not in std_names and not (rgb_dc and name in RGB)]
    if rgb_dc:
        colors = np.stack([np.asarray(data[name], np.float32) for name in RGB], axis=1)  # [N, 3]
        if data.dtype[RGB[0]].kind in "iu":
            colors = colors / 255.0
        block = np.concatenate([_gather_float32(data, std_names[:11]), (colors - 0.5) / SH_C0], axis=1)
        std_names = std_names[:11] + list(RGB)
        parts, extras = _split_columns(block, _SPANS), _extras(data, extra_names)
        del block
    elif _chunkable(data):
        parts, extras = _read_columns_chunked(data, std_names, extra_names)
    else:
        parts, extras = _read_columns(data, std_names, extra_names)
    opacity = parts["logit_opacities"][:, 0]  # [N] view: the fix below writes into the part
    infinite = np.isinf(opacity)
    if infinite.any():
        opacity[infinite] = np.copysign(OPACITY_LOGIT_LIMIT, opacity[infinite])

    if not allow_nonfinite:
        _check_finite(path, parts, std_names)

    scene = GaussianScene(
        means=torch.from_numpy(parts["means"]),
        quats=torch.from_numpy(parts["quats"]),
        log_scales=torch.from_numpy(parts["log_scales"]),
        logit_opacities=torch.from_numpy(parts["logit_opacities"]).reshape(n),
        sh=torch.from_numpy(parts["sh"]).reshape(n, num_coeffs, 3),
        extras=extras,
    )
    del data, vertex  # release the memory map before returning
    return scene


_SPANS = {"means": (0, 3), "quats": (3, 7), "log_scales": (7, 10), "logit_opacities": (10, 11), "sh": (11, None)}
"""Where each `GaussianScene` tensor's columns are in `std_names` (the SH block runs to the end)."""

CHUNK_BYTES = 4 << 20
"""Rows read per step of `_read_columns_chunked`: a few MB at a time, whatever the model's size."""


def _split_columns(block: np.ndarray, spans: dict[str, tuple[int, int | None]]) -> dict[str, np.ndarray]:
    return {key: np.ascontiguousarray(block[:, a:b]) for key, (a, b) in spans.items()}


def _extras(data: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The properties kept beside the standard ones, each [N] in native byte order."""
    return {
        name: np.ascontiguousarray(data[name]).astype(data.dtype[name].newbyteorder("="), copy=False) for name in names
    }


def _read_columns(
    data: np.ndarray, std_names: list[str], extra_names: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The reference reader: every standard column at once (an [N, S] float32 block, then one copy per tensor)."""
    block = _gather_float32(data, std_names)  # [N, S] in `std_names` order
    return _split_columns(block, _SPANS), _extras(data, extra_names)


def _chunkable(data: np.ndarray) -> bool:
    """A binary vertex element memory-mapped from a file: its rows can be read a chunk at a time instead."""
    return isinstance(data, np.memmap) and isinstance(data.filename, str) and data.flags.c_contiguous and len(data) > 0


def _read_columns_chunked(
    data: np.memmap, std_names: list[str], extra_names: list[str], *, chunk_rows: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What `_read_columns` returns, read from the file a few MB of rows at a time into the final arrays.

    The reference holds the memory map's pages (the whole file, as they are touched), the [N, S] block and the
    per-tensor copies at once, about three times the file; this holds the final arrays and one chunk, so opening a
    3M-Gaussian model peaks at about the model's size rather than three times it (bench/scale.py measures it).
    """
    dtype, n = data.dtype, len(data)
    chunk_rows = chunk_rows or max(1, CHUNK_BYTES // dtype.itemsize)
    width = len(std_names)
    parts = {key: np.empty((n, (b if b is not None else width) - a), np.float32) for key, (a, b) in _SPANS.items()}
    extras = {name: np.empty(n, dtype[name].newbyteorder("=")) for name in extra_names}
    buf = np.empty(min(chunk_rows, n), dtype)
    with open(data.filename, "rb") as f:
        f.seek(data.offset)
        for start in range(0, n, chunk_rows):
            rows = buf[: min(chunk_rows, n - start)]
            if f.readinto(rows.view(np.uint8)) != rows.nbytes:
                raise InputError(f"{data.filename} changed while it was read; read it again")
            block = _gather_float32(rows, std_names)  # [rows, S]
            stop = start + len(rows)
            for key, (a, b) in _SPANS.items():
                parts[key][start:stop] = block[:, a:b]
            for name in extra_names:
                extras[name][start:stop] = rows[name]
    return parts, extras


def _read_vertex_element(path: Path) -> plyfile.PlyElement:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a 3DGS .ply model")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.rstrip(b"\r\n") != b"ply":
        raise InputError(f"{path} is not a PLY file (it does not start with 'ply'); give the .ply a 3DGS trainer wrote")
    try:
        # mmap: a 1M-Gaussian binary PLY maps in microseconds; plyfile's non-mmap binary reader is far slower.
        ply = plyfile.PlyData.read(str(path), mmap="c")
    except plyfile.PlyHeaderParseError as e:
        raise InputError(f"{path} is not a PLY file ({e}); give the .ply a 3DGS trainer wrote") from None
    except (plyfile.PlyParseError, ValueError, EOFError, OSError) as e:
        raise InputError(f"{path} is truncated or corrupt ({e}); copy or export the model file again") from None
    element_names = [el.name for el in ply.elements]
    if "vertex" not in element_names:
        hint = (
            "it looks like a compressed SuperSplat/PlayCanvas PLY; export an uncompressed .ply"
            if "chunk" in element_names
            else "give a 3DGS model PLY (one vertex per Gaussian)"
        )
        raise InputError(f"{path} has no 'vertex' element (elements: {', '.join(element_names) or 'none'}); {hint}")
    _check_length(path, ply)
    return ply["vertex"]


def _check_length(path: Path, ply: plyfile.PlyData) -> None:
    """A binary PLY must end where its header says: more bytes mean the vertex count in the header is too small, and
    reading only that many would silently drop Gaussians (and misalign every selection made on the full model)."""
    if ply.text or any(isinstance(p, plyfile.PlyListProperty) for el in ply.elements for p in el.properties):
        return  # ASCII or list properties: row sizes vary, plyfile's own parser checks these
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    end = head.find(b"end_header")
    if end < 0:
        return
    newline = head.find(b"\n", end)
    header_bytes = newline + 1 if newline >= 0 else end + len(b"end_header")
    expected = header_bytes + sum(el.count * el.data.dtype.itemsize for el in ply.elements)
    actual = path.stat().st_size
    vertex = ply["vertex"]
    if actual - expected >= vertex.data.dtype.itemsize:  # a few stray trailing bytes are not a missing Gaussian
        extra = (actual - expected) / vertex.data.dtype.itemsize
        raise InputError(
            f"{path}: its header says {vertex.count} vertices but the file holds {actual - expected} bytes more "
            f"(about {extra:g} more Gaussians); the header is wrong, so export the model again"
        )


def _check_properties(path: Path, names: list[str]) -> int:
    """Validate the vertex properties; returns K, the SH coefficients per channel."""
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = (
            "this is a plain point cloud, not a trained 3DGS model"
            if all(name in names for name in POSITION)
            else "this is not a 3DGS model PLY"
        )
        raise InputError(
            f"{path}: vertex lacks {_short_list(missing)} ({hint}); give the trained model, e.g. "
            f"point_cloud/iteration_N/point_cloud.ply or a splatfacto .ply export"
        )
    rest = sorted(int(m.group(1)) for name in names if (m := _F_REST.match(name)))
    if len(rest) not in _VALID_F_REST_COUNTS or rest != list(range(len(rest))):
        raise InputError(
            f"{path}: {len(rest)} f_rest properties (f_rest_0..f_rest_{rest[-1] if rest else '?'}), expected "
            f"f_rest_0..f_rest_{{M-1}} with M = 0, 9, 24 or 45 (SH degree 0-3); the file was not written by a "
            f"3DGS trainer or was damaged, export it again"
        )
    return len(rest) // 3 + 1


def _gather_float32(data: np.ndarray, names: list[str]) -> np.ndarray:  # [N, len(names)] float32
    """The named columns of a structured array as one float32 matrix, in one pass over the rows when possible.

    Reading 60 fields one by one walks a 250 MB memory map 60 times; when every wanted field is a 4-byte float at a
    4-byte-aligned offset, the records are viewed as words and the columns gathered with a single `np.take`.
    """
    dtype = data.dtype
    n = len(data)
    fields = [dtype.fields[name] for name in names]
    aligned = dtype.itemsize % 4 == 0 and all(
        ft.kind == "f" and ft.itemsize == 4 and offset % 4 == 0 for ft, offset, *_ in fields
    )
    byte_orders = {ft.byteorder for ft, *_ in fields}
    if aligned and len(byte_orders) == 1 and n > 0 and data.flags.c_contiguous:
        word = fields[0][0]  # '<f4', '>f4' or '=f4'
        words = np.asarray(data).view(word).reshape(n, dtype.itemsize // 4)
        block = np.take(words, [offset // 4 for _, offset, *_ in fields], axis=1)
        return block.astype(np.float32, copy=False)
    block = np.empty((n, len(names)), dtype=np.float32)
    for i, name in enumerate(names):
        block[:, i] = data[name]
    return block


_FINITE_SLAB = 1 << 18
"""Rows per step of the NaN/Inf check."""


def _check_finite(path: Path, parts: dict[str, np.ndarray], names: list[str]) -> None:
    """A one-line error naming the properties and the first row that are NaN/Inf (checked a slab of rows at a time,
    so the check allocates little beside the model)."""
    bad_rows = np.zeros(len(parts["means"]), dtype=bool)
    step = _FINITE_SLAB
    for part in parts.values():
        for s in range(0, len(part), step):
            bad_rows[s : s + step] |= ~np.isfinite(part[s : s + step]).all(axis=1)
    count = int(bad_rows.sum())
    if count:
        bad = np.concatenate([part[bad_rows] for part in parts.values()], axis=1)  # [B, S] in `names` order
        bad_props = [name for name, ok in zip(names, np.isfinite(bad).all(axis=0)) if not ok]
        first = int(np.flatnonzero(bad_rows)[0])
        raise InputError(
            f"{path}: {count} of {len(bad_rows)} Gaussians have NaN/Inf values (in {_short_list(bad_props)}; first "
            f"at index {first}); fix or re-export the model (splatseg does not drop them, since selections index "
            f"Gaussians by position)"
        )


# ---- header-only inspection ------------------------------------------------------------------------------------


def ply_vertex_properties(path: str | os.PathLike[str]) -> list[str] | None:
    """The vertex property names from a PLY header, without reading the data; None if not a readable PLY.

    Used to tell a splatfacto export from other .ply files in a scene folder (a COLMAP point cloud, say).
    """
    try:
        with open(path, "rb") as f:
            if f.readline().strip() != b"ply":
                return None
            names: list[str] = []
            element = None
            for _ in range(10_000):  # a header this long is not a 3DGS PLY
                line = f.readline()
                if not line:
                    return None
                words = line.decode("ascii", errors="replace").split()
                if not words:
                    continue
                if words[0] == "end_header":
                    return names
                if words[0] == "element" and len(words) >= 2:
                    element = words[1]
                elif words[0] == "property" and element == "vertex" and len(words) >= 3:
                    names.append(words[-1])
    except OSError:
        return None
    return None


def is_gaussian_ply(path: str | os.PathLike[str]) -> bool:
    """Whether the PLY header declares the properties of a 3DGS model (DC as f_dc_* or splatfacto's red/green/blue)."""
    names = ply_vertex_properties(path)
    if names is None:
        return False
    dc = F_DC if not all(name in names for name in RGB) else ()
    return all(name in names for name in POSITION + OPACITY + SCALES + ROTATION + dc)


# ---- writing ---------------------------------------------------------------------------------------------------


def write_ply(path: str | os.PathLike[str], scene: GaussianScene) -> None:
    """Write `scene` as a binary little-endian INRIA-layout PLY, atomically.

    Normals are written after the position as INRIA does: from `extras` when the scene has them, else zeros (some
    viewers expect the properties to exist). Other extras follow the standard properties, with their dtype.
    """
    n = len(scene)
    k = scene.sh.shape[1]
    sh = scene.sh.detach().cpu().float().numpy()  # [N, K, 3]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # channel-major [N, 3·(K-1)]

    def f32(t: torch.Tensor, width: int) -> np.ndarray:  # [N, width]
        return t.detach().cpu().float().numpy().reshape(n, width)

    blocks: list[tuple[list[str], np.ndarray]] = []  # (names, [N, len(names)] values) in file order
    blocks.append((list(POSITION), f32(scene.means, 3)))
    for name in NORMALS:
        normal = _ply_extra(name, scene.extras[name]) if name in scene.extras else np.zeros(n, "f4")
        blocks.append(([name], normal[:, None]))
    blocks.append((list(F_DC), sh[:, 0, :]))
    blocks.append((f_rest_names(k), rest))
    blocks.append((list(OPACITY), f32(scene.logit_opacities, 1)))
    blocks.append((list(SCALES), f32(scene.log_scales, 3)))
    blocks.append((list(ROTATION), f32(scene.quats, 4)))
    standard = {name for names, _ in blocks for name in names}
    for name, values in scene.extras.items():
        if name in NORMALS:
            continue
        if name in standard or _F_REST.match(name):
            raise ValueError(f"extra property {name!r} has the name of a standard 3DGS property; rename it")
        blocks.append(([name], _ply_extra(name, values)[:, None]))

    records = _to_records(blocks, n)
    element = plyfile.PlyElement.describe(records, "vertex")
    with atomic_open(path, "wb") as f:
        plyfile.PlyData([element], text=False, byte_order="<").write(f)


def _ply_extra(name: str, values: np.ndarray) -> np.ndarray:
    """An extra property as a [N] array of a type PLY can store (bool → uint8, 64-bit ints → 32-bit if they fit)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"extra property {name!r} has shape {values.shape}; a PLY property must be one value a row")
    dtype = values.dtype.newbyteorder("=")
    if dtype == np.bool_:
        return values.astype(np.uint8)
    if dtype == np.float16:
        return values.astype(np.float32)
    if dtype.kind in "iu" and dtype.itemsize == 8:
        narrow = np.dtype(dtype.kind + "4")
        info = np.iinfo(narrow)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(f"extra property {name!r} has values outside the 32-bit range PLY can store")
        return values.astype(narrow)
    if dtype not in _PLY_DTYPES:
        raise ValueError(f"extra property {name!r} has dtype {values.dtype}, which PLY cannot store")
    return values


def _to_records(blocks: list[tuple[list[str], np.ndarray]], n: int) -> np.ndarray:  # structured [N], little-endian
    dtype = np.dtype([(name, values.dtype.newbyteorder("<")) for names, values in blocks for name in names])
    if all(values.dtype.itemsize == 4 for _, values in blocks):
        # Row-wise block copies: join the bit patterns as uint32 words, then reinterpret as the record type.
        words = np.concatenate(
            [values.astype(values.dtype.newbyteorder("<"), copy=False).view("<u4") for _, values in blocks], axis=1
        )
        return words.view(dtype).reshape(n)
    records = np.empty(n, dtype=dtype)
    for names, values in blocks:
        for i, name in enumerate(names):
            records[name] = values[:, i]
    return records

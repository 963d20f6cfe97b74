"""3DGS model PLYs in the INRIA layout (also what nerfstudio splatfacto, SuperSplat and gsplat export).

One `vertex` element, one row per Gaussian, float32 properties in this order:
`x y z  nx ny nz  f_dc_0..2  f_rest_0..M-1  opacity  scale_0..2  rot_0..3` (rot_0 = w), M = 3·(K-1) for K SH
coefficients per channel. f_rest is channel-major: f_rest_{c·(K-1)+j} is coefficient 1+j of channel c, which is
why the reshape below goes through [N, 3, K-1]. Values are stored pre-activation (log-scales, logit-opacities), the
same form `GaussianScene` holds, so a read → write round trip is bit-exact.

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
from backend.core.scene import GaussianScene
from backend.io.atomic import atomic_open

POSITION = ("x", "y", "z")
NORMALS = ("nx", "ny", "nz")
F_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
OPACITY = ("opacity",)
SCALES = ("scale_0", "scale_1", "scale_2")
ROTATION = ("rot_0", "rot_1", "rot_2", "rot_3")
REQUIRED = POSITION + F_DC + OPACITY + SCALES + ROTATION

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
    num_coeffs = _check_properties(path, names)

    std_names = list(POSITION + ROTATION + SCALES + OPACITY) + _sh_column_order(num_coeffs)
    data = vertex.data  # structured [N], memory-mapped for binary files
    n = len(data)
    block = _gather_float32(data, std_names)  # [N, S] in `std_names` order
    opacity = block[:, 10]  # the logit-opacity column of `std_names`
    infinite = np.isinf(opacity)
    if infinite.any():
        block[infinite, 10] = np.copysign(OPACITY_LOGIT_LIMIT, opacity[infinite])

    if not allow_nonfinite:
        _check_finite(path, block, std_names)

    def cols(start: int, stop: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(block[:, start:stop]))

    scene = GaussianScene(
        means=cols(0, 3),
        quats=cols(3, 7),
        log_scales=cols(7, 10),
        logit_opacities=cols(10, 11).reshape(n),
        sh=cols(11, 11 + 3 * num_coeffs).reshape(n, num_coeffs, 3),
        extras={
            name: np.ascontiguousarray(data[name]).astype(data.dtype[name].newbyteorder("="), copy=False)
            for name in scalar_names
            if name not in std_names
        },
    )
    del data, vertex  # release the memory map before returning
    return scene


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
    return ply["vertex"]


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


def _check_finite(path: Path, block: np.ndarray, names: list[str]) -> None:
    finite = np.isfinite(block)
    bad_rows = ~finite.all(axis=1)
    count = int(bad_rows.sum())
    if count:
        bad_props = [name for name, ok in zip(names, finite.all(axis=0)) if not ok]
        first = int(np.flatnonzero(bad_rows)[0])
        raise InputError(
            f"{path}: {count} of {len(block)} Gaussians have NaN/Inf values (in {_short_list(bad_props)}; first "
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
    """Whether the PLY header declares the properties of a 3DGS model."""
    names = ply_vertex_properties(path)
    return names is not None and all(name in names for name in REQUIRED)


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

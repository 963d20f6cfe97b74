"""SuperSplat / PlayCanvas compressed PLY (`*.compressed.ply`): chunks of 256 Gaussians with quantised fields.

Layout (docs/formats.md): element `chunk` (float min/max of position, log-scale and, in newer files, colour per
chunk of 256 vertices), element `vertex` with four uint32 words per Gaussian, and an optional element `sh` of uint8
`f_rest_*` in the INRIA order. The words are
- packed_position, packed_scale: 11/10/11-bit unorms (x in the top bits), a lerp between the chunk's min and max;
- packed_color: 8 bits each r, g, b, opacity (r on top); rgb lerp in the chunk's colour range when it has one;
- packed_rotation: 2 bits naming the largest of w, x, y, z, then the other three in that order, 10 bits each, as
  (v - 0.5)·√2 (a unit quaternion's smaller components lie in ±1/√2); the largest is √(1 - a² - b² - c²).
SH bytes decode to ((v + 0.5)/256 - 0.5)·8, with 0 and 255 the ends of the range, as PlayCanvas decodes them.

`GaussianScene` holds stored values, so colour → SH DC (c - 0.5)/C0 and opacity → logit (clamped off 0 and 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from backend.core.errors import InputError
from backend.core.scene import SH_C0, GaussianScene
from backend.io.binary_ply import read_binary_ply

CHUNK_SIZE = 256
_WHAT = "compressed PLY"
_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")
_SCALE_BOUNDS = ("min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_COLOR_BOUNDS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_WORDS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_OPACITY_EPS = 1e-6


def is_compressed_ply(path: str | os.PathLike[str]) -> bool:
    """Whether a PLY header declares a `chunk` element before `vertex` (the compressed layout)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"ply") and b"element chunk " in head and b"packed_position" in head


def read_compressed_ply(path: str | os.PathLike[str]) -> GaussianScene:
    """Decode a compressed PLY into a `GaussianScene` on the CPU (the file's vertex order is kept)."""
    path = Path(path)
    elements = read_binary_ply(path, _WHAT)
    chunk, vertex = elements.get("chunk"), elements.get("vertex")
    if chunk is None or vertex is None:
        raise InputError(f"{path}: a {_WHAT} needs 'chunk' and 'vertex' elements; export it again from SuperSplat")
    _require(path, "chunk", chunk, _BOUNDS + _SCALE_BOUNDS)
    _require(path, "vertex", vertex, _WORDS)
    bound_names = [name for name in chunk.dtype.names if name.startswith(("min_", "max_"))]
    if not all(np.isfinite(np.asarray(chunk[name])).all() for name in bound_names):
        # Every decoded value is a lerp between finite bounds (or a unit quaternion), so this is the one check needed.
        raise InputError(f"{path}: chunk bounds hold NaN/Inf; the file is damaged, export it again")
    n = len(vertex)
    if len(chunk) != -(-n // CHUNK_SIZE):
        raise InputError(
            f"{path}: {len(chunk)} chunks for {n} Gaussians (expected {-(-n // CHUNK_SIZE)}, one per {CHUNK_SIZE}); "
            "the file is damaged, export it again"
        )
    which = np.arange(n) // CHUNK_SIZE  # [N] chunk of each Gaussian

    def bounds(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:  # [N, 3] min, [N, 3] max
        table = np.stack([np.asarray(chunk[name], np.float32) for name in names], axis=1)[which]
        return table[:, :3], table[:, 3:]

    words = {name: np.asarray(vertex[name], np.uint32) for name in _WORDS}
    lo, hi = bounds(_BOUNDS)
    means = lo + _unpack_111011(words["packed_position"]) * (hi - lo)
    lo, hi = bounds(_SCALE_BOUNDS)
    log_scales = lo + _unpack_111011(words["packed_scale"]) * (hi - lo)
    rgba = _unpack_8888(words["packed_color"])
    rgb = rgba[:, :3]
    if all(name in chunk.dtype.names for name in _COLOR_BOUNDS):
        lo, hi = bounds(_COLOR_BOUNDS)
        rgb = lo + rgb * (hi - lo)
    alpha = np.clip(rgba[:, 3], _OPACITY_EPS, 1 - _OPACITY_EPS)
    dc = (rgb - 0.5) / SH_C0  # [N, 3]
    rest = _read_sh(path, elements.get("sh"), n)  # [N, K-1, 3]
    sh = np.concatenate([dc[:, None, :], rest], axis=1).astype(np.float32)
    scene = GaussianScene(
        means=torch.from_numpy(means.astype(np.float32)),
        quats=torch.from_numpy(unpack_rotation(words["packed_rotation"])),
        log_scales=torch.from_numpy(log_scales.astype(np.float32)),
        logit_opacities=torch.from_numpy(np.log(alpha / (1 - alpha)).astype(np.float32)),
        sh=torch.from_numpy(sh),
    )
    return scene


def _require(path: Path, element: str, data: np.ndarray, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in data.dtype.names]
    if missing:
        raise InputError(f"{path}: element {element!r} lacks {', '.join(missing)}; not a SuperSplat {_WHAT}")


def _unpack_unorm(value: np.ndarray, bits: int) -> np.ndarray:  # [N] uint32 -> [N] float32 in [0, 1]
    return (value & np.uint32((1 << bits) - 1)).astype(np.float32) / np.float32((1 << bits) - 1)


def _unpack_111011(word: np.ndarray) -> np.ndarray:  # [N] -> [N, 3]
    return np.stack([_unpack_unorm(word >> 21, 11), _unpack_unorm(word >> 11, 10), _unpack_unorm(word, 11)], axis=1)


def _unpack_8888(word: np.ndarray) -> np.ndarray:  # [N] -> [N, 4]
    return np.stack([_unpack_unorm(word >> shift, 8) for shift in (24, 16, 8, 0)], axis=1)


def unpack_rotation(word: np.ndarray) -> np.ndarray:  # [N] uint32 -> [N, 4] unit wxyz float32
    """Smallest-three: the top 2 bits index the largest component (of w, x, y, z); the rest follow in order."""
    small = np.stack([_unpack_unorm(word >> shift, 10) for shift in (20, 10, 0)], axis=1)
    small = (small - 0.5) * np.float32(np.sqrt(2.0))  # [N, 3]
    largest = np.sqrt(np.clip(1.0 - (small * small).sum(axis=1), 0.0, None))  # [N]
    index = (word >> 30).astype(np.int64)  # [N] in 0..3
    quats = np.empty((len(word), 4), np.float32)
    # Row r's three stored values fill the slots other than index[r], in increasing slot order.
    slots = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[index]  # [N, 3]
    rows = np.arange(len(word))
    quats[rows[:, None], slots] = small
    quats[rows, index] = largest
    return quats


def _read_sh(path: Path, sh: np.ndarray | None, n: int) -> np.ndarray:  # [N, K-1, 3] float32
    if sh is None or not sh.dtype.names:
        return np.zeros((n, 0, 3), np.float32)
    names = [f"f_rest_{i}" for i in range(len(sh.dtype.names))]
    if len(sh) != n or list(sh.dtype.names) != names or len(names) not in (0, 9, 24, 45):
        raise InputError(
            f"{path}: the 'sh' element must have one row per Gaussian ({n}) and f_rest_0..f_rest_M-1 with M = 9, 24 "
            f"or 45; it has {len(sh)} rows and {len(names)} properties. Export it again"
        )
    if any(sh.dtype[name] != np.uint8 for name in names):
        raise InputError(f"{path}: the 'sh' element's properties must be uchar; export it again")
    raw = np.asarray(sh).view(np.uint8).reshape(n, len(names)).astype(np.float32)
    unit = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
    values = ((unit - 0.5) * 8.0).astype(np.float32)  # [N, 3·(K-1)] channel-major, as INRIA's f_rest
    k1 = len(names) // 3
    return np.ascontiguousarray(values.reshape(n, 3, k1).transpose(0, 2, 1))


# ---- writing ---------------------------------------------------------------------------------------------------


def write_compressed_ply(path: str | os.PathLike[str], scene: GaussianScene) -> None:
    """Write `scene` as a SuperSplat compressed PLY, atomically, in the scene's order (Gaussian i stays row i).

    gsplat's exporter writes the same layout but sorts the Gaussians (Morton order), drops faint ones and divides by
    a chunk's range even when it is zero; splatseg keeps every Gaussian where it was, so a selection `.npy` still
    indexes the file. SH beyond the DC term is written in the `sh` element, 8 bits a coefficient.
    """
    from backend.io.atomic import atomic_open

    n = len(scene)
    if n == 0:
        raise ValueError("cannot write an empty scene as a compressed PLY")
    means = scene.means.detach().cpu().double().numpy()
    log_scales = np.clip(scene.log_scales.detach().cpu().double().numpy(), -20, 20)
    rgb = scene.sh[:, 0].detach().cpu().double().numpy() * SH_C0 + 0.5  # [N, 3], may leave [0, 1]
    alpha = scene.opacities.detach().cpu().double().numpy()
    num_chunks = -(-n // CHUNK_SIZE)
    pad = num_chunks * CHUNK_SIZE - n

    def chunked(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # [N, 3] -> lo, hi [C, 3], unit
        padded = np.concatenate([values, np.repeat(values[-1:], pad, axis=0)]).reshape(num_chunks, CHUNK_SIZE, 3)
        lo, hi = padded.min(axis=1), padded.max(axis=1)
        span = np.where(hi > lo, hi - lo, 1.0)
        unit = (values - lo[np.arange(n) // CHUNK_SIZE]) / span[np.arange(n) // CHUNK_SIZE]
        return lo, hi, unit

    lo_p, hi_p, unit_p = chunked(means)
    lo_s, hi_s, unit_s = chunked(log_scales)
    lo_c, hi_c, unit_c = chunked(rgb)
    chunk = np.concatenate([lo_p, hi_p, lo_s, hi_s, lo_c, hi_c], axis=1).astype("<f4")  # [C, 18]
    words = np.stack(
        [
            _pack_111011(unit_p),
            pack_rotation(scene.quats.detach().cpu().double().numpy()),
            _pack_111011(unit_s),
            _pack_unorm(unit_c[:, 0], 8) << 24
            | _pack_unorm(unit_c[:, 1], 8) << 16
            | _pack_unorm(unit_c[:, 2], 8) << 8
            | _pack_unorm(alpha, 8),
        ],
        axis=1,
    ).astype("<u4")  # [N, 4]
    k1 = scene.sh.shape[1] - 1
    header = ["ply", "format binary_little_endian 1.0", "comment written by splatseg", f"element chunk {num_chunks}"]
    header += [f"property float {name}" for name in _BOUNDS + _SCALE_BOUNDS + _COLOR_BOUNDS]
    header += [f"element vertex {n}"] + [f"property uint {name}" for name in _WORDS]
    sh_bytes = b""
    if k1:
        rest = scene.sh[:, 1:].detach().cpu().double().numpy().transpose(0, 2, 1).reshape(n, 3 * k1)  # channel-major
        sh_bytes = np.clip(np.floor((rest / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes()
        header += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(3 * k1)]
    header.append("end_header\n")
    with atomic_open(path, "wb") as f:
        f.write("\n".join(header).encode("ascii"))
        f.write(chunk.tobytes())
        f.write(words.tobytes())
        f.write(sh_bytes)


def _pack_unorm(value: np.ndarray, bits: int) -> np.ndarray:  # [N] in [0, 1] -> [N] uint32
    top = (1 << bits) - 1
    return np.clip(np.floor(value * top + 0.5), 0, top).astype(np.uint32)


def _pack_111011(unit: np.ndarray) -> np.ndarray:  # [N, 3] -> [N] uint32
    return _pack_unorm(unit[:, 0], 11) << 21 | _pack_unorm(unit[:, 1], 10) << 11 | _pack_unorm(unit[:, 2], 11)


def pack_rotation(quats: np.ndarray) -> np.ndarray:  # [N, 4] wxyz -> [N] uint32; inverse of `unpack_rotation`
    q = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(len(q))
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]  # q and -q are one rotation; keep the largest ≥ 0
    others = q[rows[:, None], np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]]  # [N, 3]
    packed = _pack_unorm(others / np.sqrt(2.0) + 0.5, 10)
    return largest.astype(np.uint32) << 30 | packed[:, 0] << 20 | packed[:, 1] << 10 | packed[:, 2]

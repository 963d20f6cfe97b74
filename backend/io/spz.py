"""Niantic SPZ (`*.spz`), versions 2 and 3 (one gzip stream) and 4 (NGSP header + zstd stream per section).

After the header the same packed sections follow in both containers (docs/formats.md), N Gaussians each:
positions 9·N (three 24-bit signed fixed-point numbers, `fractional_bits` after the point), alphas N (opacity·255),
colours 3·N (SH DC as v/255 - 0.5 divided by 0.15), scales 3·N (log-scale = v/16 - 10), rotations 3·N in v2 (x, y, z
as v/127.5 - 1, w ≥ 0 from the unit norm) or 4·N in v3+ (smallest-three: 2 bits for the largest of x, y, z, w, then
per other component a sign bit and 9 bits of magnitude·√2), SH 3·K'·N (per Gaussian coefficient-major,
channel-minor, (v - 128)/128).

Axes: SPZ stores right-up-back (RUB) coordinates, the INRIA PLY right-down-front (RDF); the readers of the format
turn them into PLY axes by negating y and z, which `read_spz` does too (positions, the quaternion's y and z, and
the SH coefficients whose basis function is odd in y or z), so an .spz loads where the same capture's PLY loads.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from backend.core.errors import InputError
from backend.core.scene import GaussianScene

MAGIC = 0x5053474E  # b"NGSP" little-endian
_COLOR_SCALE = 0.15
_V4_HEADER = struct.Struct("<IIIBBBBI")
_V4_HEADER_SIZE = 32
_LEGACY_HEADER = struct.Struct("<IIIBBBB")
_MAX_RATIO = 2000
"""The most bytes a section may claim per compressed byte. Real files compress 1.5-5×; a header whose N implies more
is refused before anything is allocated, so a 2 kB file cannot make splatseg reserve gigabytes."""
_OPACITY_EPS = 1e-6

# Sign of each SH basis function (degree 1..3, real SH order) when y and z are negated: the function's parity in y·z.
# Degree 1: y, z, x; 2: xy, yz, 3z²-1, xz, x²-y²; 3: y(3x²-y²), xyz, y(5z²-1), z(5z²-3), x(5z²-1), z(x²-y²), x(x²-3y²).
_SH_FLIP = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)


def read_spz(path: str | os.PathLike[str]) -> GaussianScene:
    """Decode an .spz into a `GaussianScene` on the CPU, in INRIA PLY axes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of an .spz model")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        n, degree, frac, version, payload = _legacy(path, raw)
    elif len(raw) >= 4 and struct.unpack_from("<I", raw)[0] == MAGIC:
        n, degree, frac, version, payload = _v4(path, raw)
    else:
        raise InputError(f"{path} is not an SPZ file (neither gzip nor NGSP); give the .spz an exporter wrote")
    return _decode(payload, n, degree, frac, version)


def _sections(n: int, degree: int, version: int) -> list[int]:
    """Byte sizes of the sections in file order: positions, alphas, colours, scales, rotations, SH."""
    k = (degree + 1) ** 2 - 1
    return [9 * n, n, 3 * n, 3 * n, (4 if version >= 3 else 3) * n, 3 * k * n]


def _check_header(path: Path, version: int, n: int, degree: int, frac: int, versions: tuple[int, ...]) -> None:
    if version not in versions:
        raise InputError(f"{path}: SPZ version {version} is not supported (2, 3 and 4 are); re-export the file")
    if degree > 3:
        raise InputError(f"{path}: SH degree {degree} (at most 3); the file is damaged, export it again")
    if not 0 <= frac <= 23:
        raise InputError(f"{path}: {frac} fractional bits for 24-bit positions; the file is damaged, export it again")


def _bounded(path: Path, need: int, compressed: int) -> None:
    if need > _MAX_RATIO * max(compressed, 1):
        raise InputError(
            f"{path}: its header claims {need} bytes of data from {compressed} compressed bytes; the file is damaged "
            "or not an SPZ, export it again"
        )


def _legacy(path: Path, raw: bytes) -> tuple[int, int, int, int, np.ndarray]:
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = stream.decompress(raw, _LEGACY_HEADER.size)
    except zlib.error as e:
        raise InputError(f"{path}: corrupt gzip stream ({e}); copy or export the .spz again") from None
    if len(head) < _LEGACY_HEADER.size:
        raise InputError(f"{path}: too short for an SPZ header; copy or export the file again")
    magic, version, n, degree, frac, _flags, _ = _LEGACY_HEADER.unpack(head)
    if magic != MAGIC:
        raise InputError(f"{path} is gzip but not an SPZ (no NGSP magic); give the .spz an exporter wrote")
    _check_header(path, version, n, degree, frac, (2, 3))
    need = sum(_sections(n, degree, version))
    _bounded(path, need, len(raw))
    try:
        body = stream.decompress(stream.unconsumed_tail, need)  # at most `need` bytes are produced
    except zlib.error as e:
        raise InputError(f"{path}: corrupt gzip stream ({e}); copy or export the .spz again") from None
    if len(body) < need:
        raise InputError(f"{path}: {len(body)} bytes of data where {n} Gaussians need {need}; the file is truncated")
    return n, degree, frac, version, np.frombuffer(body, np.uint8)


def _v4(path: Path, raw: bytes) -> tuple[int, int, int, int, np.ndarray]:
    import zstandard

    if len(raw) < _V4_HEADER_SIZE:
        raise InputError(f"{path}: too short for an SPZ header; copy or export the file again")
    _, version, n, degree, frac, _flags, streams, toc = _V4_HEADER.unpack_from(raw)
    _check_header(path, version, n, degree, frac, (4,))
    sizes = [s for s in _sections(n, degree, version) if s]
    _bounded(path, sum(sizes), len(raw))
    if streams != len(sizes) or toc < _V4_HEADER_SIZE or toc + 16 * streams > len(raw):
        raise InputError(f"{path}: SPZ v4 table of contents does not match its header; export the file again")
    parts, offset = [], toc + 16 * streams
    decompressor = zstandard.ZstdDecompressor()
    for i, size in enumerate(sizes):
        csize, usize = struct.unpack_from("<QQ", raw, toc + 16 * i)
        if usize != size or offset + csize > len(raw):
            raise InputError(f"{path}: SPZ v4 section {i} is {usize} bytes or overruns the file; export it again")
        try:
            part = decompressor.decompress(raw[offset : offset + csize], max_output_size=size)
        except zstandard.ZstdError as e:
            raise InputError(f"{path}: corrupt zstd section {i} ({e}); copy or export the .spz again") from None
        if len(part) != size:
            raise InputError(f"{path}: SPZ v4 section {i} holds {len(part)} bytes, expected {size}; export it again")
        parts.append(np.frombuffer(part, np.uint8))
        offset += csize
    return n, degree, frac, version, np.concatenate(parts)


def _decode(payload: np.ndarray, n: int, degree: int, frac: int, version: int) -> GaussianScene:
    sizes = _sections(n, degree, version)
    ends = np.cumsum(sizes)
    pos, alpha, color, scale, rot, sh = np.split(payload[: ends[-1]], ends[:-1])

    b = pos.reshape(n, 3, 3).astype(np.int32)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed >= 1 << 23, fixed - (1 << 24), fixed)  # 24-bit two's complement
    means = fixed.astype(np.float32) / np.float32(1 << frac)  # [N, 3]

    a = np.clip(alpha.astype(np.float32) / 255.0, _OPACITY_EPS, 1 - _OPACITY_EPS)
    dc = (color.reshape(n, 3).astype(np.float32) / 255.0 - 0.5) / _COLOR_SCALE  # [N, 3]
    log_scales = scale.reshape(n, 3).astype(np.float32) / 16.0 - 10.0
    xyzw = _rotations_v3(rot) if version >= 3 else _rotations_v2(rot)  # [N, 4]
    k = (degree + 1) ** 2 - 1
    rest = (sh.reshape(n, k, 3).astype(np.float32) - 128.0) / 128.0  # [N, K-1, 3]

    # RUB -> RDF (PLY axes): negate y and z of positions and of the rotation axis, flip the odd SH functions.
    means[:, 1:] *= -1
    quats = np.stack([xyzw[:, 3], xyzw[:, 0], -xyzw[:, 1], -xyzw[:, 2]], axis=1)  # wxyz
    rest *= _SH_FLIP[:k, None]
    sh_all = np.concatenate([dc[:, None, :], rest], axis=1)
    return GaussianScene(
        means=torch.from_numpy(np.ascontiguousarray(means)),
        quats=torch.from_numpy(np.ascontiguousarray(quats, np.float32)),
        log_scales=torch.from_numpy(log_scales),
        logit_opacities=torch.from_numpy(np.log(a / (1 - a)).astype(np.float32)),
        sh=torch.from_numpy(np.ascontiguousarray(sh_all, np.float32)),
    )


def _rotations_v2(rot: np.ndarray) -> np.ndarray:  # [3N] uint8 -> [N, 4] xyzw
    xyz = rot.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0
    w = np.sqrt(np.clip(1.0 - (xyz * xyz).sum(axis=1), 0.0, None))
    return np.concatenate([xyz, w[:, None]], axis=1)


def _rotations_v3(rot: np.ndarray) -> np.ndarray:  # [4N] uint8 -> [N, 4] xyzw
    """Smallest-three, read from the low bits up: the component with the highest slot index comes first."""
    word = rot.reshape(-1, 4).astype(np.uint32)
    word = word[:, 0] | (word[:, 1] << 8) | (word[:, 2] << 16) | (word[:, 3] << 24)
    largest = (word >> 30).astype(np.int64)
    out = np.zeros((len(word), 4), np.float32)
    rows = np.arange(len(word))
    slots = np.array([[3, 2, 1], [3, 2, 0], [3, 1, 0], [2, 1, 0]])[largest]  # [N, 3] slots in reading order
    for j in range(3):
        part = word >> np.uint32(10 * j)
        value = (part & np.uint32(511)).astype(np.float32) / 511.0 * np.float32(np.sqrt(0.5))
        value = np.where((part >> np.uint32(9)) & np.uint32(1), -value, value)
        out[rows, slots[:, j]] = value
    out[rows, largest] = np.sqrt(np.clip(1.0 - (out * out).sum(axis=1), 0.0, None))
    return out


def spz_bytes(scene: GaussianScene, *, fractional_bits: int = 12) -> bytes:
    """The scene as an SPZ v2 file (gzip; smallest-three rotations are v3's only change). The inverse of
    `read_spz` up to quantisation: PLY axes back to RUB, values to the section encodings above."""
    n = len(scene)
    k = scene.sh.shape[1] - 1
    means = scene.means.detach().cpu().double().numpy() * [1, -1, -1]
    fixed = np.round(means * (1 << fractional_bits)).astype(np.int64)
    if np.abs(fixed).max(initial=0) >= 1 << 23:
        raise ValueError(f"positions exceed SPZ's 24-bit range at {fractional_bits} fractional bits")
    pos = (fixed[..., None] >> np.array([0, 8, 16]) & 0xFF).astype(np.uint8)  # [N, 3, 3] little-endian bytes
    alpha = np.round(scene.opacities.detach().cpu().double().numpy() * 255)
    dc = scene.sh[:, 0].detach().cpu().double().numpy()
    color = np.round((dc * _COLOR_SCALE + 0.5) * 255)
    scale = np.round((scene.log_scales.detach().cpu().double().numpy() + 10.0) * 16)
    q = scene.unit_quats.detach().cpu().double().numpy()  # wxyz
    xyzw = np.stack([q[:, 1], -q[:, 2], -q[:, 3], q[:, 0]], axis=1)
    xyzw *= np.where(xyzw[:, 3:] < 0, -1.0, 1.0)  # w ≥ 0: v2 stores x, y, z only
    rot = np.round((xyzw[:, :3] + 1.0) * 127.5)
    rest = scene.sh[:, 1:].detach().cpu().double().numpy() * _SH_FLIP[:k, None]
    sh = np.round(rest * 128 + 128)

    def u8(a: np.ndarray) -> bytes:
        return np.clip(a, 0, 255).astype(np.uint8).tobytes()

    header = _LEGACY_HEADER.pack(MAGIC, 2, n, scene.sh_degree, fractional_bits, 0, 0)
    body = header + pos.tobytes() + u8(alpha) + u8(color) + u8(scale) + u8(rot) + u8(sh)
    return gzip.compress(body, compresslevel=1)

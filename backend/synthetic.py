"""Procedural 3DGS scenes whose segmentation is known, at two levels: objects and their parts.

Every method splatseg implements (SAGA, Click-Gaussian, SA3D, GAGS, SAS) is judged by how well a selection matches
the Gaussians a person meant, and real captures carry no per-Gaussian answer. These scenes do: Gaussians are sampled
on the surfaces of simple primitives and each keeps the object and the part it came from. Colours are shared across
objects on purpose (the mug's body and the toy car's body are the same red; the lamp's base, the mug's handle and the
bottle's cap the same white), so a method that segments by colour alone fails here as it would on a real table.

The Gaussians look like a trained model's surface splats: flat discs (thin along the normal) oriented to the
surface, nearly opaque, sized from the sampling density so the surfaces render closed. Nothing here draws from global
random state; one seed fixes every array.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from backend.camera import Camera, look_at
from backend.errors import SplatsegError
from backend.scene import GaussianScene

GENERATOR = "splatseg.synthetic"
"""Written into `labels.json`: marks a folder as one this module may overwrite."""

DEFAULT_NUM_GAUSSIANS = 80_000
"""Enough for closed surfaces at 256² renders (object splats ≈ 4 mm) while the CPU renderer stays quick."""

TABLE_HEIGHT = 0.75
"""Table top at z = 0, floor at z = -TABLE_HEIGHT; metres, world z up."""

_TABLE_HALF = (0.6, 0.4)  # half extents of the table top in x and y
_ROOM_HALF = 2.4  # the walls' distance from the table centre: behind every orbit camera
_WALL_TOP = 1.6

_GROUP_SHARES = {"objects": 0.70, "table": 0.18, "background": 0.12}
"""Share of the Gaussian budget per group; within a group the density is uniform (area-weighted sampling)."""

_SPLAT_SIZE = 1.1
"""Tangent standard deviation in units of the group's mean point spacing: big enough that random (Poisson) samples
leave no see-through holes, small enough that an edge between two parts blurs over about one spacing."""

_FLATNESS = 0.2
"""Normal scale / tangent scale: trained 3DGS surface splats are discs, not balls."""

_COLOR_NOISE = 0.025

Vec3 = tuple[float, float, float]

PALETTE: dict[str, Vec3] = {
    # Shared across objects on purpose: see the module docstring.
    "red": (0.78, 0.13, 0.11),
    "white": (0.92, 0.91, 0.88),
    "green": (0.17, 0.52, 0.24),
    "blue": (0.16, 0.31, 0.68),
    # Used once.
    "dark_green": (0.09, 0.33, 0.15),
    "navy": (0.10, 0.16, 0.38),
    "yellow": (0.96, 0.80, 0.30),
    "metal": (0.60, 0.61, 0.64),
    "coffee": (0.24, 0.13, 0.06),
    "terracotta": (0.74, 0.40, 0.24),
    "soil": (0.27, 0.18, 0.11),
    "black": (0.07, 0.07, 0.08),
    "glass": (0.58, 0.78, 0.88),
    "orange": (0.93, 0.52, 0.14),
    "purple": (0.45, 0.25, 0.55),
    "wood": (0.58, 0.40, 0.23),
    "dark_wood": (0.33, 0.22, 0.13),
    "floor_light": (0.56, 0.55, 0.53),
    "floor_dark": (0.42, 0.41, 0.40),
    "wall": (0.82, 0.79, 0.72),
}


# ---- surface primitives -------------------------------------------------------------------------------------------
# Each samples n points uniformly by area and returns (points [n, 3], tangents [n, 3], normals [n, 3]); the sign of a
# normal does not matter because a flat Gaussian looks the same from both sides.


class _Surface(Protocol):
    def area(self) -> float: ...

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perpendicular_frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors that make a right-handed frame (e1, e2, axis)."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _unit(np.cross(helper, axis))
    return e1, np.cross(axis, e1)


def _ring(theta: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radial and circumferential unit vectors [n, 3] at angles theta [n] in the plane (e1, e2)."""
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    return c * e1 + s * e2, c * e2 - s * e1


@dataclasses.dataclass(frozen=True)
class _Quad:
    """The parallelogram origin + a·u + b·v, a, b in [0, 1]."""

    origin: Vec3
    u: Vec3
    v: Vec3

    def area(self) -> float:
        return float(np.linalg.norm(np.cross(self.u, self.v)))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, v = np.asarray(self.u), np.asarray(self.v)
        ab = rng.random((n, 2))
        points = np.asarray(self.origin) + ab[:, :1] * u + ab[:, 1:] * v
        normal = _unit(np.cross(u, v))
        return points, np.broadcast_to(_unit(u), (n, 3)), np.broadcast_to(normal, (n, 3))


@dataclasses.dataclass(frozen=True)
class _Tube:
    """The side of a cone frustum (a cylinder when r0 == r1), open at both ends, from `base` along `axis`."""

    base: Vec3
    axis: Vec3
    length: float
    r0: float
    r1: float

    def area(self) -> float:
        return math.pi * (self.r0 + self.r1) * math.hypot(self.length, self.r1 - self.r0)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        axis = _unit(np.asarray(self.axis, dtype=np.float64))
        e1, e2 = _perpendicular_frame(axis)
        u, theta = rng.random(n), rng.random(n) * (2 * math.pi)
        dr = self.r1 - self.r0
        # The ring at height t has circumference ∝ r(t): invert that CDF so the density per area is uniform.
        t = u if abs(dr) < 1e-12 else (np.sqrt(self.r0**2 + u * (self.r1**2 - self.r0**2)) - self.r0) / dr
        radial, tangent = _ring(theta, e1, e2)
        points = np.asarray(self.base) + (t * self.length)[:, None] * axis + (self.r0 + dr * t)[:, None] * radial
        normals = _unit(self.length * radial - dr * axis)
        return points, tangent, normals


@dataclasses.dataclass(frozen=True)
class _Annulus:
    """A flat ring (a disc when r_in == 0) around `center`, facing `axis`."""

    center: Vec3
    axis: Vec3
    r_in: float
    r_out: float

    def area(self) -> float:
        return math.pi * (self.r_out**2 - self.r_in**2)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        axis = _unit(np.asarray(self.axis, dtype=np.float64))
        e1, e2 = _perpendicular_frame(axis)
        u, theta = rng.random(n), rng.random(n) * (2 * math.pi)
        r = np.sqrt(self.r_in**2 + u * (self.r_out**2 - self.r_in**2))
        radial, _ = _ring(theta, e1, e2)
        points = np.asarray(self.center) + r[:, None] * radial
        return points, radial, np.broadcast_to(axis, (n, 3))


@dataclasses.dataclass(frozen=True)
class _SphereZone:
    """The band of a sphere between heights z_lo·R and z_hi·R above its centre (z_lo = -1, z_hi = 1: all of it)."""

    center: Vec3
    radius: float
    z_lo: float = -1.0
    z_hi: float = 1.0

    def area(self) -> float:
        return 2 * math.pi * self.radius**2 * (self.z_hi - self.z_lo)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Archimedes: height is uniform on a sphere, so a uniform z gives a uniform density per area.
        z = self.z_lo + rng.random(n) * (self.z_hi - self.z_lo)
        theta = rng.random(n) * (2 * math.pi)
        s = np.sqrt(np.clip(1 - z * z, 0.0, None))
        normals = np.stack([s * np.cos(theta), s * np.sin(theta), z], axis=1)
        tangents = np.stack([-np.sin(theta), np.cos(theta), np.zeros(n)], axis=1)
        return np.asarray(self.center) + self.radius * normals, tangents, normals


@dataclasses.dataclass(frozen=True)
class _TorusArc:
    """The part of a torus whose major angle lies in [u0, u1]; the major circle lies in the plane (e1, e2)."""

    center: Vec3
    e1: Vec3
    e2: Vec3
    major: float
    minor: float
    u0: float
    u1: float

    def area(self) -> float:
        return (self.u1 - self.u0) * self.major * 2 * math.pi * self.minor

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e1, e2 = np.asarray(self.e1, dtype=np.float64), np.asarray(self.e2, dtype=np.float64)
        e3 = np.cross(e1, e2)
        # The area element is ∝ (major + minor·cos v): rejection-sample v against it, in batches.
        k = self.minor / self.major
        accepted: list[np.ndarray] = []
        have = 0
        while have < n:
            v = rng.random(2 * (n - have) + 16) * (2 * math.pi)
            keep = v[rng.random(v.shape[0]) * (1 + k) < 1 + k * np.cos(v)]
            accepted.append(keep)
            have += keep.shape[0]
        v = np.concatenate(accepted)[:n]
        u = self.u0 + rng.random(n) * (self.u1 - self.u0)
        radial, tangents = _ring(u, e1, e2)
        normals = np.cos(v)[:, None] * radial + np.sin(v)[:, None] * e3
        points = np.asarray(self.center) + self.major * radial + self.minor * normals
        return points, tangents, normals


def _box(center: Vec3, size: Vec3, *, yaw: float = 0.0, bottom: bool = False) -> tuple[_Surface, ...]:
    """A box standing on z = center[2], turned by `yaw` about z; the bottom face is left out unless asked for (it
    rests on something and no camera sees it)."""
    c, s = math.cos(yaw), math.sin(yaw)
    x = np.array([c, s, 0.0]) * size[0]
    y = np.array([-s, c, 0.0]) * size[1]
    z = np.array([0.0, 0.0, size[2]])
    o = np.asarray(center) - x / 2 - y / 2  # bottom corner

    def quad(origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> _Quad:
        return _Quad(tuple(origin), tuple(u), tuple(v))

    faces = [
        quad(o + z, x, y),  # top
        quad(o, x, z),  # -y side
        quad(o + y, x, z),  # +y side
        quad(o, y, z),  # -x side
        quad(o + x, y, z),  # +x side
    ]
    if bottom:
        faces.append(quad(o, x, y))
    return tuple(faces)


def _upright_tube(z0: float, z1: float, r0: float, r1: float | None = None, xy: tuple[float, float] = (0, 0)) -> _Tube:
    return _Tube((xy[0], xy[1], z0), (0.0, 0.0, 1.0), z1 - z0, r0, r0 if r1 is None else r1)


def _cap(z: float, r_out: float, r_in: float = 0.0, xy: tuple[float, float] = (0, 0)) -> _Annulus:
    return _Annulus((xy[0], xy[1], z), (0.0, 0.0, 1.0), r_in, r_out)


# ---- scene content ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Part:
    name: str
    color: str  # a PALETTE key
    surfaces: tuple[_Surface, ...]
    checker: tuple[str, float] | None = None
    """(second PALETTE key, tile size in m): a tiled floor, so views of it are not featureless."""


@dataclasses.dataclass(frozen=True)
class _Object:
    name: str
    parts: tuple[_Part, ...]
    footprint: float
    """Radius of a vertical cylinder about the local origin that holds the object at any yaw: the layout keeps these
    apart, which is what keeps objects from interpenetrating."""
    slot: tuple[float, float] = (0.0, 0.0)
    """Its place on the table top before jitter; the slots are chosen so the un-jittered layout is valid."""


def _mug() -> _Object:
    r, r_in, h, coffee = 0.042, 0.037, 0.095, 0.075
    body = (_upright_tube(0, h, r), _upright_tube(coffee, h, r_in), _cap(h, r, r_in))
    handle = _TorusArc((r - 0.002, 0.0, h / 2), (1, 0, 0), (0, 0, 1), 0.028, 0.007, math.radians(-80), math.radians(80))
    return _Object(
        "mug",
        (
            _Part("body", "red", body),
            _Part("handle", "white", (handle,)),
            _Part("coffee", "coffee", (_cap(coffee, r_in),)),
        ),
        footprint=0.08,
        slot=(0.0, -0.2),
    )


def _lamp() -> _Object:
    return _Object(
        "lamp",
        (
            _Part("base", "white", (_upright_tube(0, 0.02, 0.075), _cap(0.02, 0.075))),
            _Part("pole", "metal", (_upright_tube(0.02, 0.36, 0.007), _cap(0.36, 0.007))),
            _Part("shade", "yellow", (_upright_tube(0.25, 0.37, 0.11, 0.055),)),
        ),
        footprint=0.115,
        slot=(-0.42, 0.2),
    )


def _bottle() -> _Object:
    return _Object(
        "bottle",
        (
            _Part("body", "green", (_upright_tube(0, 0.16, 0.036),)),
            _Part("neck", "dark_green", (_upright_tube(0.16, 0.2, 0.036, 0.014), _upright_tube(0.2, 0.245, 0.014))),
            _Part("cap", "white", (_upright_tube(0.245, 0.27, 0.016), _cap(0.27, 0.016))),
        ),
        footprint=0.04,
        slot=(0.22, 0.02),
    )


def _teapot() -> _Object:
    r = 0.07
    cz = 0.8 * r  # the sphere is cut flat at 0.8 R below its centre, which is where it stands on the table
    spout_dir = (math.cos(math.radians(40)), 0.0, math.sin(math.radians(40)))
    spout_base = (r * math.cos(math.radians(-20)), 0.0, cz + r * math.sin(math.radians(-20)))
    handle = _TorusArc((-(r - 0.01), 0.0, cz), (1, 0, 0), (0, 0, 1), 0.04, 0.008, math.radians(95), math.radians(265))
    return _Object(
        "teapot",
        (
            _Part("body", "blue", (_SphereZone((0, 0, cz), r, -0.8, 0.6),)),
            _Part("spout", "blue", (_Tube(spout_base, spout_dir, 0.09, 0.016, 0.008),)),
            _Part("lid", "navy", (_SphereZone((0, 0, cz), r, 0.6, 1.0), _SphereZone((0, 0, cz + r + 0.008), 0.012))),
            _Part("handle", "navy", (handle,)),
        ),
        footprint=0.145,
        slot=(-0.02, 0.16),
    )


def _plant() -> _Object:
    soil, leaf_r = 0.09, 0.075
    return _Object(
        "plant",
        (
            _Part("pot", "terracotta", (_upright_tube(0, 0.1, 0.05, 0.065), _cap(0.1, 0.065, 0.06))),
            _Part("soil", "soil", (_cap(soil, 0.0635),)),
            # The foliage ball sits in the soil: only the part above it is sampled.
            _Part("foliage", "green", (_SphereZone((0, 0, soil + 0.8 * leaf_r), leaf_r, -0.8, 1.0),)),
        ),
        footprint=0.08,
        slot=(0.38, 0.22),
    )


def _car() -> _Object:
    wheel_r, wheel_w = 0.02, 0.014
    wheels: list[_Surface] = []
    for x in (-0.05, 0.05):
        for side in (-1.0, 1.0):
            inner = (x, side * 0.0375, wheel_r)
            outer = (x, side * (0.0375 + wheel_w), wheel_r)
            wheels += [
                _Tube(inner, (0, side, 0), wheel_w, wheel_r, wheel_r),
                _Annulus(outer, (0, 1, 0), 0.0, wheel_r),
            ]
    return _Object(
        "car",
        (
            _Part("body", "red", _box((0, 0, 0.012), (0.16, 0.075, 0.038))),
            _Part("cabin", "glass", _box((-0.005, 0, 0.05), (0.08, 0.065, 0.035))),
            _Part("wheels", "black", tuple(wheels)),
        ),
        footprint=0.1,
        slot=(0.32, -0.18),
    )


def _books(rng: np.random.Generator) -> _Object:
    sizes = ((0.21, 0.15, 0.03), (0.19, 0.14, 0.026), (0.17, 0.12, 0.032))
    colors = ("orange", "blue", "purple")
    parts, z = [], 0.0
    for i, (size, color) in enumerate(zip(sizes, colors)):
        yaw = rng.uniform(-0.15, 0.15)  # a stack is never square
        parts.append(_Part(f"book{i + 1}", color, _box((0, 0, z), size, yaw=yaw)))
        z += size[2]
    return _Object("books", tuple(parts), footprint=0.135, slot=(-0.38, -0.18))


def _table() -> _Object:
    hx, hy = _TABLE_HALF
    thickness, leg_r, inset = 0.04, 0.025, 0.08
    legs = tuple(
        _upright_tube(-TABLE_HEIGHT, -thickness, leg_r, xy=(sx * (hx - inset), sy * (hy - inset)))
        for sx in (-1, 1)
        for sy in (-1, 1)
    )
    top = _box((0, 0, -thickness), (2 * hx, 2 * hy, thickness))
    return _Object("table", (_Part("top", "wood", top), _Part("legs", "dark_wood", legs)), footprint=0.0)


def _room() -> tuple[_Part, ...]:
    """Floor and four walls around the table: every orbit view has something behind the objects, as a real capture
    does, and no view sees past the walls."""
    L, z0 = _ROOM_HALF, -TABLE_HEIGHT
    h = _WALL_TOP - z0
    floor = _Part("floor", "floor_light", (_Quad((-L, -L, z0), (2 * L, 0, 0), (0, 2 * L, 0)),), ("floor_dark", 0.8))
    walls = (
        _Quad((-L, -L, z0), (2 * L, 0, 0), (0, 0, h)),
        _Quad((-L, L, z0), (2 * L, 0, 0), (0, 0, h)),
        _Quad((-L, -L, z0), (0, 2 * L, 0), (0, 0, h)),
        _Quad((L, -L, z0), (0, 2 * L, 0), (0, 0, h)),
    )
    return (floor, _Part("walls", "wall", walls))


def _place(rng: np.random.Generator, objects: Sequence[_Object]) -> list[tuple[float, float, float]]:
    """(x, y, yaw) per object: its slot moved by a random offset and turned by a random yaw.

    The offset's length is capped at half the smallest clearance between any two slots' footprints (and at the
    clearance to the table's edge), so every draw is a valid layout: no rejection loop, no fallback that could
    collide with an already moved neighbour.
    """
    hx, hy = _TABLE_HALF
    gap, margin, max_jitter = 0.01, 0.02, 0.04
    slack = [hx - margin - abs(o.slot[0]) - o.footprint for o in objects]
    slack += [hy - margin - abs(o.slot[1]) - o.footprint for o in objects]
    slack += [
        (math.dist(a.slot, b.slot) - a.footprint - b.footprint - gap) / 2
        for i, a in enumerate(objects)
        for b in objects[i + 1 :]
    ]
    jitter = min(max_jitter, *slack)
    if jitter < 0:
        raise RuntimeError("the tabletop slots overlap or overhang the table; fix _Object.slot / footprint")
    placed = []
    for obj in objects:
        yaw = float(rng.uniform(0, 2 * math.pi))
        radius, angle = jitter * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        placed.append((obj.slot[0] + radius * math.cos(angle), obj.slot[1] + radius * math.sin(angle), yaw))
    return placed


# ---- building ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SyntheticScene:
    """A Gaussian scene with the object and the part every Gaussian was sampled from."""

    scene: GaussianScene
    object_labels: np.ndarray  # [N] int32, 0 = background (floor, walls)
    part_labels: np.ndarray  # [N] int32, 0 = background
    object_names: dict[int, str]  # e.g. {1: "table", 2: "mug", ...}
    part_names: dict[int, str]  # e.g. {3: "mug/body", 4: "mug/handle", ...}
    part_to_object: dict[int, int]
    center: np.ndarray  # [3] float64: what orbit cameras look at (the middle of the objects on the table)
    radius: float
    """Radius of a sphere about `center` that holds the table top and everything on it."""
    preset: str = "tabletop"
    seed: int = 0
    support: tuple[int, ...] = ()
    """Object ids of supports no mask model gives a mask of their own (the shelf preset's board); not scored."""

    @property
    def num_gaussians(self) -> int:
        return len(self.scene)

    def labels_json(self) -> dict:
        """The names and the part → object map, as `labels.json` stores them (JSON keys are strings)."""
        return {
            "generator": GENERATOR,
            "preset": self.preset,
            "seed": self.seed,
            "num_gaussians": self.num_gaussians,
            "objects": {str(k): v for k, v in self.object_names.items()},
            "parts": {str(k): v for k, v in self.part_names.items()},
            "part_to_object": {str(k): v for k, v in self.part_to_object.items()},
            "support": list(self.support),
        }


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:  # [K] int64 summing exactly to total
    """Largest-remainder rounding: counts proportional to weights that add up to the exact total."""
    quota = total * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    return counts


def _quats_from_frames(R: np.ndarray) -> np.ndarray:  # R [N, 3, 3] rotations (columns = local axes) → [N, 4] wxyz
    """Shepperd's method, vectorised: pick per row the largest of |w|, |x|, |y|, |z| to divide by, so no row loses
    precision."""
    m = R
    d0, d1, d2 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    squares = np.stack([1 + d0 + d1 + d2, 1 + d0 - d1 - d2, 1 - d0 + d1 - d2, 1 - d0 - d1 + d2], axis=1)
    pick = np.argmax(squares, axis=1)
    big = 0.5 * np.sqrt(np.clip(squares[np.arange(len(m)), pick], 1e-12, None))
    inv = 0.25 / big
    a21, a12, a02, a20, a10, a01 = m[:, 2, 1], m[:, 1, 2], m[:, 0, 2], m[:, 2, 0], m[:, 1, 0], m[:, 0, 1]
    candidates = np.stack(
        [
            np.stack([big, (a21 - a12) * inv, (a02 - a20) * inv, (a10 - a01) * inv], axis=1),
            np.stack([(a21 - a12) * inv, big, (a01 + a10) * inv, (a02 + a20) * inv], axis=1),
            np.stack([(a02 - a20) * inv, (a01 + a10) * inv, big, (a12 + a21) * inv], axis=1),
            np.stack([(a10 - a01) * inv, (a02 + a20) * inv, (a12 + a21) * inv, big], axis=1),
        ],
        axis=1,
    )  # [N, 4 choices, 4]
    q = candidates[np.arange(len(m)), pick]
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)  # w ≥ 0: one canonical sign


def _yaw_matrix(yaw: float) -> np.ndarray:  # [3, 3]
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def build_tabletop(*, seed: int = 0, num_gaussians: int = DEFAULT_NUM_GAUSSIANS) -> SyntheticScene:
    """A table with seven objects (2–4 parts each) in a room; exactly `num_gaussians` Gaussians.

    Object ids: 1 table, then mug, lamp, bottle, teapot, plant, car, books. Part ids number every (object, part) pair
    from 1 in that order; background Gaussians (floor, walls) have object and part 0.
    """
    if num_gaussians < 2_000:
        raise SplatsegError(
            f"a tabletop scene needs at least 2000 Gaussians to cover its surfaces, got {num_gaussians}"
        )
    rng = np.random.default_rng(seed)
    on_table = [_mug(), _lamp(), _bottle(), _teapot(), _plant(), _car(), _books(rng)]
    poses = _place(rng, on_table)

    # (group, object id, part id, part, pose) for every part, background first.
    entries: list[tuple[str, int, int, _Part, tuple[float, float, float]]] = []
    object_names: dict[int, str] = {}
    part_names: dict[int, str] = {}
    part_to_object: dict[int, int] = {}
    entries += [("background", 0, 0, part, (0.0, 0.0, 0.0)) for part in _room()]
    for object_id, (obj, pose) in enumerate([(_table(), (0.0, 0.0, 0.0)), *zip(on_table, poses)], start=1):
        object_names[object_id] = obj.name
        for part in obj.parts:
            part_id = len(part_names) + 1
            part_names[part_id] = f"{obj.name}/{part.name}"
            part_to_object[part_id] = object_id
            entries.append(("table" if obj.name == "table" else "objects", object_id, part_id, part, pose))

    # Area-weighted counts: per group, then per surface within the group, so each group's density is uniform.
    surfaces = [(i, s) for i, entry in enumerate(entries) for s in entry[3].surfaces]
    areas = np.array([s.area() for _, s in surfaces])
    groups = [entries[i][0] for i, _ in surfaces]
    group_names = list(_GROUP_SHARES)
    group_totals = _apportion(num_gaussians, np.array([_GROUP_SHARES[g] for g in group_names]))
    counts = np.zeros(len(surfaces), dtype=np.int64)
    spacing: dict[str, float] = {}
    for g, total in zip(group_names, group_totals):
        members = np.array([k for k, name in enumerate(groups) if name == g])
        counts[members] = _apportion(int(total), areas[members])
        spacing[g] = math.sqrt(areas[members].sum() / total)

    points, tangents, normals, colors, sigmas, obj_ids, part_ids = [], [], [], [], [], [], []
    for (entry_index, surface), n in zip(surfaces, counts):
        if n == 0:
            continue
        group, object_id, part_id, part, (x, y, yaw) = entries[entry_index]
        p, t, nrm = surface.sample(rng, int(n))
        R = _yaw_matrix(yaw)
        p = p @ R.T + np.array([x, y, 0.0])
        points.append(p)
        tangents.append(t @ R.T)
        normals.append(nrm @ R.T)
        base = np.broadcast_to(np.asarray(PALETTE[part.color]), (n, 3))
        if part.checker is not None:
            other, tile = part.checker
            odd = (np.floor(p[:, 0] / tile) + np.floor(p[:, 1] / tile)) % 2 == 1
            base = np.where(odd[:, None], np.asarray(PALETTE[other]), base)
        colors.append(base)
        sigmas.append(np.full(n, _SPLAT_SIZE * spacing[group]))
        obj_ids.append(np.full(n, object_id, dtype=np.int32))
        part_ids.append(np.full(n, part_id, dtype=np.int32))

    means = np.concatenate(points)
    normal = _unit(np.concatenate(normals))
    tangent = np.concatenate(tangents)
    tangent = _unit(tangent - np.sum(tangent * normal, axis=1, keepdims=True) * normal)
    n_total = means.shape[0]
    # Turn each disc about its normal at random: with slightly unequal tangent scales a fixed in-plane orientation
    # would print the sampling parametrisation (rings, grid lines) into the renders.
    psi = rng.random(n_total) * (2 * math.pi)
    bitangent = np.cross(normal, tangent)
    tangent = np.cos(psi)[:, None] * tangent + np.sin(psi)[:, None] * bitangent
    bitangent = np.cross(normal, tangent)
    frames = np.stack([tangent, bitangent, normal], axis=2)  # columns: local x, y, z
    quats = _quats_from_frames(frames)

    sigma = np.concatenate(sigmas)[:, None] * rng.uniform(0.85, 1.15, (n_total, 2))
    scales = np.concatenate([sigma, _FLATNESS * sigma.mean(axis=1, keepdims=True)], axis=1)
    colors_np = np.clip(np.concatenate(colors) + rng.normal(0.0, _COLOR_NOISE, (n_total, 3)), 0.0, 1.0)
    opacities = rng.uniform(0.9, 0.99, n_total)

    # A trained model's file is in no spatial or semantic order; do not let consumers rely on one.
    order = rng.permutation(n_total)
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(means[order]),
        quats=torch.from_numpy(quats[order]),
        scales=torch.from_numpy(scales[order]),
        opacities=torch.from_numpy(opacities[order]),
        colors=torch.from_numpy(colors_np[order]),
    )
    hx, hy = _TABLE_HALF
    return SyntheticScene(
        scene=scene,
        object_labels=np.concatenate(obj_ids)[order],
        part_labels=np.concatenate(part_ids)[order],
        object_names=object_names,
        part_names=part_names,
        part_to_object=part_to_object,
        center=np.array([0.0, 0.0, 0.1]),
        radius=math.hypot(hx, hy) + 0.03,
        preset="tabletop",
        seed=seed,
    )


def _build_shelf(**kwargs) -> SyntheticScene:
    from .synthetic_shelf import build_shelf  # imported late: synthetic_shelf builds on this module

    return build_shelf(**kwargs)


PRESETS: dict[str, Callable[..., SyntheticScene]] = {"tabletop": build_tabletop, "shelf": _build_shelf}


# ---- cameras -------------------------------------------------------------------------------------------------------

_ELEVATIONS_DEG = (25.0, 40.0, 55.0)
_FOV_DEG = 50.0


def orbit_cameras(synth: SyntheticScene, *, views: int, resolution: int, seed: int) -> list[Camera]:
    """`views` cameras around the table, cycling through three elevations (25°, 40°, 55°) while the azimuth steps
    once round, all looking at the table's centre; a little seeded jitter keeps the views from being exactly
    symmetric, as a hand-held capture is not."""
    if views < 1:
        raise SplatsegError(f"--views must be at least 1, got {views}")
    if resolution < 8:
        raise SplatsegError(f"--resolution must be at least 8 pixels, got {resolution}")
    rng = np.random.default_rng(seed)
    # Close enough that the objects fill the frame; the table's far corners may leave it in side views.
    distance = 0.8 * synth.radius / math.sin(math.radians(_FOV_DEG / 2))
    step = 2 * math.pi / views
    cameras = []
    for i in range(views):
        azimuth = i * step + rng.uniform(-0.2, 0.2) * step
        elevation = math.radians(_ELEVATIONS_DEG[i % len(_ELEVATIONS_DEG)] + rng.uniform(-2.0, 2.0))
        d = distance * rng.uniform(0.95, 1.05)
        offset = d * np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        cameras.append(
            look_at(
                f"view_{i:03d}",
                synth.center + offset,
                synth.center,
                np.array([0.0, 0.0, 1.0]),
                width=resolution,
                height=resolution,
                fov_y_deg=_FOV_DEG,
            )
        )
    return cameras


# ---- writing a scene folder ----------------------------------------------------------------------------------------

_VIEW_FILE = re.compile(r"view_\d+(_object|_part)?\.png")


def _is_synthetic_scene(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "labels.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == GENERATOR


def _check_target(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise SplatsegError(f"{folder} exists and is not a folder; give a new folder for the synthetic scene")
    if folder.is_dir() and any(folder.iterdir()) and not _is_synthetic_scene(folder):
        raise SplatsegError(
            f"{folder} is not empty and is not a synthetic scene splatseg wrote; give an empty or new folder"
        )


def one_hot_labels(labels: np.ndarray, num_labels: int) -> torch.Tensor:  # [N] → [N, num_labels] float32
    """Labels as features to render: a pixel's rendered vector is each label's accumulated blend weight."""
    out = torch.zeros(labels.shape[0], num_labels, dtype=torch.float32)
    out[torch.arange(labels.shape[0]), torch.from_numpy(labels.astype(np.int64))] = 1.0
    return out


def label_map(weights: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:  # [H, W, L], [H, W] → [H, W] uint16
    """The label with the largest accumulated weight where the pixel is mostly covered (alpha > 0.5), else 0."""
    labels = weights.argmax(dim=-1)
    labels[alpha <= 0.5] = 0
    return labels.cpu().numpy().astype(np.uint16)


def write_synthetic_scene(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = "tabletop",
    seed: int = 0,
    views: int = 36,
    resolution: int = 256,
    num_gaussians: int = DEFAULT_NUM_GAUSSIANS,
    progress: bool = True,
) -> SyntheticScene:
    """Write a scene folder any splatseg command (or another 3DGS tool) reads, plus its ground truth.

    Layout: `point_cloud.ply` (no label properties: a method must not see the answer), `cameras.json` (INRIA),
    `transforms.json`, `images/<view>.png` rendered by the reference renderer, `labels/<view>_object.png` and
    `labels/<view>_part.png` (16-bit label maps, 0 = background), `gaussian_labels.npz` (`object`, `part`: int32 in
    Gaussian order) and `labels.json` (names, part → object map). Rewriting a previous synthetic scene is allowed;
    writing into any other non-empty folder is refused.
    """
    # Imported here: building a scene (tests, benchmarks) must not pay for the renderer and the file writers.
    from tqdm import tqdm

    from backend.io.atomic import atomic_open, write_text_atomic
    from backend.io.cameras import write_inria_cameras, write_transforms
    from backend.io.images import write_png
    from backend.io.ply import write_ply
    from backend.render import render, to_uint8

    if preset not in PRESETS:
        raise SplatsegError(f"unknown synthetic preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
    folder = Path(out_dir)
    _check_target(folder)
    synth = PRESETS[preset](seed=seed, num_gaussians=num_gaussians)
    cameras = orbit_cameras(synth, views=views, resolution=resolution, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)

    # The marker first: a run cut short leaves a folder the next run recognises and may overwrite.
    write_text_atomic(folder / "labels.json", json.dumps(synth.labels_json(), indent=2) + "\n")
    with atomic_open(folder / "gaussian_labels.npz", "wb") as f:
        np.savez(f, object=synth.object_labels, part=synth.part_labels)
    write_ply(folder / "point_cloud.ply", synth.scene)
    write_inria_cameras(folder / "cameras.json", cameras)
    write_transforms(folder / "transforms.json", cameras, image_dir="images")

    num_objects = max(synth.object_names) + 1
    num_parts = max(synth.part_names) + 1
    features = torch.cat(
        [one_hot_labels(synth.object_labels, num_objects), one_hot_labels(synth.part_labels, num_parts)], dim=1
    )
    written: set[str] = set()
    for camera in tqdm(cameras, desc="rendering views", unit="view", disable=not progress):
        out = render(synth.scene, camera, features=features, backend="torch")
        write_png(folder / "images" / f"{camera.name}.png", to_uint8(out.rgb))
        write_png(
            folder / "labels" / f"{camera.name}_object.png", label_map(out.features[..., :num_objects], out.alpha)
        )
        write_png(folder / "labels" / f"{camera.name}_part.png", label_map(out.features[..., num_objects:], out.alpha))
        written |= {f"{camera.name}.png", f"{camera.name}_object.png", f"{camera.name}_part.png"}

    # Views of an earlier, larger run would otherwise pass for views of this one.
    for sub in ("images", "labels"):
        for path in (folder / sub).iterdir():
            if _VIEW_FILE.fullmatch(path.name) and path.name not in written:
                path.unlink()
    return synth

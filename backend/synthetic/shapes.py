"""Analytic surface primitives (quads, tubes, annuli, sphere zones, torus arcs, boxes) the tabletop preset samples
Gaussians on."""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from .scene import Vec3

# ---- surface primitives -------------------------------------------------------------------------------------------
# Each samples n points uniformly by area and returns (points [n, 3], tangents [n, 3], normals [n, 3]); the sign of a
# normal does not matter because a flat Gaussian looks the same from both sides.


class Surface(Protocol):
    def area(self) -> float: ...

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def unit_vectors(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def perpendicular_frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors that make a right-handed frame (e1, e2, axis)."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = unit_vectors(np.cross(helper, axis))
    return e1, np.cross(axis, e1)


def ring(theta: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radial and circumferential unit vectors [n, 3] at angles theta [n] in the plane (e1, e2)."""
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    return c * e1 + s * e2, c * e2 - s * e1


@dataclasses.dataclass(frozen=True)
class Quad:
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
        normal = unit_vectors(np.cross(u, v))
        return points, np.broadcast_to(unit_vectors(u), (n, 3)), np.broadcast_to(normal, (n, 3))


@dataclasses.dataclass(frozen=True)
class Tube:
    """The side of a cone frustum (a cylinder when r0 == r1), open at both ends, from `base` along `axis`."""

    base: Vec3
    axis: Vec3
    length: float
    r0: float
    r1: float

    def area(self) -> float:
        return math.pi * (self.r0 + self.r1) * math.hypot(self.length, self.r1 - self.r0)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        axis = unit_vectors(np.asarray(self.axis, dtype=np.float64))
        e1, e2 = perpendicular_frame(axis)
        u, theta = rng.random(n), rng.random(n) * (2 * math.pi)
        dr = self.r1 - self.r0
        # The ring at height t has circumference ∝ r(t): invert that CDF so the density per area is uniform.
        t = u if abs(dr) < 1e-12 else (np.sqrt(self.r0**2 + u * (self.r1**2 - self.r0**2)) - self.r0) / dr
        radial, tangent = ring(theta, e1, e2)
        points = np.asarray(self.base) + (t * self.length)[:, None] * axis + (self.r0 + dr * t)[:, None] * radial
        normals = unit_vectors(self.length * radial - dr * axis)
        return points, tangent, normals


@dataclasses.dataclass(frozen=True)
class Annulus:
    """A flat ring (a disc when r_in == 0) around `center`, facing `axis`."""

    center: Vec3
    axis: Vec3
    r_in: float
    r_out: float

    def area(self) -> float:
        return math.pi * (self.r_out**2 - self.r_in**2)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        axis = unit_vectors(np.asarray(self.axis, dtype=np.float64))
        e1, e2 = perpendicular_frame(axis)
        u, theta = rng.random(n), rng.random(n) * (2 * math.pi)
        r = np.sqrt(self.r_in**2 + u * (self.r_out**2 - self.r_in**2))
        radial, _ = ring(theta, e1, e2)
        points = np.asarray(self.center) + r[:, None] * radial
        return points, radial, np.broadcast_to(axis, (n, 3))


@dataclasses.dataclass(frozen=True)
class SphereZone:
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
class TorusArc:
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
        radial, tangents = ring(u, e1, e2)
        normals = np.cos(v)[:, None] * radial + np.sin(v)[:, None] * e3
        points = np.asarray(self.center) + self.major * radial + self.minor * normals
        return points, tangents, normals


def box(center: Vec3, size: Vec3, *, yaw: float = 0.0, bottom: bool = False) -> tuple[Surface, ...]:
    """A box standing on z = center[2], turned by `yaw` about z; the bottom face is left out unless asked for (it
    rests on something and no camera sees it)."""
    c, s = math.cos(yaw), math.sin(yaw)
    x = np.array([c, s, 0.0]) * size[0]
    y = np.array([-s, c, 0.0]) * size[1]
    z = np.array([0.0, 0.0, size[2]])
    o = np.asarray(center) - x / 2 - y / 2  # bottom corner

    def quad(origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> Quad:
        return Quad(tuple(origin), tuple(u), tuple(v))

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


def upright_tube(z0: float, z1: float, r0: float, r1: float | None = None, xy: tuple[float, float] = (0, 0)) -> Tube:
    return Tube((xy[0], xy[1], z0), (0.0, 0.0, 1.0), z1 - z0, r0, r0 if r1 is None else r1)


def cap(z: float, r_out: float, r_in: float = 0.0, xy: tuple[float, float] = (0, 0)) -> Annulus:
    return Annulus((xy[0], xy[1], z), (0.0, 0.0, 1.0), r_in, r_out)

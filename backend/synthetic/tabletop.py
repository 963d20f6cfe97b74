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
import math
from collections.abc import Sequence

import numpy as np

from backend.core.errors import SplatsegError
from backend.core.rotations import rotmat_to_quat

from .scene import PALETTE, SyntheticScene, apportion, flat_gaussians
from .shapes import (
    Annulus,
    Quad,
    SphereZone,
    Surface,
    TorusArc,
    Tube,
    box,
    cap,
    unit_vectors,
    upright_tube,
)

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


# ---- scene content ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Part:
    name: str
    color: str  # a PALETTE key
    surfaces: tuple[Surface, ...]
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
    body = (upright_tube(0, h, r), upright_tube(coffee, h, r_in), cap(h, r, r_in))
    handle = TorusArc((r - 0.002, 0.0, h / 2), (1, 0, 0), (0, 0, 1), 0.028, 0.007, math.radians(-80), math.radians(80))
    return _Object(
        "mug",
        (
            _Part("body", "red", body),
            _Part("handle", "white", (handle,)),
            _Part("coffee", "coffee", (cap(coffee, r_in),)),
        ),
        footprint=0.08,
        slot=(0.0, -0.2),
    )


def _lamp() -> _Object:
    return _Object(
        "lamp",
        (
            _Part("base", "white", (upright_tube(0, 0.02, 0.075), cap(0.02, 0.075))),
            _Part("pole", "metal", (upright_tube(0.02, 0.36, 0.007), cap(0.36, 0.007))),
            _Part("shade", "yellow", (upright_tube(0.25, 0.37, 0.11, 0.055),)),
        ),
        footprint=0.115,
        slot=(-0.42, 0.2),
    )


def _bottle() -> _Object:
    return _Object(
        "bottle",
        (
            _Part("body", "green", (upright_tube(0, 0.16, 0.036),)),
            _Part("neck", "dark_green", (upright_tube(0.16, 0.2, 0.036, 0.014), upright_tube(0.2, 0.245, 0.014))),
            _Part("cap", "white", (upright_tube(0.245, 0.27, 0.016), cap(0.27, 0.016))),
        ),
        footprint=0.04,
        slot=(0.22, 0.02),
    )


def _teapot() -> _Object:
    r = 0.07
    cz = 0.8 * r  # the sphere is cut flat at 0.8 R below its centre, which is where it stands on the table
    spout_dir = (math.cos(math.radians(40)), 0.0, math.sin(math.radians(40)))
    spout_base = (r * math.cos(math.radians(-20)), 0.0, cz + r * math.sin(math.radians(-20)))
    handle = TorusArc((-(r - 0.01), 0.0, cz), (1, 0, 0), (0, 0, 1), 0.04, 0.008, math.radians(95), math.radians(265))
    return _Object(
        "teapot",
        (
            _Part("body", "blue", (SphereZone((0, 0, cz), r, -0.8, 0.6),)),
            _Part("spout", "blue", (Tube(spout_base, spout_dir, 0.09, 0.016, 0.008),)),
            _Part("lid", "navy", (SphereZone((0, 0, cz), r, 0.6, 1.0), SphereZone((0, 0, cz + r + 0.008), 0.012))),
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
            _Part("pot", "terracotta", (upright_tube(0, 0.1, 0.05, 0.065), cap(0.1, 0.065, 0.06))),
            _Part("soil", "soil", (cap(soil, 0.0635),)),
            # The foliage ball sits in the soil: only the part above it is sampled.
            _Part("foliage", "green", (SphereZone((0, 0, soil + 0.8 * leaf_r), leaf_r, -0.8, 1.0),)),
        ),
        footprint=0.08,
        slot=(0.38, 0.22),
    )


def _car() -> _Object:
    wheel_r, wheel_w = 0.02, 0.014
    wheels: list[Surface] = []
    for x in (-0.05, 0.05):
        for side in (-1.0, 1.0):
            inner = (x, side * 0.0375, wheel_r)
            outer = (x, side * (0.0375 + wheel_w), wheel_r)
            wheels += [
                Tube(inner, (0, side, 0), wheel_w, wheel_r, wheel_r),
                Annulus(outer, (0, 1, 0), 0.0, wheel_r),
            ]
    return _Object(
        "car",
        (
            _Part("body", "red", box((0, 0, 0.012), (0.16, 0.075, 0.038))),
            _Part("cabin", "glass", box((-0.005, 0, 0.05), (0.08, 0.065, 0.035))),
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
        parts.append(_Part(f"book{i + 1}", color, box((0, 0, z), size, yaw=yaw)))
        z += size[2]
    return _Object("books", tuple(parts), footprint=0.135, slot=(-0.38, -0.18))


def _table() -> _Object:
    hx, hy = _TABLE_HALF
    thickness, leg_r, inset = 0.04, 0.025, 0.08
    legs = tuple(
        upright_tube(-TABLE_HEIGHT, -thickness, leg_r, xy=(sx * (hx - inset), sy * (hy - inset)))
        for sx in (-1, 1)
        for sy in (-1, 1)
    )
    top = box((0, 0, -thickness), (2 * hx, 2 * hy, thickness))
    return _Object("table", (_Part("top", "wood", top), _Part("legs", "dark_wood", legs)), footprint=0.0)


def _room() -> tuple[_Part, ...]:
    """Floor and four walls around the table: every orbit view has something behind the objects, as a real capture
    does, and no view sees past the walls."""
    L, z0 = _ROOM_HALF, -TABLE_HEIGHT
    h = _WALL_TOP - z0
    floor = _Part("floor", "floor_light", (Quad((-L, -L, z0), (2 * L, 0, 0), (0, 2 * L, 0)),), ("floor_dark", 0.8))
    walls = (
        Quad((-L, -L, z0), (2 * L, 0, 0), (0, 0, h)),
        Quad((-L, L, z0), (2 * L, 0, 0), (0, 0, h)),
        Quad((-L, -L, z0), (0, 2 * L, 0), (0, 0, h)),
        Quad((L, -L, z0), (0, 2 * L, 0), (0, 0, h)),
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


def _yaw_matrix(yaw: float) -> np.ndarray:  # [3, 3]
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


MIN_GAUSSIANS = 2_000
"""Fewer cannot cover the tabletop's surfaces."""


def build_tabletop(*, seed: int = 0, num_gaussians: int = DEFAULT_NUM_GAUSSIANS) -> SyntheticScene:
    """A table with seven objects (2–4 parts each) in a room; exactly `num_gaussians` Gaussians.

    Object ids: 1 table, then mug, lamp, bottle, teapot, plant, car, books. Part ids number every (object, part) pair
    from 1 in that order; background Gaussians (floor, walls) have object and part 0.
    """
    if num_gaussians < MIN_GAUSSIANS:
        raise SplatsegError(
            f"a tabletop scene needs at least {MIN_GAUSSIANS} Gaussians to cover its surfaces, got {num_gaussians}"
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
    group_totals = apportion(num_gaussians, np.array([_GROUP_SHARES[g] for g in group_names]))
    counts = np.zeros(len(surfaces), dtype=np.int64)
    spacing: dict[str, float] = {}
    for g, total in zip(group_names, group_totals):
        members = np.array([k for k, name in enumerate(groups) if name == g])
        counts[members] = apportion(int(total), areas[members])
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
    normal = unit_vectors(np.concatenate(normals))
    tangent = np.concatenate(tangents)
    tangent = unit_vectors(tangent - np.sum(tangent * normal, axis=1, keepdims=True) * normal)
    n_total = means.shape[0]
    # Turn each disc about its normal at random: with slightly unequal tangent scales a fixed in-plane orientation
    # would print the sampling parametrisation (rings, grid lines) into the renders.
    psi = rng.random(n_total) * (2 * math.pi)
    bitangent = np.cross(normal, tangent)
    tangent = np.cos(psi)[:, None] * tangent + np.sin(psi)[:, None] * bitangent
    bitangent = np.cross(normal, tangent)
    frames = np.stack([tangent, bitangent, normal], axis=2)  # columns: local x, y, z
    quats = rotmat_to_quat(frames)

    scene, order = flat_gaussians(means, quats, sigmas, colors, rng, flatness=_FLATNESS, color_noise=_COLOR_NOISE)
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

"""The `shelf` synthetic preset: mesh objects on a shelf board, built differently from `tabletop` on purpose.

`tabletop` samples its own analytic surfaces and every pixel of its views belongs to a labelled thing; a benchmark
built only from it tests splatseg against splatseg's own assumptions. This family is made another way:

- every shape is a trimesh mesh (cylinders, cones, boxes, spheres, tori), and an object part may be the union of
  several; points are sampled on the mesh faces (area-weighted, `trimesh.sample.sample_surface`) and a sample that
  falls inside another primitive of the same object is dropped, so the Gaussians lie on the union's outer surface
  (no hidden Gaussians inside a mug's wall where its handle enters);
- the Gaussians are flat discs oriented to the face normal, sized from the sampling density;
- a large support (a shelf: a board on two side panels) whose Gaussians carry an object label but which the
  `sam-like` mask model never gives a mask of its own (`labels.json` lists it under "support"), plus floor and
  walls (label 0) that no mask covers;
- objects stand on the board (touching it), have thin parts (a lamp's pole, a mug's handle, a plant's stem), and a
  few small floaters hang in the air (label 0), as a trained 3DGS model has.

Labels are written exactly as `tabletop` writes them (`gaussian_labels.npz`, `labels/<view>_{object,part}.png`,
`labels.json`), so `bench.accuracy` scores it unchanged; it skips the support, which no click can be expected to
segment from masks that never cover it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import trimesh

from backend.core.errors import SplatsegError
from backend.core.rotations import rotmat_to_quat

from .scene import PALETTE, SyntheticScene, apportion, flat_gaussians

DEFAULT_NUM_GAUSSIANS = 60_000
BOARD_HALF = (0.55, 0.22)  # half extents of the board in x and y; its top is z = 0
BOARD_THICKNESS = 0.03
SHELF_HEIGHT = 0.55  # floor at z = -SHELF_HEIGHT
_ROOM_HALF = 1.6
_WALL_TOP = 1.4
_GROUP_SHARES = {"objects": 0.62, "support": 0.2, "background": 0.18}
_SPLAT_SIZE = 1.1  # tangent std in units of the group's mean point spacing (as tabletop: closed surfaces)
_FLATNESS = 0.2
_COLOR_NOISE = 0.03
_SECTIONS = 40
_FLOATERS = 6  # small clumps of stray Gaussians in the air (label 0)
_FLOATER_SIZE = 25


@dataclasses.dataclass(frozen=True)
class Primitive:
    """A trimesh solid placed in the object's frame, with an exact inside test for the union's surface."""

    kind: str  # "cylinder" (r0 == r1) or frustum, "box", "sphere", "torus"
    size: tuple[float, ...]
    """cylinder/frustum: (r0, r1, height) standing on z = 0; box: (x, y, z) extents standing on z = 0; sphere:
    (r,) about the origin; torus: (major, minor) about the origin, in the xy plane."""
    transform: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4))  # [4, 4] local → object frame

    def mesh(self) -> trimesh.Trimesh:
        if self.kind == "cylinder":
            r0, r1, h = self.size
            m = trimesh.creation.cylinder(radius=1.0, height=h, sections=_SECTIONS)
            v = m.vertices.copy()
            t = (v[:, 2] + h / 2) / h  # 0 at the bottom, 1 at the top
            v[:, :2] *= (r0 + (r1 - r0) * t)[:, None]
            v[:, 2] += h / 2
            m = trimesh.Trimesh(v, m.faces, process=False)
        elif self.kind == "box":
            m = trimesh.creation.box(extents=self.size)
            m.apply_translation((0, 0, self.size[2] / 2))
        elif self.kind == "sphere":
            m = trimesh.creation.icosphere(subdivisions=3, radius=self.size[0])
        elif self.kind == "quad":  # a one-sided rectangle in the xy plane, centred on the origin (room surfaces)
            hx, hy = self.size[0] / 2, self.size[1] / 2
            v = np.array([[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]], dtype=np.float64)
            m = trimesh.Trimesh(v, np.array([[0, 1, 2], [0, 2, 3]]), process=False)
        elif self.kind == "torus":
            m = trimesh.creation.torus(major_radius=self.size[0], minor_radius=self.size[1], major_sections=48)
        else:
            raise ValueError(f"unknown primitive {self.kind!r}")
        m.apply_transform(self.transform)
        return m

    def inside(self, points: np.ndarray, *, shrink: float = 1e-4) -> np.ndarray:  # [P, 3] object frame → [P] bool
        """Strictly inside (by more than `shrink`), so the primitive's own surface samples are not inside it."""
        inv = np.linalg.inv(self.transform)
        p = points @ inv[:3, :3].T + inv[:3, 3]
        if self.kind == "cylinder":
            r0, r1, h = self.size
            t = np.clip(p[:, 2] / h, 0, 1)
            radial = np.hypot(p[:, 0], p[:, 1]) < r0 + (r1 - r0) * t - shrink
            return (p[:, 2] > shrink) & (p[:, 2] < h - shrink) & radial
        if self.kind == "box":
            half = np.array(self.size) / 2
            q = p - np.array([0, 0, half[2]])
            return np.all(np.abs(q) < half - shrink, axis=1)
        if self.kind == "sphere":
            return np.linalg.norm(p, axis=1) < self.size[0] - shrink
        if self.kind == "quad":
            return np.zeros(len(p), dtype=bool)
        major, minor = self.size
        return (np.hypot(p[:, 0], p[:, 1]) - major) ** 2 + p[:, 2] ** 2 < (minor - shrink) ** 2


def _move(x: float = 0.0, y: float = 0.0, z: float = 0.0, *, rx: float = 0.0, ry: float = 0.0) -> np.ndarray:
    m = trimesh.transformations.euler_matrix(rx, ry, 0.0)
    m[:3, 3] = (x, y, z)
    return m


@dataclasses.dataclass(frozen=True)
class _Part:
    name: str
    color: str
    primitives: tuple[Primitive, ...]


@dataclasses.dataclass(frozen=True)
class _Object:
    name: str
    parts: tuple[_Part, ...]
    footprint: float  # radius of the cylinder that holds it at any yaw (keeps objects apart)
    slot: float  # x position along the board before jitter


def _cyl(r0: float, h: float, r1: float | None = None, z: float = 0.0, x: float = 0.0) -> Primitive:
    return Primitive("cylinder", (r0, r0 if r1 is None else r1, h), _move(x, 0, z))


def _mug() -> _Object:
    r, h = 0.045, 0.1
    handle = Primitive("torus", (0.03, 0.008), _move(r, 0, h / 2, rx=math.pi / 2))
    return _Object(
        "mug",
        (_Part("body", "red", (_cyl(r, h),)), _Part("handle", "white", (handle,))),
        footprint=0.085,
        slot=-0.4,
    )


def _lamp() -> _Object:
    return _Object(
        "lamp",
        (
            _Part("base", "metal", (_cyl(0.07, 0.025),)),
            _Part("pole", "black", (_cyl(0.008, 0.3, z=0.02),)),
            _Part("shade", "yellow", (_cyl(0.11, 0.13, r1=0.06, z=0.24),)),
        ),
        footprint=0.115,
        slot=-0.18,
    )


def _bottle() -> _Object:
    return _Object(
        "bottle",
        (
            _Part("body", "green", (_cyl(0.04, 0.17),)),
            _Part("neck", "dark_green", (_cyl(0.04, 0.05, r1=0.015, z=0.17), _cyl(0.015, 0.05, z=0.215))),
            _Part("cap", "white", (_cyl(0.018, 0.03, z=0.26),)),
        ),
        footprint=0.045,
        slot=0.03,
    )


def _books() -> _Object:
    sizes = ((0.19, 0.14, 0.035), (0.17, 0.13, 0.03), (0.15, 0.115, 0.04))
    parts, z = [], 0.0
    for i, (size, color) in enumerate(zip(sizes, ("orange", "blue", "purple"))):
        parts.append(_Part(f"book{i + 1}", color, (Primitive("box", size, _move(0, 0, z) @ _yaw(0.1 * (i - 1))),)))
        z += size[2]
    return _Object("books", tuple(parts), footprint=0.125, slot=0.21)


def _plant() -> _Object:
    return _Object(
        "plant",
        (
            _Part("pot", "terracotta", (_cyl(0.045, 0.09, r1=0.06),)),
            _Part("stem", "dark_green", (_cyl(0.006, 0.12, z=0.08),)),
            _Part("leaves", "green", (Primitive("sphere", (0.065,), _move(0, 0, 0.24)),)),
        ),
        footprint=0.07,
        slot=0.42,
    )


def _yaw(yaw: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(yaw, (0, 0, 1))


def _shelf() -> _Object:
    """The support: a board on two side panels (the board's top is z = 0)."""
    hx, hy = BOARD_HALF
    board = Primitive("box", (2 * hx, 2 * hy, BOARD_THICKNESS), _move(0, 0, -BOARD_THICKNESS))
    side = (0.03, 2 * hy, SHELF_HEIGHT - BOARD_THICKNESS)
    sides = tuple(Primitive("box", side, _move(sx * (hx - 0.05), 0, -SHELF_HEIGHT)) for sx in (-1, 1))
    return _Object("shelf", (_Part("board", "wood", (board,)), _Part("sides", "dark_wood", sides)), 0.0, 0.0)


def _room() -> tuple[_Part, ...]:
    """Floor and four walls as one-sided quads (only the faces the cameras see: a box's back faces would be
    invisible Gaussians, and a sparse background needs big splats that a centre-depth sort draws over the shelf)."""
    L, z0 = _ROOM_HALF, -SHELF_HEIGHT
    h = _WALL_TOP - z0
    floor = Primitive("quad", (2 * L, 2 * L), _move(0, 0, z0))
    walls = tuple(
        Primitive("quad", (2 * L, h), _yaw(a) @ _move(0, L, z0 + h / 2, rx=math.pi / 2))
        for a in (0, math.pi / 2, math.pi, 3 * math.pi / 2)
    )
    return (_Part("floor", "floor_light", (floor,)), _Part("walls", "wall", walls))


def _layout(rng: np.random.Generator, objects: list[_Object]) -> list[np.ndarray]:
    """[4, 4] pose per object: its slot along the board, a jitter that keeps footprints apart, a random yaw."""
    hy = BOARD_HALF[1]
    poses = []
    for obj in objects:
        x = obj.slot + rng.uniform(-0.01, 0.01)
        y = rng.uniform(-1, 1) * max(0.0, hy - obj.footprint - 0.02)
        poses.append(_move(x, y, 0.0) @ _yaw(rng.uniform(0, 2 * math.pi)))
    return poses


def _sample_part(
    part: _Part, others: list[Primitive], pose: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:  # points [P, 3], normals [P, 3] in the world, P ≤ n
    meshes = [p.mesh() for p in part.primitives]
    areas = np.array([m.area for m in meshes])
    pts, nrm = [], []
    for own, m, k in zip(part.primitives, meshes, apportion(n, areas)):
        if k == 0:
            continue
        p, face = trimesh.sample.sample_surface(m, int(k), seed=int(rng.integers(2**31)))
        normals = m.face_normals[face]
        hidden = np.zeros(len(p), dtype=bool)
        for prim in [*part.primitives, *others]:
            if prim is not own:  # a facet lies inside its own exact solid by a chord's sagitta
                hidden |= prim.inside(p)
        pts.append(p[~hidden])
        nrm.append(normals[~hidden])
    p, nm = np.concatenate(pts), np.concatenate(nrm)
    return p @ pose[:3, :3].T + pose[:3, 3], nm @ pose[:3, :3].T


def build_shelf(*, seed: int = 0, num_gaussians: int = DEFAULT_NUM_GAUSSIANS) -> SyntheticScene:
    """A shelf (the support, object 1) with five mesh objects on its board in a room; about `num_gaussians`
    Gaussians (samples hidden inside a union are dropped, a few per cent).

    Object ids: 1 shelf, then mug, lamp, bottle, books, plant; parts number every (object, part) pair from 1.
    Floor, walls and floaters have object and part 0.
    """
    if num_gaussians < 5_000:
        raise SplatsegError(f"a shelf scene needs at least 5000 Gaussians to cover its surfaces, got {num_gaussians}")
    rng = np.random.default_rng(seed)
    on_board = [_mug(), _lamp(), _bottle(), _books(), _plant()]
    poses = [np.eye(4), *_layout(rng, on_board)]
    entries: list[tuple[str, int, int, _Part, list[Primitive], np.ndarray]] = []
    object_names: dict[int, str] = {}
    part_names: dict[int, str] = {}
    part_to_object: dict[int, int] = {}
    entries += [("background", 0, 0, part, [], np.eye(4)) for part in _room()]
    for object_id, (obj, pose) in enumerate(zip([_shelf(), *on_board], poses), start=1):
        object_names[object_id] = obj.name
        for part in obj.parts:
            part_id = len(part_names) + 1
            part_names[part_id] = f"{obj.name}/{part.name}"
            part_to_object[part_id] = object_id
            others = [p for q in obj.parts if q is not part for p in q.primitives]
            group = "support" if obj.name == "shelf" else "objects"
            entries.append((group, object_id, part_id, part, others, pose))

    floater_budget = _FLOATERS * _FLOATER_SIZE
    budget = num_gaussians - floater_budget
    areas = np.array([sum(p.mesh().area for p in e[3].primitives) for e in entries])
    groups = [e[0] for e in entries]
    counts = np.zeros(len(entries), dtype=np.int64)
    spacing: dict[str, float] = {}
    for g, total in zip(_GROUP_SHARES, apportion(budget, np.array(list(_GROUP_SHARES.values())))):
        members = np.array([i for i, name in enumerate(groups) if name == g])
        counts[members] = apportion(int(total), areas[members])
        spacing[g] = math.sqrt(areas[members].sum() / total)

    points, normals, colors, sigmas, obj_ids, part_ids = [], [], [], [], [], []
    for (group, object_id, part_id, part, others, pose), n in zip(entries, counts):
        p, nm = _sample_part(part, others, pose, int(n), rng)
        points.append(p)
        normals.append(nm)
        colors.append(np.broadcast_to(np.asarray(PALETTE[part.color]), p.shape))
        sigmas.append(np.full(len(p), _SPLAT_SIZE * spacing[group]))
        obj_ids.append(np.full(len(p), object_id, dtype=np.int32))
        part_ids.append(np.full(len(p), part_id, dtype=np.int32))
    # Floaters: small clumps in the air above and around the shelf, random colours, unlabelled.
    for _ in range(_FLOATERS):
        c = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.5, 0.5), rng.uniform(0.35, 0.7)])
        p = c + rng.normal(0, 0.008, (_FLOATER_SIZE, 3))
        points.append(p)
        normals.append(_unit(rng.normal(size=(_FLOATER_SIZE, 3))))
        colors.append(np.broadcast_to(rng.random(3), p.shape))
        sigmas.append(np.full(_FLOATER_SIZE, 0.006))
        obj_ids.append(np.zeros(_FLOATER_SIZE, dtype=np.int32))
        part_ids.append(np.zeros(_FLOATER_SIZE, dtype=np.int32))

    means = np.concatenate(points)
    normal = _unit(np.concatenate(normals))
    n_total = len(means)
    helper = np.where(np.abs(normal[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    tangent = _unit(np.cross(helper, normal))
    psi = rng.random(n_total) * (2 * math.pi)
    bitangent = np.cross(normal, tangent)
    tangent = np.cos(psi)[:, None] * tangent + np.sin(psi)[:, None] * bitangent
    bitangent = np.cross(normal, tangent)
    quats = rotmat_to_quat(np.stack([tangent, bitangent, normal], axis=2))
    scene, order = flat_gaussians(means, quats, sigmas, colors, rng, flatness=_FLATNESS, color_noise=_COLOR_NOISE)
    return SyntheticScene(
        scene=scene,
        object_labels=np.concatenate(obj_ids)[order],
        part_labels=np.concatenate(part_ids)[order],
        object_names=object_names,
        part_names=part_names,
        part_to_object=part_to_object,
        center=np.array([0.0, 0.0, 0.1]),
        radius=math.hypot(*BOARD_HALF) + 0.03,
        preset="shelf",
        seed=seed,
        support=(1,),
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


BUILDERS: dict[str, Callable[..., SyntheticScene]] = {"shelf": build_shelf}

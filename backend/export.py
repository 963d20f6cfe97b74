"""Selections out of splatseg, in formats other tools load as they are.

- `ply`: the selected Gaussians with every attribute (SH, extras) in the INRIA layout — SuperSplat, the INRIA viewer,
  gsplat and nerfstudio read it.
- `inverse-ply`: the scene without the selection (deleting an object).
- `labels-ply`: the whole scene with an int32 `segment` property (1 = selected, or the given label per Gaussian),
  the labelled export GARField users asked for.
- `splat`: antimatter15's 32-byte-a-Gaussian `.splat` (web viewers), sorted by size·opacity as its converter does.
- `points`: a coloured point cloud of the Gaussian centres, in the format the file name asks for (.ply, .glb, .obj).
- `mesh`: a closed surface from voxelised Gaussian centres by marching cubes (trimesh + scikit-image), as .glb,
  .obj, .stl or .ply by the file name.
Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .core.errors import SplatsegError
from .core.scene import GaussianScene
from .io.atomic import atomic_path, write_bytes_atomic
from .io.ply import write_ply

ExportFormat = Literal["ply", "inverse-ply", "labels-ply", "splat", "points", "mesh"]
FORMATS: tuple[str, ...] = ("ply", "inverse-ply", "labels-ply", "splat", "points", "mesh")
SUFFIX = {
    "ply": ".ply",
    "inverse-ply": ".ply",
    "labels-ply": ".ply",
    "splat": ".splat",
    "points": ".ply",
    "mesh": ".ply",
}

# trimesh's file type for each output suffix (STL holds triangles only, so no points).
TRIMESH_SUFFIXES: dict[str, dict[str, str]] = {
    "mesh": {".glb": "glb", ".obj": "obj", ".stl": "stl", ".ply": "ply"},
    "points": {".glb": "glb", ".obj": "obj", ".ply": "ply"},
}


def trimesh_file_type(format: str, path: str | Path) -> str | None:
    """The trimesh file type PATH's suffix asks for (`mesh`/`points`), or None for the Gaussian formats.

    Checked before any work: a mesh written as PLY into a file named `.glb` is a file no tool opens.
    """
    choices = TRIMESH_SUFFIXES.get(format)
    if choices is None:
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in choices:
        got = repr(suffix) if suffix else "a name without a suffix"
        why = " (STL holds triangles, not points)" if suffix == ".stl" else ""
        raise SplatsegError(
            f"--format {format} writes {', '.join(choices)} by the output's name, not {got}{why}; "
            f"name the file e.g. {Path(path).stem or 'selection'}.glb"
        )
    return choices[suffix]


def export_selection(
    scene: GaussianScene,
    mask: np.ndarray,  # [N] bool
    path: str | Path,
    *,
    format: ExportFormat = "ply",
    labels: np.ndarray | None = None,  # [N] int, for labels-ply: a segment id per Gaussian instead of 0/1
) -> int:
    """Write the selection; returns the number of Gaussians (or points/vertices) written."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (len(scene),):
        raise SplatsegError(f"selection has {mask.shape[0]} entries but the scene has {len(scene)} Gaussians")
    if format not in FORMATS:
        raise SplatsegError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    file_type = trimesh_file_type(format, path)
    if format in ("ply", "splat", "points", "mesh") and not mask.any():
        raise SplatsegError("the selection is empty: select something before exporting")
    path = Path(path)
    if format == "ply":
        write_ply(path, scene.subset(mask))
        return int(mask.sum())
    if format == "inverse-ply":
        write_ply(path, scene.subset(~mask))
        return int((~mask).sum())
    if format == "labels-ply":
        segment = mask.astype(np.int32) if labels is None else np.asarray(labels, dtype=np.int32)
        if segment.shape != (len(scene),):
            raise SplatsegError(f"labels has {segment.shape[0]} entries for {len(scene)} Gaussians")
        extras = dict(scene.extras)
        extras["segment"] = segment
        labelled = GaussianScene(
            means=scene.means,
            quats=scene.quats,
            log_scales=scene.log_scales,
            logit_opacities=scene.logit_opacities,
            sh=scene.sh,
            extras=extras,
        )
        write_ply(path, labelled)
        return len(scene)
    sub = scene.subset(mask)
    if format == "splat":
        write_bytes_atomic(path, splat_bytes(sub))
        return len(sub)
    import trimesh

    points = sub.means.cpu().numpy().astype(np.float64)
    colors = (sub.dc_colors.cpu().numpy() * 255).astype(np.uint8)
    if format == "points":
        cloud = trimesh.PointCloud(points, colors=np.concatenate([colors, np.full((len(sub), 1), 255, np.uint8)], 1))
        _write_trimesh(path, cloud, file_type)
        return len(sub)
    mesh = mesh_from_points(points)
    _write_trimesh(path, mesh, file_type)
    return len(mesh.vertices)


def splat_bytes(scene: GaussianScene) -> bytes:
    """antimatter15 `.splat`: position f32×3, scale f32×3, RGBA u8×4, rotation u8×4 (wxyz, q·128+128)."""
    n = len(scene)
    scales = scene.scales.cpu().numpy()
    opac = scene.opacities.cpu().numpy()
    order = np.argsort(-(np.exp(scene.log_scales.sum(1).cpu().numpy()) * opac), kind="stable")
    rec = np.zeros(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = scene.means.cpu().numpy()[order]
    rec["scale"] = scales[order]
    rgba = np.concatenate([scene.dc_colors.cpu().numpy(), opac[:, None]], 1)
    rec["rgba"] = np.clip(rgba[order] * 255, 0, 255).astype(np.uint8)
    q = torch.nn.functional.normalize(scene.quats, dim=-1).cpu().numpy()[order]
    rec["rot"] = np.clip(q * 128 + 128, 0, 255).astype(np.uint8)
    return rec.tobytes()


def mesh_from_points(points: np.ndarray, *, voxels_across: int = 96):  # points [P, 3] → trimesh.Trimesh
    """Marching cubes over the occupancy of the Gaussian centres (closed holes of one voxel)."""
    import trimesh
    from scipy import ndimage

    extent = float(np.ptp(points, axis=0).max()) if len(points) > 1 else 0.0
    if extent <= 0:
        raise SplatsegError("the selection is a single point; a mesh needs a selection with some extent")
    pitch = extent / voxels_across
    index = np.floor((points - points.min(0)) / pitch).astype(np.int64) + 2
    grid = np.zeros(index.max(0) + 3, dtype=bool)
    grid[tuple(index.T)] = True
    grid = ndimage.binary_closing(grid, iterations=1)
    grid = ndimage.binary_fill_holes(grid)
    mesh = trimesh.voxel.ops.matrix_to_marching_cubes(grid, pitch=pitch)
    mesh.apply_translation(points.min(0) - 2 * pitch)
    return mesh


def _write_trimesh(path: Path, geometry, file_type: str | None) -> None:
    with atomic_path(path) as tmp:
        geometry.export(str(tmp), file_type=file_type or "ply")

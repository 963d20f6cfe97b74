"""The one way every command gets a scene's cameras: the scene's own, else virtual ones kept in the workspace.

A scene without cameras (a bare .ply, .spz, .splat from a capture app) gets orbit cameras around its content
(`orbit_cameras`), rendered once and stored in the workspace: `.splatseg/cameras.json` (INRIA layout) and
`.splatseg/views/NAME.png`, never in the user's folder. From then on they are the scene's cameras for masks,
training, SA3D and text queries, with the renders as their photos. The manifest records the model they were made
from and their number and resolution; a changed model makes them stale, and they are made again.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.errors import InputError, StaleCacheError
from backend.io.cameras import has_camera_files, load_cameras, read_inria_cameras, write_inria_cameras
from backend.io.images import write_png
from backend.io.scene_folder import find_model, read_model, scene_dir_of
from backend.render import Backend, render, resolve_backend, to_uint8
from backend.render.memo import RenderMemo
from backend.workspace import Workspace

from .bounds import content_bounds
from .orbit import orbit_cameras
from .up import estimate_up

CAMERAS_NAME = "cameras.json"
VIEWS_DIR = "views"
DEFAULT_VIEWS = 48
DEFAULT_RESOLUTION = 512
MAX_VIEWS = 1000
MAX_RESOLUTION = 4096


def scene_cameras(
    scene_path: str | os.PathLike[str],
    workspace: str | os.PathLike[str] | Workspace | None = None,
    *,
    views: int | None = None,
    resolution: int | None = None,
    backend: Backend = "auto",
    on_view: Callable[[int, int, str], None] | None = None,
    renders: RenderMemo | None = None,
) -> list[Camera]:
    """The scene's cameras; for a scene without any, its virtual cameras (made and rendered when missing/stale).

    `views`/`resolution` choose the virtual cameras (defaults 48 and 512, or what the stored set was made with); a
    stored set made with other values, or from another model, is made again. They are refused for a scene that has
    cameras, where they would silently do nothing. Views rendered here are kept in `renders` when given (`prepare`
    hands them on to the masks instead of rendering them again).
    """
    scene_dir = scene_dir_of(scene_path)
    if has_camera_files(scene_dir):
        if views is not None or resolution is not None:
            raise InputError(
                f"{scene_dir} has its own cameras; --views and --resolution only apply to scenes without any"
            )
        return load_cameras(scene_dir)
    _check(views, resolution)
    ws = workspace if isinstance(workspace, Workspace) else Workspace(scene_dir, workspace)
    model = find_model(scene_path)
    entry = ws.entry(CAMERAS_NAME)
    wanted = {"views": views, "resolution": resolution}
    if entry is not None and all(v is None or entry["params"].get(k) == v for k, v in wanted.items()):
        try:
            ws.check_fresh(CAMERAS_NAME, inputs={"model": model})
            return _attach_renders(ws, read_inria_cameras(ws.path(CAMERAS_NAME)))
        except (StaleCacheError, InputError):
            pass  # made again below
    before = entry["params"] if entry is not None else {}  # a stale set is remade as it was asked for
    return make_virtual_cameras(
        ws,
        model,
        views=views or before.get("views", DEFAULT_VIEWS),
        resolution=resolution or before.get("resolution", DEFAULT_RESOLUTION),
        backend=backend,
        on_view=on_view,
        renders=renders,
    )


def make_virtual_cameras(
    ws: Workspace,
    model: os.PathLike[str],
    *,
    views: int = DEFAULT_VIEWS,
    resolution: int = DEFAULT_RESOLUTION,
    backend: Backend = "auto",
    on_view: Callable[[int, int, str], None] | None = None,
    renders: RenderMemo | None = None,
) -> list[Camera]:
    """Place, render and store the virtual cameras of the model file `model`; returns them with their renders."""
    scene = read_model(model)
    up = estimate_up(scene)
    bounds = content_bounds(scene)
    cameras = orbit_cameras(bounds, up, views=views, resolution=resolution)
    if resolve_backend(backend) == "gsplat":
        scene = scene.to("cuda")
    for done, camera in enumerate(cameras, 1):
        with torch.no_grad():
            out = render(scene, camera, backend=backend)
        if renders is not None:
            renders.keep(camera, out)
        write_png(ws.path(f"{VIEWS_DIR}/{camera.name}.png"), to_uint8(out.rgb))
        if on_view is not None:
            on_view(done, len(cameras), camera.name)
    write_inria_cameras(ws.path(CAMERAS_NAME), cameras)
    params = {"views": views, "resolution": resolution, "up": np.round(up, 6).tolist(), "virtual": True}
    ws.record(CAMERAS_NAME, made_by="prepare", params=params, inputs={"model": model})
    return _attach_renders(ws, cameras)


def stored_virtual_cameras(ws: Workspace, model: os.PathLike[str]) -> list[Camera]:
    """The workspace's virtual cameras when they are there and fresh for `model`, else []: never renders (the viewer
    starts with these; its Prepare button makes them)."""
    if ws.entry(CAMERAS_NAME) is None:
        return []
    try:
        ws.check_fresh(CAMERAS_NAME, inputs={"model": model})
        return _attach_renders(ws, read_inria_cameras(ws.path(CAMERAS_NAME)))
    except (StaleCacheError, InputError):
        return []


def _attach_renders(ws: Workspace, cameras: list[Camera]) -> list[Camera]:
    import dataclasses

    out = []
    for cam in cameras:
        path = ws.path(f"{VIEWS_DIR}/{cam.name}.png")
        out.append(dataclasses.replace(cam, image_path=str(path) if path.is_file() else None))
    return out


def _check(views: int | None, resolution: int | None) -> None:
    if views is not None and not 1 <= views <= MAX_VIEWS:
        raise InputError(f"--views {views}: give a number of virtual views from 1 to {MAX_VIEWS}")
    if resolution is not None and not 32 <= resolution <= MAX_RESOLUTION:
        raise InputError(f"--resolution {resolution}: give a size in pixels from 32 to {MAX_RESOLUTION}")

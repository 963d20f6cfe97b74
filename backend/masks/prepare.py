"""`splatseg prepare`: masks for every view from one source, with their 3D scales, into the workspace's MaskSet.

One view at a time: get its masks (SAM, a user folder, or noisy synthetic labels), render the view's depth from the
Gaussians, measure each mask's 3D scale (SAGA), write the view, forget it. Memory stays at one view's masks however
many views there are (SAGA #9, #58, #65). The new MaskSet is built beside the old one and swapped in only when
complete, so an interrupted or failed prepare leaves the previous masks as they were, and a trainer never reads a
mix of two runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..core.camera import Camera
from ..core.errors import InputError, SplatsegError
from ..io.scene_folder import find_model, load_scene, scene_dir_of
from ..render import Backend, resolve_backend
from ..render.memo import RenderMemo
from ..viewpoints.virtual import scene_cameras
from ..workspace import Workspace
from .folder import FolderMasks
from .labels import LabelMasks, has_labels
from .maskset import MaskSet, ViewMasks
from .noise import NoiseConfig
from .sam import SamModel
from .scale import view_mask_scales

MASKS_NAME = "masks"
"""The MaskSet's folder in the workspace, and its name in the manifest."""

SourceName = Literal["auto", "sam", "labels", "sam-like", "geometric"]
MaskSource = Callable[[Camera], "ViewMasks | None"]


def default_source(scene_dir: str | os.PathLike[str]) -> Literal["sam", "labels"]:
    """`labels` for a synthetic scene (it has ground truth), `sam` for everything else."""
    return "labels" if has_labels(scene_dir) else "sam"


def viewer_source(scene_path: str | os.PathLike[str]) -> tuple[str, str]:
    """The source the viewer's Prepare button uses, and what to tell the user: `auto`, except that a real scene on a
    machine with no SAM weights and no internet gets `geometric` masks rather than an error."""
    from .sam import CHECKPOINT_FILES, DEFAULT_SAM_MODEL, cache_dir, is_online

    if default_source(scene_dir_of(scene_path)) == "labels":
        return "auto", "computing masks for every view"
    if (cache_dir() / CHECKPOINT_FILES[DEFAULT_SAM_MODEL]).is_file() or is_online():
        return "auto", "computing SAM masks for every view"
    return "geometric", "no SAM weights here: geometric masks from the renders (rougher than SAM)"


def prepare_masks(
    scene_path: str | os.PathLike[str],
    *,
    source: SourceName | str | os.PathLike[str] = "auto",
    workspace: str | os.PathLike[str] | None = None,
    sam_model: SamModel | None = None,
    sam_checkpoint: str | os.PathLike[str] | None = None,
    sam_options: dict[str, Any] | None = None,
    noise_strength: float = 1.0,
    noise_seed: int = 0,
    views: int | None = None,
    resolution: int | None = None,
    backend: Backend = "auto",
    progress: bool = True,
    on_view: Callable[[int, int, str], None] | None = None,
) -> MaskSet:
    """Compute and store the masks of every view of SCENE; returns the new MaskSet.

    `source`: "sam", "labels", "sam-like" (labels through masks/sam_like.py), "geometric" (segments of the renders,
    rougher than SAM, no weights needed), a folder of user masks, or "auto" (labels when the scene has them, else
    SAM). A scene without cameras gets `views` virtual ones of `resolution` pixels (`backend.viewpoints.virtual`).
    `sam_options` go to SAM's automatic generator (points_per_side, pred_iou_thresh, …). `on_view(done, total,
    name)` is called after each view (the viewer's progress bar; the command line has tqdm).
    """
    from tqdm import tqdm

    scene_dir = scene_dir_of(scene_path)
    ws = Workspace(scene_dir, workspace)
    kind, params = _source_kind(source, scene_dir), {}
    renders = RenderMemo()  # each view rendered once: virtual photo, masks and scales share it
    cameras = scene_cameras(scene_path, ws, views=views, resolution=resolution, backend=backend, renders=renders)
    get_masks: MaskSource
    if kind == "labels":  # the sources that can refuse their input do so before the model is read
        noise = NoiseConfig(strength=float(noise_strength), seed=int(noise_seed))
        get_masks = LabelMasks(scene_dir, noise=noise)
        params["noise"] = dataclasses.asdict(noise)
    elif kind == "sam-like":
        from .sam_like import SamLikeConfig, SamLikeMasks

        sam_like = SamLikeConfig(strength=float(noise_strength), seed=int(noise_seed))
        get_masks = SamLikeMasks(scene_dir, sam_like)
        params["noise"] = dataclasses.asdict(sam_like)
    elif kind == "folder":
        get_masks = FolderMasks(Path(source), cameras)
        params["folder"] = str(Path(source).resolve())
    scene, model_path = load_scene(scene_path)
    if resolve_backend(backend) == "gsplat":
        scene = scene.to("cuda")  # once, not per view
    if kind == "sam":
        from .sam import SamMasks, load_sam, mask_generator, model_type_of

        model = sam_model or model_type_of(sam_checkpoint)
        generator = mask_generator(load_sam(model, sam_checkpoint), **(sam_options or {}))
        get_masks = SamMasks(generator, scene, backend=backend, renders=renders)
        params.update(sam_model=model, sam_checkpoint=sam_checkpoint, sam_options=sam_options or {})
    elif kind == "geometric":
        from .geometric import GeometricMasks

        get_masks = GeometricMasks(scene, backend=backend, renders=renders)
    params["source"] = kind

    target = ws.path(MASKS_NAME)
    _remove_abandoned(target)
    views: list[str] = []
    with _staging_dir(target) as staging:
        staged = MaskSet(staging)
        for done, camera in enumerate(tqdm(cameras, desc=f"masks ({kind})", unit="view", disable=not progress), 1):
            view = get_masks(camera)
            if view is not None:  # None: a user folder without this view's file
                if len(view.masks):
                    out = renders.render(scene, camera, backend=backend)
                    depth, alpha = out.depth.cpu().numpy(), out.alpha.cpu().numpy()
                    view.scales = view_mask_scales(view.masks, depth, alpha, camera)
                staged.write_view(view)
                views.append(camera.name)
            renders.forget(camera)  # memory stays at one view's render once the stored photos are used
            if on_view is not None:
                on_view(done, len(cameras), camera.name)
        staged.write_index(views, source=kind, params=params)
        _swap_in(staging, target)
    ws.record(MASKS_NAME, made_by="prepare", params=params, inputs={"model": model_path})
    return MaskSet(target)


def open_masks(workspace: Workspace, scene_path: str | os.PathLike[str]) -> MaskSet:
    """The workspace's MaskSet, checked to belong to SCENE's current model (`StaleCacheError` if it changed)."""
    masks = MaskSet(workspace.path(MASKS_NAME))
    if not masks.exists() or workspace.entry(MASKS_NAME) is None:
        raise SplatsegError(f"no masks yet: run `splatseg prepare {shlex.quote(str(scene_path))}` first")
    workspace.check_fresh(MASKS_NAME, inputs={"model": find_model(scene_path)})
    return masks


def _source_kind(source: SourceName | str | os.PathLike[str], scene_dir: Path) -> str:
    if isinstance(source, str) and source in ("auto", "sam", "labels", "sam-like", "geometric"):
        return default_source(scene_dir) if source == "auto" else source
    path = Path(source)
    if not path.is_dir():
        raise InputError(f"--masks {source}: not sam, labels, sam-like, geometric or a folder of mask files")
    return "folder"


# ---- swapping a finished MaskSet in ---------------------------------------------------------------------------------
# A folder cannot be replaced by one rename while it has files, so: build in `.masks.partial-PID-*`, rename the old
# set aside to `.masks.old-PID-*`, rename the new one in, delete the old. A reader in the instant between the two
# renames sees "no masks yet", never a half-written set.


@contextlib.contextmanager
def _staging_dir(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _fresh_dir(target, "partial")
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once swapped in


def _swap_in(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = _fresh_dir(target, "old")
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fresh_dir(target: Path, kind: str) -> Path:
    """`.NAME.KIND-PID-RANDOM` beside target; os.mkdir (not mkdtemp) so the folder gets the usual permissions."""
    while True:
        path = target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path


def _remove_abandoned(target: Path) -> None:
    """Staging and old folders of prepares that were killed (their process is gone) are deleted."""
    if not target.parent.is_dir():
        return
    for path in target.parent.glob(f".{target.name}.*-*-*"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if path.is_dir() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

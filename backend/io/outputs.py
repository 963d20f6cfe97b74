"""The one check every writing command makes: an output path must not be one of the scene's inputs.

`segment --out SCENE/point_cloud.ply` once replaced the model with the selection. Every command that writes
(segment, query, export, render, and the viewer's exports) passes its output paths through `check_outputs` before
any work starts, so a typo costs an error line rather than the model.

An output is refused when it
- is the model file, a camera file or an image a camera reads (compared by resolved path, and by device + inode so a
  hard link or a second path to the same file is caught too), or
- lies inside a folder of inputs (`images/`, `labels/`, `masks/`, COLMAP `sparse/`) or the workspace, whether the file
  exists yet or not: a new file there would change what the next run reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from backend.core.errors import SplatsegError

CAMERA_FILES = (
    "cameras.json",
    "transforms.json",
    "transforms_train.json",
    "transforms_test.json",
    "dataparser_transforms.json",
)
"""Camera files a scene folder may hold (see `backend.io.cameras.load_cameras`)."""

INPUT_DIRS = ("images", "labels", "masks", "sparse")
"""Folders of a scene whose contents splatseg reads."""


class OutputIsInputError(SplatsegError):
    """An output path names one of the scene's inputs."""


def scene_inputs(
    scene_path: str | os.PathLike[str], *, workspace: str | os.PathLike[str] | None = None
) -> tuple[list[Path], list[Path]]:
    """(input files, input folders) of SCENE: what a writing command must never overwrite."""
    from backend.io.scene_folder import WORKSPACE_DIRNAME, find_model, scene_dir_of

    files: list[Path] = []
    scene_dir = scene_dir_of(scene_path)
    with contextlib.suppress(SplatsegError):  # no model: the command itself will say so
        files.append(find_model(scene_path))
    files += [scene_dir / name for name in CAMERA_FILES if (scene_dir / name).is_file()]
    folders = [scene_dir / name for name in INPUT_DIRS if (scene_dir / name).is_dir()]
    folders.append(scene_dir / WORKSPACE_DIRNAME)
    if workspace is not None:
        folders.append(Path(workspace))
    files += _camera_images(scene_dir)
    return files, folders


def check_outputs(
    scene_path: str | os.PathLike[str],
    outputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
    *,
    workspace: str | os.PathLike[str] | None = None,
) -> None:
    """Raise `OutputIsInputError` when any (flag, path) in `outputs` would overwrite an input of SCENE.

    Also refuses two outputs that name the same file (the second would replace the first).
    """
    wanted = [(flag, Path(path)) for flag, path in outputs if path is not None]
    if not wanted:
        return
    files, folders = scene_inputs(scene_path, workspace=workspace)
    input_ids = {ident for path in files if (ident := _file_id(path)) is not None}
    resolved_files = {_resolve(path): path for path in files}
    resolved_folders = [(_resolve(folder), folder) for folder in folders]
    seen: dict[Path, str] = {}
    for flag, path in wanted:
        target = _resolve(path)
        if target in seen:
            raise OutputIsInputError(f"{flag} and {seen[target]} both name {path}; give them different paths")
        seen[target] = flag
        if target in resolved_files or (_file_id(path) is not None and _file_id(path) in input_ids):
            raise OutputIsInputError(
                f"refusing to overwrite {path} ({flag}): it is an input of the scene "
                f"({resolved_files.get(target, path)}); choose another path"
            )
        if path.exists() and _file_id(path) is not None:
            ident = _file_id(path)
            for folder_resolved, folder in resolved_folders:
                if folder_resolved.is_dir() and ident in set(_ids_under(folder_resolved)):
                    raise OutputIsInputError(
                        f"refusing to overwrite {path} ({flag}): it is the same file as one in {folder}; "
                        "choose another path"
                    )
        for folder_resolved, folder in resolved_folders:
            if target == folder_resolved or folder_resolved in target.parents:
                raise OutputIsInputError(
                    f"refusing to write {path} ({flag}): it is inside {folder}, which splatseg reads as input; "
                    "choose a path outside the scene's inputs"
                )


def _resolve(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _ids_under(folder: Path) -> Iterator[tuple[int, int]]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if (ident := _file_id(Path(root) / name)) is not None:
                yield ident


def _camera_images(scene_dir: Path) -> list[Path]:
    """Images cameras name outside images/ (Blender's train/ and test/), when the cameras can be read at all."""
    from backend.io.cameras import load_cameras

    try:
        cameras = load_cameras(scene_dir)
    except (SplatsegError, OSError, ValueError):
        return []
    return [Path(cam.image_path) for cam in cameras if getattr(cam, "image_path", None)]


def require_writable_dir(folder: str | os.PathLike[str], *, what: str = "workspace") -> None:
    """Fail now, with one line, if `folder` cannot be created or written: before minutes of work, not after."""
    import tempfile

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".splatseg-write-test."):
            pass
    except OSError as e:
        raise SplatsegError(
            f"cannot write to the {what} {folder} ({e.strerror or e}); make it writable or give --workspace DIR"
        ) from None

"""User-provided masks (`--masks PATH`): one file per view, named by the view's image stem.

Accepted (docs/architecture.md, "Inputs"): `.npz` (array `masks`, else its first array) or `.npy` holding a bool
stack [M, H, W] of overlapping masks of any granularity (0/1 integers or floats accepted; a 2-D array is one mask,
or a label map when it holds labels above 1), or a 16-bit (or 8-bit) PNG label map with 0 = unlabelled and one mask
per label. Masks come from other tools and other people, so every file is checked against its camera before it is
used, and none is ever unpickled (`allow_pickle=False`): a mask file must not be able to run code.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.camera import Camera
from ..core.errors import InputError
from ..io.images import read_label_map
from .maskset import ViewMasks

MASK_SUFFIXES = (".npz", ".npy", ".png")
MAX_MASKS = 4096
"""Masks a view may hold (SAM's automatic generator makes ~100); bounds what one file can make us allocate."""
MAX_PIXELS = 8192 * 8192
"""Largest mask (and camera) size in pixels."""
_FIX = "save a bool array [M, H, W] (np.save / np.savez) or a 16-bit PNG label map"


class FolderMasks:
    """A folder of mask files matched to the cameras; views without a file have no masks (`__call__` → None)."""

    def __init__(self, folder: str | os.PathLike[str], cameras: Sequence[Camera]) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(
                f"--masks {self.folder}: not a folder; give a folder of per-view mask files, or --masks sam / labels"
            )
        names = {c.name for c in cameras}
        self.files: dict[str, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in MASK_SUFFIXES or not path.is_file():
                continue
            view = path.stem
            if view not in names:
                close = difflib.get_close_matches(view, sorted(names), n=2)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                raise InputError(
                    f"mask file {path} is for unknown view {view!r}{hint}; files must be named by a camera's image "
                    f"stem, e.g. {', '.join(sorted(names)[:4])}"
                )
            if view in self.files:
                raise InputError(f"view {view!r} has two mask files ({self.files[view].name}, {path.name}); keep one")
            self.files[view] = path
        if not self.files:
            raise InputError(
                f"--masks {self.folder}: no mask files ({', '.join(MASK_SUFFIXES)}) named by view, e.g. "
                f"{sorted(names)[0] if names else 'VIEW'}.npy"
            )
        if len(self.files) < len(names) / 2:
            warnings.warn(
                f"only {len(self.files)} of {len(names)} views have masks in {self.folder}; "
                "features are learnt from the masked views only",
                stacklevel=2,
            )

    def __call__(self, camera: Camera) -> ViewMasks | None:
        path = self.files.get(camera.name)
        if path is None:
            return None
        masks = read_mask_file(path, shape=(camera.height, camera.width))  # [M, H, W]
        if masks.shape[1:] != (camera.height, camera.width):
            raise InputError(
                f"view {camera.name!r}: {path} holds {masks.shape[2]}×{masks.shape[1]} masks but the camera is "
                f"{camera.width}×{camera.height}; masks must be at the camera's full resolution"
            )
        masks = masks[masks.any(axis=(1, 2))]  # an empty mask teaches nothing (a stack of none is fine)
        m = len(masks)
        return ViewMasks(
            name=camera.name,
            masks=masks,
            scores=np.ones(m, dtype=np.float32),
            scales=np.full(m, np.nan, dtype=np.float32),
        )


def read_mask_file(
    path: str | os.PathLike[str], *, shape: tuple[int, int] | None = None
) -> np.ndarray:  # → [M, H, W] bool
    """One view's masks from a `.npz`, `.npy` or label-map `.png`, refusing anything that is not plain numbers.

    `shape` (H, W), the camera's size when known, is checked against a `.npy` header before its data is read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return label_map_masks(read_label_map(path), path)
    if suffix == ".npy":
        array = _load(path, shape)
    elif suffix == ".npz":
        array = _load_npz(path)
    else:
        raise InputError(f"{path}: unsupported mask file; use {', '.join(MASK_SUFFIXES)}")
    return _as_mask_stack(array, path)


def label_map_masks(labels: np.ndarray, path: Path | None = None) -> np.ndarray:  # [H, W] int → [M, H, W] bool
    """One mask per label, labels ascending, 0 skipped; at most MAX_MASKS labels (the stack is M·H·W bytes)."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if len(ids) > MAX_MASKS:
        raise InputError(f"{path or 'label map'}: holds {len(ids)} labels; at most {MAX_MASKS} a view are accepted")
    return labels[None] == ids[:, None, None]


def _load(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The array of a mask `.npy`, its header checked first: [M, H, W] or [H, W], H×W the camera's when known."""
    from ..io.npy import load_npy

    def check(found: tuple[int, ...]) -> str | None:
        if len(found) not in (2, 3):
            return None  # the full check (with the dtype) follows; such an array is refused there
        if shape is not None and found[-2:] != shape:
            return (
                f"holds {found[-1]}×{found[-2]} masks but the camera is {shape[1]}×{shape[0]}; masks must be at the "
                "camera's full resolution"
            )
        if len(found) == 3 and found[0] > MAX_MASKS:
            return f"holds {found[0]} masks; at most {MAX_MASKS} a view are accepted"
        if math.prod(found[-2:]) > MAX_PIXELS:
            return f"masks of {found[-1]}×{found[-2]} pixels are larger than any camera splatseg accepts"
        return None

    return load_npy(path, check_shape=check)


def _load_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not data.files:
                raise InputError(f"{path}: holds no arrays; {_FIX}")
            key = "masks" if "masks" in data.files else data.files[0]
            try:
                return data[key]
            except ValueError:
                raise InputError(
                    f"{path}: array {key!r} holds Python objects (pickle), which splatseg never loads; {_FIX}"
                ) from None
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e}); {_FIX}") from None


def _as_mask_stack(array: np.ndarray, path: Path) -> np.ndarray:  # any → [M, H, W] bool
    if array.dtype == np.bool_:
        masks = array
    elif array.dtype.kind in "iu":
        if array.ndim == 2 and array.size and (array.min() < 0 or array.max() > 1):
            if array.min() < 0:
                raise InputError(f"{path}: a 2-D label map must hold labels ≥ 0 (0 = unlabelled); {_FIX}")
            return label_map_masks(array, path)
        if array.size and (array.min() < 0 or array.max() > 1):
            raise InputError(f"{path}: integer masks must hold 0 or 1 only, found {array.min()}..{array.max()}; {_FIX}")
        masks = array != 0
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{path}: masks contain NaN/Inf; {_FIX}")
        if not np.isin(array, (0.0, 1.0)).all():
            bad = array[~np.isin(array, (0.0, 1.0))].flat[0]
            raise InputError(f"{path}: float masks must hold 0 or 1 only, found {bad:g}; {_FIX}")
        masks = array != 0
    else:
        raise InputError(f"{path}: masks of type {array.dtype} are not masks; {_FIX}")
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or 0 in masks.shape[1:]:
        raise InputError(f"{path}: masks must be [M, H, W] (or one [H, W] mask), got shape {array.shape}; {_FIX}")
    return np.ascontiguousarray(masks)

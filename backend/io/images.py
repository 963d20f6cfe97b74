"""Image files: photos in, renders and label maps out.

Every image splatseg reads is turned into one layout (`[H, W, 3]` uint8 RGB) here, so no other module has to care
about palettes, alpha or 16-bit photos. Label maps are 16-bit single-channel PNGs because 8 bits run out at 255
objects and user-provided masks (design: "a 16-bit PNG label map, 0 = unlabelled") come in that form.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from backend.core.errors import InputError
from backend.io.atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
"""Suffixes tried, in this order, when a camera names an image without its extension."""


def _open(path: str | os.PathLike[str]) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise InputError(f"{os.fspath(path)}: image not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{os.fspath(path)}: not a readable image ({e})") from None


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from the file header only: checking hundreds of photos against their cameras must be cheap."""
    with _open(path) as img:
        return img.size


def read_image(path: str | os.PathLike[str]) -> np.ndarray:  # [H, W, 3] uint8 RGB
    """Any PNG/JPEG as RGB; transparent pixels are composited over black, as INRIA 3DGS trains on them."""
    with _open(path) as img:
        try:
            img.load()
        except OSError as e:
            raise InputError(f"{os.fspath(path)}: truncated or corrupt image ({e})") from None
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit grayscale: scale to 8 bits rather than clip (PIL's convert("RGB") clips at 255).
            gray = np.asarray(img).astype(np.float64)
            gray8 = np.clip(np.round(gray / 257.0), 0, 255).astype(np.uint8)
            return np.repeat(gray8[:, :, None], 3, axis=2)
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        if not has_alpha:
            return np.asarray(img.convert("RGB")).copy()
        rgba = np.asarray(img.convert("RGBA")).astype(np.uint32)
        rgb = (rgba[:, :, :3] * rgba[:, :, 3:4] + 127) // 255
        return rgb.astype(np.uint8)


def read_label_map(path: str | os.PathLike[str]) -> np.ndarray:  # [H, W] uint16, 0 = unlabelled
    """A single-channel label PNG (8- or 16-bit) as uint16; an RGB file is refused because its labels are ambiguous."""
    with _open(path) as img:
        if img.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "P"):
            raise InputError(
                f"{os.fspath(path)}: a label map must be a single-channel (8- or 16-bit grayscale) PNG, "
                f"got mode {img.mode}"
            )
        labels = np.asarray(img)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise InputError(f"{os.fspath(path)}: label values must lie in 0..65535")
    return labels.astype(np.uint16)


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write atomically: `[H, W, 3]` uint8 RGB, `[H, W]` uint8 gray, or `[H, W]` uint16 label map (16-bit PNG)."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        img = Image.fromarray(array)  # mode "RGB"
    elif array.dtype == np.uint8 and array.ndim == 2:
        img = Image.fromarray(array)  # mode "L"
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2 and array.ndim == 2:
        # Any byte order in; PIL's "I;16" wants little-endian, so a big-endian array is converted, not misread.
        img = Image.fromarray(array.astype("<u2", copy=False))
    else:
        raise ValueError(
            f"write_png takes [H, W, 3] uint8, [H, W] uint8 or [H, W] uint16, got {array.shape} {array.dtype}"
        )
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")

"""`splatseg render`: one view of a scene to an image file (RGB, depth, alpha, or a selection mask)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..core.errors import SplatsegError
from ..io.atomic import atomic_path
from ..io.cameras import find_camera, load_cameras
from ..io.images import write_png
from ..io.scene_folder import load_scene, scene_dir_of
from ..io.selection import load_selection
from ..render import Backend, render, to_uint8

What = Literal["rgb", "depth", "alpha", "mask"]


def selection_mask_image(
    scene, camera, selection: np.ndarray, *, backend: Backend = "auto", threshold: float = 0.5
) -> np.ndarray:  # → [H, W] bool
    """Pixels where the selected Gaussians carry more than `threshold` of the pixel's accumulated opacity."""
    sel = torch.as_tensor(selection, dtype=torch.float32)[:, None]
    out = render(scene, camera, features=sel, backend=backend)
    frac = out.features[..., 0] / out.alpha.clamp(min=1e-6)
    return ((frac > threshold) & (out.alpha > 0.5)).cpu().numpy()


def render_command(
    scene_path: Path,
    *,
    view: str,
    what: What,
    out: Path,
    selection: Path | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: Backend = "auto",
    workspace: Path | None = None,
) -> None:
    suffix = out.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise SplatsegError(f"output {out} must end in .png (an image) or .npy (raw values)")
    if what == "mask" and selection is None:
        raise SplatsegError("--what mask needs --selection SEL.npy (a bool vector over the Gaussians)")
    scene, _ = load_scene(scene_path)
    camera = find_camera(load_cameras(scene_dir_of(scene_path)), view)
    sel = load_selection(selection, len(scene)) if selection is not None else None

    if what == "mask":
        mask = selection_mask_image(scene, camera, sel, backend=backend)
        _write(out, mask, image=(mask.astype(np.uint8) * 255))
        return
    rendered = render(scene, camera, background=torch.tensor(background), backend=backend)
    if what == "rgb":
        rgb = rendered.rgb
        if sel is not None:  # tint the selection so it can be seen in the image
            tint = render(scene, camera, features=torch.as_tensor(sel, dtype=torch.float32)[:, None], backend=backend)
            w = tint.features[..., :1].clamp(0, 1)
            rgb = rgb * (1 - 0.5 * w) + 0.5 * w * torch.tensor([1.0, 0.3, 0.1])
        _write(out, rgb.detach().cpu().numpy(), image=to_uint8(rgb))
    elif what == "alpha":
        a = rendered.alpha.cpu().numpy()
        _write(out, a, image=(np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))
    else:  # depth: 16-bit PNG in millimetres of scene units (clamped at 65.535), or raw float32
        d = rendered.depth.cpu().numpy()
        _write(out, d, image=np.clip(d * 1000.0 + 0.5, 0, 65535).astype(np.uint16))


def _write(out: Path, raw: np.ndarray, *, image: np.ndarray) -> None:
    if out.suffix.lower() == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, raw, allow_pickle=False)
    else:
        write_png(out, image)


def run(args: argparse.Namespace) -> int:
    render_command(
        args.scene,
        view=args.view,
        what=args.what,
        out=args.output,
        selection=args.selection,
        background=args.background,
        backend=args.backend,
        workspace=args.workspace,
    )
    return 0

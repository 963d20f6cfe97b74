"""Rendering: one entry point, two backends (gsplat on CUDA, a pure-PyTorch reference everywhere).

`render` draws a view; `contributions` gives the top-k (Gaussian, weight) pairs of chosen pixels for training with
frozen geometry; `ray_feature` / `RayCaster` composite a single pixel without rendering a frame, for clicks.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .contributions import contributions as contributions
from .fragments import Fragments as Fragments
from .fragments import rasterize_fragments as rasterize_fragments
from .gsplat_backend import gsplat_available as gsplat_available
from .output import RenderOutput as RenderOutput
from .output import to_uint8 as to_uint8
from .ray import RayCaster as RayCaster
from .ray import pixel_center as pixel_center
from .ray import ray_feature as ray_feature

Backend = Literal["auto", "torch", "gsplat"]


def resolve_backend(backend: Backend = "auto") -> Literal["torch", "gsplat"]:
    if backend == "auto":
        return "gsplat" if gsplat_available() else "torch"
    return backend


def render(
    scene: GaussianScene,
    camera: Camera,
    *,
    features: Tensor | None = None,  # [N, C] per-Gaussian features to composite alongside the colours
    sh_degree: int | None = None,  # evaluate SH up to this degree (default: the scene's)
    background: Tensor | None = None,  # [3] colour behind the Gaussians (default: none, i.e. black)
    backend: Backend = "auto",
) -> RenderOutput:
    """Render RGB, alpha, expected depth and (optionally) a feature map of `camera`'s view."""
    if resolve_backend(backend) == "gsplat":
        from .gsplat_backend import render_gsplat

        return render_gsplat(scene, camera, features=features, sh_degree=sh_degree, background=background)
    from .reference import render_reference

    return render_reference(scene, camera, features=features, sh_degree=sh_degree, background=background)

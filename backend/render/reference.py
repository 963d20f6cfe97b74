"""The pure-PyTorch reference renderer: runs on any device, differentiable in colours and features.

It is the oracle the gsplat backend is tested against and what renders on machines without CUDA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .fragments import DEFAULT_PAIR_BUDGET, Fragments, rasterize_fragments
from .output import RenderOutput
from .sh import sh_to_rgb


def gaussian_colors(scene: GaussianScene, camera: Camera, sh_degree: int | None = None) -> Tensor:  # [N, 3]
    """Per-Gaussian RGB for this view: SH evaluated along the direction from the camera centre."""
    center = torch.as_tensor(camera.center, dtype=scene.means.dtype, device=scene.device)
    return sh_to_rgb(scene.sh, scene.means - center, sh_degree)


def camera_depths(scene: GaussianScene, camera: Camera) -> Tensor:  # [N] camera-space z
    viewmat = camera.viewmat(scene.device)
    return scene.means @ viewmat[2, :3] + viewmat[2, 3]


def render_reference(
    scene: GaussianScene,
    camera: Camera,
    *,
    features: Tensor | None = None,  # [N, C]
    sh_degree: int | None = None,
    background: Tensor | None = None,  # [3]
    fragments: Fragments | None = None,
    pair_budget: int = DEFAULT_PAIR_BUDGET,
) -> RenderOutput:
    frags = fragments if fragments is not None else rasterize_fragments(scene, camera, pair_budget=pair_budget)
    H, W = camera.height, camera.width
    Wm = frags.matrix()
    colors = gaussian_colors(scene, camera, sh_degree)
    values = torch.cat([colors, camera_depths(scene, camera)[:, None], torch.ones_like(colors[:, :1])], dim=1)
    out = (Wm @ values).reshape(H, W, 5)
    rgb, depth_acc, alpha = out[..., :3], out[..., 3], out[..., 4]
    if background is not None:
        rgb = rgb + (1.0 - alpha)[..., None] * background.to(rgb)
    depth = torch.where(alpha > 0, depth_acc / alpha.clamp(min=1e-10), torch.zeros_like(depth_acc))
    feats = None
    if features is not None:
        if features.shape[0] != len(scene):
            raise ValueError(f"features has {features.shape[0]} rows for {len(scene)} Gaussians")
        feats = _sparse_matmul(Wm, frags, features).reshape(H, W, features.shape[1])
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth, features=feats)


def _sparse_matmul(Wm: Tensor, frags: Fragments, values: Tensor) -> Tensor:  # → [H·W, C]
    """W @ values, differentiable in `values` (CSR matmul has no autograd on every build, so index_add then)."""
    if not values.requires_grad:
        return Wm @ values.to(frags.weight.dtype)
    out = values.new_zeros(frags.width * frags.height, values.shape[1])
    return out.index_add(0, frags.pixel, frags.weight[:, None] * values[frags.gaussian])

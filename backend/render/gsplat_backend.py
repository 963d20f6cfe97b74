"""The gsplat (CUDA) backend: same contract as the reference renderer, many times faster.

Kept in step with `projection.py`: eps2d 0.3, near plane 0.01, classic (non-antialiased) rasterisation, so the two
agree to rasterisation precision; `tests/test_render_gsplat.py` checks that on a CUDA machine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.errors import SplatsegError
from ..core.scene import GaussianScene
from .output import RenderOutput
from .projection import EPS2D, FAR_PLANE, NEAR_PLANE


def gsplat_available() -> bool:
    """True when CUDA is present and gsplat imports (its kernels compile on first use)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def render_gsplat(
    scene: GaussianScene,
    camera: Camera,
    *,
    features: Tensor | None = None,  # [N, C]
    sh_degree: int | None = None,
    background: Tensor | None = None,  # [3]
) -> RenderOutput:
    if not torch.cuda.is_available():
        raise SplatsegError("the gsplat renderer needs a CUDA GPU; use --render client or the torch backend")
    from gsplat import rasterization

    device = torch.device("cuda")
    s = scene.to(device) if scene.device.type != "cuda" else scene
    viewmats = camera.viewmat(device)[None]
    Ks = camera.intrinsics(device)[None]
    common = dict(
        means=s.means,
        quats=s.unit_quats,
        scales=s.scales,
        opacities=s.opacities,
        viewmats=viewmats,
        Ks=Ks,
        width=camera.width,
        height=camera.height,
        near_plane=NEAR_PLANE,
        far_plane=FAR_PLANE,
        eps2d=EPS2D,
        packed=False,
        rasterize_mode="classic",
    )
    degree = s.sh_degree if sh_degree is None else sh_degree
    bg = background.to(device)[None] if background is not None else None
    out, alphas, _ = rasterization(colors=s.sh, sh_degree=degree, render_mode="RGB+ED", backgrounds=bg, **common)
    rgb, depth, alpha = out[0, ..., :3], out[0, ..., 3], alphas[0, ..., 0]
    depth = torch.where(alpha > 0, depth, torch.zeros_like(depth))
    feats = None
    if features is not None:
        feats, _, _ = rasterization(colors=features.to(device).float(), sh_degree=None, render_mode="RGB", **common)
        feats = feats[0]
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth, features=feats)

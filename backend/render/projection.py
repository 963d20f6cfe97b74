"""EWA projection of 3D Gaussians to image-space 2D Gaussians, with gsplat's exact conventions.

The reference renderer, `contributions` and `ray_feature` all evaluate a Gaussian at a pixel through this one
module, which is what makes them agree to float precision. The conventions follow gsplat's `fully_fused_projection`
(and INRIA 3DGS): the perspective Jacobian with the x/z, y/z clamp at 1.3× the field of view, a 0.3 px² low-pass
(`eps2d`) added to the 2D covariance, a near plane at 0.01, pixel centres at integer + 0.5, alpha capped at 0.999 and
ignored below 1/255.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.rotations import quat_to_rotmat
from ..core.scene import GaussianScene

EPS2D = 0.3
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4


def covariances(scene: GaussianScene, ids: Tensor | None = None) -> Tensor:  # [N or M, 3, 3] R S Sᵀ Rᵀ
    quats = scene.quats if ids is None else scene.quats[ids]
    log_scales = scene.log_scales if ids is None else scene.log_scales[ids]
    R = quat_to_rotmat(torch.nn.functional.normalize(quats, dim=-1))
    M = R * torch.exp(log_scales)[:, None, :]
    return M @ M.transpose(1, 2)


@dataclasses.dataclass
class Projected:
    """Image-space Gaussians of the visible subset, in the order of `ids`."""

    ids: Tensor  # [M] int64 indices into the scene
    means2d: Tensor  # [M, 2] pixel coordinates (x, y)
    conics: Tensor  # [M, 3] inverse 2D covariance (a, b, c): [[a, b], [b, c]]
    depths: Tensor  # [M] camera-space z
    opacities: Tensor  # [M]
    bbox: Tensor  # [M, 4] int64 pixel ranges x0, x1, y0, y1 (half-open) where alpha can reach 1/255


def project(
    scene: GaussianScene,
    camera: Camera,
    *,
    ids: Tensor | None = None,  # [M] restrict to these Gaussians
    cov3d: Tensor | None = None,  # [M, 3, 3] their world covariances, when the caller keeps them (`RayCaster`)
) -> Projected:
    """Project the (selected) Gaussians into `camera`, dropping those behind it, degenerate or off-screen."""
    device = scene.device
    if ids is None:
        ids = torch.arange(len(scene), device=device)
        means, opac = scene.means, scene.opacities
        cov = covariances(scene)
    else:
        means, opac = scene.means[ids], torch.sigmoid(scene.logit_opacities[ids])
        cov = covariances(scene, ids) if cov3d is None else cov3d
    viewmat = camera.viewmat(device)
    Rw, tw = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ Rw.T + tw  # [M, 3] camera space
    x, y, z = p.unbind(-1)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    W, H = camera.width, camera.height

    in_depth = (z > NEAR_PLANE) & (z < FAR_PLANE)
    zs = torch.where(in_depth, z, torch.ones_like(z))
    tan_fovx, tan_fovy = 0.5 * W / fx, 0.5 * H / fy
    lim_x_pos, lim_x_neg = (W - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (H - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tx = zs * torch.clamp(x / zs, -lim_x_neg, lim_x_pos)
    ty = zs * torch.clamp(y / zs, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(zs)
    J = torch.stack(
        [fx / zs, zero, -fx * tx / (zs * zs), zero, fy / zs, -fy * ty / (zs * zs)],
        dim=-1,
    ).reshape(-1, 2, 3)
    cov_cam = Rw @ cov @ Rw.T
    cov2d = J @ cov_cam @ J.transpose(1, 2)  # [M, 2, 2]
    a = cov2d[:, 0, 0] + EPS2D
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + EPS2D
    det = a * c - b * b
    ok = in_depth & (det > 0) & (opac >= ALPHA_MIN)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)

    # Axis-aligned extent of the ellipse where opacity·exp(-½ dᵀΣ⁻¹d) ≥ 1/255: d ≤ sqrt(2 ln(255·o)·Σ_ii).
    level = 2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0))
    ext_x = torch.sqrt(level * a.clamp(min=0))
    ext_y = torch.sqrt(level * c.clamp(min=0))
    # Pixel j has its centre at j + 0.5: it is inside when |mean - (j + 0.5)| ≤ ext.
    x0 = torch.ceil(means2d[:, 0] - ext_x - 0.5).clamp(0, W)
    x1 = (torch.floor(means2d[:, 0] + ext_x - 0.5) + 1).clamp(0, W)
    y0 = torch.ceil(means2d[:, 1] - ext_y - 0.5).clamp(0, H)
    y1 = (torch.floor(means2d[:, 1] + ext_y - 0.5) + 1).clamp(0, H)
    finite = torch.isfinite(means2d).all(-1) & torch.isfinite(conics).all(-1)
    ok = ok & finite & (x1 > x0) & (y1 > y0)
    bbox = torch.stack([x0, x1, y0, y1], dim=-1)
    bbox = torch.where(ok[:, None], bbox, torch.zeros_like(bbox)).long()
    return Projected(
        ids=ids[ok],
        means2d=means2d[ok],
        conics=conics[ok],
        depths=z[ok],
        opacities=opac[ok],
        bbox=bbox[ok],
    )


def gaussian_alpha(
    means2d: Tensor,  # [P, 2]
    conics: Tensor,  # [P, 3]
    opacities: Tensor,  # [P]
    px: Tensor,  # [P] pixel centres x (integer + 0.5)
    py: Tensor,  # [P]
) -> Tensor:  # [P] alpha, 0 where the Gaussian does not count (below 1/255 or negative exponent)
    dx = means2d[:, 0] - px
    dy = means2d[:, 1] - py
    sigma = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp(opacities * torch.exp(-sigma), max=ALPHA_MAX)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))

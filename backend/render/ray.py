"""`ray_feature`: one pixel's composited feature without rendering a frame — the cost of a click.

Only Gaussians whose alpha ≥ 1/255 footprint can reach the ray are evaluated: a bounding-sphere test against the
ray (one [N, 3] × [3, 2] product), then the survivors go through the same projection and alpha as the renderer, so
the result equals the rendered pixel. `RayCaster` keeps what does not change between clicks (squared norms, bounding
radii) so a click at 1M Gaussians costs a few milliseconds on two CPU cores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..camera import Camera
from ..scene import GaussianScene
from .projection import EPS2D, NEAR_PLANE, composite_weights, gaussian_alpha, project

# The 2D footprint of a Gaussian off the optical axis is stretched by up to 1/cos²θ (θ ≤ ~45° in practice);
# the factor keeps the sphere test conservative so no contributor is culled.
_STRETCH = 2.0


class RayCaster:
    """Per-scene state for repeated single-pixel queries."""

    def __init__(self, scene: GaussianScene) -> None:
        self.scene = scene
        self.means = scene.means.contiguous()  # [N, 3]
        self.sq_norms = (self.means * self.means).sum(1)  # [N]
        opac = scene.opacities
        level = 2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0))  # [N] Mahalanobis² reaching alpha 1/255
        self.level = level
        self.sigma_max = scene.scales.max(dim=1).values  # [N]
        self.reach = torch.sqrt(level) * self.sigma_max * _STRETCH  # [N] world-space radius, before the low-pass
        self.live = opac >= 1.0 / 255.0

    def candidates(self, camera: Camera, pixel: tuple[float, float]) -> Tensor:  # [M] Gaussian ids
        origin, direction = camera.ray(pixel)
        o = torch.as_tensor(origin, dtype=self.means.dtype, device=self.means.device)
        d = torch.as_tensor(direction, dtype=self.means.dtype, device=self.means.device)
        proj = self.means @ torch.stack([o, d], dim=1)  # [N, 2]: m·o, m·d
        t = proj[:, 1] - o @ d  # distance along the ray
        dist2 = self.sq_norms - 2 * proj[:, 0] + o @ o - t * t  # squared distance to the ray's line
        # The 0.3 px² low-pass widens the footprint by sqrt(0.3)·z/f in world units at depth z.
        blur = EPS2D * (t / min(camera.fx, camera.fy)) ** 2 * self.level * _STRETCH**2
        hit = self.live & (t > NEAR_PLANE) & (dist2 <= self.reach * self.reach + blur)
        return torch.nonzero(hit).squeeze(1)

    def feature(
        self,
        features: Tensor,  # [N, C]
        camera: Camera,
        pixel: tuple[float, float],  # (x, y) position; a pixel's centre is (i + 0.5, j + 0.5)
    ) -> Tensor:  # [C]
        ids, weights = self.weights(camera, pixel)
        return (weights[:, None] * features[ids].float()).sum(0)

    def weights(self, camera: Camera, pixel: tuple[float, float]) -> tuple[Tensor, Tensor]:
        """(ids [L], weights [L]) of the Gaussians that blend into this ray, front to back."""
        cand = self.candidates(camera, pixel)
        proj = project(self.scene, camera, ids=cand)
        if proj.ids.numel() == 0:
            return proj.ids, proj.depths.new_zeros(0)
        order = torch.argsort(proj.depths, stable=True)
        n = order.numel()
        px = torch.full((n,), float(pixel[0]), device=proj.depths.device)
        py = torch.full((n,), float(pixel[1]), device=proj.depths.device)
        alpha = gaussian_alpha(proj.means2d[order], proj.conics[order], proj.opacities[order], px, py)
        keep = alpha > 0
        ids, alpha = proj.ids[order][keep], alpha[keep]
        w = composite_weights(alpha)
        nz = w > 0
        return ids[nz], w[nz]


def ray_feature(
    scene: GaussianScene,
    features: Tensor,  # [N, C]
    camera: Camera,
    pixel: tuple[float, float],
) -> Tensor:  # [C]
    """The feature the renderer would composite at `pixel` of `camera`, from that one ray alone.

    Takes a camera rather than a bare (origin, direction): EWA splatting evaluates each Gaussian's *projected*
    footprint, whose shape depends on the image plane (focal length, the 0.3 px² low-pass), so a pixel's value is
    only defined with its camera. `camera.ray(pixel)` gives the world-space origin and direction.
    """
    return RayCaster(scene).feature(features, camera, pixel)


def pixel_center(x: int, y: int) -> tuple[float, float]:
    """The centre of pixel column x, row y (what the renderer evaluates)."""
    return (float(x) + 0.5, float(y) + 0.5)


__all__ = ["RayCaster", "pixel_center", "ray_feature"]

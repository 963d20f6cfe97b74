"""`ray_feature`: one pixel's composited feature without rendering a frame — the cost of a click.

Only Gaussians whose alpha ≥ 1/255 footprint can reach the ray are evaluated. `RayCaster` sorts the Gaussians once
along a Morton curve and groups them in chunks of spatially close Gaussians with one bounding box each; a click
tests the ray against the few thousand boxes, then a bounding-sphere test runs only inside the boxes it hits, and
the survivors go through the same projection and alpha as the renderer — so the result equals the rendered pixel,
at a few milliseconds for 1M Gaussians on two CPU cores.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .composite import composite
from .projection import EPS2D, NEAR_PLANE, covariances, gaussian_alpha, project
from .ray_kernel import KernelRay
from .ray_numpy import NumpyRay

# The 2D footprint of a Gaussian off the optical axis is stretched by up to 1/cos²θ (θ ≤ ~45° in practice);
# the factor keeps the sphere test conservative so no contributor is culled.
_STRETCH = 2.0
CHUNK = 256
FRONT = 0
"""Candidates blended first, nearest first, before deciding whether the rest can matter (`RayCaster.weights`); 0 =
off. Off by default: at 0.3–1M Gaussians on two loaded cores, 256 or 512 measured ×0.85–1.06 against blending every
candidate (`splatseg bench --section latency`, `ray_*` keys): a projection's cost is its ~60 small torch operations,
not its ~2k elements, so skipping most elements saves little and a miss pays a second blend."""


def morton_order(points: np.ndarray) -> np.ndarray:  # points [N, 3] → [N] permutation along a Z-order curve
    lo, hi = points.min(0), points.max(0)
    q = ((points - lo) / np.maximum(hi - lo, 1e-12) * 1023).astype(np.uint64)

    def spread(v: np.ndarray) -> np.ndarray:  # 10 bits → every third bit of 30
        v = (v | (v << np.uint64(16))) & np.uint64(0x030000FF)
        v = (v | (v << np.uint64(8))) & np.uint64(0x0300F00F)
        v = (v | (v << np.uint64(4))) & np.uint64(0x030C30C3)
        return (v | (v << np.uint64(2))) & np.uint64(0x09249249)

    codes = spread(q[:, 0]) | (spread(q[:, 1]) << np.uint64(1)) | (spread(q[:, 2]) << np.uint64(2))
    return np.argsort(codes, kind="stable")


class RayCaster:
    """Per-scene state for repeated single-pixel queries (build once per scene, ~0.3 s at 1M Gaussians)."""

    def __init__(self, scene: GaussianScene, *, chunk: int = CHUNK) -> None:
        self.scene = scene
        n = len(scene)
        order = torch.as_tensor(morton_order(scene.means.detach().cpu().numpy()), device=scene.device)
        self.order = order  # [N] sorted position → Gaussian id
        means = scene.means[order].contiguous()  # [N, 3] in Morton order
        opac = torch.sigmoid(scene.logit_opacities[order])
        level = 2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0))  # Mahalanobis² reaching alpha 1/255
        sigma_max = torch.exp(scene.log_scales[order].max(dim=1).values)
        reach = torch.sqrt(level) * sigma_max * _STRETCH  # world radius, before the low-pass
        # World covariances (36 bytes a Gaussian): a click then projects its ~2k candidates without rebuilding
        # their rotations, a third of the projection's cost. Stored in Morton order, as the chunks are, so a click
        # reads its candidates' from the few chunks the ray crosses rather than from 2k scattered places; computed
        # in model order first, so every value is the one the renderer computes.
        with torch.no_grad():
            self.cov3d = covariances(scene)[order].contiguous()  # [N, 3, 3] by Morton position
        self.rank = torch.empty_like(order)  # [N] Gaussian id → Morton position
        self.rank[order] = torch.arange(n, device=order.device)
        # Chunk boxes: every Gaussian's reach sphere inside its chunk's box.
        self.chunk = chunk
        self.front = FRONT
        """Nearest candidates blended first; 0 blends them all (the reference path)."""
        num_chunks = (n + chunk - 1) // chunk
        pad = num_chunks * chunk - n
        lo = means - reach[:, None]
        hi = means + reach[:, None]
        if pad:
            lo = torch.cat([lo, lo[-1:].expand(pad, 3)])
            hi = torch.cat([hi, hi[-1:].expand(pad, 3)])
        self.box_lo = lo.reshape(num_chunks, chunk, 3).min(1).values  # [C, 3]
        self.box_hi = hi.reshape(num_chunks, chunk, 3).max(1).values  # [C, 3]
        self.box_center = 0.5 * (self.box_lo + self.box_hi)  # [C, 3]
        self.box_radius = torch.linalg.norm(0.5 * (self.box_hi - self.box_lo), dim=1)  # [C]
        self.box_level = torch.cat([level, level.new_zeros(pad)]).reshape(num_chunks, chunk).max(1).values  # [C]
        # What the ray test reads, packed per chunk so that a click gathers whole rows once instead of six
        # scattered arrays: x, y, z, |x|², level, reach², live (1/0), logit opacity; the padding is dead.
        packed = torch.cat(
            [
                means,
                (means * means).sum(1, keepdim=True),
                level[:, None],
                (reach * reach)[:, None],
                (opac >= 1.0 / 255.0)[:, None].to(means.dtype),
                scene.logit_opacities[order][:, None].to(means.dtype),
            ],
            dim=1,
        )
        if pad:
            packed = torch.cat([packed, packed.new_zeros(pad, packed.shape[1])])
        self.packed = packed.reshape(num_chunks, chunk, packed.shape[1]).contiguous()  # [C, chunk, 8]
        self.fast = True
        """On a CPU scene, `weights` runs the same arithmetic in NumPy (`NumpyRay`, ray_numpy.py: a fifth of the
        time, torch's per-operation cost being most of a click's); False keeps torch (`weights_torch`)."""
        self._numpy = NumpyRay(self, _STRETCH) if self.packed.device.type == "cpu" else None
        self.compiled = True
        """With `fast` on a CPU scene, `weights` runs the cast and blend as one compiled kernel (`KernelRay`,
        ray_kernel.py: no per-operation cost at all; weights equal `NumpyRay`'s to float32 rounding); False runs
        `NumpyRay` (bit-identical to torch, the previous path)."""
        self._kernel = None if self._numpy is None else KernelRay(self._numpy)

    def warm_up(self) -> RayCaster:
        """Compile the click's kernel (or load it from numba's cache) now, so that the first click does not."""
        if self._kernel is not None:
            self._kernel.warm_up()
        return self

    def _hit_chunks(self, o: Tensor, d: Tensor, focal: float) -> Tensor:  # → [H] chunk indices
        far = torch.linalg.norm(self.box_center - o, dim=1) + self.box_radius
        margin = torch.sqrt(EPS2D * self.box_level) * _STRETCH * far / focal  # the low-pass, at the box's far side
        lo = self.box_lo - margin[:, None]
        hi = self.box_hi + margin[:, None]
        inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        t0 = (lo - o) * inv
        t1 = (hi - o) * inv
        t_near = torch.minimum(t0, t1).max(1).values
        t_far = torch.maximum(t0, t1).min(1).values
        return torch.nonzero((t_far >= t_near) & (t_far > NEAR_PLANE)).squeeze(1)

    def candidates(self, camera: Camera, pixel: tuple[float, float]) -> Tensor:  # [M] Gaussian ids
        origin, direction = camera.ray(pixel)
        o = torch.as_tensor(origin, dtype=self.packed.dtype, device=self.packed.device)
        d = torch.as_tensor(direction, dtype=self.packed.dtype, device=self.packed.device)
        focal = min(camera.fx, camera.fy)
        chunks = self._hit_chunks(o, d, focal)
        rows = self.packed[chunks].reshape(-1, self.packed.shape[2])  # [H·chunk, 8]
        m = rows[:, :3]
        t = m @ d - o @ d  # distance along the ray
        dist2 = rows[:, 3] - 2 * (m @ o) + o @ o - t * t  # squared distance to the ray's line
        # The 0.3 px² low-pass widens the footprint by sqrt(0.3)·z/f in world units at depth z.
        blur = EPS2D * (t / focal) ** 2 * rows[:, 4] * _STRETCH**2
        hit = (rows[:, 6] > 0) & (t > NEAR_PLANE) & (dist2 <= rows[:, 5] + blur)
        flat = torch.nonzero(hit).squeeze(1)
        idx = chunks[flat // self.chunk] * self.chunk + flat % self.chunk  # Morton positions (never padding)
        return self.order[idx]

    def weights(self, camera: Camera, pixel: tuple[float, float]) -> tuple[Tensor, Tensor]:
        """(ids [L], weights [L]) of the Gaussians that blend into this ray, front to back.

        The candidates are blended nearest first: when the `front` nearest already bring the transmittance to
        1e-4 (the compositing rule's cut), every farther one would get weight 0, so they are not projected at all
        (an opaque surface is usually reached within a few hundred of the ~2k candidates; off unless `front` is
        set, see FRONT). Otherwise, or when the
        cut falls too close to the first skipped depth to be sure, all candidates are blended
        (`weights_reference`, which the tests compare this with)."""
        front = self.front
        if self.fast and not front and self._numpy is not None:
            ray = self._kernel if self.compiled else self._numpy
            ids, w = ray.weights(camera, pixel)
            return torch.from_numpy(ids), torch.from_numpy(w)
        cand = self.candidates(camera, pixel)
        if front and cand.numel() > 2 * front:
            viewmat = camera.viewmat(self.packed.device)
            z = self.scene.means[cand] @ viewmat[2, :3] + viewmat[2, 3]  # [M] camera depth, for the order only
            near = torch.argsort(z, stable=True)
            ids, w, cut = self._blend(cand[near[:front]], camera, pixel)
            first_skipped = float(z[near[front]])
            if cut < first_skipped - 1e-4 * abs(first_skipped):
                return ids, w
        ids, w, _ = self._blend(cand, camera, pixel)
        return ids, w

    def weights_reference(self, camera: Camera, pixel: tuple[float, float]) -> tuple[Tensor, Tensor]:
        """`weights` blending every candidate (the path before the nearest-first cut)."""
        ids, w, _ = self._blend(self.candidates(camera, pixel), camera, pixel)
        return ids, w

    def weights_torch(self, camera: Camera, pixel: tuple[float, float]) -> tuple[Tensor, Tensor]:
        """`weights` in torch whatever `fast` says (the path before `NumpyRay`; with `front` 0 it is
        `weights_reference`)."""
        fast, self.fast = self.fast, False
        try:
            return self.weights(camera, pixel)
        finally:
            self.fast = fast

    def _blend(
        self, cand: Tensor, camera: Camera, pixel: tuple[float, float]
    ) -> tuple[Tensor, Tensor, float]:  # cand [M] → ids [L], weights [L], depth where the cut falls (inf: none)
        proj = project(self.scene, camera, ids=cand, cov3d=self.cov3d[self.rank[cand]])
        if proj.ids.numel() == 0:
            return proj.ids, proj.depths.new_zeros(0), math.inf
        order = torch.argsort(proj.depths, stable=True)
        n = order.numel()
        px = torch.full((n,), float(pixel[0]), device=proj.depths.device)
        py = torch.full((n,), float(pixel[1]), device=proj.depths.device)
        alpha = gaussian_alpha(proj.means2d[order], proj.conics[order], proj.opacities[order], px, py)
        keep = alpha > 0
        ids, alpha, depths = proj.ids[order][keep], alpha[keep], proj.depths[order][keep]
        weight, kept = composite(torch.zeros(alpha.shape[0], dtype=torch.int64, device=alpha.device), alpha)
        w = torch.where(kept, weight, torch.zeros_like(weight))
        cut = math.inf if bool(kept.all()) else float(depths[~kept][0])
        nz = w > 0
        return ids[nz], w[nz], cut

    def feature(
        self,
        features: Tensor,  # [N, C]
        camera: Camera,
        pixel: tuple[float, float],  # (x, y) position; a pixel's centre is (i + 0.5, j + 0.5)
    ) -> Tensor:  # [C]
        ids, weights = self.weights(camera, pixel)
        return (weights[:, None] * features[ids].float()).sum(0)


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

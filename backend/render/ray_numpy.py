"""`NumpyRay`: `RayCaster`'s click (candidates, projection, alpha, blend) in NumPy, for CPU scenes.

A click's ray meets ~1–2k candidate Gaussians. In torch, projecting and blending them is ~60 small operations of
~8 µs dispatch each, which is most of a click's cost on a CPU at any scene size; an element-wise operation on NumPy
arrays costs ~2 µs. Every formula here is `RayCaster`'s (and `projection.project`'s, `gaussian_alpha`'s,
`composite`'s), written as the same float32 (compositing: float64) element-wise operations in the same order, which
IEEE arithmetic rounds alike in both libraries. What NumPy would round differently stays in torch, called on the
very arrays the torch path builds: the matrix products (BLAS kernels differ), exp, log, log1p (different
approximations) and sigmoid (torch's result depends on where an element falls in its array). So the ids, their
order and the weights are bit-identical to `RayCaster.weights_torch` (tests/test_ray_numpy.py), and so are the
selections built on them, at less than half the time.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.camera import Camera
from .projection import ALPHA_MAX, ALPHA_MIN, EPS2D, FAR_PLANE, NEAR_PLANE, TRANSMITTANCE_MIN


class NumpyRay:
    """NumPy views of a CPU `RayCaster`'s arrays (no copy but its chunk boxes, stored by axis) and the per-click work
    on them."""

    def __init__(self, caster, stretch: float) -> None:  # caster: a RayCaster on the CPU; stretch: its _STRETCH
        self.chunk = caster.chunk
        self.order = caster.order.detach().numpy()  # [N] Morton position → Gaussian id
        self.packed = caster.packed.detach().numpy()  # [C, chunk, 8]
        # The chunk boxes by axis ([3, C] rows), so the slab test is whole-row arithmetic, not reductions over 3.
        self.box_lo = np.ascontiguousarray(caster.box_lo.detach().numpy().T)  # [3, C]
        self.box_hi = np.ascontiguousarray(caster.box_hi.detach().numpy().T)  # [3, C]
        self.box_center = caster.box_center.detach().numpy()  # [C, 3]
        self.box_radius = caster.box_radius.detach().numpy()  # [C]
        self.box_low_pass = np.sqrt(np.float32(EPS2D) * caster.box_level.detach().numpy()) * np.float32(stretch)  # [C]
        self.stretch2 = np.float32(stretch**2)
        scene = caster.scene
        self.means = scene.means.detach().numpy()  # [N, 3] model order
        self.logit_opacities = scene.logit_opacities.detach().numpy()  # [N]
        self.cov3d = caster.cov3d.detach().numpy()  # [N, 3, 3] by Morton position
        self.rank = caster.rank.detach().numpy()  # [N] Gaussian id → Morton position

    def _hit_chunks(self, o: np.ndarray, d: np.ndarray, focal: float) -> np.ndarray:  # → [H] chunk indices
        far = torch.linalg.norm(torch.from_numpy(self.box_center - o), dim=1).numpy() + self.box_radius
        margin = self.box_low_pass * far / np.float32(focal)  # [C]
        inv = np.float32(1.0) / np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)
        t_near = t_far = None
        for k in range(3):  # the slab test, one axis at a time
            t0 = (self.box_lo[k] - margin - o[k]) * inv[k]
            t1 = (self.box_hi[k] + margin - o[k]) * inv[k]
            near, far_k = np.minimum(t0, t1), np.maximum(t0, t1)
            t_near = near if t_near is None else np.maximum(t_near, near)
            t_far = far_k if t_far is None else np.minimum(t_far, far_k)
        return np.flatnonzero((t_far >= t_near) & (t_far > np.float32(NEAR_PLANE)))

    def candidates(self, camera: Camera, pixel: tuple[float, float]) -> np.ndarray:  # [M] Gaussian ids
        return self.order[self._candidates(camera, pixel)[0]]

    def _candidates(
        self, camera: Camera, pixel: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:  # → Morton positions [M] ascending, their packed rows [M, 8]
        origin, direction = camera.ray(pixel)
        o = np.asarray(origin, dtype=np.float32)
        d = np.asarray(direction, dtype=np.float32)
        focal = min(camera.fx, camera.fy)
        chunks = self._hit_chunks(o, d, focal)
        rows = self.packed[chunks].reshape(-1, self.packed.shape[2])  # [H·chunk, 8]
        m, ot, dt = torch.from_numpy(rows[:, :3]), torch.from_numpy(o), torch.from_numpy(d)
        t = (m @ dt).numpy() - (ot @ dt).numpy()  # distance along the ray
        dist2 = rows[:, 3] - np.float32(2) * (m @ ot).numpy() + (ot @ ot).numpy() - t * t  # squared, to the line
        blur = np.float32(EPS2D) * (t / np.float32(focal)) ** 2 * rows[:, 4] * self.stretch2
        hit = (rows[:, 6] > 0) & (t > np.float32(NEAR_PLANE)) & (dist2 <= rows[:, 5] + blur)
        flat = np.flatnonzero(hit)
        return chunks[flat // self.chunk] * self.chunk + flat % self.chunk, rows[flat]

    def weights(
        self, camera: Camera, pixel: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:  # ids [L] int64, weights [L] float32, front to back
        """The candidates' means and opacities come with their packed rows and their covariances from Morton
        order: a click reads the few chunks the ray crosses, not 2k scattered Gaussians (`blend` by ids is the
        path before it: the same values, so the same bits)."""
        positions, rows = self._candidates(camera, pixel)
        return self._blend(positions, rows[:, :3], rows[:, 7], camera, pixel)

    def blend(
        self, cand: np.ndarray, camera: Camera, pixel: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:  # cand [M] Gaussian ids → ids [L], weights [L] (`RayCaster._blend`'s)
        """`weights` for given candidates, read at their ids (model order)."""
        return self._blend(self.rank[cand], self.means[cand], self.logit_opacities[cand], camera, pixel)

    def _blend(
        self,
        positions: np.ndarray,  # [M] Morton positions of the candidates
        means: np.ndarray,  # [M, 3] their centres
        logits: np.ndarray,  # [M] their logit opacities
        camera: Camera,
        pixel: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:  # ids [L], weights [L]
        f32 = np.float32
        t = torch.from_numpy
        means = np.ascontiguousarray(means)
        opac = torch.sigmoid(t(np.ascontiguousarray(logits))).numpy()
        w2c = camera.viewmat()  # [4, 4] float32
        Rw, tw = w2c[:3, :3], w2c[:3, 3]
        p = (t(means) @ Rw.T).numpy() + tw.numpy()  # [M, 3] camera space
        cov_cam = (Rw @ t(self.cov3d[positions]) @ Rw.T).numpy()  # [M, 3, 3]
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
        W, H = camera.width, camera.height
        in_depth = (z > f32(NEAR_PLANE)) & (z < f32(FAR_PLANE))
        zs = np.where(in_depth, z, f32(1.0))
        tan_fovx, tan_fovy = 0.5 * W / fx, 0.5 * H / fy
        lim_x_pos, lim_x_neg = (W - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
        lim_y_pos, lim_y_neg = (H - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
        tx = zs * np.clip(x / zs, f32(-lim_x_neg), f32(lim_x_pos))
        ty = zs * np.clip(y / zs, f32(-lim_y_neg), f32(lim_y_pos))
        inv_z = f32(1.0) / zs  # torch's `scalar / tensor` is reciprocal, then product
        zz = zs * zs
        J = np.zeros((len(positions), 2, 3), dtype=np.float32)
        J[:, 0, 0] = inv_z * f32(fx)
        J[:, 0, 2] = f32(-fx) * tx / zz
        J[:, 1, 1] = inv_z * f32(fy)
        J[:, 1, 2] = f32(-fy) * ty / zz
        Jt = t(J)
        cov2d = (Jt @ t(cov_cam) @ Jt.transpose(1, 2)).numpy()  # [M, 2, 2]
        a = cov2d[:, 0, 0] + f32(EPS2D)
        b = cov2d[:, 0, 1]
        c = cov2d[:, 1, 1] + f32(EPS2D)
        det = a * c - b * b
        ok = in_depth & (det > 0) & (opac >= f32(ALPHA_MIN))
        det_safe = np.where(ok, det, f32(1.0))
        con_a, con_b, con_c = c / det_safe, -b / det_safe, a / det_safe
        mx = f32(fx) * x / zs + f32(cx)
        my = f32(fy) * y / zs + f32(cy)
        level = f32(2.0) * torch.log(t(np.maximum(opac * f32(255.0), f32(1.0)))).numpy()
        ext_x = np.sqrt(level * np.maximum(a, f32(0.0)))
        ext_y = np.sqrt(level * np.maximum(c, f32(0.0)))
        x0 = np.clip(np.ceil(mx - ext_x - f32(0.5)), f32(0), f32(W))
        x1 = np.clip(np.floor(mx + ext_x - f32(0.5)) + f32(1.0), f32(0), f32(W))
        y0 = np.clip(np.ceil(my - ext_y - f32(0.5)), f32(0), f32(H))
        y1 = np.clip(np.floor(my + ext_y - f32(0.5)) + f32(1.0), f32(0), f32(H))
        finite = np.isfinite(mx) & np.isfinite(my) & np.isfinite(con_a) & np.isfinite(con_b) & np.isfinite(con_c)
        keep = np.flatnonzero(ok & finite & (x1 > x0) & (y1 > y0))
        if keep.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        order = keep[np.argsort(z[keep], kind="stable")]  # front to back, ties in candidate order
        dx = mx[order] - f32(pixel[0])
        dy = my[order] - f32(pixel[1])
        sigma = f32(0.5) * (con_a[order] * dx * dx + con_c[order] * dy * dy) + con_b[order] * dx * dy
        alpha = np.minimum(opac[order] * torch.exp(t(-sigma)).numpy(), f32(ALPHA_MAX))
        hit = np.flatnonzero((sigma >= 0) & (alpha >= f32(ALPHA_MIN)))
        ids, alpha = self.order[positions[order[hit]]], alpha[hit]
        # `composite` for one ray: transmittance as a cumulative sum of log(1 − alpha) in float64.
        a64 = alpha.astype(np.float64)
        log1m = torch.log1p(t(-a64)).numpy()
        log_t_after = np.cumsum(log1m)
        kept = torch.exp(t(log_t_after)).numpy() > TRANSMITTANCE_MIN
        weight = (a64 * torch.exp(t(log_t_after - log1m)).numpy()).astype(np.float32)
        nz = np.flatnonzero(kept & (weight > 0))
        return ids[nz].astype(np.int64, copy=False), weight[nz]

"""`KernelRay`: a click's ray cast and blend (`NumpyRay`'s work) as one compiled pass.

`NumpyRay` runs ~80 NumPy operations per click over the ~100 chunks the ray crosses and their ~2k candidates; at
~2 µs each that overhead, not the arithmetic, is its ~2 ms. Here one numba kernel (`backend/core/jit.py`) does the
same steps in one pass: the slab test of every chunk box, the reach test of the crossed chunks' rows as they are
read, the projection, footprint and alpha of the survivors, then the depth sort and the front-to-back blend of the
few hundred that reach the pixel. Every formula is `NumpyRay`'s (`RayCaster`'s, `projection.project`'s,
`gaussian_alpha`'s, `composite`'s) in the same precision (float32; compositing in float64), but scalar code sums a
3-term dot product in its own order and has its own exp and log, so a weight may differ from `NumpyRay`'s in the last
bits of float32 (tests/test_ray_kernel.py holds the two to 1e-5 and to the same contributors; the latency benchmark
compares the selections built on them).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.camera import Camera
from ..core.jit import kernel
from .projection import ALPHA_MAX, ALPHA_MIN, EPS2D, FAR_PLANE, NEAR_PLANE, TRANSMITTANCE_MIN

BOX_COLUMNS = 12
GROUP = 16
"""Chunks per group box: the ray is tested against ~250 group boxes at 1M Gaussians, then only against the chunks of
the groups it crosses (~4k chunk boxes before)."""


def group_boxes(boxes: np.ndarray, group: int) -> np.ndarray:  # [C, 12] → [⌈C / group⌉, 12]
    """One box per `group` consecutive chunks that a ray meets whenever it meets one of their widened boxes: the
    union of the boxes; a radius such that |centre − o| + radius bounds every chunk's |centreᶜ − o| + radiusᶜ (the
    chunks' far sides, which set their margins); the largest low-pass reach; all rounded outwards (float64, then
    a relative 1e-4 and an absolute 1e-6 of the group's size), so the float32 slab test cannot miss a grazing
    ray that a chunk's own test would catch."""
    c = len(boxes)
    g = (c + group - 1) // group
    pad = g * group - c
    b = boxes.astype(np.float64)
    if pad:
        b = np.concatenate([b, np.repeat(b[-1:], pad, axis=0)])
    b = b.reshape(g, group, BOX_COLUMNS)
    lo = b[:, :, 0:3].min(1)
    hi = b[:, :, 3:6].max(1)
    slack = (
        1e-4 * np.linalg.norm(hi - lo, axis=1, keepdims=True)
        + 1e-6
        + 1e-6 * np.abs(np.concatenate([lo, hi], 1)).max(1, keepdims=True)
    )
    centre = 0.5 * (lo + hi)
    far = (np.linalg.norm(b[:, :, 6:9] - centre[:, None, :], axis=2) + b[:, :, 9]).max(1)
    out = np.zeros((g, BOX_COLUMNS), dtype=np.float32)
    out[:, 0:3] = np.nextafter((lo - slack).astype(np.float32), np.float32(-np.inf))
    out[:, 3:6] = np.nextafter((hi + slack).astype(np.float32), np.float32(np.inf))
    out[:, 6:9] = centre
    out[:, 9] = (far * (1 + 1e-4) + slack[:, 0]).astype(np.float32)
    out[:, 10] = (b[:, :, 10].max(1) * (1 + 1e-4)).astype(np.float32)
    # A group holding a non-finite value (a degenerate Gaussian) has no box: its chunks are always tested.
    out[:, 11] = ~np.isfinite(out[:, :11]).all(1)
    return out


class KernelRay:
    """`NumpyRay`'s click in one compiled kernel over the same arrays (no copy)."""

    def __init__(self, numpy_ray) -> None:  # numpy_ray: the caster's `NumpyRay` (its arrays, by axis and packed)
        r = numpy_ray
        self.packed = r.packed  # [C, chunk, 8]
        # Each chunk's box in one row (lo, hi, centre, radius, low-pass reach; 48 bytes), so the box test reads one
        # row per chunk rather than five arrays.
        self.boxes = np.zeros((len(r.box_radius), BOX_COLUMNS), dtype=np.float32)  # [C, 12]
        self.boxes[:, 0:3] = r.box_lo.T
        self.boxes[:, 3:6] = r.box_hi.T
        self.boxes[:, 6:9] = r.box_center
        self.boxes[:, 9] = r.box_radius
        self.boxes[:, 10] = r.box_low_pass
        self.groups = group_boxes(self.boxes, GROUP)  # [G, 12]
        self.stretch2 = np.float32(r.stretch2)
        self.cov3d = r.cov3d  # [N, 3, 3] by Morton position
        self.order = r.order  # [N] Morton position → Gaussian id
        # Opacities by Morton position (4 bytes a Gaussian), so a click evaluates no sigmoid: torch's, over the
        # whole array (it may differ from the one over a click's candidates in the last bit).
        self.opacity = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(r.packed[..., 7].reshape(-1)))).numpy()

    def weights(
        self, camera: Camera, pixel: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:  # ids [L] int64, weights [L] float32, front to back
        origin, direction = camera.ray(pixel)
        W, H = camera.width, camera.height
        fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
        tan_fovx, tan_fovy = 0.5 * W / fx, 0.5 * H / fy
        view = np.array(
            [
                fx,
                fy,
                cx,
                cy,
                W,
                H,
                (W - cx) / fx + 0.3 * tan_fovx,  # the projection's clamp of x / z, as `project` has it
                cx / fx + 0.3 * tan_fovx,
                (H - cy) / fy + 0.3 * tan_fovy,
                cy / fy + 0.3 * tan_fovy,
                pixel[0],
                pixel[1],
                min(fx, fy),
            ],
            dtype=np.float32,
        )
        positions, weights = ray_blend(
            self.packed,
            self.boxes,
            self.groups,
            self.stretch2,
            self.cov3d,
            self.opacity,
            np.asarray(origin, dtype=np.float32),
            np.asarray(direction, dtype=np.float32),
            np.ascontiguousarray(camera.world_to_camera, dtype=np.float32),
            view,
        )
        return self.order[positions].astype(np.int64, copy=False), weights

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) before the first click."""
        tiny = np.zeros((1, 1, 8), np.float32)
        ray_blend(
            tiny,
            np.zeros((1, BOX_COLUMNS), np.float32),
            np.zeros((1, BOX_COLUMNS), np.float32),
            np.float32(4.0),
            np.zeros((1, 3, 3), np.float32),
            np.zeros(1, np.float32),
            np.zeros(3, np.float32),
            np.array([0, 0, 1], np.float32),
            np.eye(4, dtype=np.float32),
            np.ones(13, np.float32),
        )


@kernel
def ray_blend(
    packed,  # [C, chunk, 8] float32: x, y, z, |x|², level, reach², live, logit opacity (ray.py `RayCaster`)
    boxes,  # [C, 12] float32 per chunk: lo xyz, hi xyz, centre xyz, radius, sqrt(EPS2D · level) · stretch, 0
    groups,  # [G, 12] float32 the same for each `GROUP` consecutive chunks, conservatively, then 1 where the
    # group has no box (`group_boxes`)
    stretch2,  # float32
    cov3d,  # [N, 3, 3] float32 by Morton position
    opacity,  # [N] float32 sigmoid of the logit opacity, by Morton position
    o,  # [3] float32 ray origin
    d,  # [3] float32 unit direction
    w2c,  # [4, 4] float32 world → camera
    view,  # [13] float32: fx, fy, cx, cy, W, H, clamp x+, x−, y+, y−, pixel x, y, focal
):  # → Morton positions [L] int64, weights [L] float32, front to back
    f32 = np.float32
    num_chunks, chunk = packed.shape[0], packed.shape[1]
    fx, fy, cx, cy, width, height = view[0], view[1], view[2], view[3], view[4], view[5]
    lim_xp, lim_xn, lim_yp, lim_yn = view[6], view[7], view[8], view[9]
    px, py, focal = view[10], view[11], view[12]
    # The chunk boxes the ray crosses (`NumpyRay._hit_chunks`), tested group by group: a group's box holds its
    # chunks' boxes with their margins, so a chunk is tested only when its group's box is hit.
    inv = np.empty(3, np.float32)
    for k in range(3):
        inv[k] = f32(1.0) / (f32(1e-12) if abs(d[k]) < 1e-12 else d[k])

    def box_hit(box):  # the slab test of one box widened by its low-pass reach at its far side (`_hit_chunks`)
        e0 = box[6] - o[0]
        e1 = box[7] - o[1]
        e2 = box[8] - o[2]
        far = f32(math.sqrt(e0 * e0 + e1 * e1 + e2 * e2)) + box[9]
        margin = box[10] * far / focal
        t_near = f32(-np.inf)
        t_far = f32(np.inf)
        for k in range(3):
            t0 = (box[k] - margin - o[k]) * inv[k]
            t1 = (box[3 + k] + margin - o[k]) * inv[k]
            t_near = max(t_near, min(t0, t1))
            t_far = min(t_far, max(t0, t1))
        return t_far >= t_near and t_far > f32(NEAR_PLANE)

    hit_chunks = np.empty(num_chunks, np.int64)
    num_hit = 0
    # `group_boxes(boxes, GROUP)`'s grouping: GROUP chunks a group (not ⌈C / G⌉, which is smaller when G < 16 and
    # C is not a multiple of 16: the chunks past it were then tested under the next group's box and missed).
    group = GROUP
    for g in range(groups.shape[0]):
        if groups[g, 11] == 0 and not box_hit(groups[g]):  # no chunk of the group can be hit
            continue
        for c in range(g * group, min((g + 1) * group, num_chunks)):
            if box_hit(boxes[c]):
                hit_chunks[num_hit] = c
                num_hit += 1
    # Rows inside the crossed chunks whose reach sphere (widened by the low-pass) meets the ray, then each one's
    # projection and alpha at the pixel (`NumpyRay._candidates`, `_blend`). The tests are reordered so that the
    # cheap ones reject first (they are all required, so the order does not change who passes): of ~2k candidates
    # a few dozen reach alpha 1/255 at the pixel, and only those pay for the footprint's extent.
    od = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
    oo = o[0] * o[0] + o[1] * o[1] + o[2] * o[2]
    low_pass = f32(EPS2D)
    blur_scale = low_pass * stretch2 / (focal * focal)  # the reach test's low-pass: blur = scale · t² · level
    cap = num_hit * chunk
    depth = np.empty(cap, np.float32)
    alpha = np.empty(cap, np.float32)
    where = np.empty(cap, np.int64)
    rs = np.empty((3, 3), np.float32)  # R Σ
    cc = np.empty((3, 3), np.float32)  # R Σ Rᵀ
    m = 0
    for h in range(num_hit):
        c = hit_chunks[h]
        for r in range(chunk):
            row = packed[c, r]
            mx3, my3, mz3 = row[0], row[1], row[2]
            t = (mx3 * d[0] + my3 * d[1] + mz3 * d[2]) - od
            dist2 = row[3] - f32(2) * (mx3 * o[0] + my3 * o[1] + mz3 * o[2]) + oo - t * t
            if not dist2 <= row[5] + blur_scale * (t * t) * row[4]:
                continue
            if not (row[6] > 0 and t > f32(NEAR_PLANE)):
                continue
            pos = c * chunk + r
            opac = opacity[pos]
            if not opac >= f32(ALPHA_MIN):
                continue
            z = w2c[2, 0] * mx3 + w2c[2, 1] * my3 + w2c[2, 2] * mz3 + w2c[2, 3]
            if not (z > f32(NEAR_PLANE) and z < f32(FAR_PLANE)):
                continue
            x = w2c[0, 0] * mx3 + w2c[0, 1] * my3 + w2c[0, 2] * mz3 + w2c[0, 3]
            y = w2c[1, 0] * mx3 + w2c[1, 1] * my3 + w2c[1, 2] * mz3 + w2c[1, 3]
            # cov_cam = R Σ Rᵀ, then the 2D covariance J cov_cam Jᵀ (J's rows: (fx/z, 0, −fx·tx/z²), (0, fy/z,
            # −fy·ty/z²)); only its three distinct entries are needed.
            cov = cov3d[pos]
            for i in range(3):
                for j in range(3):
                    rs[i, j] = w2c[i, 0] * cov[0, j] + w2c[i, 1] * cov[1, j] + w2c[i, 2] * cov[2, j]
            for i in range(3):
                for j in range(3):
                    cc[i, j] = rs[i, 0] * w2c[j, 0] + rs[i, 1] * w2c[j, 1] + rs[i, 2] * w2c[j, 2]
            tx = z * min(max(x / z, -lim_xn), lim_xp)
            ty = z * min(max(y / z, -lim_yn), lim_yp)
            inv_z = f32(1.0) / z
            zz = z * z
            j00 = inv_z * fx
            j02 = -fx * tx / zz
            j11 = inv_z * fy
            j12 = -fy * ty / zz
            # J cov_cam: rows u = (j00, 0, j02), v = (0, j11, j12)
            u0 = j00 * cc[0, 0] + j02 * cc[2, 0]
            u1 = j00 * cc[0, 1] + j02 * cc[2, 1]
            u2 = j00 * cc[0, 2] + j02 * cc[2, 2]
            v1 = j11 * cc[1, 1] + j12 * cc[2, 1]
            v2 = j11 * cc[1, 2] + j12 * cc[2, 2]
            a = (u0 * j00 + u2 * j02) + low_pass
            b = u1 * j11 + u2 * j12
            cq = (v1 * j11 + v2 * j12) + low_pass
            det = a * cq - b * b
            if not det > 0:
                continue
            con_a, con_b, con_c = cq / det, -b / det, a / det
            mx = fx * x / z + cx
            my = fy * y / z + cy
            dx = mx - px
            dy = my - py
            sigma = f32(0.5) * (con_a * dx * dx + con_c * dy * dy) + con_b * dx * dy
            if not sigma >= 0:
                continue
            al = min(opac * f32(math.exp(-sigma)), f32(ALPHA_MAX))
            if not al >= f32(ALPHA_MIN):
                continue
            if not (math.isfinite(mx) and math.isfinite(my) and math.isfinite(con_a)):
                continue
            if not (math.isfinite(con_b) and math.isfinite(con_c)):
                continue
            # The footprint's pixel range must be non-empty inside the image (`project`'s bbox).
            level = f32(2.0) * f32(math.log(max(opac * f32(255.0), f32(1.0))))
            ext_x = f32(math.sqrt(level * max(a, f32(0.0))))
            ext_y = f32(math.sqrt(level * max(cq, f32(0.0))))
            x0 = min(max(f32(math.ceil(mx - ext_x - f32(0.5))), f32(0)), width)
            x1 = min(max(f32(math.floor(mx + ext_x - f32(0.5))) + f32(1.0), f32(0)), width)
            y0 = min(max(f32(math.ceil(my - ext_y - f32(0.5))), f32(0)), height)
            y1 = min(max(f32(math.floor(my + ext_y - f32(0.5))) + f32(1.0), f32(0)), height)
            if not (x1 > x0 and y1 > y0):
                continue
            depth[m] = z
            alpha[m] = al
            where[m] = pos
            m += 1
    # Front to back (a stable sort: ties stay in Morton order, as the reference's candidate order), then the blend:
    # transmittance as a cumulative sum of log(1 − alpha) in float64, cut where it would fall to 1e-4.
    order = np.argsort(depth[:m], kind="mergesort")
    out_pos = np.empty(m, np.int64)
    out_w = np.empty(m, np.float32)
    n_out = 0
    log_t = 0.0
    for i in range(m):
        k = order[i]
        a64 = np.float64(alpha[k])
        log1m = math.log1p(-a64)
        log_after = log_t + log1m
        if not math.exp(log_after) > TRANSMITTANCE_MIN:
            break
        w = np.float32(a64 * math.exp(log_after - log1m))
        log_t = log_after
        if w > 0:
            out_pos[n_out] = where[k]
            out_w[n_out] = w
            n_out += 1
    return out_pos[:n_out], out_w[:n_out]

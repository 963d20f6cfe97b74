"""Per-pixel lists of (Gaussian, blend weight): the core of the pure-PyTorch renderer.

Instead of a tile rasteriser, every (Gaussian, pixel) pair inside a Gaussian's alpha ≥ 1/255 footprint is
enumerated at once, pairs are put in depth order per pixel with one stable sort, and transmittance is a segmented
cumulative product (a cumsum of log(1-α) in float64). The result is a sparse matrix W [H·W, N] with
rendered = W @ values for colours, depths and features alike, which is why the renderer is differentiable with
respect to colours and features and why `contributions` is just the top-k of W's rows. Rows are processed in
bands so the pair buffer stays within a memory budget.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .composite import composite, row_bands
from .projection import Projected, gaussian_alpha, project

# About 40 bytes a pair while a band is processed: 4M pairs ≈ 160 MB.
DEFAULT_PAIR_BUDGET = 4_000_000


@dataclasses.dataclass
class Fragments:
    """The non-zero blend weights of one view, sorted by pixel then front to back."""

    pixel: Tensor  # [P] int64 flat pixel index y·W + x
    gaussian: Tensor  # [P] int64 index into the scene
    weight: Tensor  # [P] float32 alpha · transmittance
    width: int
    height: int
    num_gaussians: int

    def matrix(self) -> Tensor:
        """W as a sparse CSR tensor [H·W, N]: rendered values = W @ per-Gaussian values."""
        counts = torch.bincount(self.pixel, minlength=self.width * self.height)
        crow = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=self.pixel.device)
        crow[1:] = torch.cumsum(counts, 0)
        with warnings.catch_warnings():  # "CSR support is in beta": we only use construction and matmul
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                crow,
                self.gaussian,
                self.weight,
                size=(self.width * self.height, self.num_gaussians),
                check_invariants=False,
            )

    def alpha(self) -> Tensor:  # [H, W] accumulated opacity 1 - T
        out = torch.zeros(self.width * self.height, device=self.weight.device)
        out.index_add_(0, self.pixel, self.weight)
        return out.reshape(self.height, self.width)


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:  # counts [M] → (owner [Σ], rank within owner [Σ])
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(owner.numel(), device=counts.device) - starts[owner]
    return owner, rank


def _band_pairs(
    proj: Projected, y_lo: int, y_hi: int, width: int, pixel_mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """(pixel, projected index, alpha) of every pair whose pixel row is in [y_lo, y_hi), depth-major order.

    Enumerates rows first and, per (Gaussian, row), only the span of columns inside the alpha ≥ 1/255 ellipse
    (plus one pixel of slack either side; the exact alpha test decides), which is ~3× fewer pairs than the bbox.
    """
    x0, x1, y0, y1 = proj.bbox.unbind(-1)
    y0c, y1c = y0.clamp(y_lo, y_hi), y1.clamp(y_lo, y_hi)
    rows = (y1c - y0c).clamp(min=0)
    live = torch.nonzero(rows > 0).squeeze(1)
    empty = torch.zeros(0, dtype=torch.int64, device=rows.device)
    if live.numel() == 0:
        return empty, empty, torch.zeros(0, device=rows.device)
    owner, rank = _expand(rows[live])
    g_row = live[owner]  # [R] projected index of each (Gaussian, row)
    py = y0c[g_row] + rank
    # Columns where ½(a·dx² + c·dy²) + b·dx·dy ≤ ln(255·o), dx = mean_x - (px + ½), dy = mean_y - (py + ½).
    a, b, c = proj.conics[g_row].unbind(-1)
    dy = proj.means2d[g_row, 1] - (py.to(torch.float32) + 0.5)
    rhs = torch.log(torch.clamp(proj.opacities[g_row] * 255.0, min=1.0))
    disc = (b * dy) ** 2 - a * (c * dy * dy - 2.0 * rhs)
    root = torch.sqrt(disc.clamp(min=0))
    mx = proj.means2d[g_row, 0]
    # px + ½ ∈ [mx - (root - b·dy)/a, mx + (root + b·dy)/a]
    lo = mx + (b * dy - root) / a
    hi = mx + (b * dy + root) / a
    col0 = torch.maximum(torch.ceil(lo - 0.5).long() - 1, x0[g_row])
    col1 = torch.minimum(torch.floor(hi - 0.5).long() + 2, x1[g_row])
    span = torch.where(disc >= 0, (col1 - col0).clamp(min=0), torch.zeros_like(col0))
    keep_rows = span > 0
    g_row, py, col0, span = g_row[keep_rows], py[keep_rows], col0[keep_rows], span[keep_rows]
    owner, rank = _expand(span)
    g = g_row[owner]
    px = col0[owner] + rank
    py = py[owner]
    pixel = py * width + px
    if pixel_mask is not None:
        keep = pixel_mask[pixel]
        g, px, py, pixel = g[keep], px[keep], py[keep], pixel[keep]
    alpha = gaussian_alpha(
        proj.means2d[g], proj.conics[g], proj.opacities[g], px.to(torch.float32) + 0.5, py.to(torch.float32) + 0.5
    )
    keep = alpha > 0
    return pixel[keep], g[keep], alpha[keep]


def rasterize_fragments(
    scene: GaussianScene,
    camera: Camera,
    *,
    pixel_mask: Tensor | None = None,  # [H, W] bool: only these pixels (for `contributions`)
    pair_budget: int = DEFAULT_PAIR_BUDGET,
    projected: Projected | None = None,
) -> Fragments:
    """All non-zero blend weights of the view (or of the masked pixels), sorted by pixel, front to back."""
    W, H = camera.width, camera.height
    proj = project(scene, camera) if projected is None else projected
    order = torch.argsort(proj.depths, stable=True)
    proj = Projected(
        ids=proj.ids[order],
        means2d=proj.means2d[order],
        conics=proj.conics[order],
        depths=proj.depths[order],
        opacities=proj.opacities[order],
        bbox=proj.bbox[order],
    )
    flat_mask = pixel_mask.reshape(-1) if pixel_mask is not None else None

    # Bands of rows so that each band's pair count (bbox area) stays within the budget.
    x0, x1, y0, y1 = proj.bbox.unbind(-1)
    row_pairs = torch.zeros(H + 1, dtype=torch.int64, device=x0.device)
    row_pairs.index_add_(0, y0, x1 - x0)
    row_pairs.index_add_(0, y1, -(x1 - x0))
    row_pairs = torch.cumsum(row_pairs, 0)[:H]  # pairs per image row
    bands = row_bands(row_pairs, pair_budget)

    pixels, gaussians, weights = [], [], []
    for y_lo, y_hi in bands:
        pixel, g, alpha = _band_pairs(proj, y_lo, y_hi, W, flat_mask)
        if pixel.numel() == 0:
            continue
        by_pixel = torch.argsort(pixel, stable=True)  # stable: depth order survives within each pixel
        pixel, g, alpha = pixel[by_pixel], g[by_pixel], alpha[by_pixel]
        weight, keep = composite(pixel, alpha)
        pixels.append(pixel[keep])
        gaussians.append(proj.ids[g[keep]])
        weights.append(weight[keep])
    device = scene.device
    return Fragments(
        pixel=torch.cat(pixels) if pixels else torch.zeros(0, dtype=torch.int64, device=device),
        gaussian=torch.cat(gaussians) if gaussians else torch.zeros(0, dtype=torch.int64, device=device),
        weight=torch.cat(weights) if weights else torch.zeros(0, device=device),
        width=W,
        height=H,
        num_gaussians=len(scene),
    )

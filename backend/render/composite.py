"""The one transmittance rule and what is built on it: compositing pairs sorted by pixel, splitting rows into
bands that fit a memory budget, and keeping each pixel's k largest weights.

`fragments.rasterize_fragments` (every weight of a view), `contributions` (the top k of some pixels) and the
training cache (`features/contrib_cache.py`, the top k of sampled pixels) all composite through `composite`, so the
parity tests against the reference renderer guard all three.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import TRANSMITTANCE_MIN


def segment_starts(pixel: Tensor) -> Tensor:  # pixel [P] sorted → [P] bool, True where a new pixel begins
    is_start = torch.ones_like(pixel, dtype=torch.bool)
    is_start[1:] = pixel[1:] != pixel[:-1]
    return is_start


def composite(pixel: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel front-to-back weights for pairs sorted by pixel (and by depth within a pixel).

    pixel [P] int, alpha [P] float → (weight [P] float32, keep [P] bool): keep is False once a ray's transmittance
    would drop to 1e-4 (gsplat's rule). Transmittance is a segmented cumulative sum of log(1 - alpha) in float64.
    """
    log1m = torch.log1p(-alpha.double())
    csum = torch.cumsum(log1m, 0)
    is_start = segment_starts(pixel)
    start_idx = torch.nonzero(is_start).squeeze(1)
    seg = torch.cumsum(is_start.long(), 0) - 1
    base = (csum - log1m)[start_idx]  # exclusive cumsum at each segment start
    log_t_after = csum - base[seg]
    log_t_before = log_t_after - log1m
    keep = torch.exp(log_t_after) > TRANSMITTANCE_MIN
    weight = (alpha.double() * torch.exp(log_t_before)).float()
    return weight, keep


def composite_weights(alpha: Tensor) -> Tensor:  # alpha [L] front to back along one ray → weights [L]
    """Blend weights alpha·T of one ray, zero from where transmittance would fall to 1e-4 (the same rule)."""
    weight, keep = composite(torch.zeros(alpha.shape[0], dtype=torch.int64, device=alpha.device), alpha)
    return torch.where(keep, weight, torch.zeros_like(weight))


def row_bands(pairs_per_row: Tensor, budget: int) -> list[tuple[int, int]]:  # pairs_per_row [R] → [(lo, hi)]
    """Consecutive rows grouped so that each group's pair count stays within `budget` (a single row may exceed it:
    compositing needs every contributor of a pixel at once, so work is split over pixels, never over Gaussians)."""
    bands, start, acc = [], 0, 0
    for row, count in enumerate(pairs_per_row.tolist()):
        if acc > 0 and acc + count > budget:
            bands.append((start, row))
            start, acc = row, 0
        acc += count
    bands.append((start, len(pairs_per_row)))
    return bands


def top_k(
    pix: Tensor,  # [P] int pixel slot in [0, num_pixels), sorted
    gid: Tensor,  # [P] int Gaussian id
    w: Tensor,  # [P] float weight
    num_pixels: int,
    k: int,
    ids_out: Tensor | None = None,  # [num_pixels, k] int64, filled in place when given
    w_out: Tensor | None = None,  # [num_pixels, k] float32
) -> tuple[Tensor, Tensor]:  # ids [num_pixels, k] (-1 = none), weights [num_pixels, k] (0 = none), largest first
    """Per pixel, the k largest weights, through a dense [pixels, longest list] table."""
    device = pix.device
    if ids_out is None:
        ids_out = torch.full((num_pixels, k), -1, dtype=torch.int64, device=device)
    if w_out is None:
        w_out = torch.zeros(num_pixels, k, device=device)
    if pix.numel() == 0 or k == 0:
        return ids_out, w_out
    is_start = segment_starts(pix)
    starts = torch.nonzero(is_start).squeeze(1)
    seg = torch.cumsum(is_start.long(), 0) - 1
    rank = torch.arange(pix.numel(), device=device) - starts[seg]
    longest = int(rank.max()) + 1
    table_w = torch.full((num_pixels, max(longest, k)), -1.0, device=device)
    table_g = torch.full((num_pixels, max(longest, k)), -1, dtype=torch.int64, device=device)
    table_w[pix, rank] = w
    table_g[pix, rank] = gid
    top_w, top_i = torch.topk(table_w, k, dim=1, sorted=True)
    ids_out[:] = torch.gather(table_g, 1, top_i)
    w_out[:] = top_w.clamp(min=0.0)
    ids_out[top_w <= 0] = -1
    return ids_out, w_out

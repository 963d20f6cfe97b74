"""Precomputed per-view contributions: training with frozen geometry as a gather and a weighted sum.

Feature training never moves, reshapes or fades a Gaussian, so the blend weights of a pixel never change and its
rendered feature is Σ wᵢ fᵢ over a fixed list of (id, weight) pairs (docs/architecture.md, "Frozen geometry makes
feature rendering linear"). This module samples the training pixels of every view once (only pixels some mask covers,
stratified so small masks are represented), finds their top-K contributors once, and keeps them compactly
(ids int32, weights float16: 6·K bytes a pixel). Every training step is then `ContributionCache.render`: no
rasteriser in the loop.

`sparse_contributions` is the fast path for a few thousand scattered pixels of a view: Gaussians are binned to
tiles and only (Gaussian, sampled pixel) pairs in a shared tile are evaluated, instead of every pixel of every
Gaussian's footprint as the reference rasteriser does. It returns what `backend.render.contributions` returns
(the test compares them), several times faster when the pixels are a small share of the image.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.errors import InputError
from ..core.scene import GaussianScene
from ..masks.maskset import ViewMasks
from ..render.composite import composite, row_bands, top_k
from ..render.projection import gaussian_alpha, project

log = logging.getLogger(__name__)

DEFAULT_PIXELS_PER_VIEW = 6000
DEFAULT_K = 16
_TILE = 4
_PAIR_BUDGET = 3_000_000  # (Gaussian, pixel) pairs evaluated at once: ~80 bytes each while in flight


# ---- the fast sparse-pixel contributions ---------------------------------------------------------------------------
def sparse_contributions(
    scene: GaussianScene,
    camera: Camera,
    pixels: Tensor,  # [P, 2] int (x, y), distinct
    k: int,
    *,
    tile: int = _TILE,
    pair_budget: int = _PAIR_BUDGET,
) -> tuple[Tensor, Tensor]:  # ids [P, k] int64 (-1 = none), weights [P, k] float32, largest weight first
    """The k largest blend weights of each pixel, like `backend.render.contributions`, for scattered pixels.

    Pairs are enumerated per (Gaussian, tile) and expanded to the sampled pixels of that tile only, in the
    Gaussians' depth order, so a stable sort by pixel leaves each pixel's list front to back for compositing.
    """
    device = scene.device
    pixels = torch.as_tensor(pixels, dtype=torch.int64, device=device).reshape(-1, 2)
    num_pixels = pixels.shape[0]
    W, H = camera.width, camera.height
    ids_out = torch.full((num_pixels, k), -1, dtype=torch.int64, device=device)
    w_out = torch.zeros(num_pixels, k, device=device)
    if num_pixels == 0 or k == 0:
        return ids_out, w_out
    if (pixels[:, 0] < 0).any() or (pixels[:, 0] >= W).any() or (pixels[:, 1] < 0).any() or (pixels[:, 1] >= H).any():
        raise ValueError(f"pixels must lie in the {W}×{H} image of view {camera.name!r}")

    proj = project(scene, camera)
    order = torch.argsort(proj.depths, stable=True)  # front to back
    gid = proj.ids[order]
    bbox = proj.bbox[order]
    packed = torch.cat([proj.means2d, proj.conics, proj.opacities[:, None]], dim=1)[order].contiguous()  # [M, 6]

    tiles_x = math.ceil(W / tile)
    pix_tile = (pixels[:, 1] // tile) * tiles_x + pixels[:, 0] // tile  # [P]
    by_tile = torch.argsort(pix_tile, stable=True)  # sampled pixels grouped by tile
    tile_count = torch.bincount(pix_tile, minlength=tiles_x * math.ceil(H / tile))
    tile_start = torch.cumsum(tile_count, 0) - tile_count

    x0, x1, y0, y1 = bbox.unbind(-1)  # half-open pixel ranges
    tx0, tx1 = x0 // tile, (x1 - 1) // tile  # inclusive tile ranges
    ty0, ty1 = y0 // tile, (y1 - 1) // tile
    bins = _Bins(tiles_x, tx0, ty0, ty1, tx1 - tx0 + 1, tile_count, tile_start, by_tile, pixels, packed)

    # Compositing needs every contributor of a pixel at once, so the work is split over pixels (rows of tiles,
    # sized to the pair budget), never over Gaussians.
    est = _pairs_per_tile_row(ty0, ty1, bins.span_x, tile_count, tiles_x)
    pix_parts, g_parts, w_parts = [], [], []
    for row_lo, row_hi in row_bands(est, pair_budget):
        pix, g, w = _band(bins, row_lo, row_hi)
        pix_parts.append(pix)
        g_parts.append(g)
        w_parts.append(w)
    pix = torch.cat(pix_parts)
    g = torch.cat(g_parts)
    w = torch.cat(w_parts)
    if pix.numel() == 0:
        return ids_out, w_out
    return top_k(pix, gid[g], w, num_pixels, k, ids_out, w_out)


def _pairs_per_tile_row(ty0: Tensor, ty1: Tensor, span_x: Tensor, tile_count: Tensor, tiles_x: int) -> Tensor:
    """An upper bound on the pairs each row of tiles will produce (tiles × mean sampled pixels a tile)."""
    rows = tile_count.numel() // tiles_x
    per_row = torch.zeros(rows + 1, dtype=torch.int64, device=ty0.device)
    per_row.index_add_(0, ty0.clamp(0, rows), span_x)
    per_row.index_add_(0, (ty1 + 1).clamp(0, rows), -span_x)
    gaussians_per_row = torch.cumsum(per_row, 0)[:rows]
    pixels_per_row = tile_count.reshape(rows, tiles_x).sum(1)
    return gaussians_per_row * (pixels_per_row // tiles_x + 1) * 2


def _take(t: Tensor, idx: Tensor) -> Tensor:
    """t[idx] along dim 0 with index_select: several times faster on a CPU than advanced indexing."""
    return t.index_select(0, idx)


def _where(mask: Tensor) -> Tensor:
    return torch.nonzero(mask).squeeze(1)


@dataclasses.dataclass
class _Bins:
    """The projected Gaussians' tile ranges and the sampled pixels grouped by tile."""

    tiles_x: int
    tx0: Tensor  # [M] first tile column of each Gaussian's box
    ty0: Tensor  # [M] first tile row
    ty1: Tensor  # [M] last tile row (inclusive)
    span_x: Tensor  # [M] tile columns covered
    tile_count: Tensor  # [T] sampled pixels in each tile
    tile_start: Tensor  # [T] offset of each tile's pixels in by_tile
    by_tile: Tensor  # [P] sampled pixel indices, grouped by tile
    pixels: Tensor  # [P, 2] int (x, y)
    packed: Tensor  # [M, 6] mean x, mean y, conic a, b, c, opacity (depth order)


def _band(bins: _Bins, row_lo: int, row_hi: int) -> tuple[Tensor, Tensor, Tensor]:
    """(sampled pixel index, projected index, blend weight) of every contribution to pixels in tile rows
    [row_lo, row_hi), sorted by pixel, front to back within a pixel."""
    b = bins
    tiles_x, tx0, ty0, ty1, span_x = b.tiles_x, b.tx0, b.ty0, b.ty1, b.span_x
    tile_count, tile_start, by_tile, pixels, packed = b.tile_count, b.tile_start, b.by_tile, b.pixels, b.packed
    device = pixels.device
    r0, r1 = ty0.clamp(min=row_lo), ty1.clamp(max=row_hi - 1)
    n_tiles = span_x * (r1 - r0 + 1).clamp(min=0)  # [M] tiles of each Gaussian inside the band
    live = _where(n_tiles > 0)
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    if live.numel() == 0:
        return empty, empty, torch.zeros(0, device=device)
    n_live = _take(n_tiles, live)
    g = torch.repeat_interleave(live, n_live)  # (Gaussian, tile) pairs, Gaussian-major: depth order kept
    local = torch.arange(g.numel(), device=device) - torch.repeat_interleave(torch.cumsum(n_live, 0) - n_live, n_live)
    sx = _take(span_x, g)
    tile = (_take(r0, g) + local // sx) * tiles_x + _take(tx0, g) + local % sx
    count = _take(tile_count, tile)
    has = _where(count > 0)
    g, tile, count = _take(g, has), _take(tile, has), _take(count, has)
    # Expand each (Gaussian, tile) to the sampled pixels of the tile.
    p = torch.repeat_interleave(g, count)
    offset = torch.arange(p.numel(), device=device) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    q = _take(by_tile, torch.repeat_interleave(_take(tile_start, tile), count) + offset)  # sampled pixel index
    # No bounding-box test: outside a Gaussian's box its alpha is below 1/255, which gaussian_alpha zeroes anyway.
    centers = _take(pixels, q).to(torch.float32) + 0.5  # [P, 2]
    gp = _take(packed, p)  # [P, 6] mean x, mean y, conic a, b, c, opacity
    alpha = gaussian_alpha(gp[:, 0:2], gp[:, 2:5], gp[:, 5], centers[:, 0], centers[:, 1])
    keep = _where(alpha > 0)
    p, q, alpha = _take(p, keep), _take(q, keep), _take(alpha, keep)
    by_pixel = torch.argsort(q, stable=True)  # stable: depth order survives within each pixel
    p, q, alpha = _take(p, by_pixel), _take(q, by_pixel), _take(alpha, by_pixel)
    weight, keep = composite(q, alpha)
    keep = _where(keep)
    return _take(q, keep), _take(p, keep), _take(weight, keep)


# ---- pixel sampling ------------------------------------------------------------------------------------------------
def sample_pixels(
    view: ViewMasks,
    n: int,
    rng: np.random.Generator,
    *,
    stratified_share: float = 0.5,
    uncovered_share: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:  # covered [P, 2], uncovered candidates [U, 2], int64 (x, y), distinct
    """Pixels to train on: covered ones (by at least one mask) and candidates no mask covers.

    Of the covered budget, `stratified_share` is spread equally over the masks (a mug's handle gets as many pixels
    as the table), the rest is uniform over the covered area. The uncovered candidates (`uncovered_share` of `n`)
    are kept by the caller only where the Gaussians make the pixel opaque (alpha > 0.5): a floor or a wall no mask
    covers must still learn that it is none of the masked things, or its Gaussians inherit their neighbours'
    features and leak into selections.
    """
    masks = view.masks  # [M, H, W]
    covered = masks.any(0) if len(masks) else np.zeros((view.height, view.width), bool)
    flat = covered.reshape(-1)
    flat_cov = np.flatnonzero(flat)
    flat_unc = np.flatnonzero(~flat)
    n_unc = min(flat_unc.size, round(n * uncovered_share))
    n_cov = n - n_unc
    if flat_cov.size <= n_cov:
        chosen = flat_cov
    else:
        picked = np.zeros(covered.size, dtype=bool)
        per_mask = int(n_cov * stratified_share) // max(1, len(masks))
        for m in range(len(masks)):
            inside = np.flatnonzero(masks[m].reshape(-1))
            take = min(per_mask, inside.size)
            if take:
                picked[rng.choice(inside, take, replace=False)] = True
        rest = n_cov - int(picked.sum())
        pool = flat_cov[~picked[flat_cov]]
        if rest > 0 and pool.size:
            picked[rng.choice(pool, min(rest, pool.size), replace=False)] = True
        chosen = np.flatnonzero(picked)
    unc = np.sort(rng.choice(flat_unc, n_unc, replace=False)) if n_unc else np.zeros(0, np.int64)
    w = view.width

    def xy(flat_idx: np.ndarray) -> np.ndarray:
        return np.stack([flat_idx % w, flat_idx // w], axis=1).astype(np.int64)

    return xy(chosen), xy(unc)


# ---- the cache -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ContributionCache:
    """Every view's sampled pixels, their top-K contributors and their mask labels, flattened over views.

    Rows are pixels; `view_start[v]:view_start[v+1]` are the rows of view v. Mask ids are global (unique over
    views): `mask_view[m]` is the view of mask m and `mask_scale[m]` its 3D scale (SAGA).
    """

    views: list[str]
    view_start: Tensor  # [V + 1] int64 row offsets
    ids: Tensor  # [R, K] int32 Gaussian ids; padding is id 0 with weight 0 (a gather needs a valid index)
    weights: Tensor  # [R, K] float16 blend weights, largest first
    pixels: Tensor  # [R, 2] int16 (x, y) in the view's mask resolution
    coarse: Tensor  # [R] int32 global id of the largest mask covering the pixel (Click-Gaussian's coarse level);
    # -1: no mask covers the (opaque) pixel, so it is unlike every masked pixel and like none
    fine: Tensor  # [R] int32 global id of the smallest covering mask (fine level), -1 as above
    cover: list[Tensor]  # per view [P_v, M_v] bool: which of the view's masks cover each pixel (SAGA)
    mask_start: Tensor  # [V + 1] int64 offsets of each view's masks in the global mask ids
    mask_scale: Tensor  # [num_masks] float32 3D scale of each mask (NaN = unknown)
    mask_area: Tensor  # [num_masks] float32 mask area in pixels (for weighting mask averages)
    num_gaussians: int
    stands_for: Tensor | None = None  # [R] float32 pixels of its view each row stands for: masked rows share the
    # view's masked area, uncovered rows its uncovered area (they are sampled at different densities)
    colors: Tensor | None = None  # [N, 3] float32 RGB base colour of each Gaussian (`propagate.colour_affinity`)

    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def num_rows(self) -> int:
        return self.ids.shape[0]

    @property
    def num_masks(self) -> int:
        return self.mask_scale.shape[0]

    @property
    def k(self) -> int:
        return self.ids.shape[1]

    def rows(self, view: int) -> slice:
        return slice(int(self.view_start[view]), int(self.view_start[view + 1]))

    @property
    def device(self) -> torch.device:
        return self.ids.device

    def to(self, device: torch.device | str) -> ContributionCache:
        """The cache with its per-pixel and per-mask tensors on `device` (the same object's tensors where they are
        there already). The offsets `view_start` and `mask_start` stay on the CPU: they are read as Python ints
        (`rows`), which on a GPU would wait for the device each time."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor) and f.name not in ("view_start", "mask_start")
        }
        return dataclasses.replace(self, cover=[c.to(device) for c in self.cover], **moved)

    def memory_bytes(self) -> int:
        tensors = [self.ids, self.weights, self.pixels, self.coarse, self.fine, *self.cover]
        return sum(t.numel() * t.element_size() for t in tensors)

    def render(
        self,
        features: Tensor,  # [N, D]
        rows: Tensor | slice,  # which pixels
        *,
        normalize_weights: bool = True,
        unit_features: bool = False,
        return_gathered: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:  # [B, D] (and the gathered features [B, K, D])
        """Σ w·f over each pixel's cached contributors.

        With `normalize_weights` the sum is divided by Σ w, so a pixel whose top-K holds 95% of its opacity is not
        5% shorter than its neighbour (directions are what is trained). With `unit_features` each Gaussian's
        feature is normalised before blending (SAGA renders unit point features). The gather is an index_select,
        whose backward (index_add) is several times faster on a CPU than advanced indexing's (index_put).
        """
        ids = self.ids[rows].long()  # [B, K]
        w = self.weights[rows].float()  # [B, K]
        if normalize_weights:
            w = w / w.sum(1, keepdim=True).clamp(min=1e-6)
        gathered = features.index_select(0, ids.reshape(-1)).reshape(ids.shape[0], ids.shape[1], -1)  # [B, K, D]
        if unit_features:
            gathered = torch.nn.functional.normalize(gathered, dim=-1)
        out = torch.bmm(w.unsqueeze(1), gathered).squeeze(1)
        return (out, gathered) if return_gathered else out

    def render_all(self, features: Tensor, *, chunk: int = 65536, unit_features: bool = False) -> Tensor:  # [R, D]
        """Every cached pixel's rendered feature, without gradient (for mask averages)."""
        with torch.no_grad():
            parts = [
                self.render(features, slice(s, min(s + chunk, self.num_rows)), unit_features=unit_features)
                for s in range(0, self.num_rows, chunk)
            ]
            return torch.cat(parts)

    def visibility(self) -> Tensor:  # [N] float32: total cached weight of each Gaussian over all views
        out = torch.zeros(self.num_gaussians, device=self.ids.device)
        out.index_add_(0, self.ids.reshape(-1).long(), self.weights.reshape(-1).float())
        return out


def build_cache(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    masks: Iterable[ViewMasks],
    *,
    pixels_per_view: int = DEFAULT_PIXELS_PER_VIEW,
    k: int = DEFAULT_K,
    seed: int = 0,
    progress: bool = False,
) -> ContributionCache:
    """Sample pixels and precompute contributions for each (camera, masks) pair, one view at a time.

    Masks may be at another resolution than the camera (SAM run on downscaled images): the camera is rescaled to
    the masks, so pixel coordinates are always the masks' own.
    """
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    cams = {c.name: c for c in cameras}
    views: list[str] = []
    ids_l, w_l, pix_l, coarse_l, fine_l, cover_l, scale_l, area_l, stand_l = [], [], [], [], [], [], [], [], []
    view_start, mask_start = [0], [0]
    masks = list(masks) if not hasattr(masks, "__len__") else masks
    bar = tqdm(masks, desc="contributions", unit="view", disable=not progress, leave=False)
    for view in bar:
        camera = cams[view.name]
        if (camera.width, camera.height) != (view.width, view.height):
            camera = camera.scaled(view.width, view.height)
        covered, uncovered = sample_pixels(view, pixels_per_view, rng)  # [P, 2], [U, 2]
        pixels = np.concatenate([covered, uncovered])
        num_covered = int(view.masks.any(0).sum()) if len(view.masks) else 0
        stand = np.concatenate(
            [
                np.full(len(covered), num_covered / max(1, len(covered)), np.float32),
                np.full(len(uncovered), (view.width * view.height - num_covered) / max(1, len(uncovered)), np.float32),
            ]
        )
        ids, w = sparse_contributions(scene, camera, torch.from_numpy(pixels).to(scene.device), k)
        ids, w = ids.cpu(), w.cpu()
        # A covered pixel no Gaussian reaches teaches nothing; an uncovered one counts only where it is opaque.
        keep = (w[:, 0] > 0).numpy()
        keep[len(covered) :] &= (w[len(covered) :].sum(1) > 0.5).numpy()
        pixels, ids, w = pixels[keep], ids[torch.from_numpy(keep)], w[torch.from_numpy(keep)]
        stand_l.append(torch.from_numpy(stand[keep]))
        coarse_map, fine_map = view.levels()
        px, py = pixels[:, 0], pixels[:, 1]
        offset = mask_start[-1]
        c_lab, f_lab = coarse_map[py, px].astype(np.int32), fine_map[py, px].astype(np.int32)
        ids_l.append(torch.where(ids >= 0, ids, 0).to(torch.int32))
        w_l.append(w.to(torch.float16))
        pix_l.append(torch.from_numpy(pixels.astype(np.int16)))
        coarse_l.append(torch.from_numpy(np.where(c_lab >= 0, c_lab + offset, -1).astype(np.int32)))
        fine_l.append(torch.from_numpy(np.where(f_lab >= 0, f_lab + offset, -1).astype(np.int32)))
        cover_l.append(torch.from_numpy(view.masks[:, py, px].T.copy()))  # [P, M]
        scale_l.append(torch.from_numpy(view.scales.astype(np.float32)))
        areas = view.masks.reshape(len(view.masks), view.height * view.width).sum(1)  # a view may hold no masks
        area_l.append(torch.from_numpy(areas.astype(np.float32)))
        views.append(view.name)
        view_start.append(view_start[-1] + len(pixels))
        mask_start.append(offset + len(view.masks))
    if not views:
        raise InputError("no views to train on: every view's masks are missing or empty; run `splatseg prepare` again")
    if mask_start[-1] == 0:
        raise InputError(
            "the masks hold no segments (every mask is empty), so there is nothing to learn from; check the mask "
            "source and run `splatseg prepare` again"
        )
    cache = ContributionCache(
        views=views,
        view_start=torch.tensor(view_start, dtype=torch.int64),
        ids=torch.cat(ids_l),
        weights=torch.cat(w_l),
        pixels=torch.cat(pix_l),
        coarse=torch.cat(coarse_l),
        fine=torch.cat(fine_l),
        cover=cover_l,
        mask_start=torch.tensor(mask_start, dtype=torch.int64),
        mask_scale=torch.cat(scale_l),
        mask_area=torch.cat(area_l),
        num_gaussians=len(scene),
        stands_for=torch.cat(stand_l),
        colors=scene.dc_colors.detach().float().cpu(),
    )
    log.info(
        "contribution cache: %d views × ~%d pixels × K=%d → %.1f MB (ids int32 + weights float16 + labels)",
        cache.num_views,
        cache.num_rows // max(1, cache.num_views),
        k,
        cache.memory_bytes() / 2**20,
    )
    return cache


def cache_budget_bytes(num_views: int, pixels_per_view: int, k: int) -> int:
    """What the cache will hold, before building it: ids and weights (6·K bytes a pixel) plus labels."""
    return num_views * pixels_per_view * (6 * k + 4 + 8 + 8)

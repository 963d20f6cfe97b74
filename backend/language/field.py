"""A per-Gaussian language field, granularity-aware (GAGS), distilled through the frozen geometry's contributions.

Cluster embeddings (`embeddings.py`) can only find what is a cluster. The field gives every Gaussian its own CLIP
feature at two granularities, so "the handle of the mug" is found even when the handle is no cluster:

1. For every training view, every mask of its multi-granularity stack (SAM, a folder, synthetic labels) is cut out
   of the view's render (its square box with a margin, black outside the mask, as LangSplat and GAGS crop) and
   CLIP-encoded: one embedding per mask.
2. Each sampled pixel has candidate granularities: the masks covering it, by area. The coarse level takes the
   largest. The fine level keeps, among the smaller ones (smallest first, up to `max_ranks`), the granularity whose
   embedding agrees best across views (GAGS's granularity factor): per Gaussian, the contribution-weighted mean of
   each rank's embeddings over every view is the cross-view consensus; a pixel's candidate is scored by its cosine
   with the consensus rendered at the pixel, and the best one is the pixel's target.
3. Embeddings are compressed to `latent_dim` by PCA over all masks (a linear autoencoder, LangSplat's idea with the
   closed-form encoder/decoder), and per-Gaussian latent features are fitted so that Σ ŵ·f over each pixel's cached
   top-K contributors matches its target: with frozen geometry this is a sparse linear least-squares problem (the
   affinity training's), solved by conjugate gradients on the normal equations from the contributors' weighted
   mean. The decoder back to CLIP space is `mean + f @ basisᵀ`.
4. Each level's features are vector-quantised (k-means codebook, `quantize`): a query scores the codebook and each
   Gaussian reads its entry's score, which is what keeps a query over 1M Gaussians to milliseconds.

Gaussians that mostly show pixels no mask covers (floor, walls in a masks-on-objects source) or that no sampled
pixel sees are marked invalid; a query never selects them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.core.camera import Camera
from backend.core.scene import GaussianScene
from backend.features.contrib_cache import ContributionCache, build_cache
from backend.masks.maskset import ViewMasks
from backend.render import Backend, render, resolve_backend

FIELD_FILE = "language/field.safetensors"
FIELD_LEVELS: tuple[str, ...] = ("coarse", "fine")
DEFAULT_LATENT_DIM = 32
DEFAULT_PIXELS_PER_VIEW = 4000
DEFAULT_K = 8
DEFAULT_MAX_RANKS = 3
DEFAULT_MARGIN = 0.1
DEFAULT_CG_ITERATIONS = 10
DEFAULT_CODEBOOK = 2048
"""Codebook entries per level. A query scores the codebook, then each Gaussian reads its entry's score: 1M
Gaussians cost one int gather instead of a [1M, d] product (`field_query`)."""
_CHUNK = 131_072  # pixel rows per gather/scatter pass
_RIDGE = 1e-3  # relative to the mean diagonal of AᵀA: keeps unseen directions at the weighted-mean start

ProgressFn = Callable[[float | None, str], None]


@dataclasses.dataclass
class LanguageField:
    """Per-Gaussian latent features per level and the linear decoder back to CLIP space."""

    features: dict[str, Tensor]  # level → [N, d] float32
    valid: Tensor  # [N] bool: the Gaussian was fitted from masked pixels
    basis: Tensor  # [D, d] float32, orthonormal columns
    mean: Tensor  # [D] float32
    identity: dict[str, str]
    """The CLIP that made it: clip_model, clip_weights, clip_source."""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    codebooks: dict[str, Tensor] = dataclasses.field(default_factory=dict)  # level → [C, d] float32
    codes: dict[str, Tensor] = dataclasses.field(default_factory=dict)  # level → [N] int64 row of the codebook

    @property
    def num_gaussians(self) -> int:
        return int(self.valid.shape[0])

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.features)

    def decode(self, level: str, index: Tensor | slice | None = None) -> Tensor:  # → [M, D] CLIP-space features
        """The reference decoder: latent features back to CLIP space (not unit length)."""
        f = self.features[level] if index is None else self.features[level][index]
        return self.mean + f.float() @ self.basis.T


# ---- crops of masks ------------------------------------------------------------------------------------------------


def mask_crops(
    image: Tensor,  # [H, W, 3] float in [0, 1]
    masks: np.ndarray,  # [M, H, W] bool
    size: int,
    *,
    margin: float = DEFAULT_MARGIN,
) -> Tensor:  # [M, size, size, 3] float32: each mask's square box, black outside the mask
    """LangSplat/GAGS crops: the mask's bounding box made square and grown by `margin`, pixels outside the mask
    zeroed, resized to `size`. Parts of the box past the image edge are black."""
    h, w = image.shape[:2]
    out = torch.zeros(len(masks), size, size, 3)
    img = image.detach().float().cpu()
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            continue
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        side = max(y1 - y0, x1 - x0, 2)
        side = round(side * (1 + 2 * margin))
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        by, bx = cy - side // 2, cx - side // 2
        canvas = torch.zeros(side, side, 3)
        sy0, sy1, sx0, sx1 = max(by, 0), min(by + side, h), max(bx, 0), min(bx + side, w)
        region = img[sy0:sy1, sx0:sx1] * torch.from_numpy(m[sy0:sy1, sx0:sx1, None]).float()
        canvas[sy0 - by : sy1 - by, sx0 - bx : sx1 - bx] = region
        resized = F.interpolate(canvas.permute(2, 0, 1)[None], size=(size, size), mode="bilinear", antialias=True)
        out[i] = resized[0].permute(1, 2, 0).clamp(0, 1)
    return out


def encode_masks(image: Tensor, masks: np.ndarray, encoder, *, margin: float = DEFAULT_MARGIN) -> Tensor:  # [M, D]
    """One CLIP embedding per mask of a view (unit rows); a view without masks gives [0, D]."""
    if len(masks) == 0:
        return torch.zeros(0, encoder.embed_dim)
    size = encoder.image_size
    parts = []
    for start in range(0, len(masks), encoder.batch_size):
        crops = mask_crops(image, masks[start : start + encoder.batch_size], size, margin=margin)
        parts.append(encoder.encode_images(crops).float())
    return torch.cat(parts)


# ---- building --------------------------------------------------------------------------------------------------


def build_language_field(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    views: Iterable[ViewMasks],
    encoder,
    *,
    latent_dim: int = DEFAULT_LATENT_DIM,
    pixels_per_view: int = DEFAULT_PIXELS_PER_VIEW,
    k: int = DEFAULT_K,
    max_ranks: int = DEFAULT_MAX_RANKS,
    margin: float = DEFAULT_MARGIN,
    cg_iterations: int = DEFAULT_CG_ITERATIONS,
    codebook_size: int = DEFAULT_CODEBOOK,
    backend: Backend = "auto",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> LanguageField:
    """Crop and encode every mask, choose granularities, fit per-Gaussian features (see the module docstring)."""
    t0 = time.perf_counter()
    report = progress or (lambda fraction, status: None)
    cams = {c.name: c for c in cameras}
    if resolve_backend(backend) == "gsplat" and scene.device.type != "cuda":
        scene = scene.to("cuda")
    embeddings: list[Tensor] = []

    def with_embeddings() -> Iterator[ViewMasks]:
        """Stream the views to the contribution cache, encoding each view's masks on the way (one pass)."""
        for i, view in enumerate(views):
            if view.name not in cams or len(view.masks) == 0:
                continue  # a view without masks teaches no language
            camera = cams[view.name]
            if (camera.width, camera.height) != (view.width, view.height):
                camera = camera.scaled(view.width, view.height)
            report(None, f"encoding masks: view {i + 1}")
            with torch.no_grad():
                image = render(scene, camera, backend=backend).rgb  # [H, W, 3]
            embeddings.append(encode_masks(image, view.masks, encoder, margin=margin))
            yield view

    cache = build_cache(scene, cameras, with_embeddings(), pixels_per_view=pixels_per_view, k=k, seed=seed)
    report(0.7, "choosing granularities")
    emb = torch.cat(embeddings) if embeddings else torch.zeros(0, encoder.embed_dim)  # [M_total, D]
    if emb.shape[0] == 0:
        raise ValueError("the views have no masks to learn language from")
    mean, basis = pca(emb, latent_dim)
    latent = (emb - mean) @ basis  # [M_total, d]
    decoder = _Decoder(mean, basis)

    rows = torch.arange(cache.num_rows)
    w = _normalised_weights(cache)  # [R, K]
    coarse_target = cache.coarse.long()  # [R] global mask id, -1 = uncovered
    candidates = fine_candidates(cache, max_ranks)  # [R, max_ranks] global mask ids, -1 = none
    fine_target = choose_granularity(cache, w, latent, candidates, decoder)
    report(0.85, "fitting the field")
    features = {}
    for level, target in (("coarse", coarse_target), ("fine", fine_target)):
        use = rows[target >= 0]
        features[level] = fit_features(cache, w, use, latent[target[use]], cg_iterations=cg_iterations)
    valid = _valid(cache, w, coarse_target >= 0)
    for level in features:
        features[level][~valid] = 0.0
    report(0.95, "quantising the field")
    codebooks, codes = {}, {}
    for level, f in features.items():
        codebooks[level], codes[level] = quantize(f, valid, codebook_size, seed=seed)
    report(1.0, "language field ready")
    params = {
        "latent_dim": int(basis.shape[1]),
        "pixels_per_view": pixels_per_view,
        "k": k,
        "max_ranks": max_ranks,
        "margin": margin,
        "image_size": encoder.image_size,
        "views": list(cache.views),
        "masks": int(emb.shape[0]),
        "explained_variance": round(float(_explained(emb, mean, basis)), 4),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    params["codebook"] = int(next(iter(codebooks.values())).shape[0])
    return LanguageField(features, valid, basis, mean, dict(encoder.identity), params, codebooks, codes)


def quantize(
    features: Tensor,  # [N, d]
    valid: Tensor,  # [N] bool
    size: int,
    *,
    iterations: int = 8,
    sample: int = 100_000,
    seed: int = 0,
    chunk: int = 65_536,
) -> tuple[Tensor, Tensor]:  # codebook [C, d] float32, codes [N] int64 (invalid Gaussians: their nearest too)
    """k-means (Lloyd, on a sample of the valid Gaussians, from a random sample start) and every Gaussian's nearest
    entry. With fewer valid Gaussians than `size` the codebook is the features themselves (exact)."""
    gen = torch.Generator().manual_seed(seed)
    pool = features[valid] if bool(valid.any()) else features[:1]
    if pool.shape[0] <= size:
        book = pool.float().clone()
    else:
        data = pool[torch.randperm(pool.shape[0], generator=gen)[:sample]].float()
        book = data[torch.randperm(data.shape[0], generator=gen)[:size]].clone()
        for _ in range(iterations):
            assign = nearest(data, book, chunk=chunk)
            sums = torch.zeros_like(book).index_add_(0, assign, data)
            counts = torch.bincount(assign, minlength=book.shape[0]).float()
            filled = counts > 0
            book[filled] = sums[filled] / counts[filled, None]
    return book, nearest(features.float(), book, chunk=chunk)


def nearest(x: Tensor, book: Tensor, *, chunk: int = 65_536) -> Tensor:  # x [N, d], book [C, d] → [N] int64
    """The nearest codebook row of every row of x (squared Euclidean), in chunks of rows."""
    book_sq = (book * book).sum(1)
    out = torch.empty(x.shape[0], dtype=torch.int64)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        out[start : start + chunk] = (book_sq[None, :] - 2 * part @ book.T).argmin(1)
    return out


def pca(emb: Tensor, dim: int) -> tuple[Tensor, Tensor]:  # emb [M, D] → mean [D], basis [D, d]
    """The d principal directions of the mask embeddings (the linear autoencoder's encoder = decoderᵀ)."""
    mean = emb.mean(0)
    d = max(1, min(dim, emb.shape[0], emb.shape[1]))
    _, _, vh = torch.linalg.svd((emb - mean).double(), full_matrices=False)
    return mean.float(), vh[:d].T.float().contiguous()


def _explained(emb: Tensor, mean: Tensor, basis: Tensor) -> float:
    centred = emb - mean
    total = float((centred**2).sum())
    return float(((centred @ basis) ** 2).sum()) / max(total, 1e-12)


def _normalised_weights(cache: ContributionCache) -> Tensor:  # [R, K] float32, rows sum to 1 (or 0)
    w = cache.weights.float()
    return w / w.sum(1, keepdim=True).clamp(min=1e-6)


def fine_candidates(cache: ContributionCache, max_ranks: int) -> Tensor:  # → [R, max_ranks] int64, -1 = none
    """Per pixel, the covering masks smaller than the largest, smallest first (a pixel covered by one mask has
    that mask as its only candidate)."""
    out = torch.full((cache.num_rows, max_ranks), -1, dtype=torch.int64)
    for v in range(cache.num_views):
        rows = cache.rows(v)
        cover = cache.cover[v]  # [P, M_v] bool
        if cover.shape[1] == 0:
            continue
        m0 = int(cache.mask_start[v])
        area = cache.mask_area[m0 : m0 + cover.shape[1]]
        order = torch.argsort(area, stable=True)  # smallest first
        sorted_cover = cover[:, order]
        n_cover = sorted_cover.sum(1)  # [P]
        rank = torch.cumsum(sorted_cover.long(), 1) - 1  # rank among covering masks, smallest first
        block = torch.full((cover.shape[0], max_ranks), -1, dtype=torch.int64)
        for r in range(max_ranks):
            hit = sorted_cover & (rank == r) & ((rank < (n_cover - 1)[:, None]) | (n_cover == 1)[:, None])
            has = hit.any(1)
            col = hit.long().argmax(1)
            block[has, r] = order[col[has]] + m0
        out[rows] = block
    return out


@dataclasses.dataclass
class _Decoder:
    """Cosines between decoded latents without decoding: x = μ + z Bᵀ with orthonormal B."""

    mean: Tensor  # [D]
    basis: Tensor  # [D, d]

    def __post_init__(self) -> None:
        self.bmu = self.mean @ self.basis  # [d]
        self.mm = float(self.mean @ self.mean)

    def cos(self, a: Tensor, b: Tensor) -> Tensor:  # a, b [..., d] → [...]
        dot = self.mm + (a * self.bmu).sum(-1) + (b * self.bmu).sum(-1) + (a * b).sum(-1)
        na = (self.mm + 2 * (a * self.bmu).sum(-1) + (a * a).sum(-1)).clamp(min=1e-12).sqrt()
        nb = (self.mm + 2 * (b * self.bmu).sum(-1) + (b * b).sum(-1)).clamp(min=1e-12).sqrt()
        return dot / (na * nb)


def _splat(cache: ContributionCache, w: Tensor, rows: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Aᵀ·values and Aᵀ·1 for the given rows: Σ over pixels of ŵ·value onto each contributor (in row chunks, so
    the [rows·K, d] products stay small)."""
    d = values.shape[1]
    num = torch.zeros(cache.num_gaussians, d)
    den = torch.zeros(cache.num_gaussians)
    for start in range(0, rows.numel(), _CHUNK):
        r = rows[start : start + _CHUNK]
        ids = cache.ids[r].long().reshape(-1)
        wr = w[r]  # [P, K]
        num.index_add_(0, ids, (wr[:, :, None] * values[start : start + _CHUNK, None, :]).reshape(-1, d))
        den.index_add_(0, ids, wr.reshape(-1))
    return num, den


def _render(cache: ContributionCache, w: Tensor, rows: Tensor, features: Tensor) -> Tensor:  # → [P, d]: A·features
    parts = []
    for start in range(0, rows.numel(), _CHUNK):
        r = rows[start : start + _CHUNK]
        ids = cache.ids[r].long()
        gathered = features.index_select(0, ids.reshape(-1)).reshape(ids.shape[0], ids.shape[1], -1)
        parts.append(torch.bmm(w[r].unsqueeze(1), gathered).squeeze(1))
    return torch.cat(parts) if parts else torch.zeros(0, features.shape[1])


def choose_granularity(
    cache: ContributionCache,
    w: Tensor,  # [R, K] normalised weights
    latent: Tensor,  # [M_total, d] latent mask embeddings
    candidates: Tensor,  # [R, C] global mask ids, -1 = none
    decoder: _Decoder,
) -> Tensor:  # [R] int64 the chosen mask per pixel, -1 = uncovered
    """GAGS's granularity factor: per pixel, the candidate rank whose embedding agrees best with the cross-view
    consensus of that rank at the pixel's Gaussians."""
    scores = torch.full(candidates.shape, -2.0)
    for r in range(candidates.shape[1]):
        rows = torch.nonzero(candidates[:, r] >= 0).squeeze(1)
        if rows.numel() == 0:
            continue
        z = latent[candidates[rows, r]]  # [P, d]
        num, den = _splat(cache, w, rows, z)
        consensus = num / den.clamp(min=1e-6)[:, None]  # [N, d] per-Gaussian mean over every view
        scores[rows, r] = decoder.cos(z, _render(cache, w, rows, consensus))
    best = scores.argmax(1)
    chosen = candidates.gather(1, best[:, None]).squeeze(1)
    return torch.where(scores.max(1).values > -2.0, chosen, torch.full_like(chosen, -1))


def fit_features(
    cache: ContributionCache,
    w: Tensor,  # [R, K]
    rows: Tensor,  # [P] rows to fit
    target: Tensor,  # [P, d]
    *,
    cg_iterations: int = DEFAULT_CG_ITERATIONS,
) -> Tensor:  # [N, d] float32
    """min_F Σ_p |Σ_k ŵ_pk F[g_pk] − target_p|² + λ|F − F₀|², from F₀ = the contributors' weighted mean target.

    Conjugate gradients on the normal equations (AᵀA + λI) F = Aᵀt + λF₀, all columns at once; A is applied as a
    gather (`_render`) and Aᵀ as an index_add (`_splat`), so no matrix is formed."""
    num, den = _splat(cache, w, rows, target)
    f0 = num / den.clamp(min=1e-6)[:, None]
    if cg_iterations <= 0 or rows.numel() == 0:
        return f0
    diag = torch.zeros(cache.num_gaussians)
    diag.index_add_(0, cache.ids[rows].long().reshape(-1), (w[rows] ** 2).reshape(-1))
    lam = _RIDGE * float(diag[diag > 0].mean()) if bool((diag > 0).any()) else _RIDGE

    def normal(x: Tensor) -> Tensor:
        return _splat(cache, w, rows, _render(cache, w, rows, x))[0] + lam * x

    b = num + lam * f0
    x = f0.clone()
    r = b - normal(x)
    p = r.clone()
    rs = (r * r).sum(0)  # [d] one CG per column
    for _ in range(cg_iterations):
        ap = normal(p)
        alpha = rs / (p * ap).sum(0).clamp(min=1e-20)
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(0)
        if float(rs_new.max()) < 1e-12:
            break
        p = r + (rs_new / rs.clamp(min=1e-20)) * p
        rs = rs_new
    return x


def _valid(cache: ContributionCache, w: Tensor, covered: Tensor) -> Tensor:  # → [N] bool
    """Gaussians with at least a third of their cached weight on masked pixels (the rest on opaque unmasked ones)."""
    ids = cache.ids.long().reshape(-1)
    on = torch.zeros(cache.num_gaussians)
    off = torch.zeros(cache.num_gaussians)
    on.index_add_(0, ids, (w * covered[:, None]).reshape(-1))
    off.index_add_(0, ids, (w * (~covered)[:, None]).reshape(-1))
    return (on > 0.5 * off) & (on > 0)


# ---- the workspace ---------------------------------------------------------------------------------------------


def save_field(workspace, field: LanguageField, *, inputs: dict[str, str | Path], extra: dict | None = None) -> Path:
    """Write the field (features as float16: 2·d bytes a Gaussian per level) and record it in the manifest."""
    tensors: dict[str, Tensor] = {f"{lvl}.features": f.half().contiguous() for lvl, f in field.features.items()}
    for lvl in field.codebooks:
        tensors[f"{lvl}.codebook"] = field.codebooks[lvl].float().contiguous()
        tensors[f"{lvl}.codes"] = field.codes[lvl].to(torch.int32).contiguous()
    tensors["valid"] = field.valid.to(torch.uint8)
    tensors["basis"] = field.basis.float().contiguous()
    tensors["mean"] = field.mean.float().contiguous()
    params = {**field.params, **field.identity, "levels": list(field.features), **(extra or {})}
    return workspace.save_tensors(FIELD_FILE, tensors, made_by="prepare-text --field", params=params, inputs=inputs)


def load_field(workspace, *, inputs: dict[str, str | Path] | None = None) -> LanguageField:
    """Read the field after checking it was made from the current model and masks (`StaleCacheError` if not)."""
    workspace.check_fresh(FIELD_FILE, inputs=inputs)
    params = dict((workspace.entry(FIELD_FILE) or {}).get("params", {}))
    tensors = workspace.load_tensors(FIELD_FILE, verify=False)
    levels = [lvl for lvl in params.get("levels", FIELD_LEVELS) if f"{lvl}.features" in tensors]
    identity = {k: str(params.pop(k, "")) for k in ("clip_model", "clip_weights", "clip_source")}
    return LanguageField(
        features={lvl: tensors[f"{lvl}.features"].float() for lvl in levels},
        valid=tensors["valid"].bool(),
        basis=tensors["basis"].float(),
        mean=tensors["mean"].float(),
        identity=identity,
        params=params,
        codebooks={lvl: tensors[f"{lvl}.codebook"].float() for lvl in levels if f"{lvl}.codebook" in tensors},
        codes={lvl: tensors[f"{lvl}.codes"].long() for lvl in levels if f"{lvl}.codes" in tensors},
    )

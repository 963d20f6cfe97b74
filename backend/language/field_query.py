"""Text queries against the language field: relevancy for every Gaussian, a heat map and a thresholded selection.

LERF's relevancy is min over negatives of softmax(T·[cos(q, x), cos(n, x)])[0] = sigmoid(T·(cos(q, x) − max_n
cos(n, x))): one sigmoid after a max, not M softmaxes. And cos(·, x) for a decoded field feature x = μ + f Bᵀ is
(v·μ + f·(Bᵀv)) / |x|: the query and the negatives are projected into the d-dimensional latent space once, and the
per-Gaussian work is one [N, d] × [d, 1 + M] product, with 1/|x| precomputed when the field is loaded. That is the
fast path (`field_relevancy`); `relevancy.relevancy` on the decoded features is its reference, and the tests compare
them. At 1M Gaussians, d = 16 and two levels it is a few milliseconds on a CPU.

With `level="both"` the query uses the level whose best Gaussians beat the negatives by more (LangSplat picks one
of its three levels per query the same way): "mug" lands on the coarse level, "mug handle" on the fine one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from backend.core.errors import SplatsegError

from .clip import few_threads
from .field import LanguageField
from .relevancy import CANONICAL_NEGATIVES, DEFAULT_THRESHOLD, TEMPERATURE

FieldLevel = Literal["coarse", "fine", "both"]


@dataclasses.dataclass(frozen=True)
class FieldQueryResult:
    text: str
    level: str
    """The level the relevancy came from."""
    threshold: float
    relevancy: np.ndarray  # [N] float32 in [0, 1]; 0 for Gaussians the field has no feature for
    mask: np.ndarray  # [N] bool: relevancy ≥ threshold (snapped to clusters when asked)
    encode_ms: float
    rank_ms: float

    @property
    def milliseconds(self) -> float:
        return self.encode_ms + self.rank_ms

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.text,
            "source": "field",
            "level": self.level,
            "threshold": self.threshold,
            "max_relevancy": round(float(self.relevancy.max()) if self.relevancy.size else 0.0, 4),
            "count": self.count,
            "ms": round(self.milliseconds, 2),
            "encode_ms": round(self.encode_ms, 2),
            "rank_ms": round(self.rank_ms, 2),
        }


def field_relevancy(
    features: Tensor,  # [N, d] latent features
    inv_norm: Tensor,  # [N] 1 / |decoded feature| (0 for invalid Gaussians)
    basis: Tensor,  # [D, d]
    mean: Tensor,  # [D]
    phrases: Tensor,  # [1 + M, D] unit text embeddings: the query, then the negatives
    *,
    temperature: float = TEMPERATURE,
) -> tuple[Tensor, Tensor]:  # relevancy [N] float32, margin [N] float32 (cos(q) − max cos(n))
    """Per-Gaussian LERF relevancy of the decoded field without decoding it (see the module docstring)."""
    proj = (phrases.to(features.dtype) @ basis.to(features.dtype)).T  # [d, 1 + M]
    offset = (phrases @ mean).to(features.dtype)  # [1 + M]
    dots = torch.addmm(offset[None, :].expand(features.shape[0], -1), features, proj)  # [N, 1 + M]
    margin = (dots[:, 0] - dots[:, 1:].amax(1)).float() * inv_norm
    return torch.sigmoid(temperature * margin), margin


def decoded_inv_norm(field: LanguageField, level: str) -> Tensor:  # → [N] float32
    inv = _inv_norm(field.features[level].float(), field.mean, field.basis)
    return torch.where(field.valid, inv, torch.zeros_like(inv))


def _inv_norm(f: Tensor, mean: Tensor, basis: Tensor) -> Tensor:  # f [M, d] → [M]: 1 / |mean + f basisᵀ|
    bmu = mean @ basis
    sq = float(mean @ mean) + 2 * (f @ bmu) + (f * f).sum(1)
    return sq.clamp(min=1e-12).rsqrt()


class FieldIndex:
    """A loaded field and its encoder, ready to answer queries (what `query` and the viewer's text panel keep)."""

    def __init__(
        self,
        encoder,
        field: LanguageField,
        *,
        clusters: Mapping[str, np.ndarray] | None = None,  # level → [N] int cluster labels, -1 = none
        negatives: tuple[str, ...] = CANONICAL_NEGATIVES,
        device: torch.device | str | None = None,
        quantized: bool | None = None,
    ) -> None:
        from .query import check_same_clip

        check_same_clip(field.identity, encoder)
        self.encoder = encoder
        self.field = field
        self.negatives = negatives
        self.clusters = dict(clusters or {})
        self.levels = field.levels
        self.num_gaussians = field.num_gaussians
        # fp16 on a GPU (tests/test_language_field_cuda.py holds it to the CPU's float32 answer); float32 on CPU.
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._features = {lvl: field.features[lvl].to(self.device, dtype).contiguous() for lvl in self.levels}
        self._inv_norm = {lvl: decoded_inv_norm(field, lvl).to(self.device) for lvl in self.levels}
        self._basis = field.basis.to(self.device)
        self._mean = field.mean.to(self.device)
        self._valid = field.valid.numpy()
        self._valid_t = field.valid.to(self.device)
        self.quantized = bool(field.codebooks) if quantized is None else quantized
        """Score the codebooks and gather (the fast path) rather than every Gaussian's feature (the reference)."""
        if self.quantized:
            self._books, self._book_inv, self._codes, self._members = {}, {}, {}, {}
            for lvl in self.levels:
                book = field.codebooks[lvl].float()
                self._books[lvl] = book.to(self.device)
                self._book_inv[lvl] = _inv_norm(book, field.mean, field.basis).to(self.device)
                # Invalid Gaussians read an extra last entry that scores 0 and is never selected.
                # Native-width indices: `np.take` with them is one pass (int32 ones are widened on every query).
                codes = np.where(self._valid, field.codes[lvl].numpy(), book.shape[0]).astype(np.intp)
                self._codes[lvl] = codes
                members = np.bincount(codes, minlength=book.shape[0] + 1)[:-1]
                self._members[lvl] = torch.from_numpy(members).to(self.device)
        self.encoder.encode_text(list(negatives))

    def _query_codebooks(
        self, phrases: Tensor, levels: tuple[str, ...], threshold: float
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Score each level's codebook, pick the level as the exact path does (its best 32 Gaussians' mean margin,
        counted through the entries' member counts), then one gather per Gaussian."""
        best = None
        for lvl in levels:
            rel, margin = field_relevancy(self._books[lvl], self._book_inv[lvl], self._basis, self._mean, phrases)
            order = torch.argsort(margin, descending=True)
            members = self._members[lvl][order].double()
            before = torch.cumsum(members, 0) - members
            take = (LEVEL_EVIDENCE - before).clamp(min=0).minimum(members)
            top = float((take * margin[order].double()).sum() / take.sum().clamp(min=1))
            if best is None or top > best[0]:
                best = (top, lvl, rel)
        _, lvl, rel = best
        table = np.append(rel.float().cpu().numpy(), np.float32(0.0))  # [C + 1]; the last is "invalid"
        scores = np.take(table, self._codes[lvl])  # [N]: the one per-Gaussian pass (~1 ms at 1M on one core)
        return scores, scores >= threshold, lvl

    def relevancy(self, text: str, level: str) -> tuple[Tensor, Tensor]:  # [N] relevancy, [N] margin
        phrases = self.encoder.encode_text([text, *self.negatives]).to(self.device)
        return field_relevancy(self._features[level], self._inv_norm[level], self._basis, self._mean, phrases)

    def query(
        self,
        text: str,
        *,
        level: FieldLevel = "both",
        threshold: float = DEFAULT_THRESHOLD,
        snap: str | None = None,
    ) -> FieldQueryResult:
        """Relevancy of every Gaussian to `text`; the selection is every Gaussian at or above `threshold`, or with
        `snap=LEVEL` every cluster of that level whose Gaussians are mostly above it."""
        text = " ".join(text.split())
        if not text:
            raise SplatsegError('the query text is empty; say what to find, e.g. "the red mug"')
        levels = self.levels if level == "both" else (level,)
        if any(lvl not in self.levels for lvl in levels):
            raise SplatsegError(f"the language field has no {level} level; use --level {' or '.join(self.levels)}")
        if snap is not None and snap not in self.clusters:
            raise SplatsegError(f"no {snap} clusters to snap to; train the scene first or drop --snap")
        t0 = time.perf_counter()
        phrases = self.encoder.encode_text([text, *self.negatives]).to(self.device)  # [1 + M, D]
        t1 = time.perf_counter()
        if self.quantized:
            with few_threads(torch.device("cpu"), 1):  # a few thousand rows: threads only add waiting
                scores, mask, best_level = self._query_codebooks(phrases, levels, threshold)
            if snap is not None:
                mask = snap_to_clusters(mask, self.clusters[snap], self._valid)
            t2 = time.perf_counter()
            return FieldQueryResult(text, best_level, threshold, scores, mask, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
        best, best_level, best_margin = None, levels[0], -np.inf
        for lvl in levels:
            rel, margin = field_relevancy(self._features[lvl], self._inv_norm[lvl], self._basis, self._mean, phrases)
            top = _top_mean(margin, self._valid_t)
            if best is None or top > best_margin:
                best, best_level, best_margin = rel, lvl, top
        scores = best.float().cpu().numpy() if best is not None else np.zeros(self.num_gaussians, np.float32)
        scores = np.where(self._valid, scores, 0.0).astype(np.float32)
        mask = scores >= threshold
        if snap is not None:
            mask = snap_to_clusters(mask, self.clusters[snap], self._valid)
        t2 = time.perf_counter()
        return FieldQueryResult(text, best_level, threshold, scores, mask, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


LEVEL_EVIDENCE = 32
"""Gaussians whose margins decide the level of a `both` query: the mean of the best 32, not the single best, so one
noisy Gaussian cannot pull a part query to the coarse level (measured: parts localisation 0.84 → 0.92)."""


def _top_mean(margin: Tensor, valid: Tensor) -> float:
    m = torch.where(valid, margin, torch.full_like(margin, -1e4))
    k = min(LEVEL_EVIDENCE, m.numel())
    return float(torch.topk(m, k).values.float().mean()) if k else -np.inf


def snap_to_clusters(
    mask: np.ndarray,  # [N] bool
    labels: np.ndarray,  # [N] int cluster labels, -1 = none
    valid: np.ndarray | None = None,  # [N] bool: the Gaussians that count (the field's fitted ones)
) -> np.ndarray:  # [N] bool
    """Every cluster more than half of whose counted Gaussians are in `mask` (a cluster's hidden inside, which no view
    taught, does not vote); Gaussians in no cluster keep their value."""
    labels = np.asarray(labels).astype(np.int64)
    inside = labels >= 0
    if not inside.any():
        return mask.copy()
    counted = inside if valid is None else inside & valid
    size = np.bincount(labels[counted], minlength=int(labels.max()) + 1)
    hits = np.bincount(labels[counted], weights=mask[counted].astype(np.float64), minlength=size.size)
    chosen = hits > 0.5 * np.maximum(size, 1)
    return np.where(inside, chosen[labels.clip(0)], mask)

"""Relevancy of a text query to cluster embeddings, as LERF and LangSplat compute it.

A raw cosine similarity between CLIP text and image embeddings is not comparable across queries (some texts are
close to everything). LERF's relevancy asks instead whether an embedding is closer to the query than to generic
"canonical" phrases: for each negative n, a two-way softmax over 10·[cos(q, x), cos(n, x)]; the relevancy is the
query's probability against the hardest negative (the minimum over negatives). 0.5 means "as close as a generic
word", which is why it is the default threshold for "all matching clusters".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

CANONICAL_NEGATIVES: tuple[str, ...] = ("object", "things", "stuff", "texture")
"""LERF's canonical phrases (also LangSplat's)."""

TEMPERATURE = 10.0
"""The softmax's inverse temperature in LERF and LangSplat."""

DEFAULT_THRESHOLD = 0.5


def relevancy(
    query: Tensor,  # [D] text embedding of the query
    negatives: Tensor,  # [M, D] text embeddings of the canonical negatives
    embeddings: Tensor,  # [C, D] cluster (or pixel) embeddings
    *,
    temperature: float = TEMPERATURE,
) -> Tensor:  # [C] float32 in (0, 1)
    """min over negatives n of softmax(temperature·[cos(q, x), cos(n, x)])[0], for every row x of `embeddings`.

    Inputs need not be unit length (cosines are taken). Rows of zeros (clusters never seen) score 0.5 exactly, as
    they are as close to the query as to any negative; callers exclude them rather than rank them.
    """
    if negatives.ndim != 2 or negatives.shape[0] == 0:
        raise ValueError("relevancy needs at least one negative embedding [M, D]")
    q = F.normalize(query.float().reshape(1, -1), dim=-1)  # [1, D]
    n = F.normalize(negatives.float(), dim=-1)  # [M, D]
    x = F.normalize(embeddings.float(), dim=-1)  # [C, D]
    pos = x @ q.T  # [C, 1]
    neg = x @ n.T  # [C, M]
    pair = torch.stack([pos.expand_as(neg), neg], dim=-1)  # [C, M, 2]
    prob = torch.softmax(temperature * pair, dim=-1)[..., 0]  # [C, M]
    return prob.min(dim=-1).values


def rank(scores: Tensor | np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:  # [C] → [C'] indices
    """Indices of the valid entries, best score first (ties keep index order, so results are reproducible)."""
    s = np.asarray(scores.detach().cpu().numpy() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    index = np.arange(s.shape[0]) if valid is None else np.flatnonzero(valid)
    order = np.argsort(-s[index], kind="stable")
    return index[order]


def gaussian_relevancy(
    labels: np.ndarray,  # [N] int cluster label per Gaussian, -1 = none
    cluster_ids: np.ndarray,  # [C] the label value of each scored cluster
    scores: np.ndarray,  # [C] relevancy of each cluster
) -> np.ndarray:  # [N] float32; 0 where the Gaussian's cluster is unscored
    """Per-Gaussian relevancy: each Gaussian takes its cluster's score (a heat map over the scene)."""
    out = np.zeros(labels.shape[0], dtype=np.float32)
    if cluster_ids.size == 0:
        return out
    order = np.argsort(cluster_ids)
    sorted_ids = cluster_ids[order]
    pos = np.searchsorted(sorted_ids, labels).clip(0, sorted_ids.size - 1)
    hit = sorted_ids[pos] == labels
    out[hit] = np.asarray(scores, dtype=np.float32)[order][pos[hit]]
    return out


# Turbo-like colour stops (dark blue → cyan → green → yellow → red), enough for a heat map without matplotlib.
_HEAT_STOPS = np.array(
    [[48, 18, 59], [40, 120, 220], [30, 200, 200], [120, 240, 90], [240, 200, 40], [230, 80, 20], [122, 4, 3]],
    dtype=np.float32,
)


def heat_colors(values: np.ndarray, *, low: float = 0.5, high: float = 1.0) -> np.ndarray:  # [N] → [N, 3] uint8
    """Colours for relevancy values: LERF shows only what beats the negatives, so `low` (0.5) maps to the coldest
    colour and everything below it stays there."""
    t = np.clip((np.asarray(values, dtype=np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
    x = t * (len(_HEAT_STOPS) - 1)
    i = np.minimum(x.astype(np.int64), len(_HEAT_STOPS) - 2)
    f = (x - i)[:, None]
    rgb = _HEAT_STOPS[i] * (1 - f) + _HEAT_STOPS[i + 1] * f
    return rgb.round().clip(0, 255).astype(np.uint8)

"""The losses of Click-Gaussian and SAGA, as pure functions of feature tensors (tested on hand-built cases).

Contrastive terms work on pixel pairs of one view: a positive pair (same mask at the level or scale being trained)
is pulled by 1 − cos, a negative pair pushed by max(0, cos − margin). Positives and negatives are averaged
separately, so a view with one big mask and a few small ones still pushes the small ones apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def same_group(labels: Tensor) -> Tensor:  # [B] int → [B, B] bool; label −1 (no mask) is nobody's positive
    return (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)


def pair_contrastive(
    sim: Tensor,  # [..., B, B] cosine similarities
    positive: Tensor,  # [..., B, B] bool: same group
    *,
    margin: float,
    negative_sim: Tensor | None = None,  # [..., B, B] similarity used for negatives (e.g. with a stop-gradient)
    negative: Tensor | None = None,  # [..., B, B] bool: the pairs to push (default: every non-positive pair)
    hard_negatives: bool = False,
) -> Tensor:  # scalar
    """mean over positives of (1 − cos) + mean over negatives of max(0, cos − margin); the diagonal is ignored.

    With `hard_negatives` the push is averaged over the negatives still inside the margin rather than over all
    of them: most negative pairs (two different objects) are satisfied early, and averaging over them would
    shrink the gradient of the few that matter (a handle against its mug) to nothing. Masks multiply rather than
    index: boolean indexing costs a nonzero() per call, the dominant cost on a CPU.
    """
    b = sim.shape[-1]
    off = 1.0 - torch.eye(b, dtype=sim.dtype, device=sim.device)
    pos = positive.to(sim.dtype) * off
    neg = (1.0 - positive.to(sim.dtype) if negative is None else negative.to(sim.dtype)) * off
    neg_sim = sim if negative_sim is None else negative_sim
    pull = ((1.0 - sim) * pos).sum() / pos.sum().clamp(min=1.0)
    violation = torch.relu(neg_sim - margin) * neg
    active = (violation > 0).to(sim.dtype).sum() if hard_negatives else neg.sum()
    push = violation.sum() / active.clamp(min=1.0)
    return pull + push


def cosine_matrix(x: Tensor) -> Tensor:  # [B, D] → [B, B]
    x = F.normalize(x, dim=-1)
    return x @ x.transpose(-1, -2)


def two_level_contrastive(
    rendered: Tensor,  # [B, Dc + Df] rendered features, coarse half first
    coarse_labels: Tensor,  # [B] int
    fine_labels: Tensor,  # [B] int
    *,
    coarse_dim: int,
    margin_coarse: float,
    margin_fine: float,
    hard_negatives: bool = False,
    fine_gate: tuple[Tensor | None, ...] | None = None,  # [B, B] bool: (pulls to drop, pushes to drop, pushes to add)
) -> tuple[Tensor, Tensor]:  # (coarse loss, fine loss)
    """Click-Gaussian's contrastive loss at both levels with the granularity prior.

    The coarse feature is the first `coarse_dim` channels; the fine feature is all channels (coarse ⊕ fine). Fine
    positives (same smallest mask) pull the whole vector. Fine negatives are the pairs inside one coarse mask but in
    different fine masks (two parts of one object): pairs in different coarse masks are already apart through the
    coarse half, and counting them would dilute the few sibling pairs (a mug's coffee against its body) to nothing
    in the average. They see the coarse half through a stop-gradient: pushing two parts apart must not tear the
    object's shared coarse feature.

    `fine_gate` removes fine pairs that the other views contradict (`features.fine_agreement`): pulls of pairs
    this view merged, pushes of pairs this view split; its optional third mask adds pushes (pairs of one coarse
    mask that this view merged but the others keep apart).
    """
    coarse = rendered[:, :coarse_dim]
    same_coarse = same_group(coarse_labels)
    sim_c = cosine_matrix(coarse)
    loss_c = pair_contrastive(sim_c, same_coarse, margin=margin_coarse, hard_negatives=hard_negatives)
    sim_f = cosine_matrix(rendered)
    detached = torch.cat([coarse.detach(), rendered[:, coarse_dim:]], dim=1)
    sim_f_sg = cosine_matrix(detached)
    same_fine = same_group(fine_labels)
    negative = same_coarse & ~same_fine
    positive = same_fine
    if fine_gate is not None:
        drop_pull, drop_push, add_push = (*fine_gate, None, None, None)[:3]
        if drop_pull is not None:
            positive = positive & ~drop_pull
        if drop_push is not None:
            negative = negative & ~drop_push
        if add_push is not None:
            negative = negative | (add_push & same_coarse & ~positive)
    loss_f = pair_contrastive(
        sim_f,
        positive,
        margin=margin_fine,
        negative_sim=sim_f_sg,
        negative=negative,
        hard_negatives=hard_negatives,
    )
    return loss_c, loss_f


def hypersphere(features: Tensor, *, splits: tuple[int, ...] | None = None) -> Tensor:  # features [M, D] → scalar
    """mean (‖f‖ − 1)²: features live on the unit sphere (per block when `splits` gives block sizes)."""
    blocks = torch.split(features, list(splits), dim=1) if splits else (features,)
    return sum(((b.norm(dim=1) - 1.0) ** 2).mean() for b in blocks) / len(blocks)


def rendered_norm(rendered: Tensor, *, splits: tuple[int, ...] | None = None) -> Tensor:  # [B, D] → scalar
    """(1 − mean ‖rendered‖)²: a pixel's contributors agree (blending opposite features gives a short vector)."""
    blocks = torch.split(rendered, list(splits), dim=1) if splits else (rendered,)
    return sum((1.0 - b.norm(dim=1).mean()) ** 2 for b in blocks) / len(blocks)


def knn_smoothness(
    features: Tensor,  # [N, D]
    neighbors: Tensor,  # [N, k] int64 ids of each Gaussian's nearest neighbours
    sample: Tensor,  # [S] Gaussian ids to evaluate this step
    weights: Tensor | None = None,  # [N, k] per-neighbour weights (default: all 1)
) -> Tensor:  # scalar
    """mean ‖f_i − f_j‖² over the k nearest 3D neighbours j of sampled Gaussians i: nearby Gaussians (which
    mostly belong to the same thing) share a feature, and Gaussians no view supervises inherit their neighbours'.

    With `weights` it is the weighted mean Σ w_ij ‖f_i − f_j‖² / Σ w_ij: a colour affinity keeps the term from
    pulling two touching parts' Gaussians together across their seam, while pairs within one surface keep the
    full strength of the unweighted term."""
    fi = features.index_select(0, sample)  # [S, D]  (index_select: its backward is a fast index_add)
    nb = neighbors.index_select(0, sample)  # [S, k]
    fj = features.index_select(0, nb.reshape(-1)).reshape(nb.shape[0], nb.shape[1], -1)  # [S, k, D]
    sq = ((fi[:, None, :] - fj) ** 2).sum(-1)  # [S, k]
    if weights is None:
        return sq.mean()
    w = weights.index_select(0, sample)  # [S, k]
    return (sq * w).sum() / w.sum().clamp(min=1e-12)


def cluster_pull_push(
    features: Tensor,  # [S, D] Gaussian features (any norm)
    centroids: Tensor,  # [C, D] unit global-cluster centroids
    assigned: Tensor,  # [S] int64 cluster index of each Gaussian
    *,
    margin: float,
    push_features: Tensor | None = None,  # [S, D] features for the push term (stop-gradient variant)
) -> Tensor:  # scalar
    """Global Feature-guided Learning: pull each Gaussian to its global cluster's centroid (1 − cos) and push it
    from every other centroid (max(0, cos − margin))."""
    if features.shape[0] == 0 or centroids.shape[0] == 0:
        return features.new_zeros(())
    f = F.normalize(features, dim=1)
    sim = f @ centroids.T  # [S, C]
    own = sim.gather(1, assigned[:, None]).squeeze(1)
    pull = (1.0 - own).mean()
    if centroids.shape[0] == 1:
        return pull
    fp = f if push_features is None else F.normalize(push_features, dim=1)
    sim_p = fp @ centroids.T
    others = torch.ones_like(sim_p)
    others.scatter_(1, assigned[:, None], 0.0)
    push = (torch.relu(sim_p - margin) * others).sum() / others.sum()
    return pull + push

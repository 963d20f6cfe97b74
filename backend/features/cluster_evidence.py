"""Which fine global cluster a Gaussian may be pulled to: the one its feature is near AND its views do not deny.

GFL assigns each Gaussian to the global cluster its feature is nearest (cosine ≥ `gfl_confidence`) and pulls it
there. The assignment feeds itself: a Gaussian that drifted halfway to its neighbouring part (a teapot's body by its
lid, whose masks form no cluster of their own because most views merge them) is assigned to the neighbour's
cluster, pulled into it, and pulls its own neighbours after it. The masks say otherwise, view by view: in a view
where the cluster has a mask of its own (the lid's), the Gaussian lies in another mask (the body's, or the
whole's rest). `checked_labels` counts, per Gaussian, the views whose vote (`fine_agreement.gaussian_fine_votes`)
falls in one of its cluster's masks (for) and the views where the cluster has a mask but the vote falls in another
(against), and keeps the assignment only where the against share is at most `max_against`. Views where the
cluster has no mask, or the Gaussian no vote, say nothing (docs/architecture.md, "Fine agreement").
"""

from __future__ import annotations

import torch
from torch import Tensor


def cluster_presence(
    mask_cluster: Tensor,  # [num_masks] int64 cluster of each mask, -1 = none
    mask_view: Tensor,  # [num_masks] int64 the reference-view column of each mask's view, -1 = not a reference
    num_clusters: int,
    num_columns: int,
) -> Tensor:  # [C, V'] bool: the cluster has a mask in that reference view
    out = torch.zeros(num_clusters, num_columns, dtype=torch.bool)
    ok = (mask_cluster >= 0) & (mask_view >= 0)
    out[mask_cluster[ok], mask_view[ok]] = True
    return out


def checked_labels(
    labels: Tensor,  # [N] int64 cluster by feature, -1 = none
    votes: Tensor,  # [N, V'] int32 global fine-mask id per reference view, -1 = no vote
    mask_cluster: Tensor,  # [num_masks] int64 cluster of each mask, -1 = none
    presence: Tensor,  # [C, V'] bool (`cluster_presence`)
    *,
    max_against: float = 0.5,
    chunk: int = 1 << 17,
) -> Tensor:  # [N] int64: labels, -1 where the views deny the cluster
    """Drop a Gaussian's cluster where more than `max_against` of the views that say anything deny it."""
    out = labels.clone()
    for s in range(0, labels.shape[0], chunk):
        lab = labels[s : s + chunk]
        v = votes[s : s + chunk].long()  # [n, V']
        has = (v >= 0) & (lab[:, None] >= 0)
        vc = torch.where(v >= 0, mask_cluster[v.clamp(min=0)], torch.full_like(v, -1))  # [n, V']
        mine = vc == lab[:, None]
        present = presence[lab.clamp(min=0)]  # [n, V']
        pro = (has & mine).sum(1)
        con = (has & ~mine & present).sum(1)
        denied = con.float() > max_against * (pro + con).float()
        out[s : s + chunk] = torch.where((lab >= 0) & denied, torch.full_like(lab, -1), lab)
    return out


def checked_labels_reference(
    labels: Tensor, votes: Tensor, mask_cluster: Tensor, presence: Tensor, *, max_against: float = 0.5
) -> Tensor:  # [N] int64
    """`checked_labels` one Gaussian and view at a time (for the test)."""
    out = labels.clone()
    for i in range(labels.shape[0]):
        c = int(labels[i])
        if c < 0:
            continue
        pro = con = 0
        for col in range(votes.shape[1]):
            m = int(votes[i, col])
            if m < 0:
                continue
            if int(mask_cluster[m]) == c:
                pro += 1
            elif bool(presence[c, col]):
                con += 1
        if con > max_against * (pro + con):
            out[i] = -1
    return out

"""Click-Gaussian: two-level per-Gaussian features trained from cached contributions, with Global Feature-guided
Learning.

Each Gaussian carries a coarse 12-d and a fine 12-d feature; the fine feature used for segmentation is
coarse ⊕ fine (24-d), the granularity prior: a part can only be told apart inside the thing it belongs to. Per step,
one view's sampled pixels are rendered (a gather and a weighted sum) and pairs are contrasted at the coarse level
(largest covering mask) and the fine level (smallest covering mask) with level-specific margins; fine negatives see
the coarse half through a stop-gradient. After a warm-up, global clusters are refreshed every `gfl_every` steps
(clusters.py) and every assigned Gaussian is pulled to its cluster and pushed from the others. Regularisers keep
each half on the unit sphere, keep rendered features long (a pixel's contributors agree), and make each Gaussian
agree with its k nearest 3D neighbours. The fine level's pulls and clusters are checked against the other views'
masks first (`fine_agreement.py`: a view that merges two parts most views keep apart pushes them instead).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import SplatsegError
from . import losses
from .cluster_evidence import checked_labels, cluster_presence
from .clusters import GlobalClusters, assign_to_clusters, cluster_centroids, mask_average_features
from .containment import container_masks, residual_pairs
from .contrib_cache import ContributionCache
from .coverage import training_weight, uncovered_share
from .fine_agreement import (
    fill_votes,
    front_votes,
    gaussian_fine_votes,
    mask_agreement,
    pair_agreement,
    pixel_agreement,
    reference_views,
)
from .fine_levels import part_labels
from .method import FeatureMethod, unit_query
from .propagate import FILL_ITERATIONS, colour_affinity, fill_unseen

log = logging.getLogger(__name__)

LEVELS = ("coarse", "fine")


@dataclasses.dataclass(frozen=True)
class ClickConfig:
    """Click-Gaussian's hyper-parameters."""

    iterations: int = 1200
    coarse_dim: int = 12
    fine_dim: int = 12
    batch_pixels: int = 512
    """Pixels of one view contrasted per step (all pairs: batch² similarities)."""
    lr: float = 0.01
    margin_coarse: float = 0.2
    """Negatives at the coarse level are pushed until their cosine is below this."""
    margin_fine: float = 0.75
    """Fine negatives share the coarse half (cos ≈ 1 there), so their concatenated cosine sits near
    (1 + cos_fine)/2: 0.75 asks for fine halves below cos 0.5, which leaves room for SAM's split masks (two halves
    of one part, pushed apart in that view) without tearing parts apart."""
    hard_negatives: bool = False
    """Average the push over the negatives still inside the margin (see `losses.pair_contrastive`)."""
    weight_sphere: float = 0.1
    weight_rendered_norm: float = 0.1
    weight_knn: float = 1.0
    """With the colour weights (`knn_colour_sigma`) the term no longer pulls across seams, so it can pull harder
    within a surface: 0.5 → 1.0 measured on shelf s0 / s1 / tabletop s0 (README, "Colour-weighted smoothing")."""
    knn_sample: int = 8192
    """Gaussians whose neighbourhood is smoothed per step."""
    gfl_start: float = 0.5
    """Share of the iterations before the first global clustering (features must mean something first)."""
    gfl_every: int = 200
    weight_gfl: float = 0.5
    gfl_confidence: float = 0.75
    """A Gaussian joins a global cluster only when its cosine to the centroid is at least this."""
    gfl_sample: int = 8192
    min_cluster_size: int = 3
    uncovered_segment: bool = True
    """A view's opaque pixels that no mask covers count as one segment of that view: pulled together and pushed
    from every masked pixel at the coarse level, never part of a global cluster. Without it they are only pushed,
    from everything including each other, and a support no mask covers ends up with scattered features that
    some clicks select (issue 10)."""
    min_overhang: float = 0.5
    """Masks that contain other masks but lie mostly (≥ this share) outside them are cut back to them before
    training (`masks.overhang`: an object merged with its support); 1 = off."""
    fine_part_level: bool = False
    """The fine level learns from the largest mask under the coarse one (SAM's "part" of a whole ⊃ part ⊃
    subpart stack) instead of the smallest, so a part cut in two in one view is not torn apart
    (`fine_levels.part_labels`)."""
    fine_agreement: float | None = 0.5
    """Drop the fine pull of a pixel pair in one fine mask when fewer than this share of the reference views that
    see both put them in one fine mask (`fine_agreement`: this view merged two parts others keep apart), and push it
    instead with `fine_merged_push`. None = every pair in one fine mask is pulled, as Click-Gaussian does.
    Measured in the README ("Fine agreement across views"): tabletop parts 3D / 2D s0 0.805 / 0.815 → 0.814 /
    0.842, s1 0.719 / 0.740 → 0.783 / 0.784; shelf s0 0.893 / 0.919 → 0.926 / 0.961."""
    fine_split_agreement: float | None = None
    """Drop the fine push of a pixel pair in different fine masks of one coarse mask when at least this share of
    the reference views keep them in one fine mask (this view cut a part in two); None = keep every push."""
    fine_merged_push: bool = True
    """Push (not only stop pulling) the pairs `fine_agreement` finds merged in this view."""
    fine_agreement_min_views: int = 3
    """A pair seen together in fewer reference views keeps what its own view says."""
    fine_vote_weight: float = 0.2
    """A Gaussian votes in a view only where its cached blend weight there reaches this (`gaussian_fine_votes`).
    At 0.5 only 37% of the tabletop quick cell's Gaussians voted at all and the small parts were judged on almost
    no views; at 0.2, 62% (0.1: 70%, but a thin part's edge Gaussians then vote for their neighbour's mask: the
    shelf's lamp pole lost 0.23; README, "Fine residuals, cluster evidence and denser votes")."""
    fine_vote_hops: int = 3
    """A Gaussian without a vote in a reference view borrows its colour-weighted neighbours' (`fill_votes`), this
    many hops; 0 = own votes only."""
    fine_cluster_agreement: float | None = 0.6
    """Fine global clusters are found among the fine masks whose pixel pairs agree at least this much on average
    (`mask_agreement`): masks that merge two parts would otherwise form a cluster of their own between the two and
    pull both into it. None = every mask."""
    fine_residual_pull: bool = False
    """Pull the pixel pairs whose finest mask contains another mask of the view (the rest of a whole whose parts
    have masks: often several unmasked parts at once, `containment.py`), and find fine global clusters among such
    masks too; False = those pairs are neither pulled nor pushed among themselves (their pushes against the
    masked parts stay) and containers form no fine cluster."""
    fine_cluster_evidence: float | None = 0.5
    """A Gaussian stays in its fine global cluster only where at most this share of the views that say anything
    deny it (the cluster has a mask there, the Gaussian's vote is another mask: `cluster_evidence.py`); None =
    the feature alone decides, as Click-Gaussian does."""
    knn_colour_sigma: float | None = 0.1
    """Weight each neighbour pair of the smoothness term by its colour affinity (`propagate.colour_affinity`,
    this σ), so touching parts of different colours are not pulled together across their seam; None = all 1."""
    fill_unseen: bool = True
    """After training, Gaussians that no cached pixel saw take the harmonic extension of their seen neighbours'
    features, weighted by colour (`propagate.fill_unseen`): the hidden faces of stacked or standing things."""
    fill_min_seen: float = 0.5
    """Fill only when at least this share of the Gaussians is seen: a field trained from a few small views (most
    Gaussians in no cached pixel) would otherwise have nearly every feature replaced by an average of a few (a
    4-view 40² biker test selected nothing after it); such a field keeps what training gave it."""
    fill_min_iterations: int = 100
    """No fill after fewer training steps: their seen features are still near their random start, and averaging
    them into the unseen ones gives a clicked ray's few Gaussians unrelated features. On an 8-step biker field
    (tests/test_real_capture.py) the clicked ray crossed 4 Gaussians whose features scored 0.72, −0.02, 0.21 and
    0.32 against their blend, so no Gaussian reached the 0.85 threshold (best 0.77) and the click selected
    nothing."""
    fill_colour_sigma: float = 0.1
    fill_iterations: int = FILL_ITERATIONS
    seed: int = 0

    @property
    def dim(self) -> int:
        return self.coarse_dim + self.fine_dim


@dataclasses.dataclass
class ClickResult:
    features: Tensor  # [N, coarse_dim + fine_dim] float32, each half unit length
    clusters: dict[str, GlobalClusters]  # "coarse" / "fine" → centroids and per-Gaussian labels
    config: ClickConfig
    history: list[dict[str, float]]


def level_features(features: Tensor, level: str, coarse_dim: int) -> Tensor:  # [N, D] → [N, Dl] (not normalised)
    """The granularity prior: coarse = the first half, fine = the whole vector."""
    if level == "coarse":
        return features[:, :coarse_dim]
    if level == "fine":
        return features
    raise ValueError(f"unknown level {level!r}; Click-Gaussian has {LEVELS}")


def unit_halves(features: Tensor, coarse_dim: int) -> Tensor:  # [N, D] → [N, D], each half unit length
    return torch.cat([F.normalize(features[:, :coarse_dim], dim=1), F.normalize(features[:, coarse_dim:], dim=1)], 1)


def uncovered_as_segment(labels: Tensor, virtual: int) -> Tensor:  # [B] int → [B] int
    """One view's pixels without a mask (label −1) as their own segment `virtual` (an id no mask has)."""
    return torch.where(labels < 0, torch.full_like(labels, virtual), labels)


def compute_global_clusters(
    features: Tensor,  # [N, D]
    cache: ContributionCache,
    config: ClickConfig,
    fine_masks_ok: Tensor | None = None,  # [num_masks] bool: masks the fine clusters may be found among
    votes: Tensor | None = None,  # [N, V'] int32 fine-mask votes (`fine_agreement`), for `fine_cluster_evidence`
) -> dict[str, GlobalClusters]:
    """Mask-average rendered features over all masks of all views → HDBSCAN per level → Gaussian assignment.

    The rendering runs where the cache is; the averages, HDBSCAN and the assignment on the CPU (the clusters are
    returned there)."""
    rendered = cache.render_all(features).cpu()  # [R, D]
    out = {}
    for level, rows_mask in (("coarse", cache.coarse), ("fine", cache.fine)):
        feats = level_features(rendered, level, config.coarse_dim)
        mask_feats, counts = mask_average_features(feats, rows_mask.cpu(), cache.num_masks)
        if level == "fine" and fine_masks_ok is not None:
            counts = torch.where(fine_masks_ok.cpu(), counts, torch.zeros_like(counts))
        centroids = cluster_centroids(mask_feats, counts, min_cluster_size=config.min_cluster_size)
        gauss = level_features(features.detach().cpu(), level, config.coarse_dim)
        labels = assign_to_clusters(gauss, centroids, confidence=config.gfl_confidence)
        if level == "fine" and votes is not None and config.fine_cluster_evidence is not None and len(centroids):
            mask_cluster = assign_to_clusters(mask_feats, centroids, confidence=config.gfl_confidence)
            mask_cluster = torch.where(counts > 0, mask_cluster, torch.full_like(mask_cluster, -1))
            presence = cluster_presence(mask_cluster, _mask_columns(cache), len(centroids), votes.shape[1])
            labels = checked_labels(labels, votes, mask_cluster, presence, max_against=config.fine_cluster_evidence)
        out[level] = GlobalClusters(centroids=centroids, labels=labels)
    return out


def _mask_columns(cache: ContributionCache) -> Tensor:  # [num_masks] int64 vote column of its view, -1 = none
    out = torch.full((cache.num_masks,), -1, dtype=torch.int64)
    for col, v in enumerate(reference_views(cache.num_views)):
        out[int(cache.mask_start[v]) : int(cache.mask_start[v + 1])] = col
    return out


def train_click(
    cache: ContributionCache,
    neighbors: Tensor,  # [N, k] int32 nearest 3D neighbours
    config: ClickConfig = ClickConfig(),
    *,
    progress: bool = True,
    init: Tensor | None = None,  # [N, D] starting features (default: random unit halves)
) -> ClickResult:
    """Train where the cache is (`ContributionCache.to`; `neighbors` must be there too). Random draws come from
    one CPU generator whatever the device, so a GPU run draws the same pixels and Gaussians as a CPU run; the
    fine votes, HDBSCAN and the unseen fill run on the CPU. The result's tensors are on the CPU."""
    from tqdm import tqdm

    device = cache.device
    host = cache.to("cpu")  # the same cache when training on the CPU
    if config.fine_part_level:
        fine = part_labels(host)
        host = dataclasses.replace(host, fine=fine)
        cache = dataclasses.replace(cache, fine=fine.to(device))
    g = torch.Generator().manual_seed(config.seed)
    n, cd = cache.num_gaussians, config.coarse_dim
    if init is None:
        init = unit_halves(torch.randn(n, config.dim, generator=g), cd)
    feats = torch.nn.Parameter(init.clone().float().to(device))
    opt = torch.optim.Adam([feats], lr=config.lr)
    neighbors = neighbors.long().to(device)
    knn_weights = None
    if config.knn_colour_sigma is not None and cache.colors is not None:
        knn_weights = colour_affinity(neighbors, cache.colors, config.knn_colour_sigma)  # [N, k]
    # Views with too few pixels to contrast are skipped; views are visited in shuffled epochs.
    usable = [v for v in range(cache.num_views) if cache.rows(v).stop - cache.rows(v).start >= 2]
    if not usable:
        raise ValueError("no view has pixels covered by masks and Gaussians; nothing to train on")
    votes, host_votes, fine_masks_ok = None, None, None
    gated = (config.fine_agreement, config.fine_split_agreement, config.fine_cluster_agreement)
    if any(x is not None for x in (*gated, config.fine_cluster_evidence)):
        votes = gaussian_fine_votes(host, min_weight=config.fine_vote_weight)  # [N, V'] (CPU)
        if config.fine_vote_hops > 0:  # the heavy part ([N, V', k, k] comparisons): on the device
            hop_weights = torch.ones(neighbors.shape, device=device) if knn_weights is None else knn_weights
            votes = fill_votes(votes.to(device), neighbors, hop_weights, hops=config.fine_vote_hops).cpu()
        if config.fine_cluster_agreement is not None:
            agreement = mask_agreement(host, votes, min_views=config.fine_agreement_min_views, seed=config.seed)
            fine_masks_ok = ~(agreement < config.fine_cluster_agreement)  # NaN (not measured) stays
            log.info("fine clusters from %d of %d masks", int(fine_masks_ok.sum()), cache.num_masks)
        host_votes, votes = votes, votes.to(device)  # the clusters' evidence reads them on the CPU
    container = None
    if not config.fine_residual_pull:
        container = container_masks(host)  # [num_masks] bool (CPU)
        fine_masks_ok = ~container if fine_masks_ok is None else fine_masks_ok & ~container
        log.info("%d of %d masks contain another mask of their view", int(container.sum()), cache.num_masks)
        container = container.to(device)  # the steps index it with the batch's fine labels
    gfl_first = math.ceil(config.gfl_start * config.iterations)
    clusters: dict[str, GlobalClusters] | None = None
    order: list[int] = []
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.iterations), desc="train click", unit="it", disable=not progress, dynamic_ncols=True)
    for it in bar:
        if it >= gfl_first and (it - gfl_first) % config.gfl_every == 0:
            clusters = _on(compute_global_clusters(feats.detach(), cache, config, fine_masks_ok, host_votes), device)
            assigned = {level: torch.nonzero(c.labels >= 0).squeeze(1) for level, c in clusters.items()}
        if not order:
            order = [usable[i] for i in torch.randperm(len(usable), generator=g).tolist()]
        view = order.pop()
        rows = cache.rows(view)
        count = rows.stop - rows.start
        pick = (torch.randperm(count, generator=g)[: config.batch_pixels] + rows.start).to(device)  # [B]

        rendered, gathered = cache.render(feats, pick, return_gathered=True)  # [B, D], [B, K, D]
        coarse_labels, fine_labels = cache.coarse[pick], cache.fine[pick]
        gate = None if votes is None else _fine_gate(cache, votes, pick, config)
        if container is not None:
            rest = residual_pairs(fine_labels, container)  # [B, B]
            gate = (rest, None, None) if gate is None else (_or(gate[0], rest), *gate[1:])
        if config.uncovered_segment:
            coarse_labels = uncovered_as_segment(coarse_labels, cache.num_masks)
            fine_labels = uncovered_as_segment(fine_labels, cache.num_masks)
        loss_c, loss_f = losses.two_level_contrastive(
            rendered,
            coarse_labels,
            fine_labels,
            coarse_dim=cd,
            margin_coarse=config.margin_coarse,
            margin_fine=config.margin_fine,
            hard_negatives=config.hard_negatives,
            fine_gate=gate,
        )
        sphere = losses.hypersphere(gathered.reshape(-1, config.dim), splits=(cd, config.fine_dim))
        rnorm = losses.rendered_norm(rendered, splits=(cd, config.fine_dim))
        sample = torch.randint(0, n, (min(config.knn_sample, n),), generator=g).to(device)
        knn = losses.knn_smoothness(feats, neighbors, sample, knn_weights)
        loss = loss_c + loss_f + config.weight_sphere * sphere + config.weight_rendered_norm * rnorm
        loss = loss + config.weight_knn * knn
        gfl = feats.new_zeros(())
        if clusters is not None:
            gfl = _gfl_loss(feats, clusters, assigned, config, g)
            loss = loss + config.weight_gfl * gfl

        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % 10 == 0 or it == config.iterations - 1:
            record = {
                "loss": loss.item(),
                "coarse": loss_c.item(),
                "fine": loss_f.item(),
                "knn": knn.item(),
                "gfl": gfl.item(),
            }
            history.append({"iteration": it, **record})
            bar.set_postfix(loss=f"{record['loss']:.3f}", gfl=f"{record['gfl']:.3f}")

    final = unit_halves(feats.detach(), cd).cpu()
    if config.fill_unseen and config.iterations >= config.fill_min_iterations:
        final = fill_unseen_features(final, host, neighbors.cpu(), config)
    clusters = compute_global_clusters(final.to(device), cache, config, fine_masks_ok, host_votes)  # on the CPU
    for level, c in clusters.items():
        assigned = int((c.labels >= 0).sum())
        log.info("%s: %d global clusters, %d of %d Gaussians assigned", level, c.num_clusters, assigned, n)
    return ClickResult(features=final, clusters=clusters, config=config, history=history)


def _or(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a | b


def _fine_gate(
    cache: ContributionCache, votes: Tensor, pick: Tensor, config: ClickConfig
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # [B, B] bool: pulls to drop, pushes to drop, to add
    """The pairs whose fine evidence in this view most reference views contradict (`fine_agreement`).

    Merges are looked for among the pairs of one fine mask only (`pair_agreement`, a few percent of the batch's
    pairs); splits, when asked for, over every pair (`pixel_agreement`)."""
    fv = front_votes(cache, votes, pick)  # [B, V']
    b = pick.shape[0]
    merged = None
    if config.fine_agreement is not None:
        fine = cache.fine[pick]
        i, j = torch.nonzero(torch.triu((fine[:, None] == fine[None, :]) & (fine[:, None] >= 0), 1), as_tuple=True)
        agree, both = pair_agreement(fv[i], fv[j])
        hit = (both >= config.fine_agreement_min_views) & (agree < config.fine_agreement)
        merged = torch.zeros(b, b, dtype=torch.bool, device=pick.device)
        merged[i[hit], j[hit]] = True
        merged[j[hit], i[hit]] = True
    split = None
    if config.fine_split_agreement is not None:
        agree, both = pixel_agreement(fv)
        split = (both >= config.fine_agreement_min_views) & (agree >= config.fine_split_agreement)
    return merged, split, merged if config.fine_merged_push else None


def fill_unseen_features(
    features: Tensor,  # [N, D] trained, unit halves
    cache: ContributionCache,
    neighbors: Tensor,  # [N, k] int
    config: ClickConfig,
) -> Tensor:  # [N, D] unit halves
    """`propagate.fill_unseen` for the Gaussians no cached pixel reaches (colour weights when the cache has
    colours, else uniform)."""
    seen = cache.visibility() > 0
    share = float(seen.float().mean()) if seen.numel() else 0.0
    if share < config.fill_min_seen:
        log.info("no fill: only %.0f%% of the Gaussians are seen by a cached pixel", 100 * share)
        return features
    if cache.colors is not None:
        weights = colour_affinity(neighbors, cache.colors, config.fill_colour_sigma)
    else:
        weights = torch.ones(neighbors.shape)
    filled = fill_unseen(features, neighbors, seen, weights, iterations=config.fill_iterations)
    log.info("filled %d unseen of %d Gaussians from their seen neighbours", int((~seen).sum()), features.shape[0])
    return unit_halves(filled, config.coarse_dim)


def _on(clusters: dict[str, GlobalClusters], device: torch.device) -> dict[str, GlobalClusters]:
    return {level: GlobalClusters(c.centroids.to(device), c.labels.to(device)) for level, c in clusters.items()}


def _gfl_loss(
    feats: Tensor,
    clusters: dict[str, GlobalClusters],
    assigned: dict[str, Tensor],  # level → [A] ids of the Gaussians with a cluster
    config: ClickConfig,
    g: torch.Generator,
) -> Tensor:
    """Pull sampled assigned Gaussians to their global cluster, push them from the others, at both levels."""
    cd = config.coarse_dim
    total = feats.new_zeros(())
    for level, margin in (("coarse", config.margin_coarse), ("fine", config.margin_fine)):
        c, members = clusters[level], assigned[level]
        if members.numel() == 0 or c.num_clusters == 0:
            continue
        count = min(config.gfl_sample, members.numel())
        pick = members[torch.randint(0, members.numel(), (count,), generator=g).to(members.device)]
        f = level_features(feats.index_select(0, pick), level, cd)
        push = None
        if level == "fine":  # the fine push must not move the coarse half (as for fine negatives)
            push = torch.cat([f[:, :cd].detach(), f[:, cd:]], dim=1)
        total = total + losses.cluster_pull_push(f, c.centroids, c.labels[pick], margin=margin, push_features=push)
    return total


class ClickMethod(FeatureMethod):
    """Click-Gaussian read as a field: two named levels, the fine one being coarse ⊕ fine, and the global clusters
    saved by training."""

    name = "click"
    levels = LEVELS
    config_type = ClickConfig
    stored = ("features", "coarse_labels", "fine_labels", "coarse_centroids", "fine_centroids")
    THRESHOLDS: ClassVar[dict[str, float]] = {"coarse": 0.85, "fine": 0.85}
    """Cosine similarity above which a Gaussian is selected (tuned on the accuracy benchmark)."""

    def __init__(self, features: Tensor, tensors: dict[str, Tensor]) -> None:  # features [N, D]
        super().__init__(features, tensors)
        self.coarse_dim = int(tensors.get("coarse_centroids", torch.zeros(0, features.shape[1] // 2)).shape[1])
        self._banks: dict[str, Tensor] = {}  # level → [Dl, N], made on first use (`bank`), dropped by `forget_bank`

    @classmethod
    def train(cls, cache: ContributionCache, neighbors: Tensor, config: ClickConfig, progress: bool) -> dict:
        result = train_click(cache, neighbors, config, progress=progress)
        host = cache.to("cpu")
        tensors: dict[str, Tensor] = {
            "features": result.features,
            "uncovered_share": uncovered_share(host),
            "training_weight": training_weight(host),
        }
        for level, c in result.clusters.items():
            tensors[f"{level}_labels"] = c.labels.to(torch.int32)
            tensors[f"{level}_centroids"] = c.centroids.float()
        return tensors

    def granularity(self, level: str | None, scale: float | None) -> tuple[str | None, float | None]:
        if scale is not None:
            raise SplatsegError("--scale is for SAGA features; click features take --level coarse|fine")
        level = level or "coarse"
        if level not in LEVELS:
            raise SplatsegError(f"unknown level {level!r}; choose coarse or fine")
        return level, None

    def default_threshold(self, level: str | None) -> float:
        return self.THRESHOLDS[level or "coarse"]

    FINE_KEEP_RATIO = math.inf
    """At the fine level only the pieces touching the clicked Gaussians stay (nothing is infinitely big): a part
    is one piece, and what a fine click spills into elsewhere (another book, the bottle's cap beside the clicked
    neck) is not. Measured (shelf, sam-like masks, seed 0, parts): 2D mIoU 0.755 → 0.807, 3D 0.650 → 0.705,
    floater fraction 0.208 → 0.164; tabletop parts unchanged (3D 0.628). Not at the coarse level: an object may be
    several pieces (a table's legs; tabletop objects 0.863 → 0.857 with it)."""

    UNCOVERED_LIMIT = 0.8
    """A coarse click on a masked object drops selected Gaussians that render more than 80% where no mask is
    (`coverage.py`: the unmasked support beneath it, whose large Gaussians cost the rendered views far more than
    their count). Measured in the README's accuracy section."""

    def floater_keep_ratio(self, level: str | None) -> float | None:
        return self.FINE_KEEP_RATIO if level == "fine" else None

    FINE_GROW_EDGE: float | None = 0.99
    """At the fine level, the selection grows from the click through 3D neighbours whose features agree above
    this cosine (grow.py); None = off. Re-scored on the same trained fields (README, "Accuracy now"): shelf
    parts 2D 0.807 → 0.863 (seed 0), 0.808 → 0.845 (seed 1), 3D 0.705 → 0.745, 0.679 → 0.732 (a stem, a
    handle, a lamp's base no longer spill into the part they touch); tabletop parts 2D 0.754 → 0.739, 3D flat
    (its wheels are one part in four pieces: growth keeps the clicked one)."""

    def grow_edge_cos(self, level: str | None) -> float | None:
        return self.FINE_GROW_EDGE if level == "fine" else None

    FINE_PIECES: bool = True
    """At the fine level, pieces of the selection that growth dropped come back when they touch nothing grown, are
    as alike to the grown piece as growth's own cut and lie in the clicked global cluster (pieces.py: a car's
    wheels are one part in four pieces). Re-scored on trained fields (README, "Accuracy now")."""

    def piece_cos(self, level: str | None) -> float | None:
        return self.FINE_GROW_EDGE if level == "fine" and self.FINE_PIECES else None

    HIDDEN_WEIGHT = 0.5
    """A coarse click decides each Gaussian whose training weight is below half the scene's median by the seen
    Gaussians of its surface, not by its feature (hidden.py: objects' bases, covered by the support's larger splats
    in every view, carry the support's feature). Re-scored on the trained fields (README, "Accuracy now"), 3D / 2D
    objects: tabletop s0 0.863 → 0.972 / 0.984 → 0.993, s1 0.845 → 0.976 / 0.975 → 0.993; shelf s0
    0.957 → 0.974 / 0.978 → 0.979, s1 0.959 → 0.978 / 0.976 → 0.979."""

    HIDDEN_LEVELS: tuple[str, ...] = ("coarse", "fine")
    """Where `HIDDEN_WEIGHT` applies. At the fine level the patches follow the features too
    (`FINE_HIDDEN_FEATURE_COS`): with the surface alone, parts 3D / 2D lost on the shelf (s0 0.888 → 0.826 /
    0.916 → 0.883: the hidden faces between stacked books are one surface across both books)."""

    FINE_HIDDEN_FEATURE_COS: float | None = 0.9
    """At the fine level, hidden patches link only through pairs whose fine features agree above this cosine, and
    only add to the selection (hidden.py). Re-scored on trained fields (README, "Accuracy now"), parts 2D / 3D:
    tabletop s0 0.809 → 0.815 / 0.781 → 0.806, s1 0.734 → 0.740 / 0.682 → 0.719; shelf s0 0.916 → 0.919 /
    0.888 → 0.894, s1 0.903 → 0.904 / 0.876 → 0.872."""

    def hidden_weight(self, level: str | None) -> float | None:
        return self.HIDDEN_WEIGHT if level in self.HIDDEN_LEVELS else None

    def hidden_feature_cos(self, level: str | None) -> float | None:
        return self.FINE_HIDDEN_FEATURE_COS if level == "fine" else None

    def bank(self, level: str | None, scale: float | None) -> Tensor:  # [Dl, N]
        if level not in self._banks:
            self._banks[level] = self.build_bank(level, scale)
        return self._banks[level]

    def build_bank(self, level: str | None, scale: float | None) -> Tensor:  # [Dl, N] unit columns
        if level not in LEVELS:
            raise KeyError(level)
        return self._level(self.features, level).T.contiguous()

    def forget_bank(self, level: str | None, scale: float | None) -> None:
        self._banks.pop(level, None)

    def query(self, blended: Tensor, level: str | None, scale: float | None) -> Tensor:  # [D] → [Dl] unit
        return unit_query(blended[: self.coarse_dim] if level == "coarse" else blended)

    def cluster_labels(self, level, scale, gaussian_features) -> np.ndarray:  # [N] int64
        return self.tensors[f"{level}_labels"].long().numpy()

    def _level(self, feats: Tensor, level: str) -> Tensor:  # [N, D] → [N, Dl] unit
        sub = feats[:, : self.coarse_dim] if level == "coarse" else feats
        return F.normalize(sub, dim=1)

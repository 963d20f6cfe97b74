"""SAGA (Segment Any 3D GAussians): 32-d affinity features with a soft scale gate, trained scale-aware.

Each Gaussian has one unit feature f; a 3D scale s (scene units) selects a granularity through a gate
g(s) = sigmoid(Linear(1→32)(q(s))), where q maps s to its quantile among all masks' 3D scales (so the gate sees a
uniform input in [0, 1] whatever the scene's units). The feature at scale s is normalise(f ⊙ g(s)).

Which pixels belong together at scale s (SAGA's correspondence): a mask whose 3D scale is below s counts as a
whole, so two pixels are positive when they share any such mask; a pixel no such mask covers falls back to its
smallest covering mask. Large s therefore groups whole objects, small s parts. Per step, one view's sampled
pixels are contrasted at a few scales drawn between consecutive mask scales of that view (plus one above the
largest and one below the smallest), with a rendered-feature-norm regulariser and kNN smoothness.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import InputError, SplatsegError
from . import losses
from ._lane_kernels import max_products
from .auto_scale import GridPlateauScale, MarginScale, PlateauScale
from .contrib_cache import ContributionCache
from .coverage import uncovered_share
from .method import ClickEvidence, FeatureMethod, unit_query
from .threads import single_threaded_blas

log = logging.getLogger(__name__)

QUANTILES = 1000
"""Rows of the quantile table (as scikit-learn's QuantileTransformer, which SAGA uses, keeps by default)."""
DEFAULT_QUANTILE = 0.8
"""The gate's input when no scale is given: whole objects rather than their parts, short of the largest masks."""


@dataclasses.dataclass(frozen=True)
class SagaConfig:
    iterations: int = 1200
    dim: int = 32
    batch_pixels: int = 512
    scales_per_step: int = 6
    lr: float = 0.01
    gate_lr: float = 0.1
    weight_changing: float = 0.2
    """Weight of the push on scale-dependent negatives (see `saga_pair_loss`)."""
    weight_rendered_norm: float = 0.1
    weight_knn: float = 0.5
    knn_sample: int = 8192
    uncovered_segment: bool = True
    """A view's opaque pixels that no mask covers belong together at every scale (and with no masked pixel), as
    in Click-Gaussian's `uncovered_segment`."""
    min_overhang: float = 1.0
    """Masks that contain other masks but lie mostly (≥ this share) outside them are cut back to them before
    training (`masks.overhang`: an object merged with its support); 1 = off. Off for SAGA: measured, it cost
    tabletop objects 0.93 → 0.78 at the oracle scale (a cut mask keeps its uncut 3D scale, and a jittered part
    that pokes out of its whole is not seen as inside it, so the whole is cut to its other parts)."""
    seed: int = 0


class QuantileTable:
    """q(s): the quantile of a 3D scale among the training masks' scales, in [0, 1], piecewise linear.

    Repeated values in the table are handled as scikit-learn does (average of the interpolation from both ends),
    so a scale shared by many masks maps to the middle of its range.
    """

    def __init__(self, values: np.ndarray) -> None:  # [Q] sorted scale at quantiles linspace(0, 1, Q)
        self.values = np.asarray(values, dtype=np.float64)
        self.levels = np.linspace(0.0, 1.0, len(self.values))

    @staticmethod
    def fit(scales: np.ndarray, num: int = QUANTILES) -> QuantileTable:
        s = np.asarray(scales, dtype=np.float64)
        s = s[np.isfinite(s)]
        if s.size == 0:
            raise ValueError("no mask has a finite 3D scale; SAGA needs masks with depth-measured scales")
        return QuantileTable(np.quantile(s, np.linspace(0.0, 1.0, min(num, max(2, s.size)))))

    def __call__(self, scales: np.ndarray | Tensor | float) -> np.ndarray:  # same shape, float32 in [0, 1]
        s = np.asarray(scales.detach().cpu() if isinstance(scales, Tensor) else scales, dtype=np.float64)
        up = np.interp(s, self.values, self.levels)
        down = -np.interp(-s, -self.values[::-1], -self.levels[::-1])
        return (0.5 * (up + down)).astype(np.float32)

    def inverse(self, q: float) -> float:
        """The scale at quantile q (what `DEFAULT_QUANTILE` means in scene units)."""
        return float(np.interp(q, self.levels, self.values))


class ScaleGate(torch.nn.Module):
    """g(q) = sigmoid(Linear(1 → dim)(q)): a soft per-channel mask chosen by the quantile-normalised scale."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, dim)

    def forward(self, q: Tensor) -> Tensor:  # [S] → [S, dim]
        return torch.sigmoid(self.linear(q.reshape(-1, 1).float()))


@dataclasses.dataclass
class SagaResult:
    features: Tensor  # [N, dim] float32 unit
    gate: ScaleGate
    quantiles: QuantileTable
    config: SagaConfig
    history: list[dict[str, float]]


def scale_correspondence(
    cover: Tensor,  # [B, M] bool: which masks cover each pixel
    mask_scales: Tensor,  # [M] float 3D scales (finite)
    scale: float,
) -> Tensor:  # [B, B] bool: pixels that belong together at this scale
    """SAGA's ground truth at scale s: pixels sharing a mask with scale < s are positive; a pixel no such mask
    covers belongs to its smallest covering mask alone."""
    small = mask_scales < scale  # [M]
    cov_small = cover[:, small].float()  # [B, Ms]
    large = cover & ~small[None, :]
    inf = torch.full(large.shape, np.inf, device=cover.device)
    by_size = torch.where(large, mask_scales[None, :].float().expand_as(large), inf)
    smallest = by_size.argmin(dim=1)  # [B]
    use_large = large.any(1) & ~cov_small.bool().any(1)
    one_hot = torch.zeros_like(cover, dtype=torch.float32)
    one_hot[torch.arange(cover.shape[0], device=cover.device), smallest] = 1.0
    one_hot = one_hot * use_large[:, None]
    groups = torch.cat([cov_small, one_hot], dim=1)  # [B, Ms + M]
    return (groups @ groups.T) > 0


def sample_scales(mask_scales: Tensor, n: int, g: torch.Generator) -> Tensor:  # [M] → [n + 2]
    """As SAGA: one scale above every mask of the view (everything together), one below the smallest (each
    pixel's smallest mask), and `n` drawn uniformly inside random gaps between consecutive distinct mask scales."""
    s = torch.unique(mask_scales)  # sorted
    top = float(s[-1]) if s.numel() else 1.0
    edges = torch.cat([torch.zeros(1), s, torch.tensor([2.0 * top])])  # gaps: (e_i, e_{i+1}]
    gap = torch.randint(0, edges.numel() - 1, (n,), generator=g)
    gap = torch.cat([torch.tensor([edges.numel() - 2, 0]), gap])
    t = torch.rand(n + 2, generator=g)
    return edges[gap + 1] - t * (edges[gap + 1] - edges[gap]) * 0.999


def saga_pair_loss(
    sim: Tensor,  # [S, B, B] cosine of the scale-gated features at S scales
    gt: Tensor,  # [S, B, B] bool correspondence at those scales
    *,
    weight_changing: float = 0.2,
) -> Tensor:  # scalar
    """Scale-aware contrast: mean over positives of (1 − cos) + mean over negatives of max(0, cos), over all
    sampled scales, plus `weight_changing` × the mean push over the negatives that are positive at another
    sampled scale.

    Those scale-dependent pairs (two parts of one object) are what teaches the gate, and SAGA always keeps them
    while subsampling the pairs that agree at every scale; here they get a term of their own, since in the plain
    average they are a few hundred among a million object-against-object pairs. (Weighting them more, or
    averaging per scale, separated parts better but let whole objects fall apart in our tests.)
    """
    b = gt.shape[-1]
    off = 1.0 - torch.eye(b, dtype=sim.dtype, device=sim.device)
    gt_f = gt.to(sim.dtype)
    pos = gt_f * off  # [S, B, B]
    neg = (1.0 - gt_f) * off
    push = torch.relu(sim)
    loss = ((1.0 - sim) * pos).sum() / pos.sum().clamp(min=1.0) + (push * neg).sum() / neg.sum().clamp(min=1.0)
    if weight_changing > 0:
        sometimes = (gt_f.sum(0) > 0).to(sim.dtype)  # [B, B] positive at some sampled scale
        changing = neg * sometimes
        loss = loss + weight_changing * (push * changing).sum() / changing.sum().clamp(min=1.0)
    return loss


def view_scales(cache: ContributionCache, view: int) -> Tensor:  # [M_v] finite 3D scales of a view's masks
    """Unknown (NaN) scales are replaced by the view's median, or by all-equal scales when none is known."""
    s = cache.mask_scale[int(cache.mask_start[view]) : int(cache.mask_start[view + 1])].clone()
    bad = ~torch.isfinite(s)
    if bad.any():
        fill = s[~bad].median() if (~bad).any() else torch.tensor(1.0)
        s[bad] = fill
    return s


AUTO_SCALE_BINS = 24


def object_scales(cache: ContributionCache, *, bins: int = AUTO_SCALE_BINS) -> Tensor:  # [N] float32, NaN = unseen
    """Each Gaussian's object scale: the weighted median, over the cached pixels it contributes to, of the 3D scale
    of the largest mask covering the pixel (the coarse level: SAM's "whole").

    A median over views, not a mean: the views that merged the object with its support or a neighbour give larger
    scales, and they are the minority. Computed as a histogram over `bins` log-spaced scale bins per Gaussian
    (an index_add over the cache), so memory is N × bins floats however many views there are.
    """
    n = cache.num_gaussians
    out = torch.full((n,), float("nan"))
    scale = cache.mask_scale.float()
    finite = torch.isfinite(scale) & (scale > 0)
    if not bool(finite.any()):
        return out
    logs = torch.log(scale[finite])
    lo, hi = float(logs.min()), float(logs.max())
    width = max(hi - lo, 1e-6) / bins
    coarse = cache.coarse.long()
    has = coarse >= 0
    row_scale = torch.full((cache.num_rows,), float("nan"))
    row_scale[has] = scale[coarse[has]]
    ok = torch.isfinite(row_scale) & (row_scale > 0)
    rows = torch.nonzero(ok).squeeze(1)
    b = ((torch.log(row_scale[rows]) - lo) / width).long().clamp(0, bins - 1)  # [R']
    ids = cache.ids[rows].long()  # [R', K]
    w = cache.weights[rows].float()  # [R', K]
    hist = torch.zeros(n * bins)
    hist.index_add_(0, (ids * bins + b[:, None]).reshape(-1), w.reshape(-1))
    hist = hist.reshape(n, bins)
    total = hist.sum(1)
    cum = torch.cumsum(hist, 1)
    median_bin = (cum < 0.5 * total[:, None]).sum(1).clamp(max=bins - 1)  # [N]
    seen = total > 1e-3
    out[seen] = torch.exp(lo + (median_bin[seen].float() + 0.5) * width)
    return out


def train_saga(
    cache: ContributionCache,
    neighbors: Tensor,  # [N, k] int32
    config: SagaConfig = SagaConfig(),
    *,
    progress: bool = True,
) -> SagaResult:
    """Train where the cache is (`ContributionCache.to`; `neighbors` must be there too). Random draws come from
    one CPU generator whatever the device (the scales are drawn and the gate initialised on the CPU), so a GPU run
    draws what a CPU run draws. The result's tensors are on the CPU."""
    from tqdm import tqdm

    device = cache.device
    host = cache.to("cpu")  # the same cache when training on the CPU
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the gate's initial weights
    n = cache.num_gaussians
    try:
        quantiles = QuantileTable.fit(host.mask_scale.numpy())
    except ValueError:  # no mask hit an opaque pixel: train on unit scales (the warnings say why it means little)
        quantiles = QuantileTable(np.array([1.0, 1.0]))
    feats = torch.nn.Parameter(F.normalize(torch.randn(n, config.dim, generator=g), dim=1).to(device))
    gate = ScaleGate(config.dim).to(device)
    neighbors = neighbors.to(device)
    opt = torch.optim.Adam([{"params": [feats], "lr": config.lr}, {"params": gate.parameters(), "lr": config.gate_lr}])
    neighbors = neighbors.long()
    usable = [  # a view without masks (M = 0) has no pairs to contrast
        v for v in range(cache.num_views) if cache.rows(v).stop - cache.rows(v).start >= 2 and cache.cover[v].shape[1]
    ]
    if not usable:
        raise InputError("no view has pixels covered by masks and Gaussians; nothing to train on")
    order: list[int] = []
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.iterations), desc="train saga", unit="it", disable=not progress, dynamic_ncols=True)
    for it in bar:
        if not order:
            order = [usable[i] for i in torch.randperm(len(usable), generator=g).tolist()]
        view = order.pop()
        rows = cache.rows(view)
        local = torch.randperm(rows.stop - rows.start, generator=g)[: config.batch_pixels].to(device)  # [B]
        pick = local + rows.start
        cover = cache.cover[view][local]  # [B, M]
        scales_v = view_scales(host, view)  # CPU: the scales are drawn there
        scales = sample_scales(scales_v, config.scales_per_step, g)  # [S]
        scales_d = scales_v.to(device)
        gt = torch.stack([scale_correspondence(cover, scales_d, float(s)) for s in scales])  # [S, B, B]
        if config.uncovered_segment:
            bare = ~cover.any(1)  # [B]
            gt = gt | (bare[:, None] & bare[None, :])[None]

        rendered = cache.render(feats, pick, unit_features=True)  # [B, D]
        gates = gate(torch.from_numpy(quantiles(scales)).to(device))  # [S, D]
        scaled = F.normalize(rendered[None] * gates[:, None, :], dim=-1)  # [S, B, D]
        sim = scaled @ scaled.transpose(1, 2)  # [S, B, B]
        contrast = saga_pair_loss(sim, gt, weight_changing=config.weight_changing)
        rnorm = losses.rendered_norm(rendered)
        sample = torch.randint(0, n, (min(config.knn_sample, n),), generator=g).to(device)
        knn = losses.knn_smoothness(F.normalize(feats, dim=1), neighbors, sample)
        loss = contrast + config.weight_rendered_norm * rnorm + config.weight_knn * knn

        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % 10 == 0 or it == config.iterations - 1:
            record = {"loss": loss.item(), "contrast": contrast.item(), "knn": knn.item(), "rnorm": rnorm.item()}
            history.append({"iteration": it, **record})
            bar.set_postfix(loss=f"{record['loss']:.3f}")
    return SagaResult(
        features=F.normalize(feats.detach(), dim=1).cpu(),
        gate=gate.cpu().eval(),
        quantiles=quantiles,
        config=config,
        history=history,
    )


class SagaMethod(FeatureMethod):
    """SAGA read as a field: one feature per Gaussian gated by a continuous 3D scale; clusters by HDBSCAN."""

    name = "saga"
    uses_scale = True
    config_type = SagaConfig
    stored = ("features", "quantiles", "gate_weight", "gate_bias")
    THRESHOLD = 0.7
    """Cosine similarity above which a Gaussian is selected (tuned on the accuracy benchmark)."""
    SCALE_CACHE = 2
    """Gated banks kept: a person clicks many times at one slider position."""

    def __init__(self, features: Tensor, tensors: dict[str, Tensor]) -> None:  # features [N, D]
        super().__init__(features, tensors)
        self.quantiles = QuantileTable(tensors["quantiles"].double().numpy())
        self._gate_w = tensors["gate_weight"].float().reshape(-1)  # [D]
        self._gate_b = tensors["gate_bias"].float().reshape(-1)  # [D]
        self._scale_banks: OrderedDict[float, Tensor] = OrderedDict()  # scale → [D, N]
        self._sample: tuple[Tensor, Tensor] | None = None  # see `_count_sample`
        self._sample_norms: OrderedDict[float, Tensor] = OrderedDict()  # scale → [S], see `_count_norms`
        self._stacked_norms: OrderedDict[tuple[float, ...], Tensor] = OrderedDict()  # candidates → [S, K]

    @classmethod
    def train(cls, cache: ContributionCache, neighbors: Tensor, config: SagaConfig, progress: bool) -> dict:
        result = train_saga(cache, neighbors, config, progress=progress)
        host = cache.to("cpu")
        return {
            "auto_scale": object_scales(host),
            "uncovered_share": uncovered_share(host),
            "features": result.features,
            "gate_weight": result.gate.linear.weight.detach(),
            "gate_bias": result.gate.linear.bias.detach(),
            "quantiles": torch.from_numpy(result.quantiles.values.astype("float32")),
        }

    @property
    def default_scale(self) -> float:
        """Scene units: the masks' scale at the 80th percentile."""
        return self.quantiles.inverse(DEFAULT_QUANTILE)

    def granularity(self, level: str | None, scale: float | None) -> tuple[str | None, float | None]:
        if level is not None:
            raise SplatsegError("--level is for click features; SAGA features take --scale S (scene units)")
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise SplatsegError(f"--scale must be a positive number (scene units), got {scale}")
        return None, float(self.default_scale if scale is None else scale)

    def default_threshold(self, level: str | None) -> float:
        return self.THRESHOLD

    UNCOVERED_LIMIT = 0.8
    """As Click-Gaussian's coarse level (`coverage.py`); SAGA's every scale is an object-level query here."""
    AUTO_SCALE: ClassVar[MarginScale | PlateauScale] = GridPlateauScale()
    """The rule for a click without a scale (auto_scale.py; on a grid, so that clicks share their scales' banks);
    measured in the README's accuracy section."""
    COUNT_SAMPLE = 65536
    """Gaussians (a fixed random subset beyond this) counted per scale when the rule sizes selections."""

    def click_scale(self, evidence: ClickEvidence) -> float | None:
        """SAGA without a slider: `AUTO_SCALE` from the clicked pixel's whole-mask scale (`start_scale`). None (the
        default scale) when that is unknown."""
        start = self.start_scale(evidence)
        if start is None:
            return None
        scales = self.AUTO_SCALE.candidates(start, self.quantiles.inverse(1.0))
        if len(scales) == 1:
            return float(scales[0])
        queries = [self.features.index_select(0, ids).T.double() @ w for ids, w in evidence.contributors]  # [D] each
        return float(self.AUTO_SCALE.choose(scales, self.selection_counts(queries, scales)))

    def start_scale(self, evidence: ClickEvidence) -> float | None:
        """The clicked object's whole-mask scale: the largest workspace mask covering the clicked pixel when the
        click is in a view the masks were made for (issue 10's "automatic scale from the clicked pixel's masks");
        otherwise the clicked Gaussians' object scale (`object_scales`, saved by training: the median over the
        views that saw them). None when neither is known."""
        direct = np.array([s for s in evidence.mask_scales if np.isfinite(s) and s > 0], dtype=np.float64)
        if direct.size:
            return float(np.exp(np.log(direct).mean()))
        auto = self.tensors.get("auto_scale")
        if auto is None:
            return None
        logs, weights = [], []
        for ids, w in evidence.contributors:
            s = auto.index_select(0, ids).double()
            ok = torch.isfinite(s) & (s > 0)
            logs.append(torch.log(s[ok]))
            weights.append(w[ok])
        if not logs or sum(float(w.sum()) for w in weights) <= 1e-9:
            return None
        lg, wt = torch.cat(logs), torch.cat(weights)
        return float(torch.exp((lg * wt).sum() / wt.sum()))

    def selection_counts(self, queries: list[Tensor], scales: list[float]) -> list[int]:  # queries: [D] each
        """How many Gaussians (of a fixed sample, beyond `COUNT_SAMPLE`) the clicked features select at each scale,
        before negatives and the floater filter: what `AUTO_SCALE` sizes. All scales in two products: the cosine of
        f ⊙ g with a unit query is (f · (q ⊙ g)) / ‖f ⊙ g‖, and ‖f ⊙ g‖² = f² · g², so the gated bank is never
        built (`bank` builds it for one scale, the reference the test compares with)."""
        if not queries:
            return [0] * len(scales)
        feats, _ = self._count_sample()  # [S, D]
        gates = torch.stack([self._gate(s) for s in scales])  # [K, D]
        q = torch.stack([x.float() for x in queries])  # [P, D]
        qg = F.normalize(q[:, None, :] * gates[None, :, :], dim=-1)  # [P, K, D] unit gated queries
        dots = (feats @ (qg * gates[None]).reshape(-1, qg.shape[-1]).T).reshape(len(feats), *qg.shape[:2])  # [S,P,K]
        norms = self._count_norms(scales, gates)  # [S, K]
        cos = dots[:, 0] / norms if len(queries) == 1 else (dots / norms[:, None, :]).amax(1)  # [S, K]
        return (cos > self.THRESHOLD).sum(0).tolist()

    COUNT_NORMS = 64
    """Scales whose [S] sample norms `_count_norms` keeps (256 KB each; and the last 4 candidate lists stacked):
    the automatic scale's grid points recur."""

    def _count_norms(self, scales: list[float], gates: Tensor) -> Tensor:  # gates [K, D] → [S, K]
        """‖f ⊙ g‖ over the count sample per scale, kept per scale: the automatic scale's candidates are grid
        points (`GridPlateauScale`), so a click mostly finds them all made and pays one product, not two."""
        _, squares = self._count_sample()
        keys = tuple(round(float(s), 9) for s in scales)
        stacked = self._stacked_norms.get(keys)  # the same candidates again (the same grid start): made already
        if stacked is not None:
            self._stacked_norms.move_to_end(keys)
            return stacked
        cols = []
        for key, g in zip(keys, gates, strict=True):
            norm = self._sample_norms.get(key)
            if norm is None:
                norm = (squares @ (g * g)).clamp(min=1e-24).sqrt()  # [S]
                self._sample_norms[key] = norm
                while len(self._sample_norms) > self.COUNT_NORMS:
                    self._sample_norms.popitem(last=False)
            else:
                self._sample_norms.move_to_end(key)
            cols.append(norm)
        stacked = torch.stack(cols, dim=1)
        self._stacked_norms[keys] = stacked
        while len(self._stacked_norms) > 4:  # ≤ 4.5 MB each (17 candidates)
            self._stacked_norms.popitem(last=False)
        return stacked

    def _count_sample(self) -> tuple[Tensor, Tensor]:  # [S, D] features and their squares
        if self._sample is None:
            n = self.features.shape[0]
            feats = self.features
            if n > self.COUNT_SAMPLE:
                g = torch.Generator().manual_seed(0)
                feats = feats.index_select(0, torch.randperm(n, generator=g)[: self.COUNT_SAMPLE])
            self._sample = (feats, feats * feats)
        return self._sample

    def bank(self, level: str | None, scale: float | None) -> Tensor:  # [D, N]
        key = round(float(scale), 9)
        bank = self._scale_banks.get(key)
        if bank is None:
            bank = self.build_bank(level, key)
            self._scale_banks[key] = bank
            while len(self._scale_banks) > self.SCALE_CACHE:
                self._scale_banks.popitem(last=False)
        else:
            self._scale_banks.move_to_end(key)
        return bank

    def forget_bank(self, level: str | None, scale: float | None) -> None:
        self._scale_banks.pop(round(float(scale), 9), None)

    def build_bank(self, level: str | None, scale: float | None) -> Tensor:  # [D, N] unit gated columns
        """The gated bank at `scale` (rounded as `bank` keys it), built without touching any cache: the field's
        background builder calls it outside the click lock."""
        key = round(float(scale), 9)
        return F.normalize(self.features * self._gate(key)[None, :], dim=1).T.contiguous()

    selects_unbuilt = True
    UNBUILT_MARGIN = 1e-4
    """Slack of `select_unbuilt`'s screen: its cosine and the bank's differ by float32 rounding (~1e-6 for 32
    channels), so every Gaussian within this of the threshold is decided by the bank's own arithmetic."""
    UNBUILT_ROWS = 8192
    """Rows per slice of `select_unbuilt`'s screen: 1 MB of features (and its squares) stays in the core's cache
    for both of its products."""

    def select_unbuilt(
        self,
        positives: Tensor,  # [P, D] unit gated queries (`query`)
        negatives: Tensor | None,  # [Q, D] or None
        threshold: float,
        level: str | None,
        scale: float | None,
    ) -> np.ndarray:  # [S] ascending Gaussian ids
        """The selection the gated bank at `scale` would give (`FeatureField._scores` over it, then the threshold
        and negatives), without building the bank: the click at a scale whose bank is not built yet.

        The cosine of a unit query q with normalise(f ⊙ g) is (f · (q ⊙ g)) / √(f² · g²): two products over the
        ungated features, read once in slices. That screen differs from the bank's float32 value by rounding
        only, so a Gaussian more than `UNBUILT_MARGIN` above the threshold is selected and one more than that
        below is not; the few in between (and non-finite ones) get their gated column built exactly as `bank`
        builds it and compared as the reference does. With negatives, every candidate is decided that way (the
        rule compares two scores). Checked against the whole-bank product in tests/test_saga_unbuilt.py.
        """
        key = round(float(scale), 9)
        gate = self._gate(key)  # [D]
        g = gate.numpy()
        pos = positives.detach().cpu().numpy().astype(np.float32)  # [P, D]
        weights = np.ascontiguousarray((pos * g[None, :]).T)  # [D, P]: f · (q ⊙ g) for every query at once
        g2 = (g * g).astype(np.float32)  # [D]
        feats = self.features.numpy()  # [N, D]
        n = feats.shape[0]
        best = np.empty(n, dtype=np.float32)
        squares = np.empty((min(n, self.UNBUILT_ROWS), feats.shape[1]), dtype=np.float32)  # reused per slice
        with single_threaded_blas(), np.errstate(invalid="ignore", over="ignore"):  # non-finite rows: checked below
            for lo in range(0, n, self.UNBUILT_ROWS):
                rows = feats[lo : lo + self.UNBUILT_ROWS]  # [R, D]
                sq = np.multiply(rows, rows, out=squares[: rows.shape[0]])
                norm = sq @ g2  # [R]
                np.sqrt(np.maximum(norm, 1e-24, out=norm), out=norm)
                dots = rows @ weights[:, 0] if weights.shape[1] == 1 else (rows @ weights).max(axis=1)  # [R]
                np.divide(dots, norm, out=best[lo : lo + rows.shape[0]])
        margin = self.UNBUILT_MARGIN
        unsure = ~np.isfinite(best)
        has_neg = negatives is not None and negatives.shape[0] > 0
        if has_neg:
            sure = np.zeros(n, dtype=bool)
            check = np.flatnonzero((best > threshold - margin) | unsure)
        else:
            sure = best > threshold + margin
            check = np.flatnonzero(((best > threshold - margin) & ~sure) | unsure)
        picked = np.flatnonzero(sure)
        if check.size:
            ids = torch.from_numpy(check)
            cols = F.normalize(self.features.index_select(0, ids) * gate[None, :], dim=1).T.contiguous().numpy()
            s = max_products(pos, cols)  # the bank's own sums (`FeatureField._scores`)
            ok = s > threshold
            if has_neg:
                ok &= max_products(negatives.detach().cpu().numpy().astype(np.float32), cols) <= s
            picked = np.union1d(picked, check[ok])
        return picked

    def query(self, blended: Tensor, level: str | None, scale: float | None) -> Tensor:  # [D] → [D] unit
        return unit_query(blended * self._gate(scale))

    def cluster_labels(self, level, scale, gaussian_features, *, sample: int = 20000, seed: int = 0) -> np.ndarray:
        """HDBSCAN over the gated features of a sample of Gaussians, every Gaussian then joining its nearest
        cluster."""
        from .clusters import assign_to_clusters, hdbscan_labels

        feats = gaussian_features()  # [N, D]
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(feats), min(sample, len(feats)), replace=False)
        labels = torch.from_numpy(hdbscan_labels(feats[pick].numpy(), min_cluster_size=max(10, len(pick) // 500)))
        if labels.numel() == 0 or int(labels.max()) < 0:
            return np.full(len(feats), -1, dtype=np.int64)
        num = int(labels.max()) + 1
        sums = torch.zeros(num, feats.shape[1])
        valid = labels >= 0
        sums.index_add_(0, labels[valid], feats[pick][valid])
        return assign_to_clusters(feats, F.normalize(sums, dim=1), confidence=0.0).numpy()

    def _gate(self, scale: float) -> Tensor:  # [D]
        q = float(self.quantiles(np.array([scale]))[0])
        return torch.sigmoid(self._gate_w * q + self._gate_b)

"""`FeatureField`: trained per-Gaussian features, ready to answer clicks in milliseconds.

A click is one ray, not a frame (docs/architecture.md): `RayCaster.weights` gives the clicked pixel's contributors,
their blend gives the clicked feature, and one matrix-vector product against every Gaussian's normalised feature gives
the similarities. Everything that does not depend on the click is prepared once: the RayCaster, the normalised
features per level (stored transposed, [D, N], which makes the product several times faster on a CPU than the
[N, D] layout), and the floater filter's voxel graph. SAGA's features depend on the scale; the gated, normalised
matrix and its `PrunedBank` are kept per scale within a byte budget (bank_cache.py), and a click at a scale whose
bank is not built selects exactly without it while a background thread builds it. What differs
between methods lives in their `FeatureMethod` (method.py, click.py, saga.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.errors import SplatsegError
from ..core.scene import GaussianScene
from ..io.scene_folder import find_model, load_scene, scene_dir_of
from ..masks.maskset import MaskSet
from ..masks.prepare import MASKS_NAME
from ..render import RayCaster
from ..workspace import Workspace
from ._lane_kernels import max_products
from ._query_kernels import SEEDS, blend_ray
from ._query_kernels import warm_up as warm_up_blend
from .bank_cache import DEFAULT_BUDGET, BankBuilder, BankCache
from .coverage import drop_uncovered
from .floaters import FloaterFilter
from .grow import NeighbourGrowth
from .hidden import HiddenPatches, splat_normals
from .method import ClickEvidence, FeatureMethod, method_class
from .neighbors import knn_neighbors
from .pieces import SeparatePieces
from .pruned import PrunedBank
from .store import read_features, trained_methods
from .threads import compute_threads


@dataclasses.dataclass(frozen=True)
class SegmentResult:
    """The answer to one click (or several)."""

    mask: np.ndarray  # [N] bool: the selected Gaussians, in the model file's order
    score_fn: Callable[[], np.ndarray] = dataclasses.field(repr=False, compare=False)
    """Computes `scores` when first asked: the fast path reads only the blocks that can pass the threshold."""
    milliseconds: float
    """Wall time of the whole segmentation (rays, similarity, threshold, negatives, floater filter)."""
    threshold: float
    level: str | None = None
    scale: float | None = None

    @functools.cached_property
    def scores(self) -> np.ndarray:  # [N] float32: similarity to the clicked feature (max over positives)
        return self.score_fn()

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def _all_finite(tensor: Tensor, step: int = 1 << 22) -> bool:
    """Whether every value is finite, without an N × D temporary. float32 / float16 (what a features file holds):
    one float64 sum, which a NaN or an infinity makes non-finite and finite values cannot overflow (45 ms for
    3M × 24 where `isfinite` in slices took 700 ms); other dtypes: `isfinite` in slices."""
    if not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
        return True
    flat = tensor.reshape(-1)
    if tensor.dtype in (torch.float32, torch.float16):
        with np.errstate(invalid="ignore", over="ignore"):  # inf + −inf is NaN: what this looks for
            return bool(np.isfinite(np.add.reduce(flat.numpy(), dtype=np.float64)))
    return all(bool(torch.isfinite(flat[s : s + step]).all()) for s in range(0, flat.numel(), step))


def _check_tensors(method: str, tensors: dict[str, Tensor], n: int) -> None:
    """A features file from disk has every tensor its method stores (a bare `features` would select nothing)."""
    rerun = f"run `splatseg train SCENE --method {method}` again"
    missing = [key for key in method_class(method).stored if key not in tensors]
    if missing:
        raise SplatsegError(f"the {method} features file lacks {', '.join(missing)}; {rerun}")
    if tensors["features"].ndim != 2:
        raise SplatsegError(f"the {method} features are not a [N, D] array; {rerun}")
    for key in ("coarse_labels", "fine_labels", "training_weight", "uncovered_share", "auto_scale"):
        if key in tensors and tuple(tensors[key].shape) != (tensors["features"].shape[0],):
            raise SplatsegError(f"the {method} features' {key} has shape {tuple(tensors[key].shape)}; {rerun}")
    for key in ("features", "gate_weight", "gate_bias"):  # `splatseg train` never writes a non-finite one
        if key in tensors and not _all_finite(tensors[key]):
            # One NaN or infinite feature blends into every ray it is on: the clicks there select nothing, silently.
            what = "features hold" if key == "features" else f"features' {key} holds"
            raise SplatsegError(f"the {method} {what} NaN or infinite values; {rerun}")
    dim = tensors["features"].shape[1]
    if dim == 0:  # a [N, 0] array would load and select nothing, silently
        raise SplatsegError(f"the {method} features have no channels; {rerun}")
    for level, widths in (("coarse", range(1, dim)), ("fine", (dim,))):
        # Click's coarse half is the features' first columns (the centroids' width says how many), its fine level
        # the whole vector: a file whose features are narrower than its centroids mixes the halves, silently.
        centroids = tensors.get(f"{level}_centroids")
        if centroids is not None and (centroids.ndim != 2 or centroids.shape[1] not in widths):
            raise SplatsegError(
                f"the {method} features' {level}_centroids have shape {tuple(centroids.shape)} for features of "
                f"{dim} channels; {rerun}"
            )
    for key in ("gate_weight", "gate_bias"):  # SAGA's scale gate: one weight and one bias per feature channel
        if key in tensors and tensors[key].numel() != dim:
            count = tensors[key].numel()
            raise SplatsegError(f"the {method} features' {key} has {count} values for {dim} channels; {rerun}")
    quantiles = tensors.get("quantiles")
    if quantiles is not None:  # SAGA's scale → quantile table: ascending finite scales (np.interp's table)
        q = quantiles.double().reshape(-1)
        if quantiles.ndim != 1 or q.numel() < 2 or not bool(torch.isfinite(q).all()) or bool((q[1:] < q[:-1]).any()):
            raise SplatsegError(f"the {method} features' quantiles are not an ascending table of scales; {rerun}")
    for level in ("coarse", "fine"):
        labels, centroids = tensors.get(f"{level}_labels"), tensors.get(f"{level}_centroids")
        if labels is None or centroids is None:
            continue
        # A cluster id indexes and sizes arrays (the pieces step's `np.bincount` of the clicked clusters): one past
        # the centroids would read outside them, a huge one would allocate by it.
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise SplatsegError(f"the {method} features' {level}_labels are {labels.dtype}, not cluster ids; {rerun}")
        if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= centroids.shape[0]):
            raise SplatsegError(
                f"the {method} features' {level}_labels name clusters outside the {centroids.shape[0]} "
                f"{level} centroids; {rerun}"
            )
    neighbors = tensors.get("neighbors")
    if neighbors is not None:
        # The growth, pieces, hidden-patch and floater kernels index with this table unchecked (numba does no
        # bounds checks), so a wrong entry must stop here rather than read outside the arrays.
        rows = tensors["features"].shape[0]
        if (
            neighbors.ndim != 2
            or neighbors.shape[0] != rows
            or not 1 <= neighbors.shape[1] <= 64
            or neighbors.dtype.is_floating_point
            or neighbors.dtype.is_complex
            or neighbors.dtype == torch.bool
        ):
            raise SplatsegError(
                f"the {method} features' neighbors is not an [N, k] integer table (shape {tuple(neighbors.shape)}, "
                f"{neighbors.dtype}); {rerun}"
            )
        if neighbors.numel() and (int(neighbors.min()) < 0 or int(neighbors.max()) >= rows):
            raise SplatsegError(f"the {method} features' neighbors point outside the {rows} Gaussians; {rerun}")


class FeatureField:
    """Trained features of one method over one scene; see `load_field`."""

    def __init__(
        self,
        scene: GaussianScene,
        method: str,
        tensors: dict[str, Tensor],
        *,
        floater_filter: bool = True,
        masks: MaskSet | None = None,
    ) -> None:
        self.scene = scene
        self.masks = masks
        """The workspace's masks, when present: a click in one of their views takes its automatic scale from
        them (`auto_scale`)."""
        self.method: str = method
        """The method's registered name ("click", "saga")."""
        n = len(scene)
        feats = tensors["features"].float().contiguous()  # [N, D]
        if feats.shape[0] != n:
            raise SplatsegError(
                f"the {method} features are for {feats.shape[0]} Gaussians but the scene has {n}; "
                f"run `splatseg train` again"
            )
        self.features = feats
        self.impl: FeatureMethod = method_class(method)(feats, tensors)
        """What differs between methods (click.py, saga.py): granularity, banks, queries, clusters."""
        self.levels: tuple[str, ...] = self.impl.levels
        """Named granularity levels ("coarse", "fine"); empty when the method takes a `scale` instead."""
        self.uses_scale: bool = self.impl.uses_scale
        self._tensors = tensors
        self._lock = threading.RLock()
        self._caster: RayCaster | None = None
        self._floaters: FloaterFilter | None = None
        self._use_floater_filter = floater_filter
        self.fast: bool = True
        """Select through `PrunedBank` (exact, reads only the blocks that can pass); False runs the reference
        product over every Gaussian (kept for tests and the benchmark's before/after)."""
        self._pruned = BankCache(DEFAULT_BUDGET)
        """(level, scale) → (None, the bank's `PrunedBank`: the field's only copy of it, `_bank`), least recently used
        evicted beyond `BankCache.budget` bytes (bank_cache.py; `bank_budget` sets it)."""
        self.build_in_background: bool = True
        """A click at a granularity whose `PrunedBank` is not built, for a method that can select without it (SAGA's
        `select_unbuilt`), takes that exact path and has the bank built in the background (`BankBuilder`); False
        builds it in the click (the previous path: seconds at 1M Gaussians)."""
        self._builder = BankBuilder(self._build_banks, self._store_banks, self._lock)
        self.cells_in_block_order: bool = True
        """The floater filter reads the selection's cells from a copy of `cell_of` in `PrunedBank` order
        (`_cells_in_block_order`); False gathers them at the selected ids (the benchmark's previous path)."""
        self._block_cells: dict[tuple[str | None, float | None], np.ndarray] = {}  # per `_pruned` entry
        self._growths: dict[tuple[str | None, float | None], tuple[Tensor, NeighbourGrowth]] = {}
        # (weight share, normal cosine, (level, feature cosine) at a part level) → patches
        self._hidden: dict[tuple[float, float, tuple[str | None, float] | None], HiddenPatches] = {}
        self.hidden_on_mask: bool = True
        """The hidden patches (hidden.py) change the click's mask in place (`HiddenPatches.follow`); False runs
        them over the selection's ids (`follow_ids`, the benchmark's previous path)."""
        self._piece_finders: dict[tuple[str | None, float | None], tuple[Tensor, SeparatePieces]] = {}
        self._neighbors32: np.ndarray | None = None  # `_neighbor_table`
        self.pieces_by_node: bool = True
        """The fine level's pieces read the features at the selection's `PrunedBank` positions, ascending
        (`SeparatePieces.after_growth`'s `block_bank`); False at the Gaussian ids (the previous path)."""
        self.blend_compiled: bool = True
        """A click's rays are blended into its clicked feature and seeds by one compiled pass on a CPU field
        (`_query_kernels.blend_ray`, compiled at `warm_up`; equal to torch's blend to float32 rounding); False
        blends in torch (the previous path)."""

    # ---- public API ----------------------------------------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        return len(self.scene)

    @property
    def default_scale(self) -> float | None:
        """The scale used when none is given (scene units), for methods that take one; else None."""
        return self.impl.default_scale

    @property
    def quantiles(self):
        """SAGA's table of mask scales (the viewer's slider maps through it)."""
        return self.impl.quantiles  # AttributeError for methods without one, as before

    def default_threshold(self, level: str | None = None) -> float:
        return self.impl.default_threshold(level)

    def segment(
        self,
        camera: Camera,
        positives: Sequence[tuple[float, float]],
        negatives: Sequence[tuple[float, float]] = (),
        *,
        level: str | None = None,
        scale: float | None = None,
        threshold: float | None = None,
        filter_floaters: bool | None = None,
    ) -> SegmentResult:
        """Select the Gaussians that belong with the clicked pixels.

        `positives` / `negatives` are positions in `camera`'s pixels, (x, y) with pixel (i, j)'s centre at
        (i + 0.5, j + 0.5). A Gaussian is selected when its similarity to some positive exceeds `threshold` and it
        is not closer to a negative than to every positive; then the floater filter keeps what is connected to the
        clicked Gaussians. `level` ("coarse" / "fine", click) or `scale` (scene units, SAGA) picks the granularity.
        """
        start = time.perf_counter()
        if not positives:
            raise SplatsegError("segment needs at least one positive click")
        # One click at a time: the viewer's callbacks run on several threads, and the caches are shared.
        with self._lock, compute_threads():
            return self._segment(camera, positives, negatives, level, scale, threshold, filter_floaters, start)

    def _segment(self, camera, positives, negatives, level, scale, threshold, filter_floaters, start) -> SegmentResult:
        rays = self._rays(camera, positives)  # cast once: SAGA's automatic scale reads them too
        if scale is None and level is None and self.uses_scale:
            scale = self._auto_scale(camera, positives, rays)
        level, scale = self._granularity(level, scale)
        thr = self.default_threshold(level) if threshold is None else float(threshold)
        pos_q, seeds = self._queries(camera, positives, level, scale, rays)
        neg_q = self._queries(camera, negatives, level, scale)[0] if negatives else None
        unbuilt = self.fast and pos_q.shape[0] > 0 and self._unbuilt(level, scale)

        def score_fn(pos_q=pos_q) -> np.ndarray:  # [N] float32
            with self._lock:  # the prepared bank now (an unbuilt click's: the background builder's, or made here)
                return self._scores_at(pos_q, level, scale).numpy()

        use_filter = self._use_floater_filter if filter_floaters is None else filter_floaters
        cells = None
        positions = None  # [S] the selection as ascending `PrunedBank` positions, while it is aligned with them
        if unbuilt:
            selected = self.impl.select_unbuilt(pos_q, neg_q, thr, level, scale)
            mask = None
        elif self.fast and pos_q.shape[0]:
            pruned = self._pruned_bank(level, scale)
            positions, _ = pruned.select_positions(pos_q, neg_q, thr)
            selected = None  # the ids (`pruned.perm[positions]`): gathered only by a step that reads them, below
            mask = None
        else:
            # NumPy from here on: its comparisons over 1M floats are several times cheaper than torch's on CPU.
            s = score_fn()
            mask = s > thr
            if neg_q is not None and neg_q.shape[0]:
                mask &= self._scores_at(neg_q, level, scale).numpy() <= s
            selected = np.flatnonzero(mask)

            def score_fn(s=s) -> np.ndarray:  # already computed
                return s

        def ids() -> np.ndarray:  # the selection's Gaussian ids, while it is held as block positions
            return pruned.perm[positions]

        count = positions.size if selected is None else selected.size
        limit = self.impl.uncovered_limit(level)
        share = self._tensors.get("uncovered_share")
        if use_filter and count and limit is not None and share is not None and seeds.size:
            selected = ids() if selected is None else selected
            selected = drop_uncovered(selected, seeds, share, limit)
            if selected.size != count:
                count = selected.size
                mask = None  # rebuilt from `selected` below
                cells = positions = None  # no longer aligned with `selected`: the filter gathers them
        edge_cos = self.impl.grow_edge_cos(level) if use_filter else None
        piece_cos = self.impl.piece_cos(level) if use_filter else None
        extra = None  # further pieces of the clicked part (pieces.py): added after the floater filter
        if edge_cos is not None and count:
            growth = self._growth(level, scale)
            before, before_positions, before_count, keep = selected, positions, count, None
            if positions is not None and growth.fast and growth.order is pruned.perm:  # the graph's own numbering
                # `select_positions` lists the positions ascending: growth need not check them
                keep = growth.keep_nodes(positions, seeds, edge_cos=growth.edge_cut(edge_cos), ascending=True)
                if keep is not None and not keep.all():
                    positions = positions[keep]  # still in block order: no gather by id
                    selected = None if selected is None else selected[keep]
                    mask, count = None, positions.size
            else:
                selected = before = ids() if selected is None else selected
                grown = growth(selected, seeds, edge_cos=growth.edge_cut(edge_cos))
                if grown.size != selected.size:
                    selected, mask, positions, count = grown, None, None, grown.size
            if piece_cos is not None and count != before_count:
                pieces = self._pieces(level, scale)
                if keep is not None:  # growth's mask over the selection's nodes: no marking by id
                    if not self.pieces_by_node and selected is None:  # the previous path reads the ids
                        before, selected = pruned.perm[before_positions], pruned.perm[positions]
                    extra = pieces.after_growth(  # over the whole thresholded selection's positions
                        before,
                        keep,
                        selected,
                        before_positions,
                        growth.rank,
                        seeds,
                        piece_cos=growth.edge_cut(piece_cos),
                        block_bank=pruned if self.pieces_by_node else None,
                    )
                else:
                    extra = pieces(before, selected, seeds, piece_cos=growth.edge_cut(piece_cos))
        floaters = self._floater_filter() if use_filter and count else None
        if floaters is not None and self._filter_into_mask(floaters, positions):
            # The compiled filter writes the click's mask from the block positions (`FloaterFilter.into_mask`).
            out = np.zeros(self.num_gaussians, dtype=bool)
            floaters.into_mask(
                positions,
                pruned.perm,
                self._cells_in_block_order(level, scale),
                seeds,
                out,
                keep_ratio=self.impl.floater_keep_ratio(level),
            )
            if extra is not None and extra.size:  # the further pieces, disjoint from what the filter kept
                out[extra] = True
            patches = self._hidden_patches(level)
            if patches is not None:
                patches.follow(out, seeds)  # in place
        elif floaters is not None:
            if positions is not None and self.cells_in_block_order:
                cells = self._cells_in_block_order(level, scale)[positions]  # ascending: a sequential read
            selected = ids() if selected is None else selected
            kept = floaters(selected, seeds, keep_ratio=self.impl.floater_keep_ratio(level), cells=cells)
            if extra is not None and extra.size:  # disjoint from `kept` (nothing grown): no sort needed
                kept = np.concatenate([kept, extra])
            patches = self._hidden_patches(level)  # the hidden Gaussians follow their seen surface (hidden.py)
            if patches is not None and not self.hidden_on_mask:  # the previous path: over the ids
                kept, mask = patches.follow_ids(kept, seeds), None
            if kept.size != selected.size or mask is None:
                out = np.zeros(self.num_gaussians, dtype=bool)
                out[kept] = True
            else:
                out = mask
            if patches is not None and self.hidden_on_mask:
                patches.follow(out, seeds)  # in place
        elif mask is None:
            out = np.zeros(self.num_gaussians, dtype=bool)
            out[ids() if selected is None else selected] = True
        else:
            out = mask
        if unbuilt:  # after this click's own work, which the builder would otherwise compete with
            self._builder.request((level, scale))
        return SegmentResult(
            mask=out,
            score_fn=score_fn,
            milliseconds=(time.perf_counter() - start) * 1e3,
            threshold=thr,
            level=level,
            scale=scale,
        )

    def _filter_into_mask(self, floaters: FloaterFilter, positions: np.ndarray | None) -> bool:
        """Whether a click's floater filter can write its mask from the selection's block positions: the compiled
        filter, the cells in block order and the selection still aligned with its positions (the further pieces, if
        any, are then set in that mask, and the hidden patches change it in place)."""
        return floaters.compiled and self.cells_in_block_order and self.hidden_on_mask and positions is not None

    def auto_scale(
        self, camera: Camera, positives: Sequence[tuple[float, float]], *, from_masks: bool = True
    ) -> float | None:
        """The scale a click without one queries at (`FeatureMethod.click_scale`: SAGA's automatic scale from
        the clicked pixel's masks); None for methods without scales, or when the method has nothing to go on.
        `from_masks=False` ignores the workspace masks (the benchmark's "object" variant)."""
        with self._lock:
            return self._auto_scale(camera, positives, self._rays(camera, positives), from_masks=from_masks)

    def _auto_scale(
        self,
        camera: Camera,
        positives: Sequence[tuple[float, float]],
        rays: list[tuple[Tensor, Tensor]],  # `_rays(camera, positives)`
        *,
        from_masks: bool = True,
    ) -> float | None:
        contributors = [(ids.cpu().long(), w.cpu().double()) for ids, w in rays if ids.numel()]
        mask_scales = self._mask_scales(camera, positives) if from_masks else []
        return self.impl.click_scale(ClickEvidence(contributors, mask_scales))

    def _mask_scales(self, camera: Camera, positives: Sequence[tuple[float, float]]) -> list[float]:
        """The clicked pixels' whole-mask scales when `camera` is a view the workspace masks were made for (same
        name, same size); empty otherwise (a browser's camera)."""
        if self.masks is None:
            return []
        try:
            if camera.name not in self.masks.views:
                return []
            view = self.masks.read_view(camera.name)
        except (OSError, ValueError, SplatsegError):  # masks removed or unreadable since loading: no evidence
            return []
        if (view.width, view.height) != (camera.width, camera.height):
            return []
        return [view.coarse_scale_at(int(np.floor(x)), int(np.floor(y))) for x, y in positives]

    def gaussian_features(self, level: str | None = None, scale: float | None = None) -> Tensor:  # [N, D] unit
        """Every Gaussian's normalised feature at a level (click) or scale (SAGA): for PCA colouring and
        segment-everything. A read-only view of the method's cache (transposed storage), or, once the field keeps the
        granularity's bank only in its `PrunedBank`, a copy put back in Gaussian order: copy before changing it."""
        level, scale = self._granularity(level, scale)
        with self._lock:
            return self._bank(level, scale).T

    def cluster_labels(self, level: str | None = None, *, scale: float | None = None) -> np.ndarray:  # [N] int64
        """A segment id per Gaussian (-1 = none). Click: the global clusters saved by training. SAGA: HDBSCAN over
        the gated features of a sample of Gaussians, every Gaussian then joining its nearest cluster."""
        level, scale = self._granularity(level, scale)
        return self.impl.cluster_labels(level, scale, lambda: self.gaussian_features(level, scale))

    def floater_filter(
        self, selected: np.ndarray, seeds: np.ndarray, *, keep_ratio: float | None = None
    ) -> np.ndarray:  # [S] ids → [S'] ids kept
        """The selected Gaussians connected to the clicked ones (see floaters.py)."""
        n = self.num_gaussians
        for what, ids in (("selected", np.asarray(selected)), ("seeds", np.asarray(seeds))):
            # The compiled filter indexes with them unchecked (numba does no bounds checks): the caller's ids stop here.
            if ids.size and (ids.dtype.kind not in "iu" or int(ids.min()) < 0 or int(ids.max()) >= n):
                raise SplatsegError(f"floater_filter: {what} must be Gaussian ids in 0..{n - 1}")
        with self._lock:
            return self._floater_filter()(selected, seeds, keep_ratio=keep_ratio)

    def warm_up(self) -> FeatureField:
        """Build the lazily made parts (ray caster, floater filter) now rather than on the first click."""
        with self._lock:
            self._ray_caster().warm_up()
            if self.blend_compiled:
                warm_up_blend()
            if self._use_floater_filter:
                self._floater_filter().warm_up()
            if self.fast:
                level, scale = self._granularity(None, None)
                self._pruned_bank(level, scale).warm_up()  # and its compiled threshold
                if self._use_floater_filter:
                    self._cells_in_block_order(level, scale)
            if self._use_floater_filter:  # the levels that grow from the click: their neighbour cosines (grow.py)
                for level in self.levels:
                    edge_cos = self.impl.grow_edge_cos(level)
                    if edge_cos is not None:  # the graph of the click's cut too (grow.py `prepare`)
                        self._growth(level, None).prepare(edge_cos)
                    if self.impl.piece_cos(level) is not None:
                        self._pieces(level, None).prepare()
                for level in self.levels or (None,):
                    patches = self._hidden_patches(level)
                    if patches is not None:
                        patches.warm_up()  # its compiled `follow`
        return self

    # ---- internals -------------------------------------------------------------------------------------------------
    def _granularity(self, level: str | None, scale: float | None) -> tuple[str | None, float | None]:
        return self.impl.granularity(level, scale)

    def _bank(self, level: str | None, scale: float | None) -> Tensor:  # [D, N] unit columns, Gaussian order
        """The granularity's bank in Gaussian order: the method's (which caches it) until a `PrunedBank` is made of
        it; from then on the field keeps only that blocked copy (one copy of each bank: 144 bytes a Gaussian for the
        click levels, 0.43 GB at 3M), and this puts its columns back in Gaussian order, a copy the caller does not
        keep. A click never calls it on the fast path."""
        hit = self._pruned.get((level, scale))
        return self.impl.bank(level, scale) if hit is None else torch.from_numpy(hit[1].in_gaussian_order())

    def _bank_rows(self, level: str | None, scale: float | None) -> int:  # D
        hit = self._pruned.get((level, scale))
        return self.impl.bank(level, scale).shape[0] if hit is None else hit[1].dim

    def _scores_at(self, queries: Tensor, level: str | None, scale: float | None) -> Tensor:  # [P, D] → [N]
        """`_scores` against the granularity's bank: its `PrunedBank` when there is one (the same bits, put back in
        Gaussian order), else the method's bank."""
        hit = self._pruned.get((level, scale))
        if hit is None:
            return self._scores(queries, self._bank(level, scale))
        return torch.from_numpy(hit[1].scores(queries.detach().cpu().numpy()))

    @property
    def bank_budget(self) -> int:
        """Bytes of prepared banks (a bank and its `PrunedBank` per granularity) the field keeps; see bank_cache.py."""
        return self._pruned.budget

    @bank_budget.setter
    def bank_budget(self, value: int) -> None:
        self._pruned.budget = int(value)

    def wait_for_banks(self, timeout: float | None = None) -> bool:
        """Block until the background builder is idle (benchmarks and tests); False on timeout."""
        return self._builder.wait(timeout)

    def _unbuilt(self, level: str | None, scale: float | None) -> bool:
        """True when this click should take the method's unbuilt path: its `PrunedBank` is not ready."""
        return self.build_in_background and self.impl.selects_unbuilt and (level, scale) not in self._pruned

    def _build_banks(self, key: tuple[str | None, float | None]) -> tuple[PrunedBank, np.ndarray | None]:
        """The background builder's work for one granularity (no lock held; reads only the features)."""
        pruned = PrunedBank(self.impl.build_bank(*key))  # the bank in Gaussian order is not kept
        floaters = self._floaters  # built by `warm_up` or an earlier click; else the first click makes the cells
        return pruned, None if floaters is None else floaters.cell_of[pruned.perm]

    def _store_banks(self, key: tuple[str | None, float | None], built) -> None:  # under the click lock
        pruned, cells = built
        self.impl.forget_bank(*key)
        for old in self._pruned.put(key, (None, pruned)):
            self._block_cells.pop(old, None)
        self._block_cells.pop(key, None)
        if cells is not None:
            self._block_cells[key] = cells

    def _floater_filter(self) -> FloaterFilter:
        if self._floaters is None:
            nb = self._tensors.get("neighbors")
            self._floaters = FloaterFilter(self.scene.means.detach().cpu().numpy(), None if nb is None else nb.numpy())
        return self._floaters

    def _neighbor_table(self) -> np.ndarray:  # [N, k] int32
        """The 3D nearest neighbours the growth, the pieces and the hidden patches read: the features file's, else
        computed, once per field, as one int32 table they share (each took its own copy: 32 MB per 1M Gaussians)."""
        if self._neighbors32 is None:
            nb = self._tensors.get("neighbors")
            nb = knn_neighbors(self.scene.means, 8) if nb is None else nb
            self._neighbors32 = np.ascontiguousarray(nb.numpy(), dtype=np.int32)
        return self._neighbors32

    def _source(self, level: str | None, scale: float | None) -> PrunedBank | Tensor:
        """What the growth and the pieces read a granularity's features from: its `PrunedBank` (made now on the fast
        path), else the bank in Gaussian order (`fast` off and none made)."""
        if self.fast:
            return self._pruned_bank(level, scale)
        hit = self._pruned.get((level, scale))
        return self._bank(level, scale) if hit is None else hit[1]

    def _growth(self, level: str | None, scale: float | None, bank: Tensor | None = None) -> NeighbourGrowth:
        """The neighbour graph with this granularity's feature cosines, built on first use (grow.py). `bank` is not
        read (the benchmarks' older calls pass it)."""
        key = (level, scale)
        source = self._source(level, scale)
        hit = self._growths.get(key)
        if hit is None or hit[0] is not source:
            if isinstance(source, PrunedBank):
                # Laid out in the order of this granularity's `PrunedBank`, whose ascending positions a selection
                # is; the features are read from its blocked copy (`PrunedBank.rows`: row p is Gaussian perm[p]).
                growth = NeighbourGrowth(self._neighbor_table(), source, order=source.perm, rank=source.rank)
            else:
                growth = NeighbourGrowth(self._neighbor_table(), source.T)
            hit = (source, growth)
            self._growths[key] = hit
            while len(self._growths) > 3:
                self._growths.pop(next(iter(self._growths)))
        return hit[1]

    def _pieces(self, level: str | None, scale: float | None, bank: Tensor | None = None) -> SeparatePieces:
        """The neighbour graph with this granularity's features and global clusters (pieces.py), built on first use.
        `bank` is not read (the benchmarks' older calls pass it)."""
        key = (level, scale)
        source = self._source(level, scale)
        hit = self._piece_finders.get(key)
        if hit is None or hit[0] is not source:
            try:
                labels = self.impl.cluster_labels(level, scale, lambda: self._bank(level, scale).T)
            except KeyError:  # a features file without global clusters: the pieces go without that check
                labels = None
            if isinstance(source, PrunedBank):  # its blocked copy, column rank[i] for Gaussian i
                pieces = SeparatePieces(self._neighbor_table(), source, labels, columns=source.rank)
            else:
                pieces = SeparatePieces(self._neighbor_table(), source, labels)
            hit = (source, pieces)
            self._piece_finders[key] = hit
            while len(self._piece_finders) > 3:
                self._piece_finders.pop(next(iter(self._piece_finders)))
        return hit[1]

    def _hidden_patches(self, level: str | None) -> HiddenPatches | None:
        """The field's hidden patches (hidden.py) for this granularity's weight share, built on first use; None when
        the method does not use them or the features file has no `training_weight` (trained before it was kept)."""
        relative = self.impl.hidden_weight(level)
        weight = self._tensors.get("training_weight")
        if relative is None or weight is None:
            return None
        feature_cos = self.impl.hidden_feature_cos(level)  # a part level: the patches follow its features too
        part = None if feature_cos is None else (level, float(feature_cos))
        key = (float(relative), float(self.impl.HIDDEN_NORMAL_COS), part)
        if key not in self._hidden:
            normals, flat, size = splat_normals(self.scene.unit_quats, self.scene.scales)
            features, columns = None, None  # [D, N], [N] Gaussian i's column (None: column i)
            if feature_cos is not None:
                pruned = self._pruned.get((level, None))
                if pruned is None:
                    features = self._bank(level, None).numpy()
                else:  # the blocked copy itself, read at each Gaussian's column
                    features, columns = pruned[1], pruned[1].rank
            self._hidden[key] = HiddenPatches.build(
                weight.float().numpy(),
                self._neighbor_table(),
                normals,
                flat,
                size,
                relative=key[0],
                normal_cos=key[1],
                features=features,
                feature_columns=columns,
                feature_cos=feature_cos,
            )
        return self._hidden[key]

    def _pruned_bank(self, level: str | None, scale: float | None, bank: Tensor | None = None) -> PrunedBank:
        """The blocked copy of the granularity's bank, built on first use per granularity (a second or more at 1M
        Gaussians); kept within `bank_budget` bytes (a person clicks many times at a few scales). It is the field's
        only copy: made from a bank built for it and copied into its tiles slice by slice (the built bank is dropped
        after: both are held only while the tiles are filled), and the method forgets any bank in Gaussian order it
        cached (`_bank`). `bank` is not read (the benchmarks' older calls pass it)."""
        key = (level, scale)
        hit = self._pruned.get(key)
        if hit is None:
            self.impl.forget_bank(level, scale)
            pruned = PrunedBank(self.impl.build_bank(level, scale))
            hit = (None, pruned)  # (no bank in Gaussian order, its `PrunedBank`): see `_bank`
            self._block_cells.pop(key, None)
            for old in self._pruned.put(key, hit):
                self._block_cells.pop(old, None)
        return hit[1]

    def _cells_in_block_order(self, level: str | None, scale: float | None) -> np.ndarray:  # [N] int32
        """The floater filter's `cell_of` in the column order of this granularity's `PrunedBank` (`_pruned_bank`
        first), made once per bank (4 bytes a Gaussian): the selection's cells are then read in ascending order
        rather than gathered at scattered ids, which costs as much as the rest of the filter at 1M Gaussians."""
        key = (level, scale)
        cells = self._block_cells.get(key)
        if cells is None:
            cells = self._floater_filter().cell_of[self._pruned.get(key)[1].perm]
            self._block_cells[key] = cells
        return cells

    def _ray_caster(self) -> RayCaster:
        if self._caster is None:
            self._caster = RayCaster(self.scene)
        return self._caster

    def _rays(
        self, camera: Camera, pixels: Sequence[tuple[float, float]]
    ) -> list[tuple[Tensor, Tensor]]:  # per pixel: contributor ids [L], blend weights [L]
        caster = self._ray_caster()
        return [caster.weights(camera, (float(x), float(y))) for x, y in pixels]

    def _queries(
        self,
        camera: Camera,
        pixels: Sequence[tuple[float, float]],
        level: str | None,
        scale: float | None,
        rays: list[tuple[Tensor, Tensor]] | None = None,  # `_rays(camera, pixels)` when already cast
    ) -> tuple[Tensor, np.ndarray]:  # [P', D] unit clicked features (rays that hit), seeds [T] Gaussian ids
        rays = self._rays(camera, pixels) if rays is None else rays
        cpu = self.features.device.type == "cpu" and all(ids.device.type == "cpu" for ids, _ in rays)
        rows, seeds = (self._blend_compiled if self.blend_compiled and cpu else self._blend_torch)(rays, level, scale)
        if not rows:
            d = self._bank_rows(level, scale)
            return torch.zeros(0, d), np.zeros(0, dtype=np.int64)
        return torch.stack(rows), np.concatenate(seeds).astype(np.int64, copy=False)

    def _blend_compiled(
        self, rays: list[tuple[Tensor, Tensor]], level: str | None, scale: float | None
    ) -> tuple[list[Tensor], list[np.ndarray]]:  # per ray that hits: its query [D'], its seeds [≤ 4] ids
        """`_blend_torch` by one compiled pass per ray (`_query_kernels.blend_ray`, CPU tensors only)."""
        feats = self.features.numpy()  # [N, D] float32, shared
        rows, seeds = [], []
        for ids, w in rays:
            if ids.numel() == 0:
                continue
            blended = np.empty(feats.shape[1], dtype=np.float32)
            top = np.empty(min(SEEDS, ids.numel()), dtype=np.int64)
            i64 = np.ascontiguousarray(ids.numpy(), dtype=np.int64)
            if blend_ray(i64, np.ascontiguousarray(w.numpy(), dtype=np.float32), feats, blended, top) <= 1e-6:
                continue
            rows.append(self.impl.query(torch.from_numpy(blended), level, scale))
            seeds.append(top)
        return rows, seeds

    def _blend_torch(
        self, rays: list[tuple[Tensor, Tensor]], level: str | None, scale: float | None
    ) -> tuple[list[Tensor], list[np.ndarray]]:  # per ray that hits: its query [D'], its seeds [≤ 4] ids
        """Each ray's weighted feature made into the method's query, and its 4 heaviest contributors (the seeds)."""
        rows, seeds = [], []
        for ids, w in rays:
            if ids.numel() == 0 or float(w.sum()) <= 1e-6:
                continue
            ids = ids.cpu()
            w = w.cpu().float()
            f = self.features.index_select(0, ids)  # [L, D]
            rows.append(self.impl.query((w[:, None] * f).sum(0), level, scale))
            top = torch.argsort(w, descending=True)[:SEEDS]  # the Gaussians that make most of the clicked pixel
            seeds.append(ids[top].numpy())
        return rows, seeds

    @staticmethod
    def _scores(queries: Tensor, bank: Tensor) -> Tensor:  # [P, D] @ [D, N] → [N] max over queries
        """The whole-bank product, each column summed in feature order in float32 (`sequential_products`): the
        reference the `PrunedBank`'s runs are held to bit for bit, with a running maximum over the queries."""
        if queries.shape[0] == 0:
            return torch.zeros(bank.shape[1])
        b = bank.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(max_products(queries.detach().cpu().numpy().astype(np.float32, copy=False), b))


def load_field(
    source: str | os.PathLike[str] | Workspace,
    method: str | None = None,
    *,
    scene: GaussianScene | None = None,
    workspace: str | os.PathLike[str] | None = None,
    floater_filter: bool = True,
) -> FeatureField:
    """The trained features of SCENE (a scene folder, a model file, or a `Workspace`).

    `method` None picks the most recently trained one. `scene` skips reading the model again when the caller
    has it (the viewer). Stale features (the model or the masks changed since training) raise `StaleCacheError`.
    """
    if isinstance(source, Workspace):
        ws = source
        scene_path: str | os.PathLike[str] = ws.scene_dir
    else:
        scene_path = source
        ws = Workspace(scene_dir_of(source), workspace)
    if method is None:
        found = trained_methods(ws)
        if not found:
            raise SplatsegError(
                f"no trained features in the workspace {ws.root}; run `splatseg train {scene_path}` first"
            )
        method = found[0]
    else:
        method_class(method)  # an unknown name fails here, before any file is read
    tensors = read_features(ws, method, inputs={"model": find_model(scene_path)})
    if scene is None:
        scene, _ = load_scene(scene_path)
    _check_tensors(method, tensors, len(scene))
    masks = MaskSet(ws.path(MASKS_NAME))
    return FeatureField(scene, method, tensors, floater_filter=floater_filter, masks=masks if masks.exists() else None)

"""Scoring text queries against a synthetic scene's ground truth: LERF's localisation protocol and mIoU.

Shared by the field benchmark (`bench/language_field.py`) and its tests, so both measure the same thing the same way.

Accuracy (LERF's localisation protocol): for every object and every part that a held-out view shows (at least
`_MIN_TARGET_PX` pixels), the view's highest-relevancy pixel must fall inside the target's ground-truth region. The
pixel relevancy is the per-Gaussian relevancy blended through the view's contributions. mIoU is over Gaussians: the
thresholded selection against the Gaussians the synthetic scene generated for the target, both restricted to the
Gaussians the held-out views show (a Gaussian no view sees has no language, and no user can miss it). Both are
measured for the field and for cluster ranking (Click-Gaussian's way, `TextIndex`) over the clusters a short
Click-Gaussian training run finds from the same masks (`trained_clusters`): what the product ranks without a field.

The recipe of the test data differs from the code under test: masks come from the label maps through the SAM-like
noise model, crops are decoded from label-coded colours by `GroundTruthEncoder`, and the answers are the
generator's per-Gaussian labels and rendered label maps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from backend.core.camera import Camera
from backend.masks.maskset import ViewMasks
from backend.masks.noise import NoiseConfig, noisy_masks
from backend.render import contributions, render

from .field import LanguageField, build_language_field
from .field_query import FieldIndex
from .ground_truth import label_coded_scene, part_text

_MIN_TARGET_PX = 20
_LOCALISATION_K = 8
NOISE_LEVELS = (0.5, 1.0)
"""The ground-truth encoder's noise: the default, and twice as much."""


@dataclasses.dataclass
class TextScene:
    """A synthetic scene split into training and held-out views, with everything the evaluation needs."""

    synth: Any
    coded: Any  # the label-coded twin (GaussianScene)
    train: list[Camera]
    held_out: list[Camera]
    masks: list[ViewMasks]
    label_maps: dict[str, tuple[np.ndarray, np.ndarray]]  # held-out view → (part map, object map) [H, W]


def label_maps(synth, camera: Camera) -> tuple[np.ndarray, np.ndarray]:  # part [H, W], object [H, W] uint16
    """Ground-truth label maps of a view, rendered as `splatseg synth` writes them."""
    from backend.synthetic import label_map, one_hot_labels

    n_obj, n_part = max(synth.object_names) + 1, max(synth.part_names) + 1
    feats = torch.cat([one_hot_labels(synth.object_labels, n_obj), one_hot_labels(synth.part_labels, n_part)], 1)
    with torch.no_grad():
        out = render(synth.scene, camera, features=feats, backend="torch")
    return label_map(out.features[..., n_obj:], out.alpha), label_map(out.features[..., :n_obj], out.alpha)


def make_text_scene(
    *,
    num_gaussians: int = 20_000,
    views: int = 16,
    held_out: int = 4,
    resolution: int = 128,
    mask_noise: float = 1.0,
    seed: int = 0,
) -> TextScene:
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=seed, num_gaussians=num_gaussians)
    cameras = orbit_cameras(synth, views=views + held_out, resolution=resolution, seed=seed)
    test_idx = set(np.linspace(0, len(cameras) - 1, held_out).round().astype(int).tolist()) if held_out else set()
    train = [c for i, c in enumerate(cameras) if i not in test_idx]
    test = [c for i, c in enumerate(cameras) if i in test_idx]
    config = NoiseConfig(strength=mask_noise, seed=seed)
    masks = []
    for camera in train:
        part, obj = label_maps(synth, camera)
        m = noisy_masks(part, obj, config, view=camera.name)
        masks.append(ViewMasks(camera.name, m, np.ones(len(m), np.float32), np.full(len(m), np.nan, np.float32)))
    return TextScene(synth, label_coded_scene(synth), train, test, masks, {c.name: label_maps(synth, c) for c in test})


def targets(ts: TextScene) -> list[tuple[str, str, int]]:
    """(kind, query text, label) for every object and part of the scene."""
    out = [("objects", name, int(k)) for k, name in sorted(ts.synth.object_names.items())]
    out += [("parts", part_text(name), int(k)) for k, name in sorted(ts.synth.part_names.items())]
    return out


@dataclasses.dataclass
class _ViewContribs:
    ids: torch.Tensor  # [H·W, K]
    w: torch.Tensor  # [H·W, K] normalised
    lit: np.ndarray  # [H·W] bool: some Gaussian covers the pixel


def _view_contribs(scene, camera: Camera) -> _ViewContribs:
    ys, xs = np.mgrid[0 : camera.height, 0 : camera.width]
    pixels = torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], 1))
    ids, w = contributions(scene, camera, pixels, _LOCALISATION_K)
    total = w.sum(1)
    return _ViewContribs(ids.clamp(min=0), w / total.clamp(min=1e-6)[:, None], (total > 0.5).numpy())


def _pixel_relevancy(vc: _ViewContribs, gaussian_relevancy: np.ndarray) -> np.ndarray:  # → [H·W]
    r = torch.from_numpy(gaussian_relevancy.astype(np.float32))
    out = (r[vc.ids] * vc.w).sum(1).numpy()
    return np.where(vc.lit, out, -1.0)


def evaluate(
    ts: TextScene,
    score_fn,  # text → (relevancy [N] float32, selection [N] bool)
) -> dict[str, float]:
    """Localisation accuracy and mIoU per kind (objects, parts)."""
    contribs = {c.name: _view_contribs(ts.synth.scene, c) for c in ts.held_out}
    seen = np.zeros(len(ts.synth.scene), dtype=bool)  # the Gaussians the held-out views show: what IoU is over
    for vc in contribs.values():
        seen[vc.ids[vc.w > 0].numpy()] = True
    hits: dict[str, list[float]] = {"objects": [], "parts": []}
    misses: list[str] = []
    ious: dict[str, list[float]] = {"objects": [], "parts": []}
    for kind, text, label in targets(ts):
        gt_gauss = ((ts.synth.object_labels if kind == "objects" else ts.synth.part_labels) == label) & seen
        rel, sel = score_fn(text)
        sel = sel & seen
        union = np.logical_or(sel, gt_gauss).sum()
        ious[kind].append(float(np.logical_and(sel, gt_gauss).sum() / max(union, 1)))
        for camera in ts.held_out:
            part_map, obj_map = ts.label_maps[camera.name]
            region = ((obj_map if kind == "objects" else part_map) == label).reshape(-1)
            if region.sum() < _MIN_TARGET_PX:
                continue
            pix = _pixel_relevancy(contribs[camera.name], rel)
            hit = bool(region[int(np.argmax(pix))])
            hits[kind].append(float(hit))
            if not hit:
                misses.append(f"{text}@{camera.name}")
    out = {}
    for kind in ("objects", "parts"):
        out[f"localization_{kind}"] = float(np.mean(hits[kind])) if hits[kind] else float("nan")
        out[f"miou_{kind}"] = float(np.mean(ious[kind])) if ious[kind] else float("nan")
        out[f"cases_{kind}"] = len(hits[kind])
    out["misses"] = misses
    return out


def field_scores(index: FieldIndex, threshold: float = 0.5):
    def score(text: str) -> tuple[np.ndarray, np.ndarray]:
        result = index.query(text, threshold=threshold)
        return result.relevancy, result.mask

    return score


def trained_clusters(ts: TextScene, *, iterations: int = 1200, seed: int = 0) -> dict[str, np.ndarray]:
    """The product's clusters for the same scene and masks: a Click-Gaussian training run (`splatseg train`'s method,
    through the same contribution cache) and its global clusters per level, as `clusters_from_field` reads them.
    """  # level → [N] int64 labels, -1 = none
    from backend.features.click import ClickConfig, train_click
    from backend.features.contrib_cache import build_cache
    from backend.features.neighbors import knn_neighbors

    cache = build_cache(ts.synth.scene, ts.train, ts.masks, seed=seed)
    result = train_click(
        cache, knn_neighbors(ts.synth.scene.means), ClickConfig(iterations=iterations, seed=seed), progress=False
    )
    return {level: c.labels.numpy().astype(np.int64) for level, c in result.clusters.items()}


def cluster_scores(ts: TextScene, encoder, labels: dict[str, np.ndarray], threshold: float = 0.5):
    """Cluster ranking (Click-Gaussian's way, `TextIndex`) over the given clusters per level ([N] labels, -1 =
    none): the best level's clusters scoring at or above `threshold` are the selection, their score the heat."""
    from .embeddings import compute_cluster_embeddings
    from .query import TextIndex

    emb = compute_cluster_embeddings(ts.coded, ts.train, labels, encoder, views_per_cluster=6, backend="torch")
    index = TextIndex(encoder, emb, labels)

    def score(text: str) -> tuple[np.ndarray, np.ndarray]:
        result = index.query(text, threshold=None)
        heat = index.heat(result)
        best = result.selected[0] if result.selected else None
        sel = index.mask_of([m for m in result.ranked if best and m.level == best.level and m.score >= threshold])
        return heat, sel

    return score


def build_field(ts: TextScene, encoder, **kwargs) -> LanguageField:
    return build_language_field(ts.coded, ts.train, ts.masks, encoder, backend="torch", **kwargs)

"""The language field in the workspace: `prepare-text --field` builds it, `query` and the viewer use it when present.

`FieldTextIndex` answers with the same `QueryResult` as the cluster `TextIndex`, so the CLI's JSON and the viewer's
text panel take either: the selection is every Gaussian whose relevancy reaches the threshold (snapped to the
clicked-level clusters when asked), listed as one match of level "field"; the clusters of the scene (when Click-
Gaussian trained it) are ranked by their Gaussians' mean relevancy after it; the heat map is per-Gaussian relevancy.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from backend.core.errors import SplatsegError, StaleCacheError
from backend.workspace import Workspace

from .clip import DEFAULT_CLIP_MODEL, load_clip
from .embeddings import cluster_columns
from .field import DEFAULT_LATENT_DIM, FIELD_FILE, LanguageField, build_language_field, load_field, save_field
from .field_query import FieldIndex
from .query import ClusterMatch, QueryResult, TextIndex
from .relevancy import DEFAULT_THRESHOLD

FIELD_LEVEL = "field"
"""The level name of the field's selection in a `QueryResult` (clusters keep "coarse" and "fine")."""


def field_inputs(workspace: Workspace, scene_path: str | os.PathLike[str]) -> dict[str, Path]:
    """The files whose change makes the field stale: the model and the masks' index."""
    from backend.io.scene_folder import find_model
    from backend.masks.maskset import INDEX_FILE
    from backend.masks.prepare import MASKS_NAME

    return {"model": find_model(scene_path), "masks": workspace.path(MASKS_NAME) / INDEX_FILE}


@dataclasses.dataclass(frozen=True)
class PrepareFieldReport:
    path: Path
    views: int
    masks: int
    seconds: float

    @property
    def seconds_per_view(self) -> float:
        return self.seconds / max(1, self.views)


def prepare_field(
    scene_path: str | os.PathLike[str],
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    clip_checkpoint: str | os.PathLike[str] | None = None,
    workspace_root: str | os.PathLike[str] | None = None,
    encoder=None,
    latent_dim: int = DEFAULT_LATENT_DIM,
    backend: Literal["auto", "torch", "gsplat"] = "auto",
    progress=None,
) -> PrepareFieldReport:
    """Build and store the language field from the workspace's masks (`splatseg prepare-text --field`)."""
    from backend.io.cameras import load_cameras
    from backend.io.scene_folder import load_scene, scene_dir_of
    from backend.masks.prepare import open_masks

    workspace = Workspace(scene_dir_of(scene_path), workspace_root)
    masks = open_masks(workspace, scene_path)  # no masks: one line naming `splatseg prepare`
    encoder = encoder if encoder is not None else load_clip(clip_model, checkpoint=clip_checkpoint)
    scene, _ = load_scene(scene_path)
    cameras = load_cameras(workspace.scene_dir)
    if not set(masks.views) & {c.name for c in cameras}:
        raise SplatsegError(
            f"the masks in {masks.root} belong to none of the scene's cameras; run `splatseg prepare "
            f"{workspace.scene_dir}` again"
        )
    field = build_language_field(
        scene, cameras, masks, encoder, latent_dim=latent_dim, backend=backend, progress=progress
    )
    path = save_field(workspace, field, inputs=field_inputs(workspace, scene_path))
    views = len(field.params["views"])
    return PrepareFieldReport(path, views, int(field.params["masks"]), float(field.params["seconds"]))


class FieldTextIndex:
    """`TextIndex`'s interface over the language field (see the module docstring)."""

    def __init__(
        self,
        encoder,
        field: LanguageField,
        *,
        clusters: Mapping[str, np.ndarray] | None = None,
        snap: str | None = None,
    ) -> None:
        self.field_index = FieldIndex(encoder, field, clusters=clusters)
        self.encoder = encoder
        self.clusters = {lvl: np.asarray(c) for lvl, c in (clusters or {}).items()}
        self.levels = tuple(self.field_index.levels)
        self.num_gaussians = field.num_gaussians
        self.snap = snap
        self._columns = {lvl: cluster_columns(c) for lvl, c in self.clusters.items()}
        self._last: QueryResult | None = None

    @classmethod
    def open(
        cls,
        scene_path: str | os.PathLike[str],
        *,
        clip_model: str | None = None,
        clip_checkpoint: str | os.PathLike[str] | None = None,
        workspace_root: str | os.PathLike[str] | None = None,
        encoder=None,
        snap: str | None = None,
    ) -> FieldTextIndex:
        from backend.io.scene_folder import scene_dir_of

        from .query import _encoder_for, clusters_from_field

        workspace = Workspace(scene_dir_of(scene_path), workspace_root)
        field = load_field(workspace, inputs=field_inputs(workspace, scene_path))
        try:
            clusters = clusters_from_field(workspace, scene_path=scene_path).labels
        except (SplatsegError, StaleCacheError):
            clusters = {}  # no Click-Gaussian training: the field works alone, without snapping
        if snap is not None and snap not in clusters:
            raise SplatsegError(f"--snap {snap} needs the scene's {snap} clusters; run `splatseg train` first")
        if encoder is None:
            encoder = _encoder_for(
                types.SimpleNamespace(identity=field.identity), clip_model, clip_checkpoint, workspace
            )
        return cls(encoder, field, clusters=clusters, snap=snap)

    def query(self, text: str, *, level: str = "both", top: int = 5, threshold: float | None = None) -> QueryResult:
        del top  # every cluster is ranked; callers cut the list
        level_arg = level if level in ("coarse", "fine", "both") else "both"
        r = self.field_index.query(
            text, level=level_arg, threshold=DEFAULT_THRESHOLD if threshold is None else threshold, snap=self.snap
        )
        best = ClusterMatch(FIELD_LEVEL, 0, float(r.relevancy.max(initial=0.0)), r.count)
        ranked = [best, *self._rank_clusters(r.relevancy)]
        result = QueryResult(
            text=r.text,
            level=r.level,
            threshold=r.threshold,
            ranked=tuple(ranked),
            selected=(best,) if r.count else (),
            mask=r.mask,
            scores={FIELD_LEVEL: r.relevancy},
            encode_ms=r.encode_ms,
            rank_ms=r.rank_ms,
        )
        self._last = result
        return result

    def _rank_clusters(self, relevancy: np.ndarray) -> list[ClusterMatch]:
        """The clusters by their Gaussians' mean relevancy (what a click on a listed cluster selects)."""
        out = []
        for lvl, (ids, columns, counts) in self._columns.items():
            ok = columns >= 0
            sums = np.bincount(columns[ok], weights=relevancy[ok], minlength=ids.size)
            means = sums / np.maximum(counts, 1)
            out += [ClusterMatch(lvl, int(ids[c]), float(means[c]), int(counts[c])) for c in range(ids.size)]
        out.sort(key=lambda m: -m.score)
        return out

    def mask_of(self, matches: Sequence[ClusterMatch]) -> np.ndarray:  # → [N] bool
        mask = np.zeros(self.num_gaussians, dtype=bool)
        for m in matches:
            if m.level == FIELD_LEVEL and self._last is not None:
                mask |= self._last.mask
            elif m.level in self._columns:
                ids, columns, _ = self._columns[m.level]
                col = int(np.searchsorted(ids, m.id))
                if col < ids.size and ids[col] == m.id:
                    mask |= columns == col
        return mask

    def heat(self, result: QueryResult) -> np.ndarray:  # → [N] float32
        scores = result.scores.get(FIELD_LEVEL)
        return np.zeros(self.num_gaussians, np.float32) if scores is None else np.asarray(scores, np.float32)


def has_field(workspace: Workspace) -> bool:
    return workspace.has(FIELD_FILE)


def open_text_index(
    scene_path: str | os.PathLike[str],
    *,
    clip_model: str | None = None,
    clip_checkpoint: str | os.PathLike[str] | None = None,
    workspace_root: str | os.PathLike[str] | None = None,
    use_field: bool = True,
    snap: str | None = None,
) -> TextIndex | FieldTextIndex:
    """The field when `prepare-text --field` made one (and `use_field`), else the cluster embeddings."""
    from backend.io.scene_folder import scene_dir_of

    workspace = Workspace(scene_dir_of(scene_path), workspace_root)
    if use_field and has_field(workspace):
        return FieldTextIndex.open(
            scene_path, clip_model=clip_model, clip_checkpoint=clip_checkpoint, workspace_root=workspace_root, snap=snap
        )
    if snap is not None:
        raise SplatsegError("--snap needs the language field; run `splatseg prepare-text SCENE --field` first")
    return TextIndex.open(
        scene_path, clip_model=clip_model, clip_checkpoint=clip_checkpoint, workspace_root=workspace_root
    )

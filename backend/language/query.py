"""Text queries over a trained scene: `splatseg prepare-text` and `splatseg query`, and the index the viewer keeps.

`prepare_text` computes the cluster embeddings once (minutes on CPU); a `TextIndex` holds the encoder, the
embeddings and the cluster labels so that each query is one text encoding and a few hundred dot products.
Everything a user can get wrong ends as one `SplatsegError` line that says which command or flag fixes it:
no clusters (train first), no embeddings (prepare-text first), stale embeddings, offline without a checkpoint,
or embeddings made by another CLIP than the one asked for.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from backend.core.errors import SplatsegError, StaleCacheError
from backend.workspace import Workspace

from .clip import DEFAULT_CLIP_MODEL, ClipEncoder, few_threads, load_clip, split_model_name
from .embeddings import (
    LEVELS,
    ClusterEmbeddings,
    ProgressFn,
    cluster_columns,
    compute_cluster_embeddings,
    labels_digest,
    load_embeddings,
    save_embeddings,
)
from .relevancy import CANONICAL_NEGATIVES, gaussian_relevancy, rank, relevancy

LevelChoice = Literal["coarse", "fine", "both"]
DEFAULT_TOP = 5


# ---- where the clusters come from ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClusterSource:
    """Global cluster labels per level and the workspace files they were computed from."""

    labels: dict[str, np.ndarray]  # level → [N] int, -1 = none
    method: str
    """The feature method that made them ("click"); recorded with the embeddings."""
    inputs: dict[str, Path] = dataclasses.field(default_factory=dict)
    """Files whose change makes the embeddings stale (besides the model)."""


def clusters_from_field(
    workspace: Workspace, *, method: str | None = None, scene_path: str | os.PathLike[str] | None = None
) -> ClusterSource:
    """The global clusters Click-Gaussian's training saved (`features/click.safetensors`, `<level>_labels`).

    Read from the features file directly rather than through `load_field`, which would also read the model: a query
    needs the labels only. SAGA has no global clusters (its segments depend on the scale slider), so text queries
    need Click-Gaussian's features.
    """
    from backend.features.store import features_name, read_features, trained_methods
    from backend.io.scene_folder import find_model

    scene = _q(workspace.scene_dir)
    method = method or "click"
    if method != "click":
        raise SplatsegError(
            f"text queries use Click-Gaussian's global clusters, and {method} has none; run "
            f"`splatseg train {scene} --method click` first"
        )
    if "click" not in trained_methods(workspace):
        raise SplatsegError(
            f"this scene has no Click-Gaussian features (global clusters) yet; run `splatseg train {scene}` first"
        )
    model = find_model(scene_path if scene_path is not None else workspace.scene_dir)
    tensors = read_features(workspace, "click", inputs={"model": model})
    labels = {
        level: tensors[f"{level}_labels"].long().numpy()
        for level in LEVELS
        if f"{level}_labels" in tensors and bool((tensors[f"{level}_labels"] >= 0).any())
    }
    if not labels:
        raise SplatsegError(
            f"the click features of this scene have no global clusters; run `splatseg train {scene}` again"
        )
    return ClusterSource(labels=labels, method="click", inputs={"clusters": workspace.path(features_name("click"))})


# ---- prepare-text --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrepareReport:
    path: Path
    clusters: dict[str, int]
    seconds: float

    @property
    def seconds_per_cluster(self) -> float:
        return self.seconds / max(1, sum(self.clusters.values()))


def prepare_text(
    scene_path: str | os.PathLike[str],
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    clip_checkpoint: str | os.PathLike[str] | None = None,
    workspace_root: str | os.PathLike[str] | None = None,
    method: str | None = None,
    views_per_cluster: int | None = None,
    encoder: ClipEncoder | None = None,
    clusters: ClusterSource | None = None,
    backend: Literal["auto", "torch", "gsplat"] = "auto",
    progress: bool | ProgressFn = False,
) -> PrepareReport:
    """Compute and store the CLIP embedding of every global cluster (`splatseg prepare-text`).

    `encoder` and `clusters` replace loading CLIP and the feature field (tests, the viewer that has both already).
    """
    from backend.io.cameras import load_cameras
    from backend.io.scene_folder import load_scene, scene_dir_of

    from .embeddings import DEFAULT_VIEWS_PER_CLUSTER

    # Cheap checks first: no clusters or no CLIP weights should fail before a large model is read.
    workspace = Workspace(scene_dir_of(scene_path), workspace_root)
    if clusters is None:
        clusters = clusters_from_field(workspace, method=method, scene_path=scene_path)
    encoder = encoder if encoder is not None else load_clip(clip_model, checkpoint=clip_checkpoint)
    scene, model_path = load_scene(scene_path)
    for level, labels in clusters.labels.items():
        if labels.shape[0] != len(scene):
            raise StaleCacheError(
                f"the {level} clusters have {labels.shape[0]} labels for {len(scene)} Gaussians; the model changed "
                f"after training: run `splatseg train {_q(workspace.scene_dir)}` again"
            )
    cameras = load_cameras(workspace.scene_dir)
    emb = compute_cluster_embeddings(
        scene,
        cameras,
        clusters.labels,
        encoder,
        views_per_cluster=views_per_cluster or DEFAULT_VIEWS_PER_CLUSTER,
        backend=backend,
        progress=progress,
    )
    inputs = {"model": model_path, **clusters.inputs}
    path = save_embeddings(workspace, emb, inputs=inputs, extra_params={"clusters_from": clusters.method})
    return PrepareReport(path=path, clusters=dict(emb.params["clusters"]), seconds=float(emb.params["seconds"]))


# ---- queries -------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClusterMatch:
    level: str
    id: int
    """The cluster's label value at its level (what `cluster_labels(level)` holds)."""
    score: float
    """Relevancy in (0, 1); above 0.5 means closer to the query than to every canonical negative."""
    count: int
    """Gaussians in the cluster."""

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "id": self.id, "score": round(self.score, 4), "count": self.count}


@dataclasses.dataclass(frozen=True)
class QueryResult:
    text: str
    level: str
    threshold: float | None
    """None: the selection is the best cluster; else every cluster scoring at least this."""
    ranked: tuple[ClusterMatch, ...]
    """Every cluster of the asked level(s) that has an embedding, best first."""
    selected: tuple[ClusterMatch, ...]
    mask: np.ndarray  # [N] bool: the selected clusters' Gaussians
    scores: dict[str, np.ndarray]  # level → [C_l] float32 relevancy per cluster (ascending id order)
    encode_ms: float
    rank_ms: float

    @property
    def milliseconds(self) -> float:
        """Query latency: text encoding + ranking + building the selection."""
        return self.encode_ms + self.rank_ms

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    def to_json(self, top: int = DEFAULT_TOP) -> dict[str, Any]:
        return {
            "query": self.text,
            "level": self.level,
            "threshold": self.threshold,
            "clusters": [m.to_json() for m in self.ranked[:top]],
            "selected": [{"level": m.level, "id": m.id} for m in self.selected],
            "count": self.count,
            "ms": round(self.milliseconds, 2),
            "encode_ms": round(self.encode_ms, 2),
            "rank_ms": round(self.rank_ms, 2),
        }


class TextIndex:
    """Encoder + cluster embeddings + cluster labels: everything a query needs, kept in memory between queries."""

    def __init__(
        self,
        encoder: ClipEncoder,
        embeddings: ClusterEmbeddings,
        labels: Mapping[str, np.ndarray],  # level → [N] int, -1 = none
        *,
        negatives: tuple[str, ...] = CANONICAL_NEGATIVES,
    ) -> None:
        check_same_clip(embeddings.identity, encoder)
        self.encoder = encoder
        self.embeddings = embeddings
        self.negatives = negatives
        self.levels = tuple(lvl for lvl in embeddings.levels if lvl in labels)
        """The levels that have both clusters and embeddings."""
        if not self.levels:
            raise StaleCacheError("the text embeddings and the clusters share no level; run `splatseg prepare-text`")
        self.num_gaussians = int(np.asarray(next(iter(labels.values()))).shape[0])
        self._columns: dict[str, np.ndarray] = {}
        for lvl in self.levels:
            ids, columns, counts = cluster_columns(labels[lvl])
            stored = embeddings.levels[lvl]
            digest = embeddings.params.get("labels_digest", {}).get(lvl)
            same = np.array_equal(ids, stored.ids) and np.array_equal(counts, stored.counts)
            if not same or (digest is not None and digest != labels_digest(labels[lvl])):
                raise StaleCacheError(
                    f"the {lvl} clusters changed since the text embeddings were computed; run `splatseg prepare-text` "
                    "again"
                )
            self._columns[lvl] = columns
        self._seen = {lvl: embeddings.levels[lvl].seen for lvl in self.levels}
        self._matrix = {lvl: embeddings.levels[lvl].embeddings.float() for lvl in self.levels}
        self.encoder.encode_text(list(negatives))  # cached: a query then encodes only its own text

    @classmethod
    def open(
        cls,
        scene_path: str | os.PathLike[str],
        *,
        clip_model: str | None = None,
        clip_checkpoint: str | os.PathLike[str] | None = None,
        workspace_root: str | os.PathLike[str] | None = None,
        method: str | None = None,
        encoder: ClipEncoder | None = None,
        clusters: ClusterSource | None = None,
    ) -> TextIndex:
        """Load the clusters, the stored embeddings (checked fresh) and the CLIP they were made with.

        With no `--clip-model`/`--clip-checkpoint`, the query uses what `prepare-text` used (the same checkpoint
        file when it still exists), so a query never needs the flags again.
        """
        from backend.io.scene_folder import find_model, scene_dir_of

        workspace = Workspace(scene_dir_of(scene_path), workspace_root)
        if clusters is None:
            clusters = clusters_from_field(workspace, method=method, scene_path=scene_path)
        model_path = find_model(scene_path)
        embeddings = load_embeddings(workspace, inputs={"model": model_path, **clusters.inputs})
        if encoder is None:
            encoder = _encoder_for(embeddings, clip_model, clip_checkpoint, workspace)
        return cls(encoder, embeddings, clusters.labels)

    def query(
        self,
        text: str,
        *,
        level: LevelChoice = "both",
        top: int = DEFAULT_TOP,
        threshold: float | None = None,
    ) -> QueryResult:
        """Rank the clusters of `level` by relevancy to `text`; select the best one, or all ≥ `threshold`."""
        text = " ".join(text.split())
        if not text:
            raise SplatsegError('the query text is empty; say what to find, e.g. "the red mug"')
        levels = self.levels if level == "both" else (level,)
        missing = [lvl for lvl in levels if lvl not in self.levels]
        if missing:
            raise SplatsegError(f"no {missing[0]} clusters in this scene; use --level {' or '.join(self.levels)}")
        t0 = time.perf_counter()
        phrases = self.encoder.encode_text([text, *self.negatives])  # [1 + M, D]
        t1 = time.perf_counter()
        scores: dict[str, np.ndarray] = {}
        matches: list[ClusterMatch] = []
        for lvl in levels:
            le = self.embeddings.levels[lvl]
            with few_threads(torch.device("cpu"), 1):  # a few hundred rows: threads only add waiting
                s = relevancy(phrases[0], phrases[1:], self._matrix[lvl]).numpy()
            s = np.where(self._seen[lvl], s, 0.0).astype(np.float32)
            scores[lvl] = s
            matches += [
                ClusterMatch(lvl, int(le.ids[c]), float(s[c]), int(le.counts[c])) for c in rank(s, self._seen[lvl])
            ]
        matches.sort(key=lambda m: -m.score)  # stable: equal scores keep level order
        selected = tuple(matches[:1]) if threshold is None else tuple(m for m in matches if m.score >= threshold)
        mask = self.mask_of(selected)
        t2 = time.perf_counter()
        return QueryResult(
            text=text,
            level=level,
            threshold=threshold,
            ranked=tuple(matches),
            selected=selected,
            mask=mask,
            scores=scores,
            encode_ms=(t1 - t0) * 1e3,
            rank_ms=(t2 - t1) * 1e3,
        )

    def mask_of(self, matches: tuple[ClusterMatch, ...] | list[ClusterMatch]) -> np.ndarray:  # → [N] bool
        """The Gaussians of the given clusters (a union across levels)."""
        mask = np.zeros(self.num_gaussians, dtype=bool)
        for lvl in self.levels:
            ids = self.embeddings.levels[lvl].ids
            cols = np.searchsorted(ids, [m.id for m in matches if m.level == lvl])
            if cols.size:
                lookup = np.zeros(ids.shape[0] + 1, dtype=bool)  # index -1 (no cluster) reads the last, False
                lookup[cols] = True
                mask |= lookup[self._columns[lvl]]
        return mask

    def heat(self, result: QueryResult) -> np.ndarray:  # → [N] float32 relevancy per Gaussian
        """Per-Gaussian relevancy for a heat map: each Gaussian takes its cluster's score, the larger over levels."""
        out = np.zeros(self.num_gaussians, dtype=np.float32)
        for lvl, s in result.scores.items():
            ids = self.embeddings.levels[lvl].ids
            columns = self._columns[lvl]
            labels = np.where(columns >= 0, ids[columns.clip(0)], -1)
            out = np.maximum(out, gaussian_relevancy(labels, ids, s))
        return out


# ---- CLIP identity -------------------------------------------------------------------------------------------------


def check_same_clip(recorded: Mapping[str, str], encoder: ClipEncoder) -> None:
    """Refuse to compare a query embedded by one CLIP with cluster embeddings made by another."""
    name, weights = recorded.get("clip_model", ""), recorded.get("clip_weights", "")
    if name == encoder.name and weights == encoder.fingerprint:
        return
    made = f"{name} (weights {weights or '?'}, from {recorded.get('clip_source') or '?'})"
    now = f"{encoder.name} (weights {encoder.fingerprint}, from {encoder.source})"
    raise SplatsegError(
        f"the text embeddings were computed with CLIP {made} but this query uses {now}; query with the same "
        f"--clip-model/--clip-checkpoint, or run `splatseg prepare-text SCENE --clip-model {encoder.name}` again"
    )


def _encoder_for(
    embeddings: ClusterEmbeddings,
    clip_model: str | None,
    clip_checkpoint: str | os.PathLike[str] | None,
    workspace: Workspace,
) -> ClipEncoder:
    """The CLIP a query should use: the one asked for (checked against the embeddings before any weights load), or
    the one `prepare-text` used."""
    recorded_name = embeddings.identity.get("clip_model", "")
    recorded_source = embeddings.identity.get("clip_source", "")
    if clip_model is not None:
        name, _ = split_model_name(clip_model)
        if recorded_name and name != recorded_name:
            raise SplatsegError(
                f"the text embeddings were computed with CLIP {recorded_name} but this query asks for {name}; "
                f"query with --clip-model {recorded_name}, or run `splatseg prepare-text {_q(workspace.scene_dir)} "
                f"--clip-model {name}` first"
            )
        return load_clip(clip_model, checkpoint=clip_checkpoint)
    model = recorded_name or DEFAULT_CLIP_MODEL
    if clip_checkpoint is None and recorded_source and os.path.isabs(recorded_source):
        if not Path(recorded_source).is_file():
            raise SplatsegError(
                f"the text embeddings were computed with CLIP weights from {recorded_source}, which no longer "
                "exists; pass the same weights with --clip-checkpoint PATH"
            )
        clip_checkpoint = recorded_source
    elif clip_checkpoint is None and recorded_source and not os.path.isabs(recorded_source):
        model = f"{model}:{recorded_source}"  # a pretrained tag
    return load_clip(model, checkpoint=clip_checkpoint)


def _q(path: Path) -> str:
    return shlex.quote(str(path))

"""Figures for the text-query section of `splatseg bench`.

CLIP runs with the real ViT-B-16 architecture and random weights: latency depends on the architecture, not on the
values of the weights, and a benchmark must not download 600 MB. Query latency is text encoding + ranking +
building the selection mask over 1M Gaussians; every timed query is a text the encoder has not cached.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from backend.language.clip import DEFAULT_CLIP_MODEL, random_clip
from backend.language.embeddings import ClusterEmbeddings, LevelEmbeddings, compute_cluster_embeddings

from .common import Figure

_QUERIES = [
    "the red mug",
    "a yellow lamp shade",
    "green glass bottle",
    "blue teapot",
    "the handle of the teapot",
    "potted plant",
    "a toy car",
    "stack of books",
    "wooden table",
    "the floor",
    "white mug handle",
    "bottle cap",
    "lamp pole",
    "car wheels",
    "terracotta pot",
    "soil in the pot",
    "purple book",
    "orange book",
    "coffee in the mug",
    "teapot lid",
    "something to drink from",
    "a light source",
    "a vehicle",
    "leaves",
    "furniture",
    "kitchenware on a table",
    "reading material",
    "a container for liquids",
    "the spout",
    "metal pole",
    "glass windows of the car",
    "a houseplant in a terracotta pot",
]


def bench_text(*, quick: bool, workdir: Path) -> list[Figure]:
    """Query latency p50/p95 on this machine, and cluster-embedding cost per cluster (render + crop + encode)."""
    del workdir  # everything is built in memory
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = "GPU, fp16" if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    encoder = random_clip(DEFAULT_CLIP_MODEL, seed=0, device=device)
    figures: list[Figure] = []
    figures += _query_latency(encoder, quick=quick, where=where)
    figures += _embedding_cost(encoder, quick=quick, where=where)
    return figures


def _query_latency(encoder, *, quick: bool, where: str) -> list[Figure]:
    from backend.language.query import TextIndex

    n, coarse, fine = 1_000_000, 100, 300
    rng = np.random.default_rng(0)
    labels = {"coarse": rng.integers(-1, coarse, n), "fine": rng.integers(-1, fine, n)}
    levels = {}
    for level, labels_l in labels.items():
        ids, counts = np.unique(labels_l[labels_l >= 0], return_counts=True)
        emb = torch.nn.functional.normalize(torch.randn(ids.size, encoder.embed_dim), dim=-1)
        levels[level] = LevelEmbeddings(ids, counts, emb, np.zeros((ids.size, 1), dtype=np.int64))
    index = TextIndex(encoder, ClusterEmbeddings(levels, dict(encoder.identity)), labels)
    index.query("warm-up query")
    texts = _QUERIES[:12] if quick else _QUERIES
    total, encode, rank = [], [], []
    for text in texts:
        result = index.query(text)
        total.append(result.milliseconds)
        encode.append(result.encode_ms)
        rank.append(result.rank_ms)
    note = (
        f"{where}; {len(texts)} uncached texts; {coarse}+{fine} clusters, 1M Gaussians; "
        f"encode p50 {np.median(encode):.1f} ms, rank + mask p50 {np.median(rank):.1f} ms"
    )
    return [
        Figure("text", "text query p50, ViT-B-16 (encode + rank + mask)", float(np.median(total)), "ms", note),
        Figure("text", "text query p95, ViT-B-16", float(np.percentile(total, 95)), "ms", where),
    ]


def _embedding_cost(encoder, *, quick: bool, where: str) -> list[Figure]:
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=20_000 if quick else 80_000)
    cameras = orbit_cameras(synth, views=12 if quick else 36, resolution=256, seed=0)
    labels = {"coarse": synth.object_labels} if quick else {"coarse": synth.object_labels, "fine": synth.part_labels}
    views = 10
    t0 = time.perf_counter()
    emb = compute_cluster_embeddings(synth.scene, cameras, labels, encoder, views_per_cluster=views)
    seconds = time.perf_counter() - t0
    clusters = sum(le.ids.size for le in emb.levels.values())
    crops = sum(int((le.views >= 0).sum()) for le in emb.levels.values())

    images = torch.rand(32, encoder.image_size, encoder.image_size, 3)
    encoder.encode_images(images[:2])
    t1 = time.perf_counter()
    encoder.encode_images(images)
    per_crop = (time.perf_counter() - t1) / images.shape[0]
    scene_note = f"{len(synth.scene):,} Gaussians, {len(cameras)} views, {clusters} clusters, {crops} crops"
    return [
        Figure("text", "cluster embedding per cluster, ViT-B-16", seconds / clusters, "s", f"{where}; {scene_note}"),
        Figure("text", "CLIP image encode per 224² crop, ViT-B-16", per_crop * 1e3, "ms", f"{where}; batch 32"),
    ]

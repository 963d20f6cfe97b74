"""`bench --section text`, field part: text accuracy measured with the ground-truth encoder, and field query latency.

The protocol (localisation, mIoU, the scene and its noisy masks) lives in `backend/language/evaluate.py`, shared with
the tests. Only the figures are made here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.language.evaluate import (
    NOISE_LEVELS,
    build_field,
    cluster_scores,
    evaluate,
    field_scores,
    make_text_scene,
    trained_clusters,
)
from backend.language.field import DEFAULT_CODEBOOK, LanguageField
from backend.language.field_query import FieldIndex
from backend.language.ground_truth import GroundTruthEncoder

from .common import Figure


def measure_accuracy(quick: bool) -> dict[str, Any]:
    """Field and cluster accuracy at the two noise levels; keys as the issue names them (default noise)."""
    if quick:
        ts = make_text_scene(num_gaussians=12_000, views=10, held_out=3, resolution=96)
    else:
        ts = make_text_scene(num_gaussians=40_000, views=20, held_out=4, resolution=128)
    t0 = time.perf_counter()
    labels = trained_clusters(ts, iterations=600 if quick else 1200)
    train_s = time.perf_counter() - t0
    clusters = {lvl: int(lab.max()) + 1 for lvl, lab in labels.items()}
    results: dict[str, Any] = {}
    for noise in NOISE_LEVELS:
        encoder = GroundTruthEncoder(ts.synth, noise=noise)
        t0 = time.perf_counter()
        field = build_field(ts, encoder)
        build_s = time.perf_counter() - t0
        f = evaluate(ts, field_scores(FieldIndex(encoder, field)))
        c = evaluate(ts, cluster_scores(ts, GroundTruthEncoder(ts.synth, noise=noise), labels))
        results[noise] = {
            "field": f,
            "clusters": c,
            "field_build_s": build_s,
            "field_seconds_per_view": build_s / len(ts.train),
        }
    default = results[NOISE_LEVELS[0]]
    return {
        "localization_objects_field": default["field"]["localization_objects"],
        "localization_parts_field": default["field"]["localization_parts"],
        "localization_objects_clusters": default["clusters"]["localization_objects"],
        "localization_parts_clusters": default["clusters"]["localization_parts"],
        "by_noise": {str(k): v for k, v in results.items()},
        "scene": {"gaussians": len(ts.synth.scene), "train_views": len(ts.train), "held_out": len(ts.held_out)},
        "trained_clusters": clusters,
        "click_train_s": train_s,
    }


def measure_query_latency(*, num_gaussians: int = 1_000_000, quick: bool = False, clip=None) -> dict[str, float]:
    """Query → selection p50 over uncached texts at `num_gaussians`, text encoding included.

    The field is random with a full codebook per level (latency does not depend on the values); the encoder is
    ViT-B-16 with random weights (the real text tower's cost) unless one is given."""
    from backend.language.clip import DEFAULT_CLIP_MODEL, random_clip

    from .language import _QUERIES

    encoder = clip if clip is not None else random_clip(DEFAULT_CLIP_MODEL, seed=0, device="cpu")
    gen = torch.Generator().manual_seed(0)
    d, dim = 16, encoder.embed_dim
    basis, _ = torch.linalg.qr(torch.randn(dim, d, generator=gen))
    levels = ("coarse", "fine")
    field = LanguageField(
        features={lvl: torch.randn(num_gaussians, d, generator=gen) * 0.1 for lvl in levels},
        valid=torch.rand(num_gaussians, generator=gen) < 0.9,
        basis=basis,
        mean=torch.nn.functional.normalize(torch.randn(dim, generator=gen), dim=0) * 0.5,
        identity=dict(encoder.identity),
        codebooks={lvl: torch.randn(DEFAULT_CODEBOOK, d, generator=gen) * 0.1 for lvl in levels},
        codes={lvl: torch.randint(0, DEFAULT_CODEBOOK, (num_gaussians,), generator=gen) for lvl in levels},
    )
    index = FieldIndex(encoder, field)
    index.query("warm-up query")
    texts = _QUERIES[:12] if quick else _QUERIES
    total, encode = [], []
    for text in texts:
        r = index.query(text)
        total.append(r.milliseconds)
        encode.append(r.encode_ms)
    lookup = [t - e for t, e in zip(total, encode, strict=True)]
    return {
        "query_p50_ms": float(np.median(total)),
        "encode_p50_ms": float(np.median(encode)),
        "lookup_p50_ms": float(np.median(lookup)),
        "texts": len(texts),
    }


def bench_text_field(*, quick: bool, workdir: Path | None = None) -> list[Figure]:
    """The README's field rows; the headline ones carry the JSON keys (`localization_*`, `query_p50_ms`)."""
    del workdir  # everything is built in memory
    acc = measure_accuracy(quick)
    lat = measure_query_latency(quick=quick)
    where = f"CPU, {torch.get_num_threads()} threads"
    sc = acc["scene"]
    scene = f"{sc['gaussians'] // 1000}k Gaussians, {sc['train_views']} views + {sc['held_out']} held out"
    tc = acc["trained_clusters"]
    trained = f"clusters from Click-Gaussian training ({tc.get('coarse', 0)} coarse, {tc.get('fine', 0)} fine)"
    default = str(NOISE_LEVELS[0])
    figures: list[Figure] = []
    for noise, res in acc["by_noise"].items():
        for src in ("field", "clusters"):
            r = res[src]
            how = f"{trained}; " if src == "clusters" else ""
            note = (
                f"{scene}; {how}GT encoder noise {noise}; mIoU objects {r['miou_objects']:.3f}, "
                f"parts {r['miou_parts']:.3f}; {r['cases_objects']}+{r['cases_parts']} cases"
            )
            for kind in ("objects", "parts"):
                key = f"localization_{kind}_{src}" if noise == default else ""
                name = f"text localisation {kind}, {src}, noise {noise}"
                figures.append(Figure("text", name, r[f"localization_{kind}"], "ratio", note, key=key))
        figures.append(
            Figure("text", f"prepare-text --field per view, noise {noise}", res["field_seconds_per_view"], "s", where)
        )
    figures.append(
        Figure(
            "text",
            "text query → selection p50, field, 1M Gaussians",
            lat["query_p50_ms"],
            "ms",
            f"{where}; ViT-B-16 text (random weights), encode p50 {lat['encode_p50_ms']:.1f} ms, "
            f"lookup p50 {lat['lookup_p50_ms']:.1f} ms",
            key="query_p50_ms",
        )
    )
    return figures

"""The `splatseg query` and `splatseg prepare-text` commands, behind the thin argument parsing in `backend.cli`."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from backend.core.errors import SplatsegError
from backend.language.clip import DEFAULT_CLIP_MODEL
from backend.language.query import DEFAULT_TOP, LevelChoice, TextIndex, prepare_text


def query_command(
    scene: str | os.PathLike[str],
    text: str,
    *,
    top: int = DEFAULT_TOP,
    threshold: float | None = None,
    level: LevelChoice = "both",
    mask_out: Path | None = None,
    out: Path | None = None,
    clip_model: str | None = None,
    clip_checkpoint: Path | None = None,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """Run one query; returns the JSON object the CLI prints (ranked clusters, selection size, milliseconds)."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise SplatsegError(f"--threshold {threshold} is not a relevancy in [0, 1] (0.5 = as close as a generic word)")
    t0 = time.perf_counter()
    index = TextIndex.open(scene, clip_model=clip_model, clip_checkpoint=clip_checkpoint, workspace_root=workspace)
    load_ms = (time.perf_counter() - t0) * 1e3
    result = index.query(text, level=level, top=top, threshold=threshold)
    payload = result.to_json(top)
    payload["load_ms"] = round(load_ms, 1)
    payload["clip_model"] = index.encoder.name
    if mask_out is not None:
        from backend.io.selection import save_selection

        save_selection(mask_out, result.mask)
        payload["mask_out"] = str(mask_out)
    if out is not None:
        from backend.export import export_selection
        from backend.io.scene_folder import load_scene

        model, model_path = load_scene(scene)
        if Path(out).resolve() == model_path.resolve():
            raise SplatsegError(f"refusing to overwrite the input model {model_path}; choose another --out path")
        if not result.count:
            raise SplatsegError("nothing matched (no cluster at or above --threshold), so there is no PLY to write")
        export_selection(model, result.mask, out, format="ply")
        payload["out"] = str(out)
    return payload


def prepare_text_command(
    scene: str | os.PathLike[str],
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    clip_checkpoint: Path | None = None,
    views: int | None = None,
    backend: Literal["auto", "torch", "gsplat"] = "auto",
    workspace: Path | None = None,
) -> dict[str, Any]:
    """Compute the cluster embeddings with a progress bar; returns the JSON object the CLI prints."""
    report = prepare_text(
        scene,
        clip_model=clip_model,
        clip_checkpoint=clip_checkpoint,
        workspace_root=workspace,
        views_per_cluster=views,
        backend=backend,
        progress=True,
    )
    return {
        "clusters": report.clusters,
        "seconds": round(report.seconds, 2),
        "seconds_per_cluster": round(report.seconds_per_cluster, 3),
        "output": str(report.path),
    }


def run_query(args: argparse.Namespace) -> int:
    payload = query_command(
        args.scene,
        args.text,
        top=args.top,
        threshold=args.threshold,
        level=args.level,
        mask_out=args.mask_out,
        out=args.out,
        clip_model=args.clip_model,
        clip_checkpoint=args.clip_checkpoint,
        workspace=args.workspace,
    )
    print(json.dumps(payload))
    return 0


def run_prepare_text(args: argparse.Namespace) -> int:
    payload = prepare_text_command(
        args.scene,
        clip_model=args.clip_model,
        clip_checkpoint=args.clip_checkpoint,
        views=args.views,
        backend=args.backend,
        workspace=args.workspace,
    )
    print(json.dumps(payload))
    return 0

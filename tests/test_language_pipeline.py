"""Text queries end to end on a synthetic scene whose clusters are the ground-truth objects and parts.

Two encoders: a colour-histogram stand-in, with which every query has a right answer (so the visibility, cropping
and rendering are checked by what the encoder sees), and a real open_clip CLIP at toy size with random weights,
with which the command line runs exactly as it would with ViT-B-16, checkpoint loading included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from backend.cli import main
from backend.core.errors import SplatsegError, StaleCacheError
from backend.io.cameras import load_cameras
from backend.io.ply import read_ply, write_ply
from backend.io.scene_folder import load_scene
from backend.language import (
    ClusterSource,
    TextIndex,
    compute_cluster_embeddings,
    load_embeddings,
    save_embeddings,
)
from backend.language import clip as clip_mod
from backend.language import query as query_mod
from backend.synthetic import write_synthetic_scene
from backend.workspace import Workspace
from tests.helpers.language_support import TINY_NAME, ColourEncoder, register_tiny, tiny_clip

VIEWS_PER_CLUSTER = 2


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("text") / "scene"
    write_synthetic_scene(out, seed=0, views=6, resolution=48, num_gaussians=3000, progress=False)
    return out


@pytest.fixture(scope="module")
def truth(scene_dir) -> dict:
    npz = np.load(scene_dir / "gaussian_labels.npz")
    meta = json.loads((scene_dir / "labels.json").read_text())
    return {
        "labels": {"coarse": npz["object"].astype(np.int64), "fine": npz["part"].astype(np.int64)},
        "parts": {int(k): v for k, v in meta["parts"].items()},
    }


@pytest.fixture(scope="module")
def colour_embeddings(scene_dir, truth):
    scene, _ = load_scene(scene_dir)
    cameras = load_cameras(scene_dir)
    enc = ColourEncoder()
    emb = compute_cluster_embeddings(
        scene, cameras, truth["labels"], enc, views_per_cluster=VIEWS_PER_CLUSTER, backend="torch"
    )
    return scene, enc, emb


def test_cpu_crops_are_rendered_at_half_the_encoder_size(scene_dir, truth) -> None:
    """The reference renderer's cost grows with the pixels: it renders crops at half CLIP's input size (the
    encoder resizes them); a small input size is not halved below 32 px."""

    class Recording(ColourEncoder):
        image_size = 80

        def __init__(self) -> None:
            super().__init__()
            self.sizes: set[tuple[int, ...]] = set()

        def encode_images(self, images: torch.Tensor) -> torch.Tensor:
            self.sizes.add(tuple(images.shape[1:]))
            return super().encode_images(images)

    scene, _ = load_scene(scene_dir)
    cameras = load_cameras(scene_dir)
    enc = Recording()
    labels = {"coarse": truth["labels"]["coarse"]}
    emb = compute_cluster_embeddings(scene, cameras, labels, enc, views_per_cluster=1, backend="torch")
    assert enc.sizes == {(40, 40, 3)} and emb.params["render_size"] == 40


def _colour_text(c: np.ndarray) -> str:
    return ",".join(f"{v:.3f}" for v in c)


def test_embeddings_cover_every_cluster_from_the_best_views(colour_embeddings, truth) -> None:
    _, _, emb = colour_embeddings
    for level, labels in truth["labels"].items():
        le = emb.levels[level]
        ids, counts = np.unique(labels, return_counts=True)
        assert le.ids.tolist() == ids.tolist() and le.counts.tolist() == counts.tolist()
        assert le.seen.all()  # every cluster was rendered from at least one view
        assert le.views.shape == (ids.size, VIEWS_PER_CLUSTER)
        torch.testing.assert_close(le.embeddings.norm(dim=1), torch.ones(ids.size))
    assert emb.params["clusters"] == {"coarse": 9, "fine": 25}


def test_a_colour_query_finds_the_part_of_that_colour(colour_embeddings, truth) -> None:
    scene, enc, emb = colour_embeddings
    index = TextIndex(enc, emb, truth["labels"])
    dc = scene.dc_colors.numpy()
    fine = truth["labels"]["fine"]
    for part_id, name in truth["parts"].items():
        colour = dc[fine == part_id].mean(0)
        result = index.query(_colour_text(colour), level="fine")
        best = result.ranked[0]
        found = dc[fine == best.id].mean(0)
        # Right colour (several parts share one: the mug's and the car's bodies are both red).
        assert np.abs(found - colour).max() < 0.1, (name, truth["parts"][best.id])
        assert result.selected == (best,)
        np.testing.assert_array_equal(result.mask, fine == best.id)
        assert best.count == int((fine == best.id).sum())
        scores = [m.score for m in result.ranked]
        assert scores == sorted(scores, reverse=True) and 0.5 < scores[0] < 1.0


def test_threshold_selects_every_matching_cluster_across_levels(colour_embeddings, truth) -> None:
    scene, enc, emb = colour_embeddings
    index = TextIndex(enc, emb, truth["labels"])
    teapot_blue = scene.dc_colors.numpy()[truth["labels"]["fine"] == _part(truth, "teapot/body")].mean(0)
    result = index.query(_colour_text(teapot_blue), level="both", threshold=0.9)
    chosen = {(m.level, m.id) for m in result.selected}
    assert ("fine", _part(truth, "teapot/body")) in chosen and ("fine", _part(truth, "books/book2")) in chosen
    assert all(m.score >= 0.9 for m in result.selected)
    expected = np.zeros_like(result.mask)
    for m in result.selected:
        expected |= truth["labels"][m.level] == m.id
    np.testing.assert_array_equal(result.mask, expected)
    heat = index.heat(result)
    best = result.ranked[0]
    assert heat[truth["labels"][best.level] == best.id].min() == pytest.approx(best.score, abs=1e-6)
    json_line = result.to_json(top=3)
    assert len(json_line["clusters"]) == 3 and json_line["count"] == int(result.mask.sum())


def _part(truth: dict, name: str) -> int:
    return next(k for k, v in truth["parts"].items() if v == name)


def test_embeddings_round_trip_through_the_workspace(colour_embeddings, scene_dir, tmp_path) -> None:
    _, _, emb = colour_embeddings
    ws = Workspace(scene_dir, tmp_path / "ws")
    save_embeddings(ws, emb, inputs={"model": scene_dir / "point_cloud.ply"})
    back = load_embeddings(ws, inputs={"model": scene_dir / "point_cloud.ply"})
    assert back.identity == emb.identity
    assert back.params["views_per_cluster"] == VIEWS_PER_CLUSTER
    for level, le in emb.levels.items():
        got = back.levels[level]
        np.testing.assert_array_equal(got.ids, le.ids)
        np.testing.assert_array_equal(got.counts, le.counts)
        np.testing.assert_array_equal(got.views, le.views)
        torch.testing.assert_close(got.embeddings, le.embeddings)


def test_stale_embeddings_are_detected(colour_embeddings, scene_dir, truth, tmp_path) -> None:
    _, enc, emb = colour_embeddings
    model = tmp_path / "point_cloud.ply"
    model.write_bytes((scene_dir / "point_cloud.ply").read_bytes())
    ws = Workspace(scene_dir, tmp_path / "ws")
    save_embeddings(ws, emb, inputs={"model": model})
    scene = read_ply(model)
    scene.logit_opacities[0] += 1.0  # "retrained": same size, other content
    write_ply(model, scene)
    with pytest.raises(StaleCacheError, match="prepare-text"):
        load_embeddings(ws, inputs={"model": model})
    moved = {**truth["labels"], "fine": np.roll(truth["labels"]["fine"], 1)}  # clusters recomputed since
    with pytest.raises(StaleCacheError, match="prepare-text"):
        TextIndex(enc, emb, moved)


def test_embeddings_of_another_clip_are_refused(colour_embeddings, truth, tmp_path) -> None:
    _, _, emb = colour_embeddings
    with pytest.raises(SplatsegError, match="prepare-text"):
        TextIndex(tiny_clip(tmp_path), emb, truth["labels"])


def test_clusters_come_from_the_click_features_and_retraining_makes_embeddings_stale(
    colour_embeddings, scene_dir, truth, tmp_path
) -> None:
    _, enc, emb = colour_embeddings
    ws = Workspace(scene_dir, tmp_path / "ws")
    model = scene_dir / "point_cloud.ply"

    def train(labels: dict) -> None:  # what `splatseg train --method click` stores (backend/features/store.py)
        tensors = {f"{lvl}_labels": labels[lvl].astype(np.int32) for lvl in ("coarse", "fine")}
        tensors["features"] = np.zeros((3000, 24), dtype=np.float32)
        ws.save_tensors("features/click.safetensors", tensors, made_by="train", inputs={"model": model})

    with pytest.raises(SplatsegError, match="splatseg train"):
        query_mod.clusters_from_field(ws)
    train(truth["labels"])
    source = query_mod.clusters_from_field(ws)
    assert source.method == "click" and set(source.labels) == {"coarse", "fine"}
    np.testing.assert_array_equal(source.labels["fine"], truth["labels"]["fine"])
    with pytest.raises(SplatsegError, match="--method click"):
        query_mod.clusters_from_field(ws, method="saga")

    save_embeddings(ws, emb, inputs={"model": model, **source.inputs})
    index = TextIndex.open(scene_dir, workspace_root=ws.root, encoder=enc)
    assert index.query("0.9,0.9,0.9").count > 0

    train({**truth["labels"], "fine": np.roll(truth["labels"]["fine"], 7)})  # retrained: other clusters
    with pytest.raises(StaleCacheError, match="prepare-text"):
        TextIndex.open(scene_dir, workspace_root=ws.root, encoder=enc)


# ---- the command line, with a real (tiny, random) open_clip model --------------------------------------------------


@pytest.fixture
def cli_scene(scene_dir, truth, tmp_path, monkeypatch):
    """The scene with its clusters (from the ground truth, as if `train` had run) and a CLIP checkpoint file."""
    source = ClusterSource(labels=truth["labels"], method="ground-truth")
    monkeypatch.setattr(query_mod, "clusters_from_field", lambda *a, **k: source)
    monkeypatch.setattr(clip_mod, "is_online", lambda *a, **k: False)  # tests never download
    monkeypatch.setattr(clip_mod, "cached_weights", lambda *a, **k: None)
    encoder = tiny_clip(tmp_path)
    checkpoint = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(checkpoint))
    return {"scene": scene_dir, "workspace": tmp_path / "ws", "checkpoint": checkpoint}


def test_cli_prepare_text_then_query(cli_scene, truth, tmp_path, capsys) -> None:
    scene, ws, ckpt = str(cli_scene["scene"]), str(cli_scene["workspace"]), str(cli_scene["checkpoint"])
    register_tiny(tmp_path)

    assert main(["query", scene, "a red mug", "--workspace", ws]) == 2
    assert "run `splatseg prepare-text" in capsys.readouterr().err

    assert main(["prepare-text", scene, "--clip-model", TINY_NAME, "--workspace", ws]) == 2
    err = capsys.readouterr().err
    assert "--clip-checkpoint" in err and err.count("\n") == 1

    args = ["prepare-text", scene, "--clip-model", TINY_NAME, "--clip-checkpoint", ckpt, "--workspace", ws]
    assert main([*args, "--views", "1", "--backend", "torch"]) == 0
    prepared = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert prepared["clusters"] == {"coarse": 9, "fine": 25} and prepared["seconds_per_cluster"] > 0

    sel, ply = tmp_path / "sel.npy", tmp_path / "sel.ply"
    # No CLIP flags: the query uses the checkpoint prepare-text recorded.
    assert (
        main(["query", scene, "a red mug", "--top", "3", "--mask-out", str(sel), "--out", str(ply), "--workspace", ws])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["query"] == "a red mug" and out["clip_model"] == TINY_NAME and out["ms"] > 0
    assert len(out["clusters"]) == 3
    scores = [c["score"] for c in out["clusters"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)
    for c in out["clusters"]:
        assert c["count"] == int((truth["labels"][c["level"]] == c["id"]).sum())
    best = out["clusters"][0]
    assert out["selected"] == [{"level": best["level"], "id": best["id"]}]
    mask = np.load(sel)
    np.testing.assert_array_equal(mask, truth["labels"][best["level"]] == best["id"])
    assert out["count"] == int(mask.sum()) == len(read_ply(ply))

    assert main(["query", scene, "a red mug", "--threshold", "0", "--level", "fine", "--workspace", ws]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["count"] == 3000 and len(everything["selected"]) == 25

    assert main(["query", scene, "a mug", "--clip-model", "ViT-B-32", "--workspace", ws]) == 2
    err = capsys.readouterr().err
    assert "computed with CLIP splatseg-tiny-test" in err and "prepare-text" in err


def test_cli_query_without_trained_features_says_train_first(scene_dir, tmp_path, capsys) -> None:
    assert main(["query", str(scene_dir), "a red mug", "--workspace", str(tmp_path / "empty")]) == 2
    assert "splatseg train" in capsys.readouterr().err
    assert main(["prepare-text", str(scene_dir), "--workspace", str(tmp_path / "empty")]) == 2
    assert "splatseg train" in capsys.readouterr().err

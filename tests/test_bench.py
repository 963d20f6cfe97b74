"""`splatseg bench` plumbing: section names, the accuracy benchmark end to end on a tiny scene, and its child
processes (a child that dies must be an error, never a hang)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backend.cli import main
from bench.accuracy import _run_isolated, accuracy_benchmark
from bench.capture import prepare_to_ready
from bench.formats import format_load_times
from bench.gpu import main as gpu_main
from bench.gpu import readme_rows


def test_unknown_section_is_one_line_and_exit_2(capsys) -> None:
    assert main(["bench", "--section", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown bench section 'bogus'" in err[0] and "segmentation" in err[0]


def test_json_into_a_missing_folder_is_refused_before_the_run(tmp_path, capsys) -> None:
    out = tmp_path / "missing" / "figures.json"
    assert main(["bench", "--section", "segmentation", "--json", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "[bench]" not in captured.out
    assert not out.parent.exists()


def test_startup_baseline_that_is_not_a_checkout_is_one_line(tmp_path, capsys) -> None:
    from bench.startup import main as startup_main

    with pytest.raises(SystemExit) as exit_info:
        startup_main(["--baseline", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "not a splatseg checkout" in err[-1]


@pytest.mark.parametrize(
    "args, says",
    [
        ("--baseline {tmp}", "not a splatseg checkout"),
        ("--json {tmp}/no/f.json", "does not exist"),
        ("--repeat 0", "1 or more rounds"),
    ],
)
def test_capture_side_by_side_bad_arguments_are_one_line_before_any_run(tmp_path, capsys, args, says) -> None:
    from bench.capture import main as capture_main

    with pytest.raises(SystemExit) as exit_info:
        capture_main(args.format(tmp=tmp_path).split())
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and not (tmp_path / "no").exists()


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_capture_of_a_file_the_viewer_refuses_is_one_line(tmp_path, capsys) -> None:
    from bench.capture import main as capture_main

    bad = tmp_path / "notes.ply"
    bad.write_text("not a splat\n")
    out = tmp_path / "f.json"
    assert capture_main(["--model", str(bad), "--repeat", "1", "--json", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bench.capture" in err[0] and not out.exists()


def _die(scene: str, kwargs: dict) -> dict:  # run in a spawned child: exits without reporting
    os._exit(3)


def _echo(scene: str, kwargs: dict) -> dict:
    return {"scene": scene, **kwargs}


def test_isolated_child_reports_or_fails_clearly() -> None:
    assert _run_isolated(_echo, "s", {"a": 1}) == {"scene": "s", "a": 1}
    with pytest.raises(RuntimeError, match=r"preparing masks died without a report \(exit code 3\)"):
        _run_isolated(_die, "s", {})


def test_accuracy_benchmark_on_a_tiny_scene(tmp_path) -> None:
    r = accuracy_benchmark(
        noise=1.0,
        methods=("click",),
        views=4,
        resolution=32,
        num_gaussians=2000,
        workdir=tmp_path,
        iterations={"click": 20},
        holdout_every=2,
        isolate=False,
    )
    assert r["scene"]["train_views"] == 2 and r["scene"]["held_out_views"] == 2
    assert r["prepare"]["seconds"] > 0 and r["prepare"]["peak_memory_mb"] > 0
    m = r["methods"]["click"]
    for key in ("miou_coarse", "miou_fine", "floater_fraction"):
        assert 0.0 <= m[key] <= 1.0
    assert m["iterations"] == 20 and m["train_seconds"] > 0
    # A second run reuses the scene and the masks: nothing to prepare.
    again = accuracy_benchmark(
        noise=1.0, methods=(), views=4, resolution=32, num_gaussians=2000, workdir=tmp_path, isolate=False
    )
    assert again["prepare"] == {}


def test_interop_bench_reports_both_loaders_per_format(tmp_path) -> None:
    from tests.helpers.interop import splat_transform_or_skip

    splat_transform_or_skip()
    from bench.interop import FORMATS, bench_interop

    assert set(FORMATS) == {"ply", "compressed.ply", "spz", "splat"}  # the formats test_interop checks
    figures = bench_interop(quick=True, workdir=tmp_path, num_gaussians=3000, formats=("ply", "splat"))
    names = [f.name for f in figures]
    assert names[0].startswith("splat-transform start-up") and figures[0].value > 0
    for fmt in ("ply", "splat"):
        theirs = [f for f in figures if f.name.startswith(f"load {fmt}, 3k: splat-transform")]
        ours = [f for f in figures if f.name.startswith(f"load {fmt}, 3k: splatseg")]
        assert len(theirs) == len(ours) == 1 and theirs[0].value > 0
    ply = next(f for f in figures if f.name.startswith("load ply, 3k: splatseg"))
    assert 0 < ply.value < figures[1].value * 100 and "as long" in ply.note


# ---- bench/gpu.sh -------------------------------------------------------------------------------------------------
_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA answer")
def test_without_cuda_it_says_so_and_measures_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert gpu_main(["--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA answer")
def test_the_shell_script_fails_in_one_line_without_cuda(tmp_path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    script = _ROOT / "bench" / "gpu.sh"
    proc = subprocess.run(
        ["bash", str(script), "--json", str(tmp_path / "g.json")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA GPU" in proc.stderr


def test_dry_run_runs_every_step_on_the_cpu(tmp_path, capsys) -> None:
    """Every step the GPU run takes, at toy sizes with the torch renderer: the plumbing works before a GPU is lent."""
    out = tmp_path / "gpu.json"
    assert gpu_main(["--json", str(out), "--dry-run", "--click-size", "20000"]) == 0
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["errors"] == {} and result["skipped"] == []
    assert result["gsplat_build"].startswith("not built")
    assert result["cuda_tests_rc"] == 0 and "collected" in result["cuda_tests_summary"]
    for key in ("gsplat_render_1m_p50_ms", "gsplat_render_3m_p50_ms", "server_frame_1m_p50_ms"):
        assert result[key] > 0, key
    assert result["gpu_machine_click_coarse_p50_ms"] > 0
    # the training step: smoke (click, SAGA), the CPU / device ratio, the large scene (click, SAGA), all trained
    for part in ("smoke_click", "smoke_saga", "ratio_click_cpu", "ratio_click_dev", "large_click", "large_saga"):
        assert result[f"gpu_training_{part}_total_s"] > 0 and result[f"gpu_training_{part}_iterations"] > 0, part
        assert f"gpu_training_{part}_error" not in result, part
    assert result["gpu_training_large_click_views"] == 4 and result["gpu_training_ratio_cpu_over_device"] > 0
    rows = result["readme_rows"]
    assert len(rows) == 8 and all("dry run" in row for row in rows[:7])
    assert sum("feature training on the GPU" in row for row in rows) == 2


def test_only_runs_the_named_steps(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert gpu_main(["--json", str(out), "--dry-run", "--only", "server_frame"]) == 0
    result = json.loads(out.read_text())
    assert result["server_frame_1m_p50_ms"] > 0 and "server_frame_s" in result
    for step in ("cuda_tests", "render", "training", "click"):
        assert f"{step}_s" not in result, step
    with pytest.raises(SystemExit) as e:
        gpu_main(["--json", str(out), "--dry-run", "--only", "server_frame,warp"])
    assert e.value.code == 2 and "unknown step 'warp'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["--only", "nonsense"], ["--only", ","], ["--click-size", "many"], ["--cpu-parts", "--click-size", "-5"]]
)
def test_a_usage_error_is_one_line(argv, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        gpu_main(["--json", str(tmp_path / "gpu.json"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("bench/gpu.sh: error: "), err
    assert "--help" in err and not (tmp_path / "gpu.json").exists()


def test_a_failing_training_part_keeps_its_traceback_and_the_others_run(tmp_path) -> None:
    """A device bug in one part is recorded with its last frames, and the next part still runs; a failing smoke
    training ends the step."""
    from bench.gpu_training import DRY_RUN_SIZES, SceneSize, training_step

    broken = dataclasses.replace(DRY_RUN_SIZES, ratio=SceneSize(3000, 3, 48, 6, 0))  # 0 pixels a view: nothing
    published: list[dict] = []
    out = training_step(broken, published.append, workdir=tmp_path)
    assert "Error" in out["gpu_training_ratio_click_cpu_error"]
    assert "File" in out["gpu_training_ratio_click_cpu_traceback"]
    assert out["gpu_training_large_click_total_s"] > 0 and "gpu_training_ratio_cpu_over_device" not in out
    assert len(published) >= 6 and published[-1]["gpu_training_large_saga_total_s"] > 0
    smoke_broken = dataclasses.replace(DRY_RUN_SIZES, smoke=SceneSize(3000, 3, 48, 4, 0))
    with pytest.raises(Exception):  # noqa: B017 - whatever the smoke raises ends the step
        training_step(smoke_broken, workdir=tmp_path)


def test_the_shell_script_runs_the_module(tmp_path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(_ROOT / "bench" / "gpu.sh"), "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "--cpu-parts" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU steps would run")
def test_cpu_parts_write_the_json(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert gpu_main(["--json", str(out), "--cpu-parts", "--click-size", "20000"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == {}, result["errors"]
    assert result["gpu_machine_click_coarse_p50_ms"] > 0 and "no CUDA GPU" in result["gpu_training"]
    assert any("click → selection" in row for row in result["readme_rows"])


def test_readme_rows_name_only_measured_figures() -> None:
    rows = readme_rows(
        {"machine": "m", "gsplat_render_1m_p50_ms": 4.2, "cuda_tests_rc": 0, "cuda_tests_summary": "9 passed"}
    )
    assert rows == [
        "| gpu | gsplat render 1280×720, 1M Gaussians p50 | 4.2 ms | m |",
        "| gpu | CUDA tests (`pytest -m cuda`) | rc 0 | 9 passed |",
    ]
    built = readme_rows({"machine": "m", "gsplat_build": "ok", "gsplat_build_s": 301.4})
    assert built == ["| gpu | gsplat CUDA build (first use; cached after) | 301 s | m |"]
    large = {"total_s": 61.25, "num_gaussians": 1000000, "views": 200, "iterations": 1200}
    large |= {"precompute_s": 12.0, "train_s": 40.0, "peak_gpu_mb": 5120.0}
    trained = readme_rows({"machine": "m"} | {f"gpu_training_large_click_{k}": v for k, v in large.items()})
    assert trained == [
        "| gpu | feature training on the GPU, click, 1M Gaussians / 200 views | 61.2 s | 1000000 Gaussians, "
        "200 views, 1200 iterations: precompute 12.0 s, train 40.0 s, peak GPU memory 5120 MB; m |"
    ]


def test_format_load_times_reads_every_format(tmp_path) -> None:
    times = format_load_times(tmp_path, num_gaussians=2000, repeat=1)
    assert set(times) == {"ply", "compressed-ply", "splat", "spz"}
    assert all(t["seconds"] > 0 and t["megabytes"] > 0 for t in times.values())
    assert times["compressed-ply"]["megabytes"] < times["ply"]["megabytes"] / 3


def test_prepare_to_ready_on_a_file_without_cameras(tmp_path, monkeypatch) -> None:
    """The capture figure's Prepare → ready path: virtual views, the masks the viewer picks offline, click features."""
    from backend.io.ply import write_ply
    from backend.masks import sam
    from tests.conftest import random_scene

    monkeypatch.setattr(sam, "is_online", lambda *a, **k: False)
    monkeypatch.setattr(sam, "cache_dir", lambda: tmp_path / "no-weights")
    model = tmp_path / "cloud.ply"
    write_ply(model, random_scene(600))
    r = prepare_to_ready(model, tmp_path / "work", views=2, resolution=32, iterations=4)
    assert r["source"] == "geometric" and r["views"] == 2
    assert r["ready_s"] >= r["prepare_s"] > 0 and r["train_s"] > 0
    assert (tmp_path / "work" / "capture" / ".splatseg" / "features" / "click.safetensors").is_file()


def test_bench_json_carries_the_keyed_figures_at_the_top_level(tmp_path, monkeypatch) -> None:
    from bench.common import Figure
    from bench.run import SECTIONS, run_bench

    def tiny(*, quick: bool, workdir) -> list[Figure]:
        return [Figure("t", "keyed", 1.5, "ms", key="keyed_ms"), Figure("t", "plain", 2.0, "ms")]

    monkeypatch.setitem(SECTIONS, "tiny", tiny)
    out = tmp_path / "b.json"
    run_bench(quick=True, json_out=out, sections=["tiny"])
    payload = json.loads(out.read_text())
    assert payload["keyed_ms"] == 1.5 and "plain" not in payload
    assert [f["name"] for f in payload["figures"]] == ["keyed", "plain"]


def test_field_query_latency_splits_encoding_from_the_lookup(tmp_path) -> None:
    from bench.language_field import measure_query_latency
    from tests.helpers.language_support import tiny_clip

    r = measure_query_latency(num_gaussians=20_000, quick=True, clip=tiny_clip(tmp_path))
    assert r["texts"] == 12
    assert 0 < r["lookup_p50_ms"] < r["query_p50_ms"] and 0 < r["encode_p50_ms"] < r["query_p50_ms"]


def test_saga_auto_latency_compares_first_and_repeated_clicks_with_the_previous_path() -> None:
    from backend.synthetic import build_tabletop, orbit_cameras
    from bench.latency import bench_saga_auto
    from bench.viewer import _click_pixels

    synth = build_tabletop(seed=0, num_gaussians=20_000)
    cams = orbit_cameras(synth, views=2, resolution=96, seed=0)
    cameras, pixels = [], []
    for ci, cam in enumerate(cams):
        for px in _click_pixels(synth.scene, cam, synth.object_labels, 1, seed=ci):
            cameras.append(cam)
            pixels.append(px)
    r = bench_saga_auto(synth, cameras, pixels, previous_clicks=1)
    assert r["saga_auto_selection_mismatches"] == 0 and r["saga_auto_builder_errors"] == 0
    assert r["saga_auto_previous_clicks"] == 1 and r["saga_auto_distinct_scales"] >= 1
    assert r["saga_auto_p50_ms"] > 0 and r["saga_auto_first_p50_ms"] > 0 and r["saga_auto_first_previous_p50_ms"] > 0


def _warm_click_field(tmp_path, *, views: int):
    """A warmed click field on a 20k click scene, and two object clicks in each of its first `views` cameras."""
    from backend.features.field import load_field
    from bench.viewer import _click_pixels, write_click_scene

    synth, cams = write_click_scene(tmp_path / "scene", 20_000)
    field = load_field(tmp_path / "scene", method="click", scene=synth.scene).warm_up()
    cameras, pixels = [], []
    for ci, cam in enumerate(cams[:views]):
        for px in _click_pixels(synth.scene, cam, synth.object_labels, 2, seed=ci):
            cameras.append(cam)
            pixels.append(px)
    return field, cameras, pixels


def test_fine_click_parts_time_the_growth_beside_its_previous_path(tmp_path) -> None:
    from bench.fine_click import fine_click_figures, fine_click_parts

    field, cameras, pixels = _warm_click_field(tmp_path, views=3)
    r = fine_click_parts(field, cameras, pixels)
    # the compiled growth keeps what the SciPy searches and the components path keep, its pieces the id path's
    assert r["click_fine_grow_mismatches"] == 0 and r["click_fine_pieces_mismatches"] == 0
    parts = [r[f"click_fine_cpu_{k}_ms"] for k in ("ray", "product", "grow", "floaters", "mask")]
    assert all(p > 0 for p in parts) and r["click_fine_cpu_segment_ms"] > 0 and r["click_fine_cpu_grow_previous_ms"] > 0
    assert r["click_fine_cpu_grow_scipy_ms"] > 0 and r["click_fine_cpu_grow_p95_ms"] >= r["click_fine_cpu_grow_ms"]
    figures = fine_click_figures({**r, "clicks": len(pixels)}, "20k")
    assert [f.key for f in figures] == [
        "click_fine_cpu_segment_ms",
        "click_fine_cpu_grow_ms",
        "click_fine_cpu_pieces_ms",
    ]


def test_session_parts_time_the_click_with_and_without_them(tmp_path) -> None:
    from bench.latency import session_parts

    field, cameras, pixels = _warm_click_field(tmp_path, views=2)
    r = session_parts(field, cameras, pixels)
    for level in ("coarse", "fine"):
        assert r[f"click_{level}_session_mismatches"] == 0  # the same selections with and without them
        assert r[f"click_{level}_cpu_session_ms"] > 0 and r[f"click_{level}_cpu_session_before_ms"] > 0
    assert field.blend_compiled and field.pieces_by_node  # left on
    assert all(pruned.runs_compiled for _, pruned in field._pruned.values())


# ---- bench/scale.py and bench/startup.py ----------------------------------------------------------------------------
def test_scale_bench_reports_where_the_peak_comes_from(tmp_path) -> None:
    from bench.scale import bench_scale

    r = bench_scale(20_000, tmp_path)
    assert r["num_gaussians"] == 20_000 and r["first_frame_bytes"] == 20_000 * 32
    assert 0 < r["rss_imports_mb"] <= r["peak_load_mb"] <= r["peak_first_frame_mb"] <= r["peak_field_mb"]
    assert r["peak_field_mb"] <= r["peak_rss_mb"] + 1 and r["rss_per_ply"] == r["peak_rss_mb"] / r["ply_mb"]
    assert r["scene_rss_per_ply"] == (r["peak_rss_mb"] - r["rss_imports_mb"]) / r["ply_mb"]
    assert r["click_p50_ms"] > 0 and isinstance(r["within_budget"], bool)
    # The click pixels are chosen with the scene, outside the measured process (a second ray caster's memory is the
    # benchmark's, not the server's); a kept folder without them gets them back.
    from bench.scale import PIXELS_NAME

    pixels_file = tmp_path / "sh3_20000" / PIXELS_NAME
    pixels = json.loads(pixels_file.read_text())
    assert len(pixels) == 12 and all(len(p) == 2 for p in pixels)
    pixels_file.unlink()
    again = bench_scale(20_000, tmp_path)  # the kept scene is reused, not rebuilt
    assert again["build_s"] < r["build_s"] and again["first_frame_bytes"] == r["first_frame_bytes"]
    assert json.loads(pixels_file.read_text()) == pixels


def test_startup_bench_times_each_checkout(tmp_path) -> None:
    from bench.run import SECTIONS
    from bench.startup import startup_figures

    assert SECTIONS["startup"].__name__ == "bench_startup"
    figures = startup_figures(quick=True, workdir=tmp_path, num_gaussians=3000, repeat=1)
    segment, helps = figures
    assert segment.key == "segment_startup_s" and segment.name.startswith("`segment`, one click, 3k")
    assert segment.value > helps.value > 0 and "CPU" in segment.note and "importing" in segment.note


def test_segmentation_grid_has_one_row_per_preset_noise_and_method(tmp_path) -> None:
    from bench.segmentation import METRICS, NOISE_LEVELS, GridSize, format_grid, grid_figures, segmentation_grid

    assert [name for name, _ in NOISE_LEVELS] == ["clean", "default", "strong"]
    levels = (("strong", 2.0),)  # one level keeps it fast; the product over levels is the same loop
    lines: list[str] = []
    rows = segmentation_grid(
        size=GridSize(views=4, resolution=32, num_gaussians=5000, iterations=6),
        workdir=tmp_path,
        noise_levels=levels,
        isolate=False,
        log=lines.append,
    )
    cells = [(r["preset"], r["noise"], r["method"]) for r in rows]
    assert cells == [(p, n, m) for p in ("tabletop", "shelf") for n, _ in levels for m in ("click", "saga")]
    assert {r["preset"]: r["masks"] for r in rows} == {"tabletop": "labels", "shelf": "sam-like"}
    for r in rows:
        assert r["strength"] == dict(levels)[r["noise"]] and r["iterations"] == 6
        for key, _ in METRICS:
            assert 0.0 <= r[key] <= 1.0, (key, r)
        assert r["train_seconds"] > 0 and r["peak_memory_mb"] > 0
    table = format_grid(rows).splitlines()
    assert len(table) == 2 + len(rows) and all(line.count("|") == 12 for line in table)
    assert sum(line.startswith("| ") for line in lines) == len(rows)  # each cell is printed as it finishes
    figures = grid_figures(rows)
    keys = [f.key for f in figures]
    assert len(keys) == len(set(keys)) == len(rows) * (len(METRICS) + 2)
    assert "segmentation.shelf.strong.saga.miou3d_coarse" in keys
    assert "segmentation.tabletop.strong.click.peak_memory_mb" in keys


@pytest.mark.parametrize(
    ("item", "says"),
    [("click.nope=1", "has no setting 'nope'"), ("nope.x=1", "unknown method"), ("click.seed=yes", "must be JSON")],
)
def test_accuracy_set_is_checked_before_any_work(item, says, tmp_path, capsys) -> None:
    from bench.accuracy import main as accuracy_main

    with pytest.raises(SystemExit) as exit_info:
        accuracy_main(["--preset", "shelf", "--set", item, "--workdir", str(tmp_path / "work")])
    assert exit_info.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_the_synthetic_click_workspace_holds_the_scenes_real_neighbours(tmp_path) -> None:
    """All-zero neighbours made the benchmarks' floater filter and part growth trivial (a fine click kept 4
    Gaussians): the workspace must hold the scene's own 8 nearest neighbours, as training stores them."""
    from backend.features.neighbors import knn_neighbors
    from backend.features.store import features_name
    from backend.workspace import Workspace
    from bench.viewer import write_click_scene

    synth, _ = write_click_scene(tmp_path / "scene", 3_000)
    stored = Workspace(tmp_path / "scene").load_tensors(features_name("click"))["neighbors"]
    assert torch.equal(stored, knn_neighbors(synth.scene.means, 8))


REAL = Path("/work/shared/data/real/biker.compressed.ply")


@pytest.mark.skipif(not REAL.is_file(), reason="real capture not on this machine")
def test_the_tiled_bank_selects_as_the_reference_on_the_real_capture() -> None:
    """`bench/real_bank.py` on a sixteenth of the biker: a bank made from the capture's own attributes (not our
    recipe), its `PrunedBank` selections against the whole-bank reference, at 12 and 24 dimensions."""
    import torch

    from backend.io.compressed_ply import read_compressed_ply
    from bench.real_bank import capture_features, compare

    scene = read_compressed_ply(REAL)
    scene = scene.subset(torch.arange(0, len(scene), 16))
    for dims in (12, 24):
        r = compare(capture_features(scene, dims), clicks=8)
        assert r["selections"] == 24 and r["mismatches"] == 0, r
        assert r["bank_back_exact"] and 0 < r["share_read_p50"] <= 1

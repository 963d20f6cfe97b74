"""`splatseg bench` plumbing: section names, the accuracy benchmark end to end on a tiny scene, and its child
processes (a child that dies must be an error, never a hang)."""

from __future__ import annotations

import os

import pytest

from backend.cli import main
from bench.accuracy import _run_isolated, accuracy_benchmark


def test_unknown_section_is_one_line_and_exit_2(capsys) -> None:
    assert main(["bench", "--section", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown bench section 'bogus'" in err[0] and "segmentation" in err[0]


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

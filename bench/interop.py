"""`splatseg bench --section interop`: loading a splat file, splatseg beside SuperSplat's converter.

For each format splat-transform writes (.ply, .compressed.ply, .spz, .splat), one file of the same 1M-Gaussian
scene, loaded

- by splatseg: `load_scene(FILE)` in this process, i.e. find the model, read and decode the file into the CPU
  tensors of a `GaussianScene` (what `splatseg view FILE` waits for before anything else);
- by splat-transform: `splat-transform FILE out.ply`, a fresh Node process that reads, decodes and writes the
  scene as a .ply (its readers are lazy: with no output, `FILE null`, some formats are never decoded). That
  includes Node's start-up and module loading, reported separately (`--version` alone), and the .ply write, so it
  is an upper bound on splat-transform's load time.

Medians over the repetitions. A format splatseg cannot read yet is reported as such rather than left out.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from backend.core.errors import InputError

from .common import Figure, timed

FORMATS = ("ply", "compressed.ply", "spz", "splat")


def bench_interop(
    *, quick: bool, workdir: Path, num_gaussians: int = 1_000_000, formats: tuple[str, ...] = FORMATS
) -> list[Figure]:
    from backend.io.ply import write_ply
    from backend.io.scene_folder import load_scene
    from backend.io.splat_transform import SplatTransformUnavailable, ensure_splat_transform
    from backend.synthetic import build_tabletop

    try:
        tool = ensure_splat_transform()
    except SplatTransformUnavailable as e:
        print(f"[bench] interop skipped: {e}", flush=True)
        return []
    repeat = 1 if quick else 3
    size = f"{num_gaussians / 1e6:g}M" if num_gaussians >= 1_000_000 else f"{num_gaussians // 1000}k"
    source = workdir / "interop_source.ply"
    write_ply(source, build_tabletop(seed=0, num_gaussians=num_gaussians).scene)

    figures: list[Figure] = []
    startup = timed(lambda: tool.version(), repeat=repeat)
    figures.append(
        Figure("interop", "splat-transform start-up (node, --version)", statistics.median(startup) * 1e3, "ms")
    )
    for fmt in formats:
        path = workdir / f"interop.{fmt}"
        t0 = time.perf_counter()
        tool.convert(source, path)
        write_s = time.perf_counter() - t0
        mb = path.stat().st_size / 1e6
        out = workdir / f"interop.{fmt}.back.ply"
        theirs = timed(lambda p=path, o=out: tool.convert(p, o), repeat=repeat)
        figures.append(
            Figure(
                "interop",
                f"load {fmt}, {size}: splat-transform → .ply (process: start-up + read + decode + write)",
                statistics.median(theirs) * 1e3,
                "ms",
                f"{mb:.1f} MB file; its write took {write_s * 1e3:.0f} ms",
            )
        )
        try:
            ours = timed(lambda p=path: load_scene(p), repeat=repeat)
        except InputError:
            figures.append(
                Figure("interop", f"load {fmt}, {size}: splatseg load_scene", float("nan"), "ms", "no reader yet")
            )
            continue
        figures.append(
            Figure(
                "interop",
                f"load {fmt}, {size}: splatseg load_scene (read + decode to tensors)",
                statistics.median(ours) * 1e3,
                "ms",
                f"splat-transform's process takes {statistics.median(theirs) / statistics.median(ours):.2f}× as long",
            )
        )
    return figures

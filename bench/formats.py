"""`splatseg bench --section formats`: load time per model format (issue 11's figure): INRIA PLY, compressed PLY,
.splat, .spz.

One scene (the tabletop preset, SH degree 0, as captures from phones are) written in each format by splatseg's own
writers, then read through `read_model` (what every command uses): the median of `repeat` reads after one warm-up.
The `interop` section times the same formats as splat-transform writes them, beside splat-transform itself.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from .common import Figure, timed


def format_load_times(workdir: Path, *, num_gaussians: int = 1_000_000, repeat: int = 3) -> dict[str, dict[str, float]]:
    """{format: {"seconds": median load time, "megabytes": file size}}."""
    from backend.export import splat_bytes
    from backend.io.compressed_ply import write_compressed_ply
    from backend.io.ply import write_ply
    from backend.io.scene_folder import read_model
    from backend.io.spz import spz_bytes
    from backend.synthetic import build_tabletop

    scene = build_tabletop(seed=0, num_gaussians=num_gaussians).scene
    workdir.mkdir(parents=True, exist_ok=True)
    files = {
        "ply": workdir / "bench.ply",
        "compressed-ply": workdir / "bench.compressed.ply",
        "splat": workdir / "bench.splat",
        "spz": workdir / "bench.spz",
    }
    write_ply(files["ply"], scene)
    write_compressed_ply(files["compressed-ply"], scene)
    files["splat"].write_bytes(splat_bytes(scene))
    files["spz"].write_bytes(spz_bytes(scene))
    out: dict[str, dict[str, float]] = {}
    for name, path in files.items():
        loaded: list[int] = []
        times = timed(lambda path=path, loaded=loaded: loaded.append(len(read_model(path))), repeat=repeat)
        if loaded[-1] != len(scene):
            raise RuntimeError(f"{name}: read {loaded[-1]} Gaussians of {len(scene)}")
        out[name] = {"seconds": statistics.median(times), "megabytes": path.stat().st_size / 1e6}
    return out


def bench_formats(*, quick: bool, workdir: Path) -> list[Figure]:
    n = 100_000 if quick else 1_000_000
    times = format_load_times(workdir / "formats", num_gaussians=n, repeat=2 if quick else 3)
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    return [
        Figure("formats", f"load {name} ({label} Gaussians)", t["seconds"], "s", f"{t['megabytes']:.1f} MB file")
        for name, t in times.items()
    ]

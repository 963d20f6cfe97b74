"""Load time per model format at 1M Gaussians (issue 11's figure): INRIA PLY, compressed PLY, .splat, .spz.

One scene (the tabletop preset, SH degree 0, as captures from phones are) written in each format by splatseg's
writers, then read through `read_model` (what every command uses), median of `repeat` reads after one warm-up.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from .io.compressed_ply import write_compressed_ply
from .io.ply import write_ply
from .io.scene_folder import read_model
from .io.spz import spz_bytes


def format_load_times(workdir: Path, *, num_gaussians: int = 1_000_000, repeat: int = 3) -> dict[str, dict[str, float]]:
    """{format: {"seconds": median load time, "megabytes": file size}}."""
    from .export import splat_bytes
    from .synthetic import build_tabletop

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
        read_model(path)  # warm-up (page cache, imports)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            loaded = read_model(path)
            times.append(time.perf_counter() - t0)
        assert len(loaded) == len(scene)
        out[name] = {"seconds": statistics.median(times), "megabytes": path.stat().st_size / 1e6}
    return out


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(format_load_times(Path(tmp), num_gaussians=n), indent=1))

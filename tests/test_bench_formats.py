from pathlib import Path

from backend.bench_formats import format_load_times


def test_format_load_times_reads_every_format(tmp_path: Path) -> None:
    times = format_load_times(tmp_path, num_gaussians=2000, repeat=1)
    assert set(times) == {"ply", "compressed-ply", "splat", "spz"}
    assert all(t["seconds"] > 0 and t["megabytes"] > 0 for t in times.values())
    assert times["compressed-ply"]["megabytes"] < times["ply"]["megabytes"] / 3

"""The chunked PLY reader (a few MB of rows at a time, peak ≈ the model) against the whole-file reference reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plyfile
import pytest

from backend.core.errors import InputError
from backend.io import ply
from backend.io.ply import f_rest_names, read_ply


def _write(path: Path, n: int, degree: int, *, byte_order: str = "<", seed: int = 0) -> None:
    """A model as another tool writes it: plyfile, normals, a float64 and an int32 extra among the properties."""
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *f_rest_names(k), "opacity"]
    names += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    dtype = [(name, "f4") for name in names] + [("segment", "i4"), ("weight", "f8")]
    records = np.empty(n, dtype=dtype)
    for name in names:
        records[name] = rng.standard_normal(n)
    records["segment"] = rng.integers(-5, 1000, n)
    records["weight"] = rng.standard_normal(n)
    records["opacity"][::5] = np.inf  # read as +20, in both readers
    element = plyfile.PlyElement.describe(records, "vertex")
    plyfile.PlyData([element], byte_order=byte_order).write(str(path))


def _columns(path: Path, degree: int, *, chunk_rows: int | None) -> tuple[dict, dict]:
    data = plyfile.PlyData.read(str(path), mmap="c")["vertex"].data
    std = list(ply.POSITION + ply.ROTATION + ply.SCALES + ply.OPACITY) + ply._sh_column_order((degree + 1) ** 2)
    extra = ["nx", "ny", "nz", "segment", "weight"]
    if chunk_rows is None:
        return ply._read_columns(data, std, extra)
    assert ply._chunkable(data)
    return ply._read_columns_chunked(data, std, extra, chunk_rows=chunk_rows)


@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1000])
def test_chunked_reader_equals_the_reference(tmp_path: Path, byte_order: str, chunk_rows: int) -> None:
    path = tmp_path / "m.ply"
    _write(path, 100, 3, byte_order=byte_order)
    ref_parts, ref_extras = _columns(path, 3, chunk_rows=None)
    parts, extras = _columns(path, 3, chunk_rows=chunk_rows)
    assert list(parts) == list(ref_parts) and list(extras) == list(ref_extras)
    for key in ref_parts:
        assert parts[key].dtype == np.float32 and parts[key].flags.c_contiguous, key
        np.testing.assert_array_equal(parts[key], ref_parts[key])
    for key in ref_extras:
        assert extras[key].dtype == ref_extras[key].dtype and extras[key].dtype.isnative, key
        np.testing.assert_array_equal(extras[key], ref_extras[key])


def test_read_ply_takes_the_chunked_path_and_matches_an_in_memory_read(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.ply"
    _write(path, 300, 2, byte_order=">")
    monkeypatch.setattr(ply, "CHUNK_BYTES", 1000)  # several chunks and a remainder
    calls = []
    real = ply._read_columns_chunked
    monkeypatch.setattr(ply, "_read_columns_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    chunked = read_ply(path)
    assert calls == [1]
    monkeypatch.setattr(ply, "_chunkable", lambda data: False)
    reference = read_ply(path)
    for field in ("means", "quats", "log_scales", "logit_opacities", "sh"):
        np.testing.assert_array_equal(getattr(chunked, field).numpy(), getattr(reference, field).numpy())
    assert float(chunked.logit_opacities.max()) == ply.OPACITY_LOGIT_LIMIT
    assert list(chunked.extras) == list(reference.extras) == ["nx", "ny", "nz", "segment", "weight"]
    for name in reference.extras:
        np.testing.assert_array_equal(chunked.extras[name], reference.extras[name])


def test_nonfinite_rows_found_in_every_slab(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.ply"
    _write(path, 50, 1)
    records = plyfile.PlyData.read(str(path))["vertex"].data.copy()
    records["f_rest_4"][37] = np.nan
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")]).write(str(path))
    monkeypatch.setattr(ply, "_FINITE_SLAB", 8)
    with pytest.raises(InputError, match=r"1 of 50 Gaussians .*f_rest_4.*first at index 37"):
        read_ply(path)

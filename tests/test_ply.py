"""INRIA-layout PLY reading and writing: bit-exact round trips, the f_rest layout, and every bad-input message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch

from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.ply import f_rest_names, is_gaussian_ply, ply_vertex_properties, read_ply, write_ply


def random_scene(n: int, degree: int, *, seed: int = 0, extras: dict[str, np.ndarray] | None = None) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return GaussianScene(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 4,
        logit_opacities=torch.randn(n, generator=g),
        sh=torch.randn(n, k, 3, generator=g),
        extras=dict(extras or {}),
    )


def standard_names(degree: int, *, normals: bool = True) -> list[str]:
    k = (degree + 1) ** 2
    return [
        "x",
        "y",
        "z",
        *(["nx", "ny", "nz"] if normals else []),
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        *f_rest_names(k),
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]


def write_raw_ply(path: Path, columns: dict[str, np.ndarray], **kwargs) -> None:
    """A PLY written directly with plyfile, as another tool would write it."""
    n = len(next(iter(columns.values())))
    records = np.empty(n, dtype=[(name, values.dtype) for name, values in columns.items()])
    for name, values in columns.items():
        records[name] = values
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], **kwargs).write(str(path))


def raw_columns(n: int, degree: int, *, normals: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(n).astype(np.float32) for name in standard_names(degree, normals=normals)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_scenes_equal(a: GaussianScene, b: GaussianScene) -> None:
    for field in ("means", "quats", "log_scales", "logit_opacities", "sh"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype == torch.float32, field
        assert torch.equal(x, y), field


# ---- round trips -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact_with_extras(tmp_path: Path, degree: int) -> None:
    n = 257
    extras = {
        "nx": np.linspace(-1, 1, n, dtype=np.float32),
        "ny": np.zeros(n, np.float32),
        "nz": np.ones(n, np.float32),
        "segment": np.arange(n, dtype=np.int32) * 7 - 100,
        "confidence": np.random.default_rng(1).random(n).astype(np.float32),
        "flag": (np.arange(n) % 3).astype(np.uint8),
    }
    scene = random_scene(n, degree, extras=extras)
    path = tmp_path / "model.ply"
    write_ply(path, scene)
    back = read_ply(path)

    assert back.sh_degree == degree
    assert_scenes_equal(scene, back)
    assert list(back.extras) == list(extras)
    for name, values in extras.items():
        assert back.extras[name].dtype == values.dtype, name
        np.testing.assert_array_equal(back.extras[name], values)
    # Standard properties first, in INRIA order, then the extras.
    assert ply_vertex_properties(path) == [*standard_names(degree), "segment", "confidence", "flag"]
    assert b"format binary_little_endian 1.0" in path.read_bytes()[:200]


def test_write_adds_zero_normals_and_rereads_identically(tmp_path: Path) -> None:
    scene = random_scene(50, 3)
    first, second = tmp_path / "a.ply", tmp_path / "b.ply"
    write_ply(first, scene)
    back = read_ply(first)
    assert list(back.extras) == ["nx", "ny", "nz"]
    for name in ("nx", "ny", "nz"):
        assert back.extras[name].dtype == np.float32
        assert not back.extras[name].any()
    write_ply(second, back)
    assert first.read_bytes() == second.read_bytes()


def test_write_converts_bool_and_int64_extras(tmp_path: Path) -> None:
    n = 10
    scene = random_scene(n, 0, extras={"keep": np.arange(n) % 2 == 0, "label": np.arange(n, dtype=np.int64)})
    write_ply(tmp_path / "m.ply", scene)
    back = read_ply(tmp_path / "m.ply")
    assert back.extras["keep"].dtype == np.uint8
    np.testing.assert_array_equal(back.extras["keep"], [1, 0] * 5)
    assert back.extras["label"].dtype == np.int32
    np.testing.assert_array_equal(back.extras["label"], np.arange(n))


def test_write_refuses_extras_it_cannot_store(tmp_path: Path) -> None:
    path = tmp_path / "m.ply"
    write_ply(path, random_scene(4, 0))
    before = digest(path)
    with pytest.raises(ValueError, match="opacity"):
        write_ply(path, random_scene(4, 0, extras={"opacity": np.zeros(4, np.float32)}))
    with pytest.raises(ValueError, match="one value a row"):
        write_ply(path, random_scene(4, 0, extras={"feat": np.zeros((4, 2), np.float32)}))
    assert digest(path) == before  # the failed writes left the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ply"]  # and no temp files


def test_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_ply(tmp_path / "out.ply", random_scene(20, 1))
    write_ply(tmp_path / "out.ply", random_scene(30, 2))  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["out.ply"]
    assert len(read_ply(tmp_path / "out.ply")) == 30


# ---- layout ----------------------------------------------------------------------------------------------------


def test_f_rest_is_channel_major(tmp_path: Path) -> None:
    n, degree = 3, 2
    k = (degree + 1) ** 2
    columns = raw_columns(n, degree)
    for i in range(3 * (k - 1)):
        columns[f"f_rest_{i}"] = np.full(n, 100 + i, np.float32) + np.arange(n, dtype=np.float32) / 10
    columns["f_dc_0"], columns["f_dc_1"], columns["f_dc_2"] = (np.full(n, v, np.float32) for v in (1, 2, 3))
    path = tmp_path / "hand.ply"
    write_raw_ply(path, columns)

    sh = read_ply(path).sh
    assert sh.shape == (n, k, 3)
    np.testing.assert_array_equal(sh[:, 0].numpy(), np.tile([1, 2, 3], (n, 1)))
    for c in range(3):
        for j in range(k - 1):
            expected = 100 + c * (k - 1) + j + np.arange(n) / 10
            np.testing.assert_array_equal(sh[:, 1 + j, c].numpy(), expected.astype(np.float32))


def test_field_mapping_and_extras_from_hand_written_ply(tmp_path: Path) -> None:
    n = 5
    columns = raw_columns(n, 1)
    columns["segment"] = np.arange(n, dtype=np.int32)
    path = tmp_path / "hand.ply"
    write_raw_ply(path, columns)
    scene = read_ply(path)
    np.testing.assert_array_equal(scene.means.numpy(), np.stack([columns[c] for c in "xyz"], 1))
    np.testing.assert_array_equal(scene.quats.numpy(), np.stack([columns[f"rot_{i}"] for i in range(4)], 1))
    np.testing.assert_array_equal(scene.log_scales.numpy(), np.stack([columns[f"scale_{i}"] for i in range(3)], 1))
    np.testing.assert_array_equal(scene.logit_opacities.numpy(), columns["opacity"])
    assert list(scene.extras) == ["nx", "ny", "nz", "segment"]
    assert scene.extras["segment"].dtype == np.int32


@pytest.mark.parametrize("kwargs", [{"text": True}, {"byte_order": ">"}], ids=["ascii", "big-endian"])
def test_reads_ascii_and_big_endian(tmp_path: Path, kwargs: dict) -> None:
    columns = raw_columns(40, 3)
    columns["segment"] = np.arange(40, dtype=np.int32)
    write_raw_ply(tmp_path / "le.ply", columns)
    write_raw_ply(tmp_path / "other.ply", columns, **kwargs)
    reference, other = read_ply(tmp_path / "le.ply"), read_ply(tmp_path / "other.ply")
    assert_scenes_equal(reference, other)
    assert other.extras["segment"].dtype == np.int32  # native order, whatever the file's
    np.testing.assert_array_equal(other.extras["segment"], np.arange(40))


def test_reads_splatfacto_export_without_normals(tmp_path: Path) -> None:
    columns = raw_columns(12, 3, normals=False)
    path = tmp_path / "splat.ply"
    write_raw_ply(path, columns)
    scene = read_ply(path)
    assert len(scene) == 12 and scene.sh_degree == 3 and scene.extras == {}
    np.testing.assert_array_equal(scene.means[:, 2].numpy(), columns["z"])
    assert is_gaussian_ply(path)


def test_double_precision_properties_are_read_as_float32(tmp_path: Path) -> None:
    columns = {name: values.astype(np.float64) for name, values in raw_columns(6, 0).items()}
    write_raw_ply(tmp_path / "f8.ply", columns)
    scene = read_ply(tmp_path / "f8.ply")
    assert scene.means.dtype == torch.float32
    np.testing.assert_array_equal(scene.means[:, 0].numpy(), columns["x"].astype(np.float32))


# ---- bad input -------------------------------------------------------------------------------------------------


def expect_input_error(path: Path, *fragments: str, **kwargs) -> str:
    before = digest(path)
    with pytest.raises(InputError) as info:
        read_ply(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert digest(path) == before
    return message


def test_not_a_ply(tmp_path: Path) -> None:
    path = tmp_path / "model.ply"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a ply at all")
    expect_input_error(path, "not a PLY file")
    path.write_bytes(b"")
    expect_input_error(path, "not a PLY file")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_ply(tmp_path / "absent.ply")


def test_truncated_binary(tmp_path: Path) -> None:
    path = tmp_path / "model.ply"
    write_ply(path, random_scene(100, 3))
    path.write_bytes(path.read_bytes()[:-1000])
    expect_input_error(path, "truncated or corrupt", "copy or export")


def test_no_vertex_element(tmp_path: Path) -> None:
    path = tmp_path / "compressed.ply"
    chunk = np.zeros(2, dtype=[("min_x", "f4"), ("max_x", "f4")])
    plyfile.PlyData([plyfile.PlyElement.describe(chunk, "chunk")]).write(str(path))
    expect_input_error(path, "no 'vertex' element", "compressed", "uncompressed")


def test_plain_point_cloud_names_missing_properties(tmp_path: Path) -> None:
    path = tmp_path / "points3D.ply"
    rng = np.random.default_rng(0)
    columns = {c: rng.standard_normal(8).astype(np.float32) for c in "xyz"}
    columns |= {c: np.zeros(8, np.uint8) for c in ("red", "green", "blue")}
    write_raw_ply(path, columns)
    message = expect_input_error(path, "f_dc_0", "opacity", "plain point cloud", "point_cloud.ply")
    assert "more" in message  # 11 missing names are shortened
    assert not is_gaussian_ply(path)


def test_missing_one_property_is_named(tmp_path: Path) -> None:
    columns = raw_columns(4, 1)
    del columns["rot_2"]
    path = tmp_path / "m.ply"
    write_raw_ply(path, columns)
    expect_input_error(path, "lacks rot_2 ")


@pytest.mark.parametrize("count", [5, 10])
def test_bad_f_rest_count(tmp_path: Path, count: int) -> None:
    columns = raw_columns(4, 0)
    for i in range(count):
        columns[f"f_rest_{i}"] = np.zeros(4, np.float32)
    path = tmp_path / "m.ply"
    write_raw_ply(path, columns)
    expect_input_error(path, f"{count} f_rest properties", "0, 9, 24 or 45")


def test_f_rest_gap_is_an_error(tmp_path: Path) -> None:
    columns = raw_columns(4, 1)
    columns["f_rest_9"] = columns.pop("f_rest_3")  # still 9 of them, but not 0..8
    path = tmp_path / "m.ply"
    write_raw_ply(path, columns)
    expect_input_error(path, "9 f_rest properties")


def test_nonfinite_values_are_counted_not_dropped(tmp_path: Path) -> None:
    scene = random_scene(1000, 1)
    scene.logit_opacities[[3, 500, 999]] = float("nan")
    scene.log_scales[500, 1] = float("inf")
    scene.log_scales[7, 1] = float("-inf")
    path = tmp_path / "model.ply"
    write_ply(path, scene)

    message = expect_input_error(path, "4 of 1000 Gaussians", "NaN/Inf", "opacity", "scale_1", "first at index 3")
    assert "scale_0" not in message

    kept = read_ply(path, allow_nonfinite=True)
    assert len(kept) == 1000
    assert torch.isnan(kept.logit_opacities).nonzero().flatten().tolist() == [3, 500, 999]
    assert (~kept.finite_mask()).nonzero().flatten().tolist() == [3, 7, 500, 999]
    finite = kept.finite_mask()
    assert torch.equal(kept.means, scene.means) and torch.equal(kept.sh[finite], scene.sh[finite])


def test_header_inspection(tmp_path: Path) -> None:
    path = tmp_path / "m.ply"
    write_ply(path, random_scene(3, 0))
    assert ply_vertex_properties(path) == standard_names(0)
    assert is_gaussian_ply(path)
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"hello")
    assert ply_vertex_properties(junk) is None and not is_gaussian_ply(junk)
    assert ply_vertex_properties(tmp_path / "absent.ply") is None


def test_empty_scene_round_trip(tmp_path: Path) -> None:
    """An empty selection exported as a PLY must read back (as zero Gaussians), not crash."""
    scene = random_scene(0, 1, extras={"segment": np.zeros(0, np.int32)})
    write_ply(tmp_path / "empty.ply", scene)
    back = read_ply(tmp_path / "empty.ply")
    assert len(back) == 0 and back.sh.shape == (0, 4, 3)
    assert back.extras["segment"].dtype == np.int32


def test_infinite_opacity_reads_as_a_finite_saturated_logit(tmp_path: Path) -> None:
    """splat-transform writes opacity = +inf when it decompresses a SuperSplat .compressed.ply (opacity 1)."""
    from backend.io.ply import OPACITY_LOGIT_LIMIT

    scene = random_scene(50, 0)
    scene.logit_opacities[[2, 9]] = float("inf")
    scene.logit_opacities[4] = float("-inf")
    path = tmp_path / "model.ply"
    write_ply(path, scene)

    read = read_ply(path)
    assert read.logit_opacities[[2, 9]].tolist() == [OPACITY_LOGIT_LIMIT] * 2
    assert read.logit_opacities[4].item() == -OPACITY_LOGIT_LIMIT
    assert read.opacities[[2, 9]].tolist() == [1.0, 1.0]
    others = torch.ones(50, dtype=torch.bool)
    others[[2, 4, 9]] = False
    assert torch.equal(read.logit_opacities[others], scene.logit_opacities[others])

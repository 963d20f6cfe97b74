"""Readers of the compressed formats: hand-built bytes, gsplat's compressed writer, and the real biker capture."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.errors import InputError
from backend.core.scene import SH_C0, GaussianScene
from backend.io.compressed_ply import read_compressed_ply
from backend.io.scene_folder import find_model, load_scene
from backend.io.splat import read_splat
from backend.io.spz import read_spz

REAL = Path("/work/shared/data/real")
needs_real = pytest.mark.skipif(not (REAL / "biker.spz").is_file(), reason="real captures not on this machine")


# ---- .splat -----------------------------------------------------------------------------------------------------


def _splat_record(pos, scale, rgba, rot) -> bytes:
    return struct.pack("<3f3f4B4B", *pos, *scale, *rgba, *rot)


def test_splat_values_from_hand_built_bytes(tmp_path: Path) -> None:
    path = tmp_path / "two.splat"
    path.write_bytes(
        _splat_record((1.0, -2.0, 3.5), (0.5, 0.25, 2.0), (255, 0, 128, 191), (255, 128, 128, 128))
        + _splat_record((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0, 255, 64, 64), (128, 0, 128, 128))
    )
    scene = read_splat(path)
    assert len(scene) == 2 and scene.sh_degree == 0
    torch.testing.assert_close(scene.means[0], torch.tensor([1.0, -2.0, 3.5]))
    torch.testing.assert_close(scene.scales[0], torch.tensor([0.5, 0.25, 2.0]))
    torch.testing.assert_close(scene.dc_colors[0], torch.tensor([1.0, 0.0, 128 / 255]), atol=1e-6, rtol=0)
    assert scene.opacities[0].item() == pytest.approx(191 / 255, abs=1e-6)
    torch.testing.assert_close(scene.quats[0], torch.tensor([127 / 128, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(scene.quats[1], torch.tensor([0.0, -1.0, 0.0, 0.0]))
    assert scene.sh[1, 0, 1].item() == pytest.approx((1.0 - 0.5) / SH_C0, abs=1e-5)


def test_splat_refuses_partial_records(tmp_path: Path) -> None:
    path = tmp_path / "bad.splat"
    path.write_bytes(b"\0" * 33)
    with pytest.raises(InputError, match="not a whole number of 32-byte"):
        read_splat(path)


# ---- .spz -------------------------------------------------------------------------------------------------------


def _fixed24(values: np.ndarray, frac: int) -> bytes:
    ints = np.round(values * (1 << frac)).astype(np.int64) & 0xFFFFFF
    return b"".join(int(v).to_bytes(3, "little") for v in ints.ravel())


def _spz_body(version: int, rot: bytes, sh: bytes = b"", degree: int = 0) -> bytes:
    """One Gaussian at (1.5, -0.25, 2), alpha 204/255, colour bytes (51, 128, 230), scale bytes (96, 160, 0)."""
    header = struct.pack("<IIIBBBB", 0x5053474E, version, 1, degree, 12, 0, 0)
    pos = _fixed24(np.array([1.5, -0.25, 2.0]), 12)
    return header + pos + bytes([204]) + bytes([51, 128, 230]) + bytes([96, 160, 0]) + rot + sh


def _check_spz_common(scene: GaussianScene) -> None:
    # SPZ axes are right-up-back; PLY axes right-down-front: y and z change sign.
    torch.testing.assert_close(scene.means[0], torch.tensor([1.5, 0.25, -2.0]))
    assert scene.opacities[0].item() == pytest.approx(204 / 255, abs=1e-5)
    expected_dc = (torch.tensor([51.0, 128.0, 230.0]) / 255 - 0.5) / 0.15
    torch.testing.assert_close(scene.sh[0, 0], expected_dc)
    torch.testing.assert_close(scene.log_scales[0], torch.tensor([96 / 16 - 10, 160 / 16 - 10, -10.0]))


def test_spz_v2(tmp_path: Path) -> None:
    # v2 rotation: x, y, z bytes as v/127.5 - 1; w from the unit norm. Bytes (153, 102, 127.5±) ~ (0.2, -0.2, 0).
    sh = bytes([128 + 64, 128 - 32, 128] + [128] * 6)  # degree 1: coefficient 0 (basis y) r, g, b = 0.5, -0.25, 0
    path = tmp_path / "a.spz"
    path.write_bytes(gzip.compress(_spz_body(2, bytes([153, 102, 128]), sh, degree=1)))
    scene = read_spz(path)
    _check_spz_common(scene)
    x, y, z = 153 / 127.5 - 1, 102 / 127.5 - 1, 128 / 127.5 - 1
    w = math.sqrt(1 - x * x - y * y - z * z)
    torch.testing.assert_close(scene.quats[0], torch.tensor([w, x, -y, -z]))
    # The y-basis coefficient changes sign with y.
    torch.testing.assert_close(scene.sh[0, 1], torch.tensor([-0.5, 0.25, 0.0]))


def test_spz_v3_smallest_three(tmp_path: Path) -> None:
    q = np.array([0.1, -0.3, 0.2, 0.0])  # x, y, z; w is the largest
    q[3] = math.sqrt(1 - (q[:3] ** 2).sum())
    word = 3 << 30
    for shift, value in ((20, q[0]), (10, q[1]), (0, q[2])):
        mag = round(abs(value) / math.sqrt(0.5) * 511)
        word |= ((1 << 9 if value < 0 else 0) | mag) << shift
    path = tmp_path / "b.spz"
    path.write_bytes(gzip.compress(_spz_body(3, struct.pack("<I", word))))
    scene = read_spz(path)
    _check_spz_common(scene)
    torch.testing.assert_close(
        scene.quats[0], torch.tensor([q[3], q[0], -q[1], -q[2]], dtype=torch.float32), atol=2e-3, rtol=0
    )


def test_spz_huge_count_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "huge.spz"
    path.write_bytes(gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 2, 4_000_000_000, 3, 12, 0, 0)))
    with pytest.raises(InputError, match="claims"):
        read_spz(path)


# ---- compressed PLY -----------------------------------------------------------------------------------------------


def _random_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    sh = torch.rand(n, k, 3, generator=g) - 0.5
    sh[:, 0] = (torch.rand(n, 3, generator=g) - 0.5) / SH_C0
    return GaussianScene(
        means=torch.rand(n, 3, generator=g) * 4 - 2,
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.rand(n, 3, generator=g) * 3 - 5,
        logit_opacities=torch.randn(n, generator=g),
        sh=sh,
    )


def test_compressed_ply_matches_gsplat_writer(tmp_path: Path) -> None:
    """gsplat's exporter (an independent encoder) writes; ours reads. gsplat reorders, so match by position."""
    from gsplat.exporter import export_splats

    scene = _random_scene(700, degree=1)
    path = tmp_path / "model.compressed.ply"
    export_splats(
        scene.means, scene.log_scales, scene.quats, scene.logit_opacities, scene.sh[:, :1], scene.sh[:, 1:],
        format="ply_compressed", save_to=str(path),
    )  # fmt: skip
    got = load_scene(path)[0]
    keep = scene.opacities > 1 / 255
    ref = scene.subset(keep)
    assert len(got) == len(ref)
    nearest = torch.cdist(got.means, ref.means).argmin(dim=1)
    ref = ref.subset(nearest)
    extent = 4.0
    assert (got.means - ref.means).abs().max() < extent / 1023 * 1.01
    assert (got.log_scales - ref.log_scales).abs().max() < 3.0 / 1023 * 1.01
    assert (got.opacities - ref.opacities).abs().max() < 1 / 255
    assert (got.dc_colors - ref.dc_colors).abs().max() < 1.01 / 255
    dot = (got.unit_quats * ref.unit_quats).sum(dim=1).abs()
    assert dot.min() > 0.999
    assert (got.sh[:, 1:] - ref.sh[:, 1:]).abs().max() < 8 / 256 * 1.01  # channel order of f_rest kept


def test_compressed_ply_huge_count_is_one_line_error(tmp_path: Path) -> None:
    header = (
        "ply\nformat binary_little_endian 1.0\nelement chunk 1\n"
        + "".join(f"property float {n}\n" for n in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z"))
        + "element vertex 1000000000000\n"
        + "".join(
            f"property uint {n}\n" for n in ("packed_position", "packed_rotation", "packed_scale", "packed_color")
        )
        + "end_header\n"
    )
    path = tmp_path / "huge.compressed.ply"
    path.write_bytes(header.encode() + b"\0" * 64)
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        load_scene(path)
    assert "\n" not in str(info.value)


# ---- the real capture ----------------------------------------------------------------------------------------------


@needs_real
def test_biker_compressed_ply_and_spz_are_the_same_scene() -> None:
    a = read_compressed_ply(REAL / "biker.compressed.ply")
    b = read_spz(REAL / "biker.spz")
    assert len(a) == len(b) == 152_746 and a.sh_degree == b.sh_degree == 0
    assert (a.means - b.means).abs().max() < 1e-3  # both quantise to well under a millimetre of this 3 m scene
    assert (a.dc_colors - b.dc_colors).abs().max() < 0.01
    assert (a.opacities - b.opacities).abs().max() < 0.01
    # SPZ cannot store log-scales below -10; elsewhere the two agree within SPZ's 1/16 step.
    inside = a.log_scales > -9.9
    assert (a.log_scales - b.log_scales).abs()[inside].max() < 1 / 16
    assert ((a.log_scales < -9.9) == (b.log_scales <= -9.9 + 1 / 16)).float().mean() > 0.999
    assert (a.unit_quats * b.unit_quats).sum(dim=1).abs().min() > 0.99  # equal up to sign


@needs_real
def test_folder_with_only_a_compressed_ply_loads(tmp_path: Path) -> None:
    (tmp_path / "biker.compressed.ply").symlink_to(REAL / "biker.compressed.ply")
    assert find_model(tmp_path).name == "biker.compressed.ply"
    assert len(load_scene(tmp_path)[0]) == 152_746


def test_compressed_ply_writer_round_trip_keeps_order(tmp_path: Path) -> None:
    from backend.io.compressed_ply import write_compressed_ply

    scene = _random_scene(600, degree=2, seed=4)
    scene.log_scales[:256] = -3.0  # a chunk whose scales span nothing must not divide by zero
    path = tmp_path / "out.compressed.ply"
    write_compressed_ply(path, scene)
    got = read_compressed_ply(path)
    assert len(got) == len(scene) and got.sh_degree == 2
    assert (got.means - scene.means).abs().max() < 4.0 / 1023 * 1.01  # in file order: row i is Gaussian i
    assert (got.log_scales[:256] + 3.0).abs().max() < 1e-6
    assert (got.opacities - scene.opacities).abs().max() < 0.5 / 255 + 1e-6
    assert (got.dc_colors - scene.dc_colors).abs().max() < 1 / 255
    assert (got.unit_quats * scene.unit_quats).sum(dim=1).abs().min() > 0.999
    assert (got.sh[:, 1:] - scene.sh[:, 1:]).abs().max() < 8 / 256 * 1.01


def test_export_compressed_ply(tmp_path: Path) -> None:
    from backend.export import export_selection

    scene = _random_scene(300, degree=0, seed=5)
    mask = np.zeros(300, bool)
    mask[::3] = True
    assert export_selection(scene, mask, tmp_path / "sel.compressed.ply", format="compressed-ply") == 100
    got = load_scene(tmp_path / "sel.compressed.ply")[0]
    assert (got.means - scene.means[::3]).abs().max() < 4.0 / 1023 * 1.01


# ---- nerfstudio splatfacto exports -----------------------------------------------------------------------------------


def _splatfacto_ply(path: Path, n: int, degree: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The vertex layout `ns-export gaussian-splat` writes: x y z nx ny nz, then f_dc_* and f_rest_* (degree > 0) or
    uint8 red green blue (degree 0), opacity, scale_0..2, rot_0..3, all float32 but the colours."""
    import plyfile

    rng = np.random.default_rng(seed)
    fields = [(name, "f4") for name in ("x", "y", "z", "nx", "ny", "nz")]
    k1 = (degree + 1) ** 2 - 1
    if degree > 0:
        fields += [(f"f_dc_{i}", "f4") for i in range(3)] + [(f"f_rest_{i}", "f4") for i in range(3 * k1)]
    else:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields += [("opacity", "f4")] + [(f"scale_{i}", "f4") for i in range(3)] + [(f"rot_{i}", "f4") for i in range(4)]
    data = np.zeros(n, dtype=fields)
    for name, kind in fields:
        data[name] = rng.integers(0, 256, n) if kind == "u1" else rng.normal(size=n)
    data["nx"] = data["ny"] = data["nz"] = 0
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(path))
    return {name: data[name] for name, _ in fields}


def test_splatfacto_degree0_export_with_rgb_colours_loads(tmp_path: Path) -> None:
    values = _splatfacto_ply(tmp_path / "splat.ply", 50, degree=0)
    assert find_model(tmp_path).name == "splat.ply"
    scene = load_scene(tmp_path)[0]
    assert scene.sh_degree == 0 and "red" not in scene.extras
    expected = np.stack([values[c] for c in ("red", "green", "blue")], axis=1) / 255.0
    np.testing.assert_allclose(scene.dc_colors.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(scene.logit_opacities.numpy(), values["opacity"])
    np.testing.assert_array_equal(scene.quats[:, 0].numpy(), values["rot_0"])


def test_splatfacto_degree3_export_is_inria_layout(tmp_path: Path) -> None:
    values = _splatfacto_ply(tmp_path / "splat.ply", 40, degree=3)
    scene = load_scene(tmp_path)[0]
    assert scene.sh_degree == 3
    # f_rest is channel-major: f_rest_{c·15 + j} is coefficient 1+j of channel c.
    np.testing.assert_array_equal(scene.sh[:, 1 + 4, 2].numpy(), values[f"f_rest_{2 * 15 + 4}"])
    np.testing.assert_array_equal(scene.sh[:, 0, 1].numpy(), values["f_dc_1"])


def test_spz_writer_round_trip(tmp_path: Path) -> None:
    from backend.io.spz import spz_bytes

    scene = _random_scene(500, degree=3, seed=6)
    path = tmp_path / "out.spz"
    path.write_bytes(spz_bytes(scene))
    got = read_spz(path)
    assert (got.means - scene.means).abs().max() <= 0.5 / 4096 + 1e-6
    assert (got.opacities - scene.opacities).abs().max() < 0.5 / 255 + 1e-6
    assert (got.log_scales - scene.log_scales).abs().max() < 1 / 32 + 1e-6
    assert (got.unit_quats * scene.unit_quats).sum(dim=1).abs().min() > 0.99
    assert (got.sh[:, 1:] - scene.sh[:, 1:]).abs().max() < 1 / 128 + 1e-6  # SH signs flipped and back again

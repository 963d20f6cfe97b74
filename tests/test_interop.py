"""splatseg against the tools users have: PlayCanvas splat-transform (SuperSplat's converter) as the oracle.

- Every splatseg export is read by splat-transform, and what it reads (count, positions, colours, every stored
  attribute) comes back into splatseg unchanged, within the format's precision.
- Every file splat-transform writes from a real capture loads in splatseg as the same scene, within the format's
  quantisation, and as splat-transform itself decodes it.

splat-transform is installed from npm on first use (`backend/splat_transform.py`); without node/npm the module is
skipped with the reason. One conversion per format, shared by the tests (module-scoped fixtures).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.core.scene import SH_C0, GaussianScene
from backend.io.ply import read_ply, write_ply
from tests.conftest import random_scene
from tests.helpers.interop import (
    REAL_CAPTURE,
    Tolerance,
    assert_matches_stats,
    assert_same_gaussians,
    assert_same_marginals,
    load_or_skip,
    splat_transform_or_skip,
)


@pytest.fixture(scope="module")
def st():
    return splat_transform_or_skip()


# ---- splatseg's exports, read by splat-transform ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory, st) -> dict:
    """A 400-Gaussian SH-degree-3 model, a selection, and each export converted back to .ply by splat-transform."""
    root = tmp_path_factory.mktemp("exports")
    scene = random_scene(400, seed=3, sh_degree=3)
    model = root / "model.ply"
    write_ply(model, scene)
    mask = np.random.default_rng(1).random(400) < 0.4
    np.save(root / "sel.npy", mask)
    out: dict = {"scene": scene, "mask": mask}
    for fmt, name in (
        ("ply", "sel.ply"),
        ("inverse-ply", "rest.ply"),
        ("labels-ply", "labels.ply"),
        ("splat", "s.splat"),
    ):
        path = root / name
        args = ["export", str(model), "--selection", str(root / "sel.npy"), "--format", fmt, "-o", str(path)]
        assert main(args) == 0
        back = st.convert(path, root / f"{fmt}.back.ply")
        out[fmt] = {"path": path, "info": st.info(path), "back": read_ply(back)}
    return out


@pytest.mark.parametrize(
    ("fmt", "which"), [("ply", "selected"), ("inverse-ply", "rest"), ("labels-ply", "all")], ids=lambda v: str(v)
)
def test_ply_exports_survive_splat_transform_bit_for_bit(exported, fmt, which) -> None:
    scene, mask = exported["scene"], exported["mask"]
    want = {"selected": scene.subset(mask), "rest": scene.subset(~mask), "all": scene}[which]
    info, back = exported[fmt]["info"], exported[fmt]["back"]
    assert info["format"] == "ply" and info["numGaussians"] == len(want) and info["shBands"] == 3
    # PLY is float32 both ways: every stored parameter, SH included, comes back exactly.
    for name in ("means", "quats", "log_scales", "logit_opacities", "sh"):
        assert torch.equal(getattr(back, name), getattr(want, name)), f"{fmt}: {name} changed"
    if fmt == "labels-ply":
        assert "segment" in [c["name"] for c in info["extraColumns"]]
        assert np.array_equal(back.extras["segment"].astype(np.int64), mask.astype(np.int64))


def test_splat_export_survives_splat_transform(exported) -> None:
    scene, mask = exported["scene"], exported["mask"]
    want = scene.subset(mask)
    info, back = exported["splat"]["info"], exported["splat"]["back"]
    assert info["format"] == "splat" and info["numGaussians"] == len(want)
    # .splat is written sorted by size·opacity; positions are float32, so sorting both by position pairs them up.
    order = lambda s: np.lexsort(s.means.numpy().T[::-1])  # noqa: E731
    got, want = back.subset(order(back)), want.subset(order(want))
    assert torch.equal(got.means, want.means)
    # Colours and opacity are bytes (floor of c·255), rotations bytes (q·128 + 128), scales float32.
    tol = Tolerance(colour=1 / 255 + 1e-6, opacity=1 / 255 + 1e-6, scale_rel=1e-6, rotation=1e-3)
    assert_same_gaussians(got, want, tol, what=".splat export")


def test_compressed_ply_export_survives_splat_transform(exported, st, tmp_path) -> None:
    """The "any splat file" work's `export --format compressed-ply`, once it exists, read back by splat-transform."""
    from backend import export

    if "compressed-ply" not in export.FORMATS:
        pytest.skip("needs the compressed-ply export of the .compressed.ply/.splat/.spz work")
    scene, mask = exported["scene"], exported["mask"]
    model, out = tmp_path / "model.ply", tmp_path / "sel.compressed.ply"
    write_ply(model, scene)
    np.save(tmp_path / "sel.npy", mask)
    sel = str(tmp_path / "sel.npy")
    assert main(["export", str(model), "--selection", sel, "--format", "compressed-ply", "-o", str(out)]) == 0
    assert st.info(out)["numGaussians"] == int(mask.sum())
    back = read_ply(st.convert(out, tmp_path / "back.ply"))
    # 11/10/11-bit positions within each chunk's box, byte colours and opacities, log-scales quantised per chunk.
    extent = float((scene.means.max(0).values - scene.means.min(0).values).max())
    tol = Tolerance(position=extent / 2**10, colour=1 / 255 + 1e-6, opacity=1 / 255 + 1e-6, scale_rel=0.01)
    assert_same_marginals(back, scene.subset(mask), tol, what="compressed-ply export")


def test_splat_transform_is_a_real_oracle(exported, st, tmp_path) -> None:
    """The check above can fail: splat-transform refuses a damaged file instead of reading something."""
    damaged = tmp_path / "damaged.ply"
    damaged.write_bytes(exported["ply"]["path"].read_bytes()[:900])
    with pytest.raises(RuntimeError, match="splat-transform"):
        st.info(damaged)


# ---- files splat-transform writes from a real capture, read by splatseg -----------------------------------------

# Each format's quantisation against the capture as splat-transform decodes it to .ply (position in scene units:
# the capture is ~4 units across). .splat: float32 positions and scales, byte colours/opacity/rotation. .spz (v4):
# 24-bit fixed-point positions with 12 fractional bits (±2^-13), colours as bytes of 0.15·f_dc (±0.0037 in colour),
# opacity bytes, log-scales in bytes of 1/16 (±3.2 %, below e^-10 clamped), rotations in 10-bit smallest-three.
# .compressed.ply: positions 11/10/11 bits of each 256-Gaussian chunk's box (±4/2^11 at most), colour/opacity bytes,
# log-scales 11/10/11 bits of each chunk's range, rotations 10 bits per component.
REAL_FORMATS = {
    "ply": Tolerance(),
    "splat": Tolerance(colour=1 / 255 + 1e-6, opacity=1 / 255 + 1e-6, scale_rel=1e-6, rotation=2e-3),
    "spz": Tolerance(position=2**-12, colour=0.005, opacity=1 / 255, scale_rel=0.035, scale_abs=1e-4, rotation=2e-3),
    "compressed.ply": Tolerance(position=4 / 2**11, colour=1 / 255, opacity=1 / 255, scale_rel=0.05, rotation=2e-3),
}
# splatseg's reader and splat-transform's decoder follow the same format spec; they differ by float rounding, except
# where the spec leaves a choice: a .splat rotation byte b is (b - 128)/128 in antimatter15's viewer, b/127.5 - 1 in
# splat-transform (1 - |dot| up to ~3e-5 after normalising).
SAME_DECODER = Tolerance(position=1e-5, colour=1e-5, opacity=1e-5, scale_rel=1e-5, scale_abs=1e-9, rotation=1e-6)
DECODER_TOLERANCE = {"splat": dataclasses.replace(SAME_DECODER, rotation=1e-4)}


@pytest.fixture(scope="module")
def real(tmp_path_factory, st) -> dict:
    """The capture converted by splat-transform to each format (one conversion each)."""
    if not REAL_CAPTURE.is_file():
        pytest.skip(f"{REAL_CAPTURE} is missing (tests/data/real/ holds the PlayCanvas capture)")
    root = tmp_path_factory.mktemp("real")
    files = {fmt: st.convert(REAL_CAPTURE, root / f"biker.{fmt}") for fmt in REAL_FORMATS}
    return {"files": files, "root": root, "reference": read_ply(files["ply"]), "st": st}


def test_real_capture_ply_is_what_splat_transform_read(real) -> None:
    """splat-transform's .ply of the capture loads in splatseg as the scene splat-transform itself read, both from
    that .ply and from the original .compressed.ply (count, min, max, mean of every activated column)."""
    scene = load_or_skip(real["files"]["ply"])
    assert len(scene) == 152_746
    assert_matches_stats(scene, real["st"].stats(real["files"]["ply"]), what="biker.ply")
    assert_matches_stats(scene, real["st"].stats(REAL_CAPTURE), what="biker.compressed.ply")


def test_real_capture_ply_round_trips_through_splatseg(real, tmp_path) -> None:
    """splatseg's re-write of the capture is read by splat-transform as the same scene."""
    scene = load_or_skip(real["files"]["ply"])
    again = tmp_path / "again.ply"
    write_ply(again, scene)
    assert_matches_stats(scene, real["st"].stats(again), what="splatseg's rewrite")
    assert_same_gaussians(read_ply(again), scene, Tolerance(), what="splatseg's rewrite")


@pytest.mark.parametrize("fmt", [f for f in REAL_FORMATS if f != "ply"])
def test_real_capture_in_each_format_loads_as_the_same_scene(real, fmt) -> None:
    scene = load_or_skip(real["files"][fmt])
    # As splat-transform decodes the same file: Gaussian by Gaussian, same order.
    decoded = read_ply(real["st"].convert(real["files"][fmt], real["root"] / f"{fmt}.back.ply"))
    tol = DECODER_TOLERANCE.get(fmt, SAME_DECODER)
    assert_same_gaussians(scene, decoded, tol, what=f"biker.{fmt} vs splat-transform")
    # As the capture itself: the same Gaussians (writers may reorder them) within the format's quantisation.
    assert_same_marginals(scene, real["reference"], REAL_FORMATS[fmt], what=f"biker.{fmt} vs biker.ply")


def test_tolerances_are_tight_enough_to_notice_a_shift(real) -> None:
    """The quantisation bounds above would catch a reader that is off by one step of a byte-coded colour."""
    reference = real["reference"]
    shifted = GaussianScene(
        means=reference.means + 2 * REAL_FORMATS["spz"].position,
        quats=reference.quats,
        log_scales=reference.log_scales,
        logit_opacities=reference.logit_opacities,
        sh=reference.sh,
    )
    with pytest.raises(AssertionError, match="position"):
        assert_same_marginals(shifted, reference, REAL_FORMATS["spz"], what="shifted")
    brighter = GaussianScene(
        means=reference.means,
        quats=reference.quats,
        log_scales=reference.log_scales,
        logit_opacities=reference.logit_opacities,
        sh=reference.sh + torch.tensor([2 / 255 / SH_C0, 0.0, 0.0]),
    )
    with pytest.raises(AssertionError, match="colour"):
        assert_same_gaussians(brighter, reference, REAL_FORMATS["splat"], what="brighter")

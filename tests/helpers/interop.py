"""Helpers of the interop tests: the splat-transform oracle, loading as a user would, comparing within quantisation.

Two scenes are compared in *activated* form (positions, base colours, opacities, scales, unit rotations up to
sign), since that is what every format stores in some quantised way and what a viewer shows. `Tolerance` says how
far each may move: zero for float32 formats, the format's quantisation step for the packed ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.errors import InputError
from backend.core.scene import GaussianScene
from backend.io.ply import OPACITY_LOGIT_LIMIT
from backend.io.scene_folder import load_scene
from backend.io.splat_transform import SplatTransform, SplatTransformUnavailable, ensure_splat_transform

REAL_CAPTURE = Path(__file__).parent.parent / "data" / "real" / "biker.compressed.ply"

# What main's `load_scene` says about a .spz/.splat (not a model file) and a .compressed.ply (no vertex element).
# Once the readers of the "any splat file" work land, these messages no longer occur for those files and a
# failure to load is a failure.
_READERS_PENDING = ("is not a model file", "has no 'vertex' element", "vertex lacks x, y, z")


def splat_transform_or_skip() -> SplatTransform:
    try:
        return ensure_splat_transform()
    except SplatTransformUnavailable as e:
        pytest.skip(f"interop checks need @playcanvas/splat-transform from npm: {e}")


def load_or_skip(path: Path) -> GaussianScene:
    """The scene in PATH through splatseg's entry point (`load_scene`), as `splatseg view PATH` would load it."""
    try:
        scene, _ = load_scene(path)
    except InputError as e:
        if any(needle in str(e) for needle in _READERS_PENDING):
            pytest.skip(f"needs the .compressed.ply/.splat/.spz readers (load_scene said: {e})")
        raise
    return scene


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Largest allowed difference per attribute (absolute unless named relative)."""

    position: float = 0.0
    colour: float = 0.0
    opacity: float = 0.0
    scale_rel: float = 0.0
    scale_abs: float = 0.0
    rotation: float = 1e-12  # 1 - |<q, q'>| of unit quaternions (1e-12: float64 rounding of an exact match)


def activated(scene: GaussianScene) -> dict[str, np.ndarray]:
    """The attributes every format keeps, as numpy: means [N, 3], colour [N, 3], opacity [N], scale [N, 3], quat [N, 4].

    Colour is the unclamped base colour SH_C0·f_dc + 0.5: clamping would hide a reader that gets the sign wrong.
    """
    from backend.core.scene import SH_C0

    return {
        "position": scene.means.double().numpy(),
        "colour": (scene.sh[:, 0].double() * SH_C0 + 0.5).numpy(),
        "opacity": torch.sigmoid(scene.logit_opacities.double()).numpy(),
        "scale": torch.exp(scene.log_scales.double()).numpy(),
        "quat": torch.nn.functional.normalize(scene.quats.double(), dim=-1).numpy(),
    }


def assert_same_gaussians(got: GaussianScene, want: GaussianScene, tol: Tolerance, *, what: str) -> None:
    """Gaussian i of GOT is Gaussian i of WANT within TOL."""
    assert len(got) == len(want), f"{what}: {len(got)} Gaussians, expected {len(want)}"
    a, b = activated(got), activated(want)
    for name, limit in (("position", tol.position), ("colour", tol.colour), ("opacity", tol.opacity)):
        err = float(np.abs(a[name] - b[name]).max(initial=0.0))
        assert err <= limit, f"{what}: {name} differs by up to {err:.3g} (allowed {limit:.3g})"
    scale_err = np.abs(a["scale"] - b["scale"]) - tol.scale_rel * b["scale"] - tol.scale_abs
    assert scale_err.max(initial=0.0) <= 0, f"{what}: scale differs beyond {tol.scale_rel:.3g}·s + {tol.scale_abs:.3g}"
    rot_err = float((1 - np.abs((a["quat"] * b["quat"]).sum(1))).max(initial=0.0))
    assert rot_err <= tol.rotation, f"{what}: rotation differs by 1-|dot| = {rot_err:.3g} (allowed {tol.rotation:.3g})"


def assert_same_marginals(got: GaussianScene, want: GaussianScene, tol: Tolerance, *, what: str) -> None:
    """GOT and WANT hold the same Gaussians in any order, each attribute within TOL.

    Compares every column sorted: if each Gaussian moved by at most e in a column, the sorted columns differ by at
    most e element by element (sorting is 1-Lipschitz in the max norm), so this needs no matching of Gaussians.
    """
    assert len(got) == len(want), f"{what}: {len(got)} Gaussians, expected {len(want)}"
    a, b = activated(got), activated(want)
    for name, limit in (("position", tol.position), ("colour", tol.colour), ("opacity", tol.opacity)):
        err = float(np.abs(np.sort(a[name], axis=0) - np.sort(b[name], axis=0)).max(initial=0.0))
        assert err <= limit, f"{what}: sorted {name} differs by up to {err:.3g} (allowed {limit:.3g})"
    sa, sb = np.sort(a["scale"], axis=0), np.sort(b["scale"], axis=0)
    scale_err = np.abs(sa - sb) - tol.scale_rel * sb - tol.scale_abs
    assert scale_err.max(initial=0.0) <= 0, f"{what}: scale differs beyond {tol.scale_rel:.3g}·s + {tol.scale_abs:.3g}"


def assert_matches_stats(scene: GaussianScene, stats: dict, *, what: str) -> None:
    """SCENE as splatseg read it agrees with splat-transform's own `--stats json` of a file (count, min, max, mean).

    splat-transform takes its statistics of the stored values and prints them activated (exp of the mean
    log-scale, sigmoid of the mean logit, SH_C0·f_dc + 0.5), to 6 significant digits; ±inf values are left out
    and counted.
    """
    from backend.core.scene import SH_C0

    block = stats["stats"][0]
    assert block["numGaussians"] == len(scene), f"{what}: splat-transform counts {block['numGaussians']}"
    names = block["columns"]
    means, logit = scene.means.double().numpy(), scene.logit_opacities.double().numpy()
    # name → (stored values, activation)
    column = {name: (means[:, i], lambda v: v) for i, name in enumerate("xyz")}
    for i in range(3):
        column[f"scale_{i}"] = (scene.log_scales[:, i].double().numpy(), np.exp)
        column[f"f_dc_{i}"] = (scene.sh[:, 0, i].double().numpy(), lambda v: v * SH_C0 + 0.5)
    # splatseg reads an infinite logit-opacity as the saturated ±OPACITY_LOGIT_LIMIT.
    infinite = block["data"]["infCount"][names.index("opacity")]
    saturated = np.abs(logit) >= OPACITY_LOGIT_LIMIT
    if infinite:
        assert int(saturated.sum()) == infinite, f"{what}: {saturated.sum()} saturated opacities, {infinite} inf"
        logit = logit[~saturated]
    column["opacity"] = (logit, lambda v: 1 / (1 + np.exp(-v)))
    for name, (values, activate) in column.items():
        j = names.index(name)
        for stat, ours in (("min", values.min()), ("max", values.max()), ("mean", values.mean())):
            ours, theirs = float(activate(ours)), block["data"][stat][j]
            assert ours == pytest.approx(theirs, rel=2e-5, abs=2e-6), f"{what}: {stat}({name}) {ours} vs {theirs}"

"""What every synthetic preset builds: a Gaussian scene with the object and the part each Gaussian came from,
the shared colour palette, and the helpers the presets share."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from backend.core.scene import GaussianScene

GENERATOR = "splatseg.synthetic"
"""Written into `labels.json`: marks a folder as one this module may overwrite."""

Vec3 = tuple[float, float, float]

PALETTE: dict[str, Vec3] = {
    # Shared across objects on purpose: see the module docstring.
    "red": (0.78, 0.13, 0.11),
    "white": (0.92, 0.91, 0.88),
    "green": (0.17, 0.52, 0.24),
    "blue": (0.16, 0.31, 0.68),
    # Used once.
    "dark_green": (0.09, 0.33, 0.15),
    "navy": (0.10, 0.16, 0.38),
    "yellow": (0.96, 0.80, 0.30),
    "metal": (0.60, 0.61, 0.64),
    "coffee": (0.24, 0.13, 0.06),
    "terracotta": (0.74, 0.40, 0.24),
    "soil": (0.27, 0.18, 0.11),
    "black": (0.07, 0.07, 0.08),
    "glass": (0.58, 0.78, 0.88),
    "orange": (0.93, 0.52, 0.14),
    "purple": (0.45, 0.25, 0.55),
    "wood": (0.58, 0.40, 0.23),
    "dark_wood": (0.33, 0.22, 0.13),
    "floor_light": (0.56, 0.55, 0.53),
    "floor_dark": (0.42, 0.41, 0.40),
    "wall": (0.82, 0.79, 0.72),
}


# ---- building ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SyntheticScene:
    """A Gaussian scene with the object and the part every Gaussian was sampled from."""

    scene: GaussianScene
    object_labels: np.ndarray  # [N] int32, 0 = background (floor, walls)
    part_labels: np.ndarray  # [N] int32, 0 = background
    object_names: dict[int, str]  # e.g. {1: "table", 2: "mug", ...}
    part_names: dict[int, str]  # e.g. {3: "mug/body", 4: "mug/handle", ...}
    part_to_object: dict[int, int]
    center: np.ndarray  # [3] float64: what orbit cameras look at (the middle of the objects on the table)
    radius: float
    """Radius of a sphere about `center` that holds the table top and everything on it."""
    preset: str = "tabletop"
    seed: int = 0
    support: tuple[int, ...] = ()
    """Object ids of supports no mask model gives a mask of their own (the shelf preset's board); not scored."""

    @property
    def num_gaussians(self) -> int:
        return len(self.scene)

    def labels_json(self) -> dict:
        """The names and the part → object map, as `labels.json` stores them (JSON keys are strings)."""
        return {
            "generator": GENERATOR,
            "preset": self.preset,
            "seed": self.seed,
            "num_gaussians": self.num_gaussians,
            "objects": {str(k): v for k, v in self.object_names.items()},
            "parts": {str(k): v for k, v in self.part_names.items()},
            "part_to_object": {str(k): v for k, v in self.part_to_object.items()},
            "support": list(self.support),
        }


def apportion(total: int, weights: np.ndarray) -> np.ndarray:  # [K] int64 summing exactly to total
    """Largest-remainder rounding: counts proportional to weights that add up to the exact total."""
    quota = total * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    return counts


def flat_gaussians(
    means: np.ndarray,  # [N, 3]
    quats: np.ndarray,  # [N, 4] wxyz, each disc's frame (its normal is the local z)
    sigmas: list[np.ndarray],  # per surface piece, [n_i] disc radius
    colors: list[np.ndarray],  # per surface piece, [n_i, 3] in [0, 1]
    rng: np.random.Generator,
    *,
    flatness: float,
    color_noise: float,
) -> tuple[GaussianScene, np.ndarray]:  # the scene and the permutation applied to the samples ([N] int)
    """Surface samples → flat, nearly opaque Gaussians in a random file order: the last step every preset shares.

    A trained model's file is in no spatial or semantic order, so consumers must not rely on one; the caller
    applies the returned permutation to its per-sample labels."""
    n_total = len(means)
    sigma = np.concatenate(sigmas)[:, None] * rng.uniform(0.85, 1.15, (n_total, 2))
    scales = np.concatenate([sigma, flatness * sigma.mean(axis=1, keepdims=True)], axis=1)
    colors_np = np.clip(np.concatenate(colors) + rng.normal(0.0, color_noise, (n_total, 3)), 0.0, 1.0)
    opacities = rng.uniform(0.9, 0.99, n_total)
    order = rng.permutation(n_total)
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(means[order]),
        quats=torch.from_numpy(quats[order]),
        scales=torch.from_numpy(scales[order]),
        opacities=torch.from_numpy(opacities[order]),
        colors=torch.from_numpy(colors_np[order]),
    )
    return scene, order

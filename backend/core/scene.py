"""`GaussianScene`: the Gaussians of a pre-trained 3DGS model, as tensors in the model file's order.

The parameterisation is the one 3DGS checkpoints store (INRIA PLY, gsplat `splats`): log-scales, logit-opacities,
unnormalised wxyz quaternions and spherical-harmonic coefficients. Keeping the stored form (rather than activated
values) makes a read → write round trip bit-exact. Index i always means the i-th Gaussian of the model file, so a
selection `.npy` can be applied to the file by anyone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """K = (d+1)² coefficients per channel → degree d (0–3)."""
    degree = round(math.sqrt(num_coeffs)) - 1
    if (degree + 1) ** 2 != num_coeffs or not 0 <= degree <= 3:
        raise ValueError(f"{num_coeffs} SH coefficients per channel is not (d+1)² for a degree d in 0..3")
    return degree


@dataclasses.dataclass
class GaussianScene:
    """N Gaussians in stored (pre-activation) form. All tensors are float32 on the same device."""

    means: Tensor  # [N, 3] world positions
    quats: Tensor  # [N, 4] rotations, wxyz, not necessarily unit length (normalise before use)
    log_scales: Tensor  # [N, 3] log of the standard deviations along the local axes
    logit_opacities: Tensor  # [N] inverse-sigmoid of opacity
    sh: Tensor  # [N, K, 3] SH coefficients, K = (degree+1)²; sh[:, 0] is the DC term (INRIA f_dc)
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Extra per-Gaussian properties (e.g. labels, normals) kept from the file, each a [N] array."""

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "logit_opacities": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianScene.{name} has shape {got}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"GaussianScene.sh has shape {tuple(self.sh.shape)}, expected [{n}, K, 3]")
        sh_degree_from_coeffs(self.sh.shape[1])
        for key, value in self.extras.items():
            if value.shape[0] != n:
                raise ValueError(f"extra property {key!r} has {value.shape[0]} values for {n} Gaussians")

    # ---- sizes -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    # ---- activated values --------------------------------------------------------------------------------------
    @property
    def scales(self) -> Tensor:  # [N, 3]
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:  # [N]
        return torch.sigmoid(self.logit_opacities)

    @property
    def unit_quats(self) -> Tensor:  # [N, 4]
        return torch.nn.functional.normalize(self.quats, dim=-1)

    @property
    def dc_colors(self) -> Tensor:  # [N, 3] view-independent base colour in [0, 1] (what a viewer without SH shows)
        return (self.sh[:, 0] * SH_C0 + 0.5).clamp(0.0, 1.0)

    # ---- construction and set operations -----------------------------------------------------------------------
    def to(self, device: torch.device | str) -> GaussianScene:
        return dataclasses.replace(
            self,
            means=self.means.to(device),
            quats=self.quats.to(device),
            log_scales=self.log_scales.to(device),
            logit_opacities=self.logit_opacities.to(device),
            sh=self.sh.to(device),
        )

    def subset(self, index: Tensor | np.ndarray) -> GaussianScene:
        """The Gaussians picked by a boolean mask [N] or an index vector, in the order given."""
        index_t = torch.as_tensor(np.asarray(index) if not isinstance(index, Tensor) else index)
        if index_t.dtype == torch.bool and index_t.shape != (len(self),):
            raise ValueError(f"selection mask has {index_t.shape[0]} entries for {len(self)} Gaussians")
        index_np = index_t.cpu().numpy()
        index_t = index_t.to(self.device)
        return GaussianScene(
            means=self.means[index_t],
            quats=self.quats[index_t],
            log_scales=self.log_scales[index_t],
            logit_opacities=self.logit_opacities[index_t],
            sh=self.sh[index_t],
            extras={k: v[index_np] for k, v in self.extras.items()},
        )

    @staticmethod
    def concat(scenes: list[GaussianScene]) -> GaussianScene:
        """Join scenes; SH is padded with zeros to the highest degree, extras kept only where all scenes have them."""
        if not scenes:
            raise ValueError("concat needs at least one scene")
        k = max(s.sh.shape[1] for s in scenes)
        shs = [torch.nn.functional.pad(s.sh, (0, 0, 0, k - s.sh.shape[1])) for s in scenes]
        common = set(scenes[0].extras).intersection(*(s.extras.keys() for s in scenes[1:]))
        return GaussianScene(
            means=torch.cat([s.means for s in scenes]),
            quats=torch.cat([s.quats for s in scenes]),
            log_scales=torch.cat([s.log_scales for s in scenes]),
            logit_opacities=torch.cat([s.logit_opacities for s in scenes]),
            sh=torch.cat(shs),
            extras={key: np.concatenate([s.extras[key] for s in scenes]) for key in sorted(common)},
        )

    @staticmethod
    def from_activated(
        *,
        means: Tensor,  # [N, 3]
        quats: Tensor,  # [N, 4] wxyz
        scales: Tensor,  # [N, 3] standard deviations
        opacities: Tensor,  # [N] in (0, 1)
        colors: Tensor,  # [N, 3] RGB in [0, 1] (stored as the SH DC term)
        sh_degree: int = 0,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> GaussianScene:
        """Build from activated values, as a generator of synthetic scenes thinks of them."""
        n = means.shape[0]
        sh = torch.zeros(n, (sh_degree + 1) ** 2, 3, dtype=torch.float32)
        sh[:, 0] = (colors.float() - 0.5) / SH_C0
        opacities = opacities.float().clamp(1e-6, 1 - 1e-6)
        return GaussianScene(
            means=means.float().contiguous(),
            quats=quats.float().contiguous(),
            log_scales=torch.log(scales.float()).contiguous(),
            logit_opacities=torch.logit(opacities).contiguous(),
            sh=sh,
            extras=dict(extras or {}),
        )

    def finite_mask(self) -> Tensor:  # [N] bool: every stored parameter is finite
        parts = [self.means, self.quats, self.log_scales, self.logit_opacities[:, None], self.sh.flatten(1)]
        return torch.cat([torch.isfinite(p) for p in parts], dim=1).all(dim=1)

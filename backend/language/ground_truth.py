"""`GroundTruthEncoder`: a CLIP stand-in built from a synthetic scene's ground truth, for tests and benchmarks only.

CLIP weights cannot be downloaded here, and random weights make every accuracy figure meaningless. This encoder has
CLIP's interface (`encode_text`, `encode_images`, `identity`, `embed_dim`, `image_size`) and embeddings whose right
answer is known, so everything around CLIP can be measured: which crops are made, from which views, how they are
averaged, which granularity a pixel keeps, the distillation into Gaussians, relevancy and thresholds.

- Every name of the scene (objects "mug", parts "mug/handle", and "background") owns a fixed unit vector; the
  vectors are orthonormal. A text's embedding is its name's vector ("mug handle" and "mug/handle" both name the
  part); any other text (the canonical negatives) is generic as CLIP's are: mostly the mean direction of all names
  plus a seeded random direction, so it is a little close to every crop and close to none in particular.
- An image's embedding is the label-coverage-weighted mix of the name vectors of what the crop shows (for each
  object and each part, the share of the crop's lit pixels that belong to it), normalised, plus Gaussian noise of
  norm `noise` (relative to the unit signal), normalised again.

The encoder reads "what the crop shows" from colours: the scene to crop is `label_coded_scene(synth)`, the same
geometry with every Gaussian's colour replaced by its part's code colour (`part_code_colors`), so any crop rendered
or cut from a render decodes to part labels pixel by pixel. Pixels whose colour is no code (blends at edges, black
outside a mask) are not counted. It is never used by the product's commands.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.core.scene import GaussianScene

DEFAULT_NOISE = 0.5
"""Norm of the noise added to a crop's unit mix: cos(noisy, clean) ≈ 1/√(1 + noise²) ≈ 0.89."""
DEFAULT_DIM = 128
BACKGROUND = "background"
GENERIC_SHARE = 0.8
"""How much of a text that names nothing ("object", "things") lies along the mean of all names: CLIP puts such
words near every image, which is what makes them useful negatives. Their cosine with a typical crop is then ~0.2."""
_CODE_LEVELS = (0.25, 0.5, 0.75, 1.0)
_CODE_TOLERANCE = 0.06  # a pixel decodes to a code when every channel is within this of it


def part_code_colors(num_parts: int) -> Tensor:  # → [num_parts, 3] float32, distinct, far from black and each other
    """One code colour per part label (0 = background included): points of a 4×4×4 grid, 0.25 apart."""
    grid = torch.tensor(_CODE_LEVELS)
    codes = torch.stack(torch.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    if num_parts > codes.shape[0]:
        raise ValueError(f"at most {codes.shape[0]} part labels can be colour-coded, got {num_parts}")
    # Spread the labels over the grid so neighbours in label order are not neighbours in colour.
    order = torch.from_numpy(np.random.default_rng(7).permutation(codes.shape[0]))
    return codes[order[:num_parts]].float()


def label_coded_scene(synth) -> GaussianScene:
    """The synthetic scene's geometry with each Gaussian coloured by its part's code (SH degree 0)."""
    scene = synth.scene
    codes = part_code_colors(max(synth.part_names) + 1)
    colors = codes[torch.from_numpy(synth.part_labels.astype(np.int64))]  # [N, 3]
    return GaussianScene.from_activated(
        means=scene.means.detach().cpu(),
        quats=scene.quats.detach().cpu(),
        scales=scene.scales.detach().cpu(),
        opacities=scene.opacities.detach().cpu(),
        colors=colors,
    )


def part_text(name: str) -> str:
    """The query text for a part name: "mug/handle" → "mug handle"."""
    return name.replace("/", " ")


class GroundTruthEncoder:
    """The ground-truth stand-in for `ClipEncoder` (see the module docstring)."""

    name = "ground-truth"
    source = "synthetic-labels"
    batch_size = 64

    def __init__(
        self,
        synth,
        *,
        noise: float = DEFAULT_NOISE,
        dim: int = DEFAULT_DIM,
        image_size: int = 64,
        seed: int = 0,
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be ≥ 0, got {noise}")
        self.noise = float(noise)
        self.embed_dim = int(dim)
        self.image_size = int(image_size)
        num_parts = max(synth.part_names) + 1
        self.codes = part_code_colors(num_parts)  # [L, 3]
        part_names = {0: BACKGROUND, **{int(k): v for k, v in synth.part_names.items()}}
        object_names = {0: BACKGROUND, **{int(k): v for k, v in synth.object_names.items()}}
        part_to_object = {0: 0, **{int(k): int(v) for k, v in synth.part_to_object.items()}}
        names = sorted(set(object_names.values()) | {v for k, v in part_names.items() if k})
        if len(names) > dim:
            raise ValueError(f"{len(names)} names need dim ≥ {len(names)}")
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        self.name_vectors = {n: q[:, i].float() for i, n in enumerate(names)}
        """Name → its unit vector (orthonormal)."""
        # [L, D]: a decoded pixel of part p counts for p and for p's object.
        rows = []
        for p in range(num_parts):
            row = torch.zeros(dim)
            if p in part_names:
                row += self.name_vectors[part_names[p]]
                if p:
                    row += self.name_vectors[object_names[part_to_object[p]]]
            rows.append(row)
        self._label_mix = torch.stack(rows)
        self._generic = F.normalize(torch.stack(list(self.name_vectors.values())).sum(0), dim=0)
        self._texts = {n: n for n in names} | {part_text(n): n for n in names}
        self._noise = torch.Generator().manual_seed(seed + 1)
        self._lock = threading.Lock()
        self.fingerprint = hashlib.sha256(f"{names}|{dim}|{noise}|{seed}".encode()).hexdigest()[:16]

    @property
    def identity(self) -> dict[str, str]:
        return {"clip_model": self.name, "clip_weights": self.fingerprint, "clip_source": self.source}

    def encode_text(self, texts: Sequence[str]) -> Tensor:  # → [T, D] float32 unit rows
        rows = []
        for text in texts:
            key = " ".join(text.lower().split())
            if key in self._texts:
                rows.append(self.name_vectors[self._texts[key]])
            else:  # not a name (the canonical negatives): generic, near the centre of every crop's embedding
                seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
                r = F.normalize(torch.randn(self.embed_dim, generator=torch.Generator().manual_seed(seed)), dim=0)
                rows.append(F.normalize(GENERIC_SHARE * self._generic + (1 - GENERIC_SHARE) * r, dim=0))
        return torch.stack(rows) if rows else torch.zeros(0, self.embed_dim)

    def coverage(self, images: Tensor) -> Tensor:  # images [B, S, S, 3] → [B, L] share of decodable pixels per part
        """Per image, the share of its decodable pixels that show each part label (rows sum to 1, or 0 if none)."""
        x = images.float().reshape(images.shape[0], -1, 1, 3)  # [B, P, 1, 3]
        dist = (x - self.codes.view(1, 1, -1, 3)).abs().amax(-1)  # [B, P, L]
        best, label = dist.min(-1)  # [B, P]
        ok = best <= _CODE_TOLERANCE
        counts = torch.zeros(images.shape[0], self.codes.shape[0])
        counts.scatter_add_(1, label, ok.float())
        return counts / counts.sum(1, keepdim=True).clamp(min=1.0)

    def encode_images(self, images: Tensor) -> Tensor:  # images [B, S, S, 3] in [0, 1] → [B, D] float32 unit rows
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B, S, S, 3], got {tuple(images.shape)}")
        mix = F.normalize(self.coverage(images) @ self._label_mix, dim=-1)  # [B, D]; zero rows stay zero
        with self._lock:
            noise = torch.randn(mix.shape, generator=self._noise)
        noise = F.normalize(noise, dim=-1) * self.noise
        return F.normalize(mix + noise, dim=-1)

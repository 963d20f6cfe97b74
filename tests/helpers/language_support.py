"""Encoders for the text-query tests: nothing here downloads anything.

- `TINY_CONFIG` / `tiny_clip`: a real open_clip CLIP (vision ViT + causal text transformer, the BPE tokenizer that
  ships in the wheel) at a toy size with seeded random weights: it runs every real code path in milliseconds.
- `ColourEncoder`: a stand-in whose image embedding is a soft colour histogram of the lit pixels and whose text
  "r,g,b" embeds that colour. With it a query has a right answer (the cluster of that colour), which tests that
  the visibility, cropping and rendering put the right Gaussians in front of the encoder.
- `TextTable`: fixed random unit text embeddings, one per text, for index tests that need no images.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

TINY_NAME = "splatseg-tiny-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_tiny(tmp_dir: Path) -> str:
    """Make `TINY_NAME` a model name open_clip knows (its registry is per process)."""
    import open_clip

    if TINY_NAME not in open_clip.list_models():
        path = Path(tmp_dir) / f"{TINY_NAME}.json"
        path.write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(path)
    return TINY_NAME


def tiny_clip(tmp_dir: Path, *, seed: int = 0):
    from backend.language.clip import random_clip

    return random_clip(register_tiny(tmp_dir), seed=seed, device="cpu")


class ColourEncoder:
    """Duck-typed `ClipEncoder` with meaningful, hand-checkable embeddings (see the module docstring)."""

    name = "colour-histogram"
    source = "test"
    fingerprint = "colour0"
    batch_size = 16
    image_size = 32

    def __init__(self, bins: int = 5, sigma: float = 0.12) -> None:
        g = torch.linspace(0, 1, bins)
        self.centers = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # [D, 3]
        self.sigma = sigma
        self.embed_dim = self.centers.shape[0]

    @property
    def identity(self) -> dict[str, str]:
        return {"clip_model": self.name, "clip_weights": self.fingerprint, "clip_source": self.source}

    def _rbf(self, colours: torch.Tensor) -> torch.Tensor:  # [P, 3] → [P, D]
        return torch.exp(-(torch.cdist(colours, self.centers) ** 2) / (2 * self.sigma**2))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:  # [B, S, S, 3] → [B, D]
        rows = []
        for image in images:
            px = image.reshape(-1, 3)
            lit = px[px.max(dim=1).values > 0.05]  # the crops are rendered on black
            rows.append(self._rbf(lit).mean(0) if len(lit) else torch.zeros(self.embed_dim))
        return F.normalize(torch.stack(rows), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:  # "r,g,b" → that colour; other words → flat
        rows = []
        for text in texts:
            try:
                colour = torch.tensor([[float(v) for v in text.split(",")]])
            except ValueError:
                rows.append(torch.ones(self.embed_dim))
                continue
            rows.append(self._rbf(colour)[0])
        return F.normalize(torch.stack(rows), dim=-1)


class TextTable:
    """An encoder with fixed random text embeddings (for index tests that need no images)."""

    name, source, fingerprint = "x", "z", "y"

    def __init__(self, embed_dim: int = 24) -> None:
        self.embed_dim = embed_dim

    @property
    def identity(self):
        return {"clip_model": self.name, "clip_weights": self.fingerprint, "clip_source": self.source}

    def encode_text(self, texts):
        rows = []
        for t in texts:
            gen = torch.Generator().manual_seed(sum(map(ord, t)))
            rows.append(F.normalize(torch.randn(self.embed_dim, generator=gen), dim=0))
        return torch.stack(rows)

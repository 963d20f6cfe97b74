"""The language field's query on a GPU (float16 features there, float32 on the CPU) against the CPU: the same
relevancy within float16's error and the same selection away from the threshold. Skipped where CUDA is absent;
`bench/gpu.sh` runs it on a GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.language.field import LanguageField, quantize
from backend.language.field_query import DEFAULT_THRESHOLD, FieldIndex
from tests.helpers.language_support import TextTable

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="the float16 query path runs on CUDA only"),
]

DIM, LATENT = 32, 8


def _field(n: int, *, quantized: bool, seed: int = 0) -> LanguageField:
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(DIM, LATENT, generator=gen))
    field = LanguageField(
        features={lvl: torch.randn(n, LATENT, generator=gen) * 0.3 for lvl in ("coarse", "fine")},
        valid=torch.rand(n, generator=gen) < 0.9,
        basis=basis,
        mean=F.normalize(torch.randn(DIM, generator=gen), dim=0) * 0.4,
        identity={"clip_model": "x", "clip_weights": "y", "clip_source": "z"},
    )
    if quantized:
        for lvl in field.levels:
            field.codebooks[lvl], field.codes[lvl] = quantize(field.features[lvl], field.valid, 512)
    return field


def compare_devices(device: str, *, quantized: bool, n: int = 200_000) -> float:
    """Query the same field on the CPU and on `device`; returns the largest relevancy gap (asserting the rest)."""
    field = _field(n, quantized=quantized)
    enc = TextTable(DIM)
    cpu, other = FieldIndex(enc, field, quantized=quantized), FieldIndex(enc, field, device=device, quantized=quantized)
    assert other._features["fine"].dtype == (torch.float16 if device == "cuda" else torch.float32)
    worst = 0.0
    for text in ("a red mug", "the lamp's shade", "something else"):
        for level in ("coarse", "fine"):
            a = cpu.query(text, level=level)
            b = other.query(text, level=level)
            assert a.level == b.level == level
            gap = np.abs(a.relevancy - b.relevancy)
            worst = max(worst, float(gap.max()))
            assert gap.max() < 1e-2, (text, level, float(gap.max()))
            clear = np.abs(a.relevancy - DEFAULT_THRESHOLD) > 1e-2
            assert np.array_equal(a.mask[clear], b.mask[clear])
            assert not b.relevancy[~field.valid.numpy()].any()
    return worst


@pytest.mark.parametrize("quantized", [False, True])
def test_float16_field_query_on_cuda_matches_the_cpu(quantized):
    worst = compare_devices("cuda", quantized=quantized)
    print(f"max |Δrelevancy| {worst:.2e} (quantized={quantized})")

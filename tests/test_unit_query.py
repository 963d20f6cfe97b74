"""`method.unit_query` (a click's query made unit length in NumPy) against torch's `F.normalize`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backend.features.method import unit_query


def test_unit_query_is_f_normalize_to_float32_rounding() -> None:
    g = torch.Generator().manual_seed(0)
    for dim, scale in ((12, 1.0), (24, 1e-3), (32, 1e4), (3, 1e-20)):
        v = torch.randn(dim, generator=g) * scale
        got = unit_query(v)
        assert got.dtype == torch.float32 and got.shape == (dim,)
        torch.testing.assert_close(got, F.normalize(v, dim=0), rtol=2e-7, atol=1e-7)
    zero = unit_query(torch.zeros(5))
    assert torch.equal(zero, torch.zeros(5))  # F.normalize's rule: divided by max(‖v‖, 1e-12)
    assert torch.isnan(unit_query(torch.tensor([1.0, float("nan")]))).all()


def test_unit_query_keeps_torch_for_autograd_and_other_dtypes() -> None:
    v = torch.randn(8, requires_grad=True)
    out = unit_query(v)
    assert out.requires_grad  # the torch path, so a gradient can pass
    d = unit_query(torch.randn(8, dtype=torch.float64))
    assert d.dtype == torch.float32 and np.isclose(float(d.norm()), 1.0, atol=1e-6)

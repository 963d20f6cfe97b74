"""Smaller guarantees from the hostile-user review: the stale check sees a same-size rewrite with its mtime put back,
workspace files get the umask's mode, `.npy` headers are judged before any data is read."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from backend.core.errors import InputError, StaleCacheError
from backend.io.atomic import atomic_path
from backend.io.npy import load_npy, read_npy_header
from backend.workspace import Workspace


def test_same_size_rewrite_with_restored_mtime_is_stale(tmp_path):
    model = tmp_path / "point_cloud.ply"
    model.write_bytes(b"a" * 4096)
    ws = Workspace(tmp_path)
    ws.save_tensors("features/click.safetensors", {"x": torch.zeros(2)}, made_by="train", inputs={"model": model})
    ws.check_fresh("features/click.safetensors")
    before = model.stat()
    with open(model, "r+b") as f:  # same size, different bytes, in place (same inode)
        f.write(b"b")
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back, as `touch -d` or `cp -p` do
    assert model.stat().st_size == before.st_size and model.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(StaleCacheError, match="sha256 changed"):
        Workspace(tmp_path).check_fresh("features/click.safetensors")


def test_workspace_tensors_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        ws = Workspace(tmp_path)
        path = ws.save_tensors("features/click.safetensors", {"x": torch.zeros(2)}, made_by="train")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        with atomic_path(tmp_path / "private.bin") as tmp:
            tmp.write_bytes(b"x")
        assert stat.S_IMODE((tmp_path / "private.bin").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_npy_header_is_judged_before_the_data(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    (shape, _, dtype), offset = read_npy_header(path)
    assert shape == (10**6, 10**6) and dtype == np.float64 and offset == path.stat().st_size
    seen = []
    with pytest.raises(InputError, match="too many"):
        load_npy(path, check_shape=lambda s: seen.append(s) or "too many")
    assert seen == [(10**6, 10**6)]
    with pytest.raises(InputError, match="truncated"):
        load_npy(path, check_shape=lambda s: None)  # the header is fine by the caller, the bytes are not there
    np.save(path, np.arange(5))
    assert load_npy(path, check_shape=lambda s: None).tolist() == [0, 1, 2, 3, 4]
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"no valid \.npy header"):
        read_npy_header(path)

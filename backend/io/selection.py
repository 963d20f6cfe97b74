"""Selections on disk: a `.npy` bool vector [N] in the model file's order, so anyone can apply it with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .atomic import atomic_path
from .npy import load_npy


def load_selection(path: str | Path, num_gaussians: int) -> np.ndarray:  # → [N] bool
    """Read a selection `.npy`, refusing pickles and anything that is not one flag per Gaussian."""
    path = Path(path)

    def check(shape: tuple[int, ...]) -> str | None:
        if len(shape) != 1:
            return f"must hold a 1-D bool vector, got shape {shape}"
        if shape[0] != num_gaussians:
            return f"has {shape[0]} entries but the model has {num_gaussians} Gaussians; was it made for another scene?"
        return None

    arr = load_npy(path, check_shape=check)
    if arr.dtype != np.bool_:
        if np.issubdtype(arr.dtype, np.integer) and set(np.unique(arr).tolist()) <= {0, 1}:
            arr = arr.astype(bool)
        else:
            raise InputError(f"{path} holds {arr.dtype} values; a selection is a bool vector (0/1 also accepted)")
    return arr


def save_selection(path: str | Path, mask: np.ndarray) -> None:
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, mask, allow_pickle=False)

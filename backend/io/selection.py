"""Selections on disk: a `.npy` bool vector [N] in the model file's order, so anyone can apply it with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .atomic import atomic_path


def load_selection(path: str | Path, num_gaussians: int) -> np.ndarray:  # → [N] bool
    """Read a selection `.npy`, refusing pickles and anything that is not one flag per Gaussian."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"selection file {path} does not exist") from None
    except ValueError as e:
        raise InputError(f"{path} is not a plain .npy array ({e}); save selections with numpy.save") from None
    except OSError as e:
        raise InputError(f"{path} is not a readable .npy file ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise InputError(f"{path} must hold a 1-D bool vector, got shape {getattr(arr, 'shape', '?')}")
    if arr.shape[0] != num_gaussians:
        raise InputError(
            f"{path} has {arr.shape[0]} entries but the model has {num_gaussians} Gaussians; "
            "was it made for another scene?"
        )
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

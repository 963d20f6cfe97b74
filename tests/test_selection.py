"""Selections: the `.npy` files, the undo/redo editing state and the front-surface box selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.core.camera import look_at
from backend.core.errors import InputError
from backend.core.selection import SelectionState, combine, select_in_rect
from backend.io.selection import load_selection, save_selection


def _mask(n: int, ids: list[int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[ids] = True
    return m


# ---- files ---------------------------------------------------------------------------------------------------------
def test_save_load_roundtrip(tmp_path):
    m = _mask(10, [1, 3, 9])
    save_selection(tmp_path / "sel.npy", m)
    assert np.array_equal(load_selection(tmp_path / "sel.npy", 10), m)


def test_load_rejects_wrong_length(tmp_path):
    save_selection(tmp_path / "sel.npy", _mask(10, [1]))
    with pytest.raises(InputError, match="11 Gaussians"):
        load_selection(tmp_path / "sel.npy", 11)


# ---- combine -------------------------------------------------------------------------------------------------------
def test_combine_ops():
    a, b = _mask(6, [0, 1, 2]), _mask(6, [2, 3])
    assert combine(a, b, "replace").nonzero()[0].tolist() == [2, 3]
    assert combine(a, b, "add").nonzero()[0].tolist() == [0, 1, 2, 3]
    assert combine(a, b, "subtract").nonzero()[0].tolist() == [0, 1]
    assert combine(a, b, "intersect").nonzero()[0].tolist() == [2]
    with pytest.raises(ValueError, match="unknown selection op"):
        combine(a, b, "xor")  # type: ignore[arg-type]


# ---- SelectionState ------------------------------------------------------------------------------------------------
def test_state_apply_undo_redo():
    s = SelectionState(8)
    assert s.count == 0 and not s.can_undo and not s.can_redo
    assert s.apply(_mask(8, [0, 1]), "replace")
    assert s.apply(_mask(8, [5]), "add")
    assert s.mask.nonzero()[0].tolist() == [0, 1, 5]
    assert s.apply(_mask(8, [1]), "subtract")
    assert s.mask.nonzero()[0].tolist() == [0, 5]
    assert s.undo() and s.mask.nonzero()[0].tolist() == [0, 1, 5]
    assert s.undo() and s.mask.nonzero()[0].tolist() == [0, 1]
    assert s.redo() and s.mask.nonzero()[0].tolist() == [0, 1, 5]
    # A new edit drops the redo branch.
    s.invert()
    assert s.mask.nonzero()[0].tolist() == [2, 3, 4, 6, 7]
    assert not s.can_redo
    s.clear()
    assert s.count == 0
    assert s.undo() and s.count == 5


def test_state_no_change_pushes_nothing():
    s = SelectionState(4)
    assert not s.clear()
    assert not s.can_undo
    v = s.version
    s.apply(_mask(4, [1]), "add")
    assert not s.apply(_mask(4, [1]), "add")
    assert s.version == v + 1


def test_state_merge_key_replaces_top_entry():
    s = SelectionState(6)
    s.apply(_mask(6, [0]), "replace", label="click")
    base = s.mask.copy()
    # A prompt refined three times (slider drags) is one undo step.
    for ids in ([1], [1, 2], [1, 2, 3]):
        s.apply(_mask(6, ids), "add", base=base, merge_key=("prompt", 7))
    assert s.mask.nonzero()[0].tolist() == [0, 1, 2, 3]
    assert s.undo()
    assert s.mask.nonzero()[0].tolist() == [0]
    assert s.last_label == "click"


def test_state_mask_is_read_only_and_history_bounded():
    s = SelectionState(1000, max_history=3)
    with pytest.raises(ValueError):
        s.mask[0] = True
    for i in range(6):
        s.apply(_mask(1000, [i]), "replace")
    undos = 0
    while s.undo():
        undos += 1
    assert undos == 3
    assert s.mask.nonzero()[0].tolist() == [2]  # unpacked exactly from the bit-packed history


def test_state_rejects_wrong_length():
    with pytest.raises(ValueError, match="entries"):
        SelectionState(4).set(np.zeros(5, dtype=bool))


# ---- select_in_rect ------------------------------------------------------------------------------------------------
def _two_walls(n_side: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """A front wall at y = 0 and a back wall at y = 1 (both facing a camera on -y), each n_side² Gaussians."""
    g = torch.linspace(-0.5, 0.5, n_side)
    xx, zz = torch.meshgrid(g, g, indexing="ij")
    front = torch.stack([xx.flatten(), torch.zeros(n_side**2), zz.flatten()], 1)
    back = front + torch.tensor([0.0, 1.0, 0.0])
    sigma = torch.full((2 * n_side**2,), 0.5 / n_side)
    return torch.cat([front, back]), sigma


def _camera():
    return look_at(
        "front", np.array([0.0, -3.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=200, height=200, fov_y_deg=40
    )


def test_select_in_rect_front_surface_only():
    means, sigma = _two_walls()
    n_front = means.shape[0] // 2
    cam = _camera()
    rect = (80.0, 80.0, 120.0, 120.0)  # the middle of the view: both walls project there
    opac = torch.full((means.shape[0],), 0.95)
    everything = select_in_rect(means, cam, rect, opacities=opac, sigma_max=sigma, front_only=False)
    assert everything[:n_front].any() and everything[n_front:].any()
    front = select_in_rect(means, cam, rect, opacities=opac, sigma_max=sigma)
    assert front[:n_front].sum() == everything[:n_front].sum()  # the whole front wall inside the box
    assert not front[n_front:].any()  # nothing of the wall behind it


def test_select_in_rect_sees_through_transparent_and_past_edges():
    means, sigma = _two_walls()
    n_front = means.shape[0] // 2
    cam = _camera()
    opac = torch.full((means.shape[0],), 0.95)
    opac[:n_front] = 0.1  # a faint front wall does not hide the back one
    sel = select_in_rect(means, cam, (80.0, 80.0, 120.0, 120.0), opacities=opac, sigma_max=sigma)
    assert sel[n_front:].any()
    # Beyond the front wall's edge (it spans ±0.5 at 3 m; the back wall ±0.5 at 4 m projects smaller), nothing.
    assert not select_in_rect(means, cam, (0.0, 0.0, 10.0, 10.0), opacities=opac, sigma_max=sigma).any()


def test_select_in_rect_empty_and_reversed_rect():
    means, sigma = _two_walls(10)
    cam = _camera()
    a = select_in_rect(means, cam, (120.0, 120.0, 80.0, 80.0), sigma_max=sigma)  # corners in either order
    b = select_in_rect(means, cam, (80.0, 80.0, 120.0, 120.0), sigma_max=sigma)
    assert np.array_equal(a, b) and a.any()
    assert not select_in_rect(means, cam, (50.0, 50.0, 50.0, 90.0)).any()

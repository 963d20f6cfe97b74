"""User mask folders: every accepted format, and a clear error for each kind of bad file."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from backend.core.camera import look_at
from backend.core.errors import InputError
from backend.io.images import write_png
from backend.masks.folder import FolderMasks, read_mask_file

H, W = 12, 16


def _cameras(n: int = 3):
    return [
        look_at(f"view_{i:03d}", np.array([0.0, -3.0, 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]),
                width=W, height=H, fov_y_deg=50.0)
        for i in range(n)
    ]  # fmt: skip


def _stack() -> np.ndarray:  # [3, H, W] bool: overlapping whole / part / sub-part
    masks = np.zeros((3, H, W), bool)
    masks[0, 2:10, 2:14] = True
    masks[1, 2:10, 2:8] = True
    masks[2, 4:6, 4:6] = True
    return masks


def test_npy_npz_and_png_each_give_the_masks(tmp_path):
    cams = _cameras()
    masks = _stack()
    np.save(tmp_path / "view_000.npy", masks)
    np.savez(tmp_path / "view_001.npz", other=np.zeros(3), masks=masks.astype(np.uint8))  # key `masks` wins
    labels = np.zeros((H, W), np.uint16)
    labels[1:4, 1:4] = 7
    labels[6:9, 6:12] = 300  # above 255: needs the 16 bits
    write_png(tmp_path / "view_002.png", labels)
    source = FolderMasks(tmp_path, cams)
    for cam in cams[:2]:
        view = source(cam)
        assert view.name == cam.name
        np.testing.assert_array_equal(view.masks, masks)
        np.testing.assert_array_equal(view.scores, 1.0)
        assert np.isnan(view.scales).all()
    png = source(cams[2])
    np.testing.assert_array_equal(png.masks, np.stack([labels == 7, labels == 300]))


def test_npz_without_masks_key_uses_its_first_array_and_2d_bool_is_one_mask(tmp_path):
    one = _stack()[0]
    np.savez_compressed(tmp_path / "a.npz", one.astype(np.float32))
    np.save(tmp_path / "b.npy", one)
    for name in ("a.npz", "b.npy"):
        masks = read_mask_file(tmp_path / name)
        assert masks.shape == (1, H, W) and masks.dtype == bool
        np.testing.assert_array_equal(masks[0], one)


def test_views_without_a_file_have_no_masks_and_few_files_warn(tmp_path):
    cams = _cameras(4)
    np.save(tmp_path / "view_002.npy", _stack())
    (tmp_path / "README.txt").write_text("not a mask")  # other files are ignored
    with pytest.warns(UserWarning, match="only 1 of 4 views"):
        source = FolderMasks(tmp_path, cams)
    assert source(cams[0]) is None
    assert source(cams[2]) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cam in cams[:2]:
            np.save(tmp_path / f"{cam.name}.npy", _stack())
        FolderMasks(tmp_path, cams)  # 3 of 4: no warning


def test_wrong_size_names_the_view_and_both_sizes(tmp_path):
    cams = _cameras()
    np.save(tmp_path / "view_000.npy", _stack())
    np.save(tmp_path / "view_001.npy", np.zeros((2, H + 1, W), bool))
    source = FolderMasks(tmp_path, cams)
    with pytest.raises(InputError, match=r"view_001.*16×13.*camera is 16×12"):
        source(cams[1])


def test_unknown_view_lists_valid_names(tmp_path):
    np.save(tmp_path / "view_01.npy", _stack())
    with pytest.raises(InputError, match=r"unknown view 'view_01'.*view_000") as info:
        FolderMasks(tmp_path, _cameras())
    assert "\n" not in str(info.value)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    np.save(tmp_path / "view_000.npy", np.array([Boom()], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickle"):
        read_mask_file(tmp_path / "view_000.npy")
    np.savez(tmp_path / "view_001.npz", masks=np.array([Boom()], dtype=object))
    with pytest.raises(InputError, match="pickle"):
        read_mask_file(tmp_path / "view_001.npz")
    (tmp_path / "view_002.npy").write_bytes(pickle.dumps(Boom()))  # a bare pickle named .npy
    with pytest.raises(InputError, match="pickle"):
        read_mask_file(tmp_path / "view_002.npy")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((1, H, W), np.nan, np.float32), "NaN"),
        (np.random.default_rng(0).random((2, H, W)), "0 or 1"),
        (np.full((2, H, W), 2, np.int32), "0 or 1"),
        (np.zeros((2, 3, H, W), bool), r"\[M, H, W\]"),
        (np.array(["a", "b"]), "not masks"),
    ],
)
def test_garbage_arrays_are_refused(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(InputError, match=message):
        read_mask_file(tmp_path / "x.npy")


def test_2d_integer_label_map_in_npy_is_one_mask_per_label(tmp_path):
    labels = np.zeros((H, W), np.int32)
    labels[:4] = 3
    labels[6:] = 9
    np.save(tmp_path / "x.npy", labels)
    np.testing.assert_array_equal(read_mask_file(tmp_path / "x.npy"), np.stack([labels == 3, labels == 9]))


def test_bad_folder_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        FolderMasks(tmp_path / "missing", _cameras())
    with pytest.raises(InputError, match="no mask files"):
        FolderMasks(tmp_path, _cameras())
    (tmp_path / "view_000.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        read_mask_file(tmp_path / "view_000.npz")


def test_two_files_for_one_view_are_refused(tmp_path):
    np.save(tmp_path / "view_000.npy", _stack())
    np.savez(tmp_path / "view_000.npz", masks=_stack())
    with pytest.raises(InputError, match="two mask files"):
        FolderMasks(tmp_path, _cameras())

"""Image I/O: photos arrive as [H, W, 3] uint8 whatever their mode; label maps survive a round trip bit-exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.core.errors import InputError
from backend.io.images import read_image, read_image_size, read_label_map, write_png


def test_label_map_16bit_round_trip_is_exact(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 255], [256, 4097, 65535]], dtype=np.uint16)
    write_png(tmp_path / "labels.png", labels)
    with Image.open(tmp_path / "labels.png") as img:
        assert img.mode == "I;16"  # a real 16-bit PNG, not 8-bit with wrapped values
    got = read_label_map(tmp_path / "labels.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, labels)


def test_big_endian_labels_are_written_correctly(tmp_path: Path) -> None:
    labels = np.array([[1, 258]], dtype=">u2")
    write_png(tmp_path / "labels.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "labels.png"), [[1, 258]])


def test_rgb_round_trip_and_size(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "out" / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "rgb.png"), rgb)
    assert read_image_size(tmp_path / "out" / "rgb.png") == (7, 5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rgb.png"]  # no temporary left behind


def test_alpha_is_composited_over_black(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")
    assert got.shape == (1, 3, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[[200, 100, 50], [0, 0, 0], [100, 50, 25]]])


def test_gray_and_16bit_gray_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 128]], dtype=np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), [[[0, 0, 0], [128, 128, 128]]])
    write_png(tmp_path / "g16.png", np.array([[0, 65535, 257 * 10]], dtype=np.uint16))
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png"), [[[0] * 3, [255] * 3, [10] * 3]])


def test_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    Image.new("RGB", (8, 4), (10, 200, 30)).save(tmp_path / "a.jpg", quality=100)
    got = read_image(tmp_path / "a.jpg")
    assert got.shape == (4, 8, 3)
    np.testing.assert_allclose(got[0, 0], [10, 200, 30], atol=3)


def test_unreadable_images_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"bad\.png: not a readable image"):
        read_image_size(tmp_path / "bad.png")
    write_png(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match="single-channel"):
        read_label_map(tmp_path / "rgb.png")


def test_write_png_rejects_other_layouts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write_png takes"):
        write_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="write_png takes"):
        write_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint16))
    assert not (tmp_path / "x.png").exists()

"""The look + diff's compiled kernels (viewer/_layer_kernels.py) against their NumPy references, exactly: the per-chunk
selected counts and the mixed chunks' words and buffer rows, on random and adversarial data."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.looks import selected_per_chunk, selected_per_chunk_reference
from viewer.splat_layers import MixedWords, _run_offsets


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("density", [0.0, 0.003, 0.3, 1.0])
def test_the_counts_equal_the_bincount(dtype, density: float):
    rng = np.random.default_rng(int(density * 1000) + np.dtype(dtype).itemsize)
    n, c = 20_011, 300  # not a multiple of 8 or of any word size
    chunk_of = rng.integers(0, c, n).astype(dtype)
    chunk_of[:50] = c - 1  # the last chunk, and runs of one chunk
    selection = rng.random(n) < density
    got = selected_per_chunk(selection, chunk_of, c)
    assert got.dtype == np.int64 and got.shape == (c,)
    np.testing.assert_array_equal(got, selected_per_chunk_reference(selection, chunk_of, c))
    assert got.sum() == selection.sum()
    np.testing.assert_array_equal(selected_per_chunk(None, chunk_of, c), np.zeros(c, np.int64))


def test_the_counts_refuse_a_selection_of_another_size():
    with pytest.raises(ValueError, match="selection of 10 Gaussians for a layout of 9"):
        selected_per_chunk(np.ones(10, bool), np.zeros(9, np.uint16), 1)


def test_the_counts_refuse_a_selection_that_is_not_a_bool_mask():
    """The kernel reads the selection's bytes: an int64 mask of the right length has 8 bytes a flag."""
    with pytest.raises(ValueError, match="bool mask"):
        selected_per_chunk(np.ones(9, np.int64), np.zeros(9, np.uint16), 1)


def test_the_mixed_words_refuse_a_selection_off_the_layout():
    """`blend_runs` reads the selection at every `order` entry: a shorter one, or one of another type, is refused."""
    n = 100
    rest, step, order = np.zeros(n, np.uint32), np.ones(n, np.uint32), np.arange(n, dtype=np.int32)
    for selection in (np.ones(n - 1, bool), np.ones(n, np.int64), np.ones((n, 1), bool)):
        with pytest.raises(ValueError, match="for a layout of"):
            MixedWords(rest, selection, step, order)
    words = MixedWords(rest, np.ones(n, bool), step, order).words((np.array([0]), np.array([n])))
    np.testing.assert_array_equal(words, np.ones(n, np.uint32))


def test_the_counts_reach_the_widest_uint16_chunk_id():
    """Chunk 65535 (the largest uint16 id) is counted where it belongs, not wrapped to a negative index."""
    c = 65536
    chunk_of = np.array([65535, 0, 65535, 32768, 65535], np.uint16)
    selection = np.array([True, False, True, True, False])
    got = selected_per_chunk(selection, chunk_of, c)
    np.testing.assert_array_equal(got, selected_per_chunk_reference(selection, chunk_of, c))
    assert got[65535] == 2 and got[32768] == 1 and got.sum() == 3


def _mixed(rng, n: int, selection: np.ndarray | None, *, extreme: bool = False):
    order = rng.permutation(n).astype(np.int32)
    if extreme:  # words at both ends of uint32: the tint step wraps every way
        rest = rng.choice(np.array([0, 1, 2**31, 2**32 - 1], np.uint32), n)
        tint = rng.choice(np.array([0, 2**32 - 1, 2**31 - 1, 7], np.uint32), n)
    else:
        rest = rng.integers(0, 2**32, n, dtype=np.uint32)
        tint = rng.integers(0, 2**32, n, dtype=np.uint32)
    step = None if selection is None else tint - rest
    return MixedWords(rest, selection, step, order), tint, order


@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("nothing_selected", [False, True])
def test_the_packed_rows_equal_the_numpy_path(extreme: bool, nothing_selected: bool):
    rng = np.random.default_rng(7 + extreme + 2 * nothing_selected)
    n = 5003
    selection = None if nothing_selected else rng.random(n) < 0.4
    mixed, tint, order = _mixed(rng, n, selection, extreme=extreme)
    geometry = rng.integers(0, 2**32, (n, 8), dtype=np.uint32)
    bounds = np.unique(np.concatenate([[0, n], rng.integers(0, n, 40)])).astype(np.int64)
    pick = np.sort(rng.choice(len(bounds) - 1, 17, replace=False))
    pick[0] = 0  # the first run, from row 0
    runs = (bounds[pick], bounds[pick + 1])
    words, rows = mixed.rows(geometry, runs)
    ref_words, ref_rows = mixed.rows_reference(geometry, runs)
    assert words.dtype == rows.dtype == np.uint32
    np.testing.assert_array_equal(words, ref_words)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(mixed.words(runs), ref_words)
    # And both are the select they stand for: the tinted word where selected, the rest's elsewhere, row by row.
    at = np.concatenate([np.arange(a, b) for a, b in zip(*runs, strict=True)])
    chosen = mixed.rest[at] if selection is None else np.where(selection[order[at]], tint[at], mixed.rest[at])
    np.testing.assert_array_equal(words, chosen)
    np.testing.assert_array_equal(rows[:, :7], geometry[at, :7])
    assert _run_offsets(runs).tolist() == np.concatenate([[0], np.cumsum(runs[1] - runs[0])[:-1]]).tolist()


def test_no_runs_pack_nothing():
    rng = np.random.default_rng(1)
    mixed, _, _ = _mixed(rng, 100, rng.random(100) < 0.5)
    runs = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    words, rows = mixed.rows(np.zeros((100, 8), np.uint32), runs)
    assert words.shape == (0,) and rows.shape == (0, 8)
    ref_words, ref_rows = mixed.rows_reference(np.zeros((100, 8), np.uint32), runs)
    assert ref_words.shape == (0,) and ref_rows.shape == (0, 8)


def test_prefetch_compiles_the_kernels_before_any_click():
    """A fresh process: the kernels are not compiled by constructing a browser's splats (the first frame), and are
    by `prefetch` (after the first frame), with the chunk ids they count with, so no click pays numba's import,
    compilation or the ids."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        from tests.conftest import random_scene
        from tests.helpers.splat_browser import RecordingSceneApi
        from viewer._layer_kernels import blend_runs, count_per_chunk
        from viewer.looks import LookCache, base_rgba
        from viewer.splat_layers import LayeredSplats
        from viewer.splats import SplatChunks

        def compiled(fn):
            return any(isinstance(c.cell_contents, list) and c.cell_contents for c in fn.__closure__)

        scene = random_scene(500, seed=1)
        base = base_rgba(scene.dc_colors, scene.opacities)
        looks = LookCache(base)
        splats = LayeredSplats(RecordingSceneApi(), SplatChunks(scene, num_chunks=4), base)
        before = compiled(count_per_chunk) or compiled(blend_runs) or "numba" in sys.modules
        before = before or splats.chunks._chunk_ids is not None
        splats.prefetch(looks.layers("highlight")[1], looks.tinted("highlight"))
        print(before, compiled(count_per_chunk) and compiled(blend_runs) and splats.chunks._chunk_ids is not None)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]

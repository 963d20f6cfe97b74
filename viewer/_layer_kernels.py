"""Compiled kernels of a browser's look + diff after a click (`LayeredSplats`, `LookParts`).

What is left of a click's look + diff at 1M Gaussians is two steps NumPy makes in several passes: the selected
Gaussians per chunk (`np.flatnonzero` of the selection, a gather of their chunks, `np.bincount`: three [N]-sized
passes and two temporaries) and the mixed chunks' words (per chunk run, slices of the chunk order, the rest's words
and the tint step, concatenated, then a gather of the selection and the blend). Each is one loop here, with no
temporary. The NumPy forms stay as the references the tests compare with (`looks.selected_per_chunk_reference`,
`splat_layers.MixedWords.words_reference`). Measured side by side (bench/latency.py): ~3× on the counts, ~1.5× on
the mixed rows.
"""

from __future__ import annotations

import numpy as np

from backend.core.jit import compile_now, kernel


@kernel
def count_per_chunk(
    selection: np.ndarray,  # [N] uint8 (a bool mask's bytes), model order
    chunk_of: np.ndarray,  # [N] uint16 or int32: each Gaussian's chunk
    counts: np.ndarray,  # [C] int64, zeroed: filled in place
) -> None:
    """counts[c] += number of selected Gaussians of chunk c, without a branch per Gaussian (a selection is holey in
    model order: a branch would mispredict on most bytes)."""
    for i in range(selection.shape[0]):
        counts[chunk_of[i]] += selection[i]


@kernel
def blend_runs(
    starts: np.ndarray,  # [K] int64: each mixed chunk's first row in chunk order
    ends: np.ndarray,  # [K] int64: one past its last row
    order: np.ndarray,  # [N] int32: chunk order → model order
    selection: np.ndarray,  # [N] uint8 (a bool mask's bytes) in model order
    rest: np.ndarray,  # [N] uint32: the rest's words, chunk order
    step: np.ndarray,  # [N] uint32: tint - rest, wrapping, chunk order
    words: np.ndarray,  # [M] uint32 out: the runs' words, concatenated
) -> None:
    """words = rest + step × selected (wrapping: the tinted word where selected), run after run: the selection's
    gather and the blend in one loop over contiguous slices (the buffer rows' geometry is a plain copy, left to
    NumPy's memcpy; writing the rows' word column here, strided, made the loop twice slower)."""
    m = 0
    for k in range(starts.shape[0]):
        lo, hi = starts[k], ends[k]
        size = hi - lo
        at, r, s, out = order[lo:hi], rest[lo:hi], step[lo:hi], words[m : m + size]
        for i in range(size):
            out[i] = r[i] + s[i] * selection[at[i]]
        m += size


def warm_up() -> None:
    """Compile (or load from numba's cache) each kernel on tiny arrays, so that no click pays it."""
    one, words = np.zeros(1, np.uint8), np.zeros(1, np.uint32)
    runs = (np.zeros(1, np.int64), np.ones(1, np.int64))
    compile_now(
        (count_per_chunk, (one, np.zeros(1, np.uint16), np.zeros(1, np.int64))),
        (count_per_chunk, (one, np.zeros(1, np.int32), np.zeros(1, np.int64))),
        (blend_runs, (*runs, np.zeros(1, np.int32), one, words, words, words.copy())),
    )

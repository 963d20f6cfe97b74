"""The floater filter's per-click work (floaters.py `FloaterFilter`) as one compiled kernel.

The NumPy path spends a click's ~1.4 ms at 1M Gaussians on ~40 array operations over the selection and the occupied
cells (a bincount sized by every cell, the adjacency rows gathered with repeat/cumsum, a CSR matrix, SciPy's
connected components, flag tables). Here one pass counts the selection per cell while listing the occupied cells,
a breadth-first search over the occupied cells' adjacency rows labels their components, and a last pass keeps the
selected Gaussians whose cell's component stays. Components are numbered in another order than SciPy's, but which
Gaussians are kept does not depend on the numbering, so the output equals `FloaterFilter`'s NumPy path exactly
(tests/test_floater_kernel.py).
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel


@kernel
def filter_selection(
    selected,  # [S] int64 Gaussian ids of the selection, or with `perm` its block positions
    perm,  # [N] int64 block position → Gaussian id, or [0]: `selected` holds ids
    cells,  # with `perm`: [N] int32 the cells in block order; else [S] int32 the selection's cells, or [0]
    cell_of,  # [N] int32
    adj_indptr,  # [C + 1] int64
    adj_indices,  # [E] int32, each row ascending
    seeds,  # [T] int64 clicked Gaussian ids
    min_support,  # int: selected Gaussians a cell needs to count
    ratio,  # float: a component stays when at least ratio × the clicked one's size (inf: only clicked ones)
    counts,  # [C] int32 scratch, all 0 (and left so)
    label,  # [C] int32 scratch, all −1 (and left so)
    mask,  # [N] bool, all False, set True at the kept ids; or [0]: return them
):  # → [S'] int64 the ids kept, in the selection's order (the input itself when nothing is dropped); [0] with `mask`
    s_count = selected.size
    by_position = perm.size > 0
    given = cells.size == s_count
    occupied = np.empty(min(s_count, counts.size), np.int64)
    num_occ = 0
    for s in range(s_count):
        c = cells[selected[s]] if by_position else (cells[s] if given else cell_of[selected[s]])
        if counts[c] == 0:
            occupied[num_occ] = c
            num_occ += 1
        counts[c] += 1
    # Components of the supported occupied cells, breadth first over their adjacency rows.
    size = np.zeros(num_occ, np.float64)
    queue = np.empty(num_occ, np.int64)
    num_comp = 0
    supported = 0
    for i in range(num_occ):
        start = occupied[i]
        if counts[start] < min_support or label[start] >= 0:
            continue
        label[start] = num_comp
        queue[0] = start
        head, tail = 0, 1
        total = 0.0
        while head < tail:
            c = queue[head]
            head += 1
            total += counts[c]
            for e in range(adj_indptr[c], adj_indptr[c + 1]):
                nb = adj_indices[e]
                if counts[nb] >= min_support and label[nb] < 0:
                    label[nb] = num_comp
                    queue[tail] = nb
                    tail += 1
        supported += tail
        size[num_comp] = total
        num_comp += 1
    keep_comp = np.zeros(num_comp, np.bool_)
    out = selected[:0].copy()
    if num_comp > 0:
        main = 0.0
        any_seed = False
        for t in range(seeds.size):
            k = label[cell_of[seeds[t]]]
            if k >= 0:
                any_seed = True
                keep_comp[k] = True
                main = max(main, size[k])
        if not any_seed:  # the click's own Gaussians were not selected: keep the biggest component
            for k in range(num_comp):
                main = max(main, size[k])
        every = supported == num_occ
        for k in range(num_comp):
            if size[k] >= ratio * main:
                keep_comp[k] = True
            every = every and keep_comp[k]
        if every and mask.size == 0 and not by_position:
            out = selected
        else:
            kept = np.empty(0 if mask.size else s_count, np.int64)
            n = 0
            for s in range(s_count):
                if by_position:
                    i = perm[selected[s]]
                    c = cells[selected[s]]
                else:
                    i = selected[s]
                    c = cells[s] if given else cell_of[i]
                k = label[c]
                if k >= 0 and keep_comp[k]:
                    if mask.size:
                        mask[i] = True
                    else:
                        kept[n] = i
                        n += 1
            out = kept[:n]
    for i in range(num_occ):  # leave the scratch as it was found
        counts[occupied[i]] = 0
        label[occupied[i]] = -1
    return out

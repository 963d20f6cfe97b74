"""Compiled kernel of the pieces step (pieces.py): the pieces of what growth dropped, and which touch the grown part.

At 1M Gaussians growth drops 0–50 of a fine click's tens of thousands of selected Gaussians; what is left to do is a
binary search of each of their k neighbours among the selection's nodes and a union-find over a few dozen, which in
NumPy and SciPy cost ~0.4 ms of per-call overhead (a sparse matrix, its connected components, a dozen small arrays).
Reference: `SeparatePieces.__call__` (marks by id, SciPy's components), which tests/test_features_pieces.py compares
`after_growth` with, and `pieces_reference`.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel


@kernel
def dropped_pieces(
    nodes,  # [S] int ascending: the selection in the growth's numbering
    keep,  # [S] bool: growth kept it
    dropped,  # [R] int ascending positions in `nodes` where `keep` is off
    rest,  # [R] int their Gaussian ids
    neighbors,  # [N, k] int32 Gaussian ids
    rank,  # [N] int the node of each Gaussian
    touch,  # [R] bool out: one of its neighbours was kept
    comp,  # [R] int64 out: its piece (connected through neighbours growth dropped too), numbered by first member
):  # int: how many pieces
    k = neighbors.shape[1]
    r_count = dropped.size
    for r in range(r_count):
        comp[r] = r
        touch[r] = False
    for r in range(r_count):
        i = rest[r]
        for j in range(k):
            q = rank[neighbors[i, j]]
            a = np.searchsorted(nodes, q)
            if a >= nodes.size or nodes[a] != q:
                continue  # not selected
            if keep[a]:
                touch[r] = True
                continue
            b = np.searchsorted(dropped, a)
            x, y = r, b
            while comp[x] != x:
                comp[x] = comp[comp[x]]
                x = comp[x]
            while comp[y] != y:
                comp[y] = comp[comp[y]]
                y = comp[y]
            if x < y:
                comp[y] = x
            elif y < x:
                comp[x] = y
    count = 0
    for r in range(r_count):  # comp[r] < r for a non-root, already numbered (as −1 − piece) in this pass
        if comp[r] == r:
            comp[r] = -1 - count
            count += 1
        else:
            comp[r] = comp[comp[r]]
    for r in range(r_count):
        comp[r] = -1 - comp[r]
    return count

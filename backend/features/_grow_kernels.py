"""Compiled kernels of the fine click's growth (grow.py): the agreeing graph's strongest links and the search.

A selection's rows of the agreeing graph lie scattered over the graph's arrays (the block order puts alike features
together, not 3D neighbours), so a search that reads every selected node's row is bound by memory: at 1M Gaussians
reading a 67k-node selection's rows alone takes ~0.9 ms. `reach` reads rows only where it must. Each node keeps
two links, its most agreeing neighbour before it and after it in the graph's numbering (`strongest_links`); a sweep
in ascending order joins a node to its earlier link's fragment (that link was labelled first), a second one joins
the fragments through the later links (union-find over the fragments, a few thousand: small arrays), and these
links, being agreeing edges between selected nodes, connect only what the whole graph connects. On the 1M latency
benchmark's clicks they put ~98% of a selection in the seeds' set. The rest is closed over whole rows: one sweep
joins a set that any of its members' rows links to a reached set, then every node still left is checked against
its whole row and a breadth-first search over whole rows runs from those next to a reached node, so the answer is
exactly the whole graph's (any path from a seed to a node left passes through a reached node last).

References: `strongest_links_reference` (NumPy) and grow.py `grow_reference` (a plain search) for `reach`, which
tests/test_features_grow_kernels.py compares on random graphs.
"""

from __future__ import annotations

import numpy as np

from ..core.jit import kernel


@kernel
def strongest_links(
    neighbors,  # [N, k] int32 Gaussian ids
    cos,  # [N, k] float32 feature cosine of each pair
    rank,  # [N] int32 node of each Gaussian
    cut,  # float: a pair agrees when its cosine is above it
    down,  # [N] int32 out: per node, its most agreeing neighbour numbered before it, −1 none
    up,  # [N] int32 out: per node, its most agreeing neighbour numbered after it, −1 none
    down_cos,  # [N] float32 scratch
    up_cos,  # [N] float32 scratch
):
    """Fill `down` and `up` from the agreeing pairs in both directions; ties go to the lower-numbered neighbour."""
    n, k = neighbors.shape
    for p in range(n):
        down[p] = -1
        up[p] = -1
        down_cos[p] = -np.inf
        up_cos[p] = -np.inf
    for i in range(n):
        a = rank[i]
        for j in range(k):
            c = cos[i, j]
            if not c > cut:
                continue
            b = rank[neighbors[i, j]]
            if a == b:
                continue
            for side in range(2):  # the pair is an edge of both nodes' rows
                p = a if side == 0 else b
                q = b if side == 0 else a
                if q < p:
                    if c > down_cos[p] or (c == down_cos[p] and q < down[p]):
                        down_cos[p] = c
                        down[p] = q
                elif c > up_cos[p] or (c == up_cos[p] and q < up[p]):
                    up_cos[p] = c
                    up[p] = q


def strongest_links_reference(
    neighbors: np.ndarray,  # [N, k] int Gaussian ids
    cos: np.ndarray,  # [N, k] float32
    rank: np.ndarray,  # [N] int node of each Gaussian
    cut: float,
) -> tuple[np.ndarray, np.ndarray]:  # down [N], up [N] int32 (−1 none)
    """`strongest_links` in NumPy: every agreeing pair both ways, sorted by node, cosine (descending), neighbour."""
    n, k = neighbors.shape
    a = np.repeat(rank, k)
    b = rank[neighbors.reshape(-1)]
    c = cos.reshape(-1)
    ok = (c > cut) & (a != b)
    src = np.concatenate([a[ok], b[ok]])
    dst = np.concatenate([b[ok], a[ok]])
    c = np.concatenate([c[ok], c[ok]])
    out = []
    for side in (dst < src, dst > src):
        s, d, w = src[side], dst[side], c[side]
        first = np.lexsort((d, -w, s))
        s, d = s[first], d[first]
        head = np.ones(s.size, dtype=bool)
        head[1:] = s[1:] != s[:-1]
        link = np.full(n, -1, dtype=np.int32)
        link[s[head]] = d[head]
        out.append(link)
    return out[0], out[1]


@kernel
def reach(
    nodes,  # [S] int ascending nodes: the selection
    start,  # [T] int positions in `nodes` of the seeds
    down,  # [N] int32 (`strongest_links`)
    up,  # [N] int32
    indptr,  # [N + 1] row p of the agreeing graph is indices[indptr[p] : indptr[p + 1]]
    indices,  # [E] int32
    flag,  # [N] uint8 reused, all 0 on entry and on return: 1 selected, 2 reached
    label,  # [N] int32 reused: a selected node's fragment (written before it is read)
    link,  # [N] int32 reused: union-find parent of each fragment (the first `fragments` entries)
    found,  # [N] uint8 reused: a fragment's set holds a reached node
    queue,  # [N] int32 reused
    keep,  # [S] bool out: linked to a seed through agreeing selected nodes
):  # int: how many are kept
    """Everything in the selection linked to a seed by agreeing edges between selected nodes (module docstring)."""
    for p in nodes:
        flag[p] = 1
    fragments = 0
    for p in nodes:  # ascending: a node's earlier link is labelled before it
        q = down[p]
        if q >= 0 and flag[q] != 0:
            label[p] = label[q]
        else:
            label[p] = fragments
            link[fragments] = fragments
            fragments += 1
    for p in nodes:  # the later links join fragments; a set's root is its lowest fragment
        q = up[p]
        if q >= 0 and flag[q] != 0:
            a = label[p]
            b = label[q]
            if a == b:
                continue
            while link[a] != a:
                link[a] = link[link[a]]
                a = link[a]
            while link[b] != b:
                link[b] = link[link[b]]
                b = link[b]
            if a < b:
                link[b] = a
            elif b < a:
                link[a] = b
    for f in range(fragments):  # link[f] ≤ f: ascending, each fragment's link becomes its root in one step
        link[f] = link[link[f]]
        found[f] = 0
    for s in start:
        found[link[label[nodes[s]]]] = 1
    left = 0
    for p in nodes:
        if found[link[label[p]]] == 0:
            queue[left] = p
            left += 1
    for i in range(left):  # a set one of whose members' rows links to a reached set is reached
        u = queue[i]
        r = link[label[u]]
        if found[r] != 0:
            continue
        for e in range(indptr[u], indptr[u + 1]):
            q = indices[e]
            if flag[q] != 0 and found[link[label[q]]] != 0:
                found[r] = 1
                break
    for p in nodes:
        if found[link[label[p]]] != 0:
            flag[p] = 2
    # Node by node from here: each node still left whose whole row links to a reached node, then a breadth-first
    # search over whole rows from those (the queue's entries already read are overwritten: w ≤ i).
    w = 0
    for i in range(left):
        u = queue[i]
        if flag[u] == 2:
            continue
        for e in range(indptr[u], indptr[u + 1]):
            if flag[indices[e]] == 2:
                flag[u] = 2
                queue[w] = u
                w += 1
                break
    head = 0
    while head < w:
        p = queue[head]
        head += 1
        for e in range(indptr[p], indptr[p + 1]):
            q = indices[e]
            if flag[q] == 1:
                flag[q] = 2
                queue[w] = q
                w += 1
    count = 0
    for i in range(nodes.size):
        p = nodes[i]
        keep[i] = flag[p] == 2
        count += flag[p] == 2
        flag[p] = 0
    return count

"""Compiled kernels of the fine click's growth (grow.py): the agreeing graph's strongest links and the search.

A selection's rows of the agreeing graph lie scattered over the graph's arrays (the block order puts alike features
together, not 3D neighbours), so a search that reads every selected node's row is bound by memory: at 1M Gaussians
reading a 67k-node selection's rows alone takes ~0.9 ms. `reach` reads rows only where it must. Each node keeps
two links, its most agreeing neighbour before it and after it in the graph's numbering (`strongest_links`); a sweep
in ascending order joins a node to its earlier link's fragment (that link was labelled first), and the later links
join the fragments (union-find over the fragments, a few thousand: small arrays). These links, being agreeing
edges between selected nodes, connect only what the whole graph connects; on the 1M latency benchmark's clicks
they put ~98% of a selection in the seeds' set. The rest is closed over whole rows: each node outside the seeds'
set joins its set with those of all its selected neighbours, unless its set has joined the seeds' meanwhile, so the
answer is exactly the whole graph's (`reach`'s docstring) and a set is read only until it joins.

References: `strongest_links_reference` (NumPy) and grow.py `grow_reference` (a plain search) for `reach`, which
tests/test_features_fine_kernels.py compares on random graphs.
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


def search_buffers(n: int) -> tuple[np.ndarray, ...]:
    """`reach`'s reused arrays for a graph of `n` nodes: label (all −1 between clicks), link, queue, other."""
    return np.full(n, -1, dtype=np.int32), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int32)


@kernel
def reach(
    nodes,  # [S] int ascending nodes: the selection
    start,  # [T ≥ 1] int positions in `nodes` of the seeds
    down,  # [N] int32 (`strongest_links`)
    up,  # [N] int32
    indptr,  # [N + 1] row p of the agreeing graph is indices[indptr[p] : indptr[p + 1]]
    indices,  # [E] int32
    label,  # [N] int32 reused, all −1 on entry and on return: a selected node's fragment, −1 outside the selection
    link,  # [N] int32 reused: union-find parent of each fragment (the first `fragments` entries), never above it
    queue,  # [N] int32 reused
    other,  # [N] int32 reused
    keep,  # [S] bool out: linked to a seed through agreeing selected nodes
):  # int: how many are kept
    """Everything in the selection linked to a seed by agreeing edges between selected nodes (module docstring).

    The sets are joined by union-find, each joined to the lower fragment's root, so link[f] ≤ f. After the links,
    the seeds' sets are joined into one, and each node outside it, in turn, joins its set with every selected
    neighbour's in its whole row, unless its set has meanwhile joined the seeds'. Exact: along any path from a seed,
    an edge whose far node was read joins the two; a far node that was not read had already joined the seeds'."""
    fragments = 0
    for p in nodes:  # ascending: a node's earlier link is labelled before it (and −1 if it is not selected)
        q = down[p]
        if q >= 0 and label[q] >= 0:
            label[p] = label[q]
        else:
            label[p] = fragments
            link[fragments] = fragments
            fragments += 1
    for i in range(nodes.size):  # the later links' fragments, gathered first: independent reads overlap
        q = up[nodes[i]]
        queue[i] = label[q] if q >= 0 else -1
    pairs = 0
    for i in range(nodes.size):  # the pairs of fragments to join, without a branch (pairs ≤ i: in place)
        b = queue[i]
        a = label[nodes[i]]
        other[pairs] = a
        queue[pairs] = b
        pairs += (b >= 0) & (a != b)
    for i in range(pairs + start.size):  # the later links join fragments; then the seeds' fragments, into one
        if i < pairs:
            a = other[i]
            b = queue[i]
        else:
            a = label[nodes[start[0]]]
            b = label[nodes[start[i - pairs]]]
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
    for f in range(fragments):  # ascending, each fragment's link becomes its root in one step
        link[f] = link[link[f]]
    seeds = label[nodes[start[0]]]
    left = 0
    for p in nodes:  # the nodes outside the seeds' set (without a branch)
        queue[left] = p
        left += link[label[p]] != link[seeds]
    for i in range(left):  # each joins its row's sets, unless its set has joined the seeds' meanwhile
        u = queue[i]
        a = label[u]
        while link[a] != a:
            link[a] = link[link[a]]
            a = link[a]
        r = seeds
        while link[r] != r:
            link[r] = link[link[r]]
            r = link[r]
        if a == r:
            continue
        for e in range(indptr[u], indptr[u + 1]):
            b = label[indices[e]]
            if b < 0:
                continue
            while link[b] != b:
                link[b] = link[link[b]]
                b = link[b]
            if a < b:
                link[b] = a
            elif b < a:
                link[a] = b
                a = b
    for f in range(fragments):
        link[f] = link[link[f]]
    count = 0
    for i in range(nodes.size):
        p = nodes[i]
        kept = link[label[p]] == link[seeds]
        keep[i] = kept
        count += kept
        label[p] = -1
    return count

"""Features for the Gaussians no training pixel saw, filled in from the seen surface around them.

Training supervises a Gaussian only through the pixels it contributes to. Faces that touch another surface (the
bottom of a book on the one below it, an object's base on the board) are seen by no view: on the `shelf` preset
30% of all Gaussians, 40–60% of each stacked book's. Their feature is whatever the spatial smoothness loss and the
global clusters made of a random start, and a part's hidden half then misses the part's click (3D IoU) or joins
the neighbouring part's (docs/architecture.md, "Unseen Gaussians").

After training, `fill_unseen` replaces each unseen Gaussian's feature by the harmonic extension of the seen
features over the k-nearest-neighbour graph: seen Gaussians are held fixed and every unseen one becomes the
weighted mean of its neighbours (a sparse linear system, solved by conjugate gradients). The weights are colour
affinities (`colour_affinity`): where two hidden faces lie in one plane (book on book), plain neighbour averaging
mixes both parts' features; the faces' colours, which every 3DGS model carries, keep each to its own surface.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix, diags
from torch import Tensor

COLOUR_SIGMA = 0.1
"""Colour distance (RGB in [0, 1]) at which a neighbour's weight falls to e^-½; one colour's sampling noise is
below it, two distinct surfaces' colours well above."""

FILL_ITERATIONS = 32
"""Conjugate-gradient steps of the fill (it stops earlier once converged): CG needs about as many steps as a
hidden face is neighbours wide, plain averaging sweeps about the square of that."""

ANCHOR = 1e-3
"""How strongly each unseen Gaussian is tied to its trained feature, relative to its neighbours: enough to make
the system definite (a hidden clump with no seen neighbour keeps what training gave it), too little to matter
elsewhere."""


def colour_affinity(
    neighbors: Tensor,  # [N, k] int neighbour ids
    colors: Tensor,  # [N, 3] RGB in [0, 1]
    sigma: float = COLOUR_SIGMA,
) -> Tensor:  # [N, k] float32 in (0, 1]
    """exp(−‖cᵢ − cⱼ‖² / 2σ²) for each Gaussian i and neighbour j; 0 where a colour is not finite (such a
    Gaussian is then neither smoothed nor filled, and never makes the features NaN)."""
    c = colors.float()
    diff = c[:, None, :] - c.index_select(0, neighbors.reshape(-1).long()).reshape(*neighbors.shape, 3)
    return torch.nan_to_num(torch.exp(-(diff * diff).sum(-1) / (2.0 * sigma * sigma)), nan=0.0)


def fill_unseen(
    features: Tensor,  # [N, D] trained features
    neighbors: Tensor,  # [N, k] int neighbour ids
    seen: Tensor,  # [N] bool: some training pixel saw the Gaussian
    weights: Tensor,  # [N, k] float edge weights (`colour_affinity`)
    *,
    iterations: int = FILL_ITERATIONS,
    anchor: float = ANCHOR,
    tolerance: float = 1e-4,
) -> Tensor:  # [N, D]: seen rows unchanged, unseen rows the harmonic extension of the seen ones
    """Harmonic extension of the seen features into the unseen Gaussians.

    The k-nearest-neighbour graph is made symmetric (A = W + Wᵀ) and the unseen features f_u solve
    ((1 + anchor)·D_u − A_uu) f_u = A_us f_s + anchor·D_u f⁰_u (D = A's row sums, f⁰ the trained features):
    each unseen Gaussian is the weighted mean of its neighbours, seen ones held fixed. Solved by conjugate
    gradients with a diagonal preconditioner, every feature channel at once (one sparse product per step). An
    unseen Gaussian without weight to any neighbour keeps its trained feature. `fill_unseen_reference` solves the
    same system directly.
    """
    n = neighbors.shape[0]
    out = features.detach().float().clone()
    unseen = torch.nonzero(~seen).squeeze(1).numpy()
    if unseen.size == 0 or iterations <= 0 or n == 0:
        return out
    system, rhs, start = _system(out.numpy(), neighbors.numpy(), seen.numpy(), weights.float().numpy(), unseen, anchor)
    # The sparse product in scipy; the dense updates in torch (several times faster than NumPy's here).
    x, b = torch.from_numpy(start), torch.from_numpy(rhs)
    inv_diag = torch.from_numpy(1.0 / system.diagonal())[:, None].float()  # [U, 1] the preconditioner

    def product(v: Tensor) -> Tensor:  # [U, D] → [U, D]
        return torch.from_numpy(np.asarray(system @ v.numpy(), dtype=np.float32))

    r = b - product(x)
    z = r * inv_diag
    p = z.clone()
    rz = (r * z).sum(0)  # [D]: one CG per channel
    stop = tolerance**2 * (b * b).sum(0).clamp(min=1e-30)
    for _ in range(iterations):
        if bool(((r * r).sum(0) <= stop).all()):
            break
        q = product(p)
        alpha = rz / (p * q).sum(0).clamp(min=1e-30)
        x.add_(alpha * p)
        r.sub_(alpha * q)
        z = r * inv_diag
        rz_new = (r * z).sum(0)
        p = z + (rz_new / rz.clamp(min=1e-30)) * p
        rz = rz_new
    x = x.numpy()
    out[torch.from_numpy(unseen)] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return out


def _system(
    features: np.ndarray,  # [N, D]
    neighbors: np.ndarray,  # [N, k]
    seen: np.ndarray,  # [N] bool
    weights: np.ndarray,  # [N, k]
    unseen: np.ndarray,  # [U] ids
    anchor: float,
) -> tuple[csr_matrix, np.ndarray, np.ndarray]:  # matrix [U, U], right-hand side [U, D], start [U, D]
    n, k = neighbors.shape
    rows = np.repeat(np.arange(n), k)
    cols = neighbors.reshape(-1).astype(np.int64)
    w = weights.reshape(-1).astype(np.float32)
    # Only edges touching an unseen Gaussian matter; both directions of each (A = W + Wᵀ).
    touch = ~seen[rows] | ~seen[cols]
    src = np.concatenate([rows[touch], cols[touch]])
    dst = np.concatenate([cols[touch], rows[touch]])
    val = np.concatenate([w[touch], w[touch]])
    slot = np.full(n, -1, dtype=np.int64)
    slot[unseen] = np.arange(unseen.size)
    mine = slot[src] >= 0  # rows of unseen Gaussians
    src, dst, val = slot[src[mine]], dst[mine], val[mine]
    u = unseen.size
    degree = np.bincount(src, weights=val, minlength=u)  # [U]
    to_unseen = slot[dst] >= 0
    neighbours_uu = csr_matrix((val[to_unseen], (src[to_unseen], slot[dst[to_unseen]])), shape=(u, u))
    start = features[unseen].astype(np.float32)
    to_seen = csr_matrix((val[~to_unseen], (src[~to_unseen], dst[~to_unseen])), shape=(u, n), dtype=np.float32)
    rhs = np.asarray(to_seen @ features.astype(np.float32, copy=False), dtype=np.float32)
    diag = (1.0 + anchor) * degree
    isolated = degree <= 0
    diag[isolated] = 1.0
    rhs += (np.where(isolated, 1.0, anchor * degree)[:, None] * start).astype(np.float32)
    system = (diags(diag) - neighbours_uu).tocsr().astype(np.float32)
    return system, rhs, start


def fill_unseen_reference(
    features: np.ndarray,  # [N, D]
    neighbors: np.ndarray,  # [N, k]
    seen: np.ndarray,  # [N] bool
    weights: np.ndarray,  # [N, k]
    *,
    anchor: float = ANCHOR,
) -> np.ndarray:  # [N, D]
    """`fill_unseen`'s system written out one edge at a time and solved directly (small N, for the test)."""
    f = np.array(features, dtype=np.float64)
    unseen = [i for i in range(len(f)) if not seen[i]]
    where = {g: i for i, g in enumerate(unseen)}
    a = np.zeros((len(unseen), len(unseen)))
    b = np.zeros((len(unseen), f.shape[1]))
    degree = np.zeros(len(unseen))
    for i in range(len(f)):
        for j, w in zip(neighbors[i], weights[i]):
            for x, y in ((i, int(j)), (int(j), i)):  # A = W + Wᵀ
                if x in where:
                    degree[where[x]] += w
                    if y in where:
                        a[where[x], where[y]] -= w
                    else:
                        b[where[x]] += w * f[y]
    for g, i in where.items():
        if degree[i] > 0:
            a[i, i] += (1.0 + anchor) * degree[i]
            b[i] += anchor * degree[i] * f[g]
        else:
            a[i, i] += 1.0
            b[i] += f[g]
    out = f.copy()
    if unseen:
        out[unseen] = np.linalg.solve(a, b)
    return out

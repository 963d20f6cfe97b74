"""Gaussians no training view shows clearly follow the clearly seen surface they lie on.

A Gaussian's feature is only as good as the pixels it made during training. Where an object stands on a support,
the support's splats (several times larger than the object's) cover the object's lowest few centimetres in every
view: those Gaussians reach the training pixels with a tiny blend weight, under pixels labelled as the support, and
training gives them the support's feature. A click on the object then misses its base and a click on the support
takes every object's base with it. Measured on the accuracy benchmark's tabletop (seed 0, labels noise 1): the
Gaussians below 2–3 cm of every object had a summed training weight of 0.02–0.9 against 2–5 for the rest of the
object and a similarity of 0.1–0.4 to their own object's click; the table's click held 1,897 of them (3D IoU
0.68), and giving the Gaussians with a weight below one view's worth their true labels alone lifts 3D objects
0.863 → 0.970 (the zero-weight ones alone, which no view sees at all: 0.866). The rendered views barely change,
since those Gaussians are hidden there.

So a click decides the Gaussians whose training weight is far below the scene's typical one ("hidden") by the
clearly seen Gaussians of their own surface, not by their features: hidden Gaussians linked through k-nearest
neighbour pairs that lie on one smooth surface (splats of like size whose normals agree; a crease such as a mug's
wall meeting the table top is not such a pair, nor a mug's bottom lying on a support sampled more coarsely) form a
hidden patch, and a patch is selected exactly when more than half of its links to seen Gaussians of that surface go
to selected ones. A patch with no such link keeps what the features said. Everything that does not depend on the
click (the patches, their links) is made once per field.

At a part level the surface alone does not say which part a hidden Gaussian belongs to: the hidden faces between
two stacked books, or where a pot meets its soil, are one smooth surface across the seam, and its seen links go to
both parts. There (`feature_pairs`) a patch is linked only through pairs whose features at that level agree, and
the rule only adds (`keep_selected`): a patch joins the selection when most of its links say so, and a hidden
Gaussian the features selected is never dropped, since a vote over links that reach two parts cannot overrule
them (measured in the README's accuracy section).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from ..core.rotations import quat_to_rotmat
from ._hidden_kernels import follow_mask

if TYPE_CHECKING:
    from .pruned import PrunedBank

FLAT_RATIO = 0.5
"""A splat whose smallest axis is at most this share of its middle axis is a disc with a normal; a rounder one
has none and agrees with every neighbour."""


MAX_SIZE_RATIO = 2.0
"""Two neighbouring splats lie on one surface only when their sizes (geometric mean of the two long axes) differ by
at most this factor: a surface is sampled evenly, while an object's bottom lying flat on its support is sampled
with the object's (smaller) splats. Without it the shelf preset's object bottoms, coplanar with the board, joined
the board's hidden patch and left every object (shelf 3D objects 0.957 → 0.901; with it 0.974). On both presets
99% of neighbour pairs are within 1.25 (shelf) and 3.1 (shelf, at the object-board contact)."""


def splat_normals(
    quats: Tensor,  # [N, 4] wxyz unit
    scales: Tensor,  # [N, 3] activated
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # normals [N, 3] float32, flat [N] bool, size [N] float32
    """Each splat's shortest axis (its surface normal, up to sign), whether it is flat enough to have one, and its
    size (the geometric mean of its two longer axes)."""
    rot = quat_to_rotmat(quats.detach().float().cpu()).numpy()  # [N, 3, 3], columns are the axes
    s = scales.detach().float().cpu().numpy()
    order = np.argsort(s, axis=1)
    rows = np.arange(len(s))
    normals = rot[rows, :, order[:, 0]].astype(np.float32)
    flat = s[rows, order[:, 0]] <= FLAT_RATIO * s[rows, order[:, 1]]
    size = np.sqrt(s[rows, order[:, 1]] * s[rows, order[:, 2]]).astype(np.float32)
    return normals, flat, size


def hidden_mask(weight: np.ndarray, relative: float) -> np.ndarray:  # [N] float → [N] bool
    """The Gaussians whose training weight is below `relative` × the median weight of the Gaussians seen at all;
    none when no Gaussian has a weight (nothing to compare with)."""
    seen = weight[weight > 0]
    if seen.size == 0:
        return np.zeros(weight.shape, dtype=bool)
    return weight < relative * float(np.median(seen))


def surface_pairs(
    neighbors: np.ndarray,  # [N, k] int
    normals: np.ndarray,  # [N, 3]
    flat: np.ndarray,  # [N] bool
    size: np.ndarray,  # [N] splat sizes
    normal_cos: float,
    max_ratio: float = MAX_SIZE_RATIO,
    touching: np.ndarray | None = None,  # [N] bool
) -> tuple[np.ndarray, np.ndarray]:  # (a [E], b [E]) int64, a < b, each pair once
    """The neighbour pairs (in either direction) that lie on one smooth surface: sizes within `max_ratio` of each
    other, and normals within `normal_cos` (up to sign) unless one of the two splats is not flat enough to have
    one. With `touching`, only the pairs with an end in it (the patches use no pair between two seen Gaussians:
    at 1M Gaussians this skips most of the 8M pairs' gathers and their sort)."""
    n, k = neighbors.shape
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = np.asarray(neighbors, dtype=np.int64).reshape(-1)
    if touching is not None:
        keep = touching[src] | touching[dst]
        src, dst = src[keep], dst[keep]
    agree = np.abs(np.einsum("ij,ij->i", normals[src], normals[dst])) >= normal_cos
    lo, hi = np.minimum(size[src], size[dst]), np.maximum(size[src], size[dst])
    alike = hi <= max_ratio * lo
    ok = (agree | ~flat[src] | ~flat[dst]) & alike & (src != dst)
    a, b = np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])
    key = np.unique(a * n + b)
    return key // n, key % n


def feature_pairs(
    pairs: tuple[np.ndarray, np.ndarray],  # (a [E], b [E]) `surface_pairs`
    bank: np.ndarray | PrunedBank,  # [D, N] unit features, one column per Gaussian, or the field's PrunedBank
    feature_cos: float,
    chunk: int = 1 << 20,
    columns: np.ndarray | None = None,  # [N] int: Gaussian i's column of `bank` (None: column i)
) -> tuple[np.ndarray, np.ndarray]:  # the pairs whose features agree above `feature_cos`
    """The surface pairs whose two Gaussians' features agree (cosine above `feature_cos`): one gather per feature
    row and chunk of pairs (rows of the [N, D] transpose would be strided reads, 6× slower for 4M pairs at 1M)."""
    a, b = pairs
    keep = np.zeros(a.size, dtype=bool)
    for s in range(0, a.size, chunk):
        ia, ib = a[s : s + chunk], b[s : s + chunk]
        if columns is not None:  # the field's `PrunedBank` copy: the same values at other columns
            ia, ib = columns[ia], columns[ib]
        cos = np.zeros(ia.size, dtype=np.float32)
        if isinstance(bank, np.ndarray):
            rows = zip((row[ia] for row in bank), (row[ib] for row in bank))
        else:  # the tiles' feature rows at these columns: the same values, row after row
            rows = zip(bank.feature_rows(ia), bank.feature_rows(ib))
        for fa, fb in rows:
            cos += fa * fb
        keep[s : s + chunk] = cos > feature_cos
    return a[keep], b[keep]


class HiddenPatches:
    """The hidden patches of one field and their links to seen Gaussians; `__call__` applies them to a click."""

    def __init__(
        self,
        hidden: np.ndarray,  # [N] bool
        pairs: tuple[np.ndarray, np.ndarray],  # `surface_pairs`
        *,
        keep_selected: bool = False,
    ) -> None:
        n = hidden.size
        self.hidden = hidden
        self.keep_selected = keep_selected
        """True: every selected Gaussian stays and the patches only add (the part level; module docstring)."""
        a, b = pairs
        both = hidden[a] & hidden[b]
        graph = csr_matrix((np.ones(int(both.sum()), np.int8), (a[both], b[both])), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        # Patch ids numbered over the hidden Gaussians only (a click counts votes in an array of this many).
        hidden_ids = np.flatnonzero(hidden)
        self.hidden_ids = hidden_ids  # [H]
        ids, compact = np.unique(comp[hidden_ids], return_inverse=True)
        self.patch = np.full(n, -1, dtype=np.int64)  # [N] patch id of a hidden Gaussian, −1 if seen
        self.patch[hidden_ids] = compact
        # Links between a hidden Gaussian and a seen one, as (seen Gaussian, patch) grouped by the seen Gaussian.
        cross = hidden[a] ^ hidden[b]
        h = np.where(hidden[a[cross]], a[cross], b[cross])
        s = np.where(hidden[a[cross]], b[cross], a[cross])
        order = np.argsort(s, kind="stable")
        self.link_patch = self.patch[h][order]  # [L]
        self.link_seen = s[order]  # [L] ascending: a click reads its selection mask there in order (`follow`)
        self.link_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(s, minlength=n), out=self.link_ptr[1:])
        num = ids.size
        self.links = np.bincount(self.link_patch, minlength=num)  # [P] links to seen Gaussians per patch
        # Members of each patch that has links (a patch without any keeps what the features said).
        linked = np.zeros(n, dtype=bool)
        linked[hidden_ids] = self.links[compact] > 0
        members = np.flatnonzero(linked)
        members = members[np.argsort(self.patch[members], kind="stable")]
        self.members = members
        self.member_ids = np.flatnonzero(linked)  # [M] the same Gaussians by ascending id: `follow` writes in order
        self.member_patch = self.patch[self.member_ids]  # [M]
        self.member_ptr = np.zeros(num + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.patch[members], minlength=num), out=self.member_ptr[1:])
        self.compiled = True
        """`follow` runs as one compiled kernel (`_hidden_kernels.follow_mask`); False runs its NumPy path (the
        reference the tests compare it with, and the benchmark's previous path)."""

    def warm_up(self) -> HiddenPatches:
        """Compile `follow`'s kernel (or load it from numba's cache) now, so that the first click does not."""
        self.follow(np.zeros(self.hidden.size, dtype=bool), np.zeros(0, np.int64))
        return self

    @classmethod
    def build(
        cls,
        weight: np.ndarray,  # [N] training weight per Gaussian
        neighbors: np.ndarray,  # [N, k]
        normals: np.ndarray,  # [N, 3]
        flat: np.ndarray,  # [N] bool
        size: np.ndarray,  # [N]
        *,
        relative: float,
        normal_cos: float,
        features: np.ndarray | PrunedBank | None = None,  # [D, N] unit features of a part level, or its PrunedBank
        feature_cos: float | None = None,
        feature_columns: np.ndarray | None = None,  # [N] Gaussian i's column of `features` (None: column i)
    ) -> HiddenPatches:
        """The patches of a field; with `features` and `feature_cos`, those of a part level (`feature_pairs`,
        `keep_selected`)."""
        hidden = hidden_mask(weight, relative)
        pairs = surface_pairs(neighbors, normals, flat, size, normal_cos, touching=hidden)
        if features is None or feature_cos is None:
            return cls(hidden, pairs)
        return cls(hidden, feature_pairs(pairs, features, feature_cos, columns=feature_columns), keep_selected=True)

    def __call__(
        self,
        selected: np.ndarray,  # [S] ids
        seeds: np.ndarray | None = None,  # [T] ids of the clicked Gaussians
    ) -> np.ndarray:  # [S'] sorted ids
        """The seen selected Gaussians, the selected hidden ones in patches without links, and every member of
        each patch with more than half of its links to selected Gaussians or holding a selected clicked Gaussian
        (what was clicked stays: on a briefly seen capture most of a click may be hidden). A selection without
        a seen Gaussian stays as it is."""
        mask = np.zeros(self.hidden.size, dtype=bool)
        mask[np.asarray(selected, dtype=np.int64)] = True
        return np.flatnonzero(self.follow(mask, seeds))

    def follow(
        self,
        mask: np.ndarray,  # [N] bool the selection, changed in place
        seeds: np.ndarray | None = None,  # [T] ids of the clicked Gaussians
    ) -> np.ndarray:  # `mask`
        """`__call__` on a selection held as a mask (what `FeatureField.segment` returns), in place. Its cost does
        not grow with the selection: the votes read the mask at the links' seen ends ([L], in ascending order), and
        the linked patches' members ([M]) are set to their patch's outcome; the ids path (`follow_ids`, the
        previous one) gathered every selected Gaussian's hidden flag and link rows, then made a mask and its ids
        (5–24 ms for 50k–200k selections at 1M Gaussians)."""
        if self.links.size == 0:
            return mask
        if self.compiled and mask.dtype == np.bool_ and mask.flags.c_contiguous and mask.size == self.hidden.size:
            clicked = np.zeros(0, np.int64) if seeds is None else np.ascontiguousarray(seeds, dtype=np.int64)
            # The kernel reads `hidden` and `patch` at each clicked id unchecked (numba does no bounds checks).
            if clicked.size and (int(clicked.min()) < 0 or int(clicked.max()) >= mask.size):
                raise ValueError(f"hidden patches: a clicked id outside the {mask.size} Gaussians")
            follow_mask(
                mask,
                self.hidden,
                self.patch,
                self.links,
                self.link_seen,
                self.link_patch,
                self.member_ids,
                self.member_patch,
                clicked.reshape(-1),
                bool(self.keep_selected),
            )
            return mask
        votes = np.bincount(self.link_patch, weights=mask[self.link_seen], minlength=self.links.size)  # [P]
        if not votes.any() and np.count_nonzero(mask) == np.count_nonzero(mask[self.hidden_ids]):
            return mask  # nothing seen selected: no surface to follow, the features' call stands
        on = 2 * votes > self.links
        if seeds is not None and len(seeds):
            clicked = np.asarray(seeds, dtype=np.int64)
            clicked = clicked[self.hidden[clicked] & mask[clicked]]
            on[self.patch[clicked][self.links[self.patch[clicked]] > 0]] = True
        if self.keep_selected:  # the part level: the patches only add
            mask[self.member_ids] |= on[self.member_patch]
        else:
            mask[self.member_ids] = on[self.member_patch]
        return mask

    def follow_ids(
        self,
        selected: np.ndarray,  # [S] ids
        seeds: np.ndarray | None = None,  # [T] ids of the clicked Gaussians
    ) -> np.ndarray:  # [S'] sorted ids
        """`__call__` over the selection's ids (the path before `follow`; the benchmark's previous path)."""
        selected = np.asarray(selected, dtype=np.int64)
        if selected.size == 0:
            return selected
        hid = self.hidden[selected]
        seen = selected[~hid]
        if seen.size == 0:  # nothing seen selected: no surface to follow, the features' call stands
            return np.unique(selected)
        starts, stops = self.link_ptr[seen], self.link_ptr[seen + 1]
        counts = stops - starts
        flat_idx = np.repeat(stops - counts.cumsum(), counts) + np.arange(int(counts.sum()))
        # Votes per patch by counting, and the result as a mask: no sort of the links or of the selection.
        votes = np.bincount(self.link_patch[flat_idx], minlength=self.links.size)  # [P]
        on = 2 * votes > self.links
        if seeds is not None:
            clicked = np.asarray(seeds, dtype=np.int64)
            clicked = clicked[self.hidden[clicked]]
            clicked = clicked[self._marked(selected)[clicked]]
            on[self.patch[clicked][self.links[self.patch[clicked]] > 0]] = True
        out = np.zeros(self.hidden.size, dtype=bool)
        out[seen] = True
        hidden_sel = selected[hid]
        out[hidden_sel if self.keep_selected else hidden_sel[self.links[self.patch[hidden_sel]] == 0]] = True
        on = np.flatnonzero(on)
        lo, hi = self.member_ptr[on], self.member_ptr[on + 1]
        size = hi - lo
        take = np.repeat(hi - size.cumsum(), size) + np.arange(int(size.sum()))
        out[self.members[take]] = True
        return np.flatnonzero(out)

    def _marked(self, ids: np.ndarray) -> np.ndarray:  # [S] → [N] bool
        mask = np.zeros(self.hidden.size, dtype=bool)
        mask[ids] = True
        return mask


def follow_seen_reference(
    selected: np.ndarray,  # [S]
    hidden: np.ndarray,  # [N] bool
    pairs: tuple[np.ndarray, np.ndarray],
    seeds: np.ndarray | None = None,  # [T]
    *,
    keep_selected: bool = False,
) -> np.ndarray:  # [S'] sorted ids
    """`HiddenPatches` written plainly (breadth-first search over Python sets), for the test."""
    chosen = set(np.asarray(selected).tolist())
    clicked = chosen & set(np.asarray([] if seeds is None else seeds).tolist())
    adjacent: dict[int, set[int]] = {}
    for i, j in zip(pairs[0].tolist(), pairs[1].tolist()):
        adjacent.setdefault(i, set()).add(j)
        adjacent.setdefault(j, set()).add(i)
    out = {i for i in chosen if not hidden[i]}
    if not out:
        return np.array(sorted(chosen), dtype=np.int64)
    if keep_selected:
        out |= chosen
    done: set[int] = set()
    for start in np.flatnonzero(hidden).tolist():
        if start in done:
            continue
        patch, frontier = {start}, [start]
        while frontier:
            i = frontier.pop()
            for j in adjacent.get(i, ()):
                if hidden[j] and j not in patch:
                    patch.add(j)
                    frontier.append(j)
        done |= patch
        links = [(i, j) for i in patch for j in adjacent.get(i, ()) if not hidden[j]]
        if not links:
            out |= patch & chosen
        elif 2 * sum(j in chosen for _, j in links) > len(links) or patch & clicked:
            out |= patch
    return np.array(sorted(out), dtype=np.int64)

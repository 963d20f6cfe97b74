"""`HiddenPatches.follow`'s compiled kernel (`compiled`, `_hidden_kernels.follow_mask`) against its NumPy path: the
same mask, on random graphs, with and without seeds, at the object and the part level, and in the edge cases of the
"nothing seen selected" rule."""

from __future__ import annotations

import numpy as np
import pytest

from backend.features.hidden import HiddenPatches, surface_pairs


def _both(patches: HiddenPatches, mask: np.ndarray, seeds) -> tuple[np.ndarray, np.ndarray]:
    fast, ref = mask.copy(), mask.copy()
    patches.compiled = True
    assert patches.follow(fast, seeds) is fast
    patches.compiled = False
    assert patches.follow(ref, seeds) is ref
    patches.compiled = True
    return fast, ref


@pytest.mark.parametrize("keep_selected", [False, True])
def test_kernel_follow_equals_numpy_on_random_graphs(keep_selected: bool) -> None:
    rng = np.random.default_rng(3)
    changed = 0
    for trial in range(60):
        n = int(rng.integers(1, 3000))
        nb = rng.integers(0, n, size=(n, 6))
        normals = rng.normal(size=(n, 3)).astype(np.float32)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        flat = rng.random(n) < 0.7
        pairs = surface_pairs(nb, normals, flat, rng.uniform(1, 3, n), 0.3)
        hidden = rng.random(n) < rng.random()
        patches = HiddenPatches(hidden, pairs, keep_selected=keep_selected).warm_up()
        for k in range(5):
            mask = rng.random(n) < rng.random()
            if k == 3:  # only hidden Gaussians selected: nothing seen to follow
                mask &= hidden
            if k == 4:  # seen ones selected but no link votes: the linked patches are dropped
                mask = ~hidden & (np.diff(patches.link_ptr) == 0)
                mask |= hidden & (rng.random(n) < 0.5)
            seeds = rng.integers(0, n, size=int(rng.integers(0, 4)))
            fast, ref = _both(patches, mask, seeds if k % 2 else None)
            np.testing.assert_array_equal(fast, ref, err_msg=str(trial))
            changed += not np.array_equal(fast, mask)
    assert changed > 30  # the rule did change most selections


def test_kernel_follow_on_a_seen_selection_without_votes() -> None:
    """A seen Gaussian selected far from every link: no votes, but the patches are decided (all dropped)."""
    hidden = np.array([True, True, False, False, False])
    pairs = (np.array([0, 1]), np.array([1, 2]))  # patch {0, 1} linked to seen 2; seen 4 has no link
    patches = HiddenPatches(hidden, pairs)
    mask = np.array([True, True, False, False, True])
    fast, ref = _both(patches, mask, None)
    np.testing.assert_array_equal(fast, ref)
    assert fast.tolist() == [False, False, False, False, True]
    only_hidden = np.array([True, True, False, False, False])  # nothing seen: the features' call stands
    fast, ref = _both(patches, only_hidden, None)
    assert fast.tolist() == ref.tolist() == only_hidden.tolist()
    fast, ref = _both(patches, mask, np.array([0]))  # a clicked hidden Gaussian keeps its patch
    assert fast.tolist() == ref.tolist() == mask.tolist()


def test_clicked_ids_outside_the_scene_are_refused_before_the_kernel() -> None:
    """The kernel reads `hidden` and `patch` at each clicked id unchecked (numba does no bounds checks): an id past the
    scene or negative stops in Python, the mask unchanged."""
    rng = np.random.default_rng(5)
    n = 500
    nb = rng.integers(0, n, size=(n, 6))
    normals = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (n, 1))
    pairs = surface_pairs(nb, normals, np.ones(n, bool), np.ones(n), 0.3)
    patches = HiddenPatches(rng.random(n) < 0.5, pairs).warm_up()
    assert patches.links.size
    mask = rng.random(n) < 0.5
    for bad in (np.array([n]), np.array([1, -1]), np.array([2**40])):
        out = mask.copy()
        with pytest.raises(ValueError, match="outside"):
            patches.follow(out, bad)
        np.testing.assert_array_equal(out, mask)

"""The floater filter's compiled kernel (`FloaterFilter.compiled`, `_floater_kernels.filter_selection`) against its
NumPy/SciPy path: the same ids in the same order, on random selections and on edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from backend.features.floaters import FloaterFilter
from backend.synthetic import build_tabletop


def _both(filt: FloaterFilter, selected, seeds, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    filt.compiled = True
    fast = filt(selected, seeds, **kwargs)
    filt.compiled = False
    ref = filt(selected, seeds, **kwargs)
    filt.compiled = True
    assert not filt._counts.any() and (filt._local == -1).all()  # the scratch tables are left clean
    return fast, ref


@pytest.fixture(scope="module")
def tabletop_filter():
    synth = build_tabletop(seed=2, num_gaussians=20_000)
    means = synth.scene.means.numpy()
    return FloaterFilter(means).warm_up(), synth.object_labels


@pytest.mark.parametrize("min_support", [1, 2, 3])
def test_kernel_equals_numpy_on_random_selections(tabletop_filter, min_support: int) -> None:
    filt, labels = tabletop_filter
    filt.min_support = min_support
    rng = np.random.default_rng(min_support)
    n = labels.size
    try:
        for trial in range(30):
            if trial % 3 == 0:  # an object and some stray Gaussians elsewhere
                obj = rng.choice(np.unique(labels))
                selected = np.flatnonzero((labels == obj) | (rng.random(n) < 0.01))
            else:
                selected = np.flatnonzero(rng.random(n) < rng.uniform(0.001, 0.8))
            selected = selected if trial % 2 else rng.permutation(selected)  # any order: the output keeps it
            seeds = rng.choice(n, int(rng.integers(0, 5)), replace=False)  # selected or not, or none
            ratio = (None, 0.5, 1.0, float("inf"))[trial % 4]
            cells = filt.cell_of[selected] if trial % 5 else None
            fast, ref = _both(filt, selected, seeds, keep_ratio=ratio, cells=cells)
            assert fast.dtype == np.int64
            np.testing.assert_array_equal(fast, ref, err_msg=str(trial))
    finally:
        filt.min_support = 1


def test_kernel_edge_cases(tabletop_filter) -> None:
    filt, labels = tabletop_filter
    n = labels.size
    everything = np.arange(n)
    for selected, seeds in (
        (np.zeros(0, np.int64), np.zeros(0, np.int64)),  # nothing selected
        (everything, np.zeros(0, np.int64)),  # all, no seeds: the biggest component
        (everything, np.array([0, n - 1])),
        (np.array([5]), np.array([5])),  # one Gaussian
        (np.array([5, 9000]), np.array([77])),  # seeds outside the selection
        (np.arange(0, n, 97), np.arange(0, n, 97)[:2]),  # sparse: many one-cell components
    ):
        for ratio in (None, float("inf")):
            fast, ref = _both(filt, selected, seeds, keep_ratio=ratio)
            np.testing.assert_array_equal(fast, ref)
    filt.min_support = 1000  # no cell has enough support: nothing is kept
    try:
        fast, ref = _both(filt, everything, np.array([0]))
        assert fast.size == ref.size == 0
    finally:
        filt.min_support = 1


def test_a_selection_kept_whole_is_returned_as_is(tabletop_filter) -> None:
    filt, labels = tabletop_filter
    selected = np.flatnonzero(labels == labels[0])
    kept = filt(selected, selected[:2], keep_ratio=0.0)
    assert kept is selected or np.array_equal(kept, selected)


def test_segment_writes_the_same_mask_through_the_kernel():
    """`FeatureField.segment` with the compiled filter writing the mask from block positions (`into_mask`) and the
    hidden patches' kernel, against the NumPy paths, at both click levels and for SAGA."""
    import torch

    from backend.synthetic import orbit_cameras
    from tests.test_ray_numpy import _tabletop_fields

    synth, click, saga = _tabletop_fields(30_000)
    weight = np.exp(np.random.default_rng(0).normal(1.0, 0.3, len(synth.object_labels))).astype(np.float32)
    weight[synth.scene.means[:, 2].numpy() < 0.03] = 0.01  # the objects' bases and the table top are hidden
    click._tensors["training_weight"] = torch.from_numpy(weight)
    cams = orbit_cameras(synth, views=4, resolution=160, seed=3)
    rng = np.random.default_rng(2)
    compared = 0
    for field in (click, saga):
        field.warm_up()
        for k in range(10):
            cam = cams[k % len(cams)]
            pixels = [(float(rng.uniform(20, 140)), float(rng.uniform(20, 140))) for _ in range(1 + k % 2)]
            kwargs = {"level": ("coarse", "fine")[k % 2]} if field is click else {}
            masks = []
            for compiled in (True, False):
                field._floater_filter().compiled = compiled
                for patches in field._hidden.values():
                    patches.compiled = compiled
                masks.append(field.segment(cam, pixels[:1], pixels[1:], **kwargs).mask)
            np.testing.assert_array_equal(masks[0], masks[1])
            compared += masks[0].any()
    assert compared >= 10
    assert any(p.links.size for p in click._hidden.values())  # the hidden patches took part


def test_clicked_ids_outside_the_scene_are_refused_before_the_kernel(tabletop_filter) -> None:
    """The kernel reads `cell_of` at each clicked id unchecked (numba does no bounds checks): an id past the scene
    or negative stops in Python, and the scratch tables stay clean."""
    filt, labels = tabletop_filter
    n = labels.size
    selected = np.arange(0, n, 7, dtype=np.int64)
    for bad in (np.array([n]), np.array([3, -1]), np.array([2**40])):
        with pytest.raises(ValueError, match="outside"):
            filt(selected, bad)
        with pytest.raises(ValueError, match="outside"):
            filt.into_mask(selected, np.arange(n), filt.cell_of, bad, np.zeros(n, bool))
    assert not filt._counts.any() and (filt._local == -1).all()


def test_field_floater_filter_refuses_ids_outside_the_scene() -> None:
    """`FeatureField.floater_filter` is public: a caller's ids outside the scene are an error, not a kernel's read."""
    from backend.core.errors import SplatsegError
    from tests.test_ray_numpy import _tabletop_fields

    _, click, _ = _tabletop_fields(3000)
    n = click.num_gaussians
    assert click.floater_filter(np.arange(0, n, 3), np.array([0])).size > 0
    for selected, seeds in ((np.array([n]), np.array([0])), (np.array([-2]), np.array([0])), (np.arange(5), [n])):
        with pytest.raises(SplatsegError, match="Gaussian ids"):
            click.floater_filter(selected, np.asarray(seeds))
    with pytest.raises(SplatsegError, match="Gaussian ids"):
        click.floater_filter(np.array([0.5, 1.0]), np.array([0]))

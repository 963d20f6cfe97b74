"""Lifting 2D masks onto Gaussians (SA3D's projection loss in closed form), on balls of opaque discs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.core.scene import GaussianScene
from backend.lift import GeometryCache, MaskLifter, lift_masks, view_evidence, view_geometry
from backend.render import render

from .helpers.lift_scenes import ball, blobs, disc_scene, ring_cameras, two_balls


@pytest.fixture(scope="module")
def balls():
    scene, labels = two_balls()
    cameras = ring_cameras(4, size=64)
    geometries = [view_geometry(scene, c) for c in cameras]
    return scene, labels, cameras, geometries


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def test_composite_matches_the_renderer(balls):
    scene, labels, cameras, geometries = balls
    values = torch.from_numpy(labels == 1).float()
    ours = geometries[0].composite(values)
    reference = render(scene, cameras[0], features=values[:, None], backend="torch").features[..., 0]
    assert torch.allclose(ours, reference, atol=1e-5)


def test_lifting_a_rendered_selection_recovers_it(balls):
    scene, labels, _, geometries = balls
    target = torch.from_numpy(labels == 1)
    masks = [g.selection_mask(target).numpy() for g in geometries]
    assert all(m.any() for m in masks)

    lifter = MaskLifter(len(scene))
    for g, m in zip(geometries, masks):
        lifter.add_view(g, m)
    selected = lifter.selection().numpy()
    truth = target.numpy()
    # Nothing of the other ball, and every Gaussian of the target that the views showed.
    assert np.count_nonzero(selected & ~truth) == 0
    visible = truth & (lifter.support.numpy() >= 0.05)
    assert np.count_nonzero(selected & visible) >= 0.98 * np.count_nonzero(visible)
    # Rendered back, the selection draws the masks it came from.
    for g, m in zip(geometries, masks):
        assert _iou(g.selection_mask(torch.from_numpy(selected)).numpy(), m) > 0.97


def test_views_can_be_lifted_in_any_order(balls):
    scene, labels, _, geometries = balls
    target = torch.from_numpy(labels == 2)
    masks = [g.selection_mask(target).numpy() for g in geometries]
    forward, backward = MaskLifter(len(scene)), MaskLifter(len(scene))
    for g, m in zip(geometries, masks):
        forward.add_view(g, m)
    for g, m in reversed(list(zip(geometries, masks))):
        backward.add_view(g, m)
    assert torch.equal(forward.selection(), backward.selection())
    assert torch.allclose(forward.confidence(), backward.confidence(), atol=1e-6)


def test_evidence_is_a_share_of_the_footprint(balls):
    """Per footprint, a fully visible opaque disc inside the mask scores about its opacity × visibility: ≤ 1, and
    about the same whether the view is 64 or 128 pixels wide (raw pixel sums would grow 4×)."""
    scene, _, cameras, geometries = balls
    everything = np.ones((64, 64), dtype=bool)
    small = view_evidence(geometries[0], everything)
    big_cam = cameras[0].scaled(128, 128)
    big = view_evidence(view_geometry(scene, big_cam), np.ones((128, 128), dtype=bool))
    assert float(small.inside.max()) <= 1.0 + 1e-4
    seen = (small.inside > 0.05) & (big.inside > 0.05)
    ratio = big.inside[seen] / small.inside[seen]
    assert abs(float(ratio.median()) - 1.0) < 0.25  # pixel sampling of 1–2 px discs, not a resolution factor
    assert float(small.outside.abs().max()) == 0.0


def test_negative_refinement_removes_gaussians_seen_outside_the_mask_elsewhere():
    """Floaters in front of the object in the front view fall inside its mask there; from the side they are seen
    beside the object, outside the mask. Lifting the front view alone keeps them, adding a side view removes them,
    and without the negative term (λ = 0) they stay."""
    ball_scene, _ = disc_scene([ball((0.0, 0.0, 0.0), 0.25, 900)])
    floater = blobs(np.array([[0.0, -0.75, z] for z in (-0.1, 0.0, 0.1)]), 0.02)  # stacked: none hides another
    scene = GaussianScene.concat([ball_scene, floater])
    labels = np.r_[np.ones(len(ball_scene), dtype=int), np.full(len(floater), 2)]
    ring = ring_cameras(4, size=64, distance=2.6, elevation_deg=0.0)
    front, sides = ring[0], [ring[1]]  # from −y; from +x
    is_obj, is_floater = labels == 1, labels == 2
    g_front = view_geometry(scene, front)
    # The masks a perfect SAM draws of "the object": in front, the floater is in it (it covers the object there).
    mask_front = g_front.selection_mask(torch.ones(len(scene), dtype=torch.bool)).numpy()
    floater_front = g_front.selection_mask(torch.from_numpy(is_floater)).numpy()
    assert floater_front.any() and not (floater_front & ~mask_front).any()
    views = [(front, mask_front)]
    for cam in sides:
        mask = view_geometry(scene, cam).selection_mask(torch.from_numpy(is_obj)).numpy()
        views.append((cam, mask))

    only_front = lift_masks(scene, views[:1])
    assert np.count_nonzero(only_front & is_floater) == np.count_nonzero(is_floater)

    all_views = lift_masks(scene, views)
    assert np.count_nonzero(all_views & is_floater) == 0
    assert np.count_nonzero(all_views & is_obj) > 0.5 * np.count_nonzero(is_obj)  # what the views saw of the ball

    no_negative = lift_masks(scene, views, negative_weight=0.0)
    assert np.count_nonzero(no_negative & is_floater) == np.count_nonzero(is_floater)


def test_faint_floaters_are_dropped_as_weakly_supported():
    """A faint blob in front of the object is inside the mask in the view that sees it, so the projection loss keeps
    it; its support (the share of it the view saw, opacity included) is what gives it away."""
    scene, labels = disc_scene([ball((0.0, 0.0, 0.0), 0.25, 900), ball((0.0, -0.3, 0.05), 0.03, 30)])
    faint = torch.from_numpy(labels == 2)
    with torch.no_grad():
        scene.logit_opacities[faint] = torch.logit(torch.tensor(0.008))
    g = view_geometry(scene, ring_cameras(4, size=64, elevation_deg=10.0)[0])
    mask = g.selection_mask(torch.from_numpy(labels == 1)).numpy()

    lenient = MaskLifter(len(scene), min_support=0.0)
    lenient.add_view(g, mask)
    assert bool((lenient.selection() & faint).any())  # the loss alone keeps it

    strict = MaskLifter(len(scene), min_support=0.01)
    strict.add_view(g, mask)
    assert not bool((strict.selection() & faint).any())
    assert int((strict.selection() & ~faint).sum()) > 200  # the ball's front stays


def test_geometry_cache_reuses_views_and_keeps_to_its_budget(balls):
    scene, _, cameras, _ = balls
    cache = GeometryCache(scene)
    first = cache(cameras[0])
    assert cache(cameras[0]) is first
    tight = GeometryCache(scene, max_bytes=first.fragments.pixel.numel() * GeometryCache.BYTES_PER_FRAGMENT + 1)
    a = tight(cameras[0])
    tight(cameras[1])
    assert tight(cameras[0]) is not a  # evicted to make room for the second view

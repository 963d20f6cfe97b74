"""The overhang rule: an object mask merged with its support is cut back to the object's part masks."""

from __future__ import annotations

import numpy as np

from backend.masks.maskset import ViewMasks
from backend.masks.overhang import trim_overhangs


def _view(masks: list[np.ndarray]) -> ViewMasks:
    m = len(masks)
    return ViewMasks("v", np.stack(masks), np.ones(m, np.float32), np.ones(m, np.float32))


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    body = np.zeros((40, 40), bool)
    body[10:30, 10:20] = True
    handle = np.zeros((40, 40), bool)
    handle[15:25, 20:24] = True
    ring = np.zeros((40, 40), bool)
    ring[5:38, 3:36] = True  # the support around the object
    return body, handle, ring


def test_a_whole_merged_with_its_support_is_cut_back_to_its_parts() -> None:
    body, handle, ring = _scene()
    merged = body | handle | ring
    out = trim_overhangs(_view([merged, body, handle]))
    assert (out.masks[0] == (body | handle)).all()
    assert (out.masks[1] == body).all() and (out.masks[2] == handle).all()
    coarse, _ = out.levels()
    assert (coarse[ring & ~(body | handle)] == -1).all()  # the support is uncovered again


def test_plain_wholes_and_lone_masks_are_kept() -> None:
    body, handle, ring = _scene()
    whole = body | handle
    view = _view([whole, body, handle])
    assert trim_overhangs(view) is view
    dropped_part = _view([whole, body])  # the handle's mask is missing: 17% of the whole lies outside the body
    assert trim_overhangs(dropped_part) is dropped_part
    alone = _view([whole | ring])  # nothing inside it to cut back to
    assert trim_overhangs(alone) is alone
    assert trim_overhangs(_view([whole | ring, body, handle]), min_overhang=1.0).masks[0].sum() == (whole | ring).sum()

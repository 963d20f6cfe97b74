"""Chunked browser splats: the layout, the packing (viser's own) and what a selection change resends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import random_scene
from tests.helpers.splat_browser import viser_splat_buffer
from viewer.looks import LookCache, base_rgba, compute_rgba, label_colors, look_parts, pca_colors
from viewer.splats import BYTES_PER_GAUSSIAN, ChunkedSplats, SplatChunks, chunk_count, rgba_words, spatial_chunks


class FakeHandle:
    def __init__(self, buffer: np.ndarray, visible: bool) -> None:
        self.buffer = buffer
        self.visible = visible
        self.buffer_sets = 0
        self.visible_sets = 0

    def __setattr__(self, name, value):
        if name == "buffer" and hasattr(self, "buffer_sets"):
            object.__setattr__(self, "buffer_sets", self.buffer_sets + 1)
        if name == "visible" and hasattr(self, "visible_sets"):
            object.__setattr__(self, "visible_sets", self.visible_sets + 1)
        object.__setattr__(self, name, value)

    def remove(self) -> None:
        object.__setattr__(self, "removed", True)


class FakeSceneApi:
    """Packs exactly as `viser.SceneApi.add_gaussian_splats` does, without a server."""

    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}

    def add_gaussian_splats(self, name, centers, covariances, rgbs, opacities, visible=True, **_):
        buffer = viser_splat_buffer(centers, covariances, rgbs, opacities)
        handle = FakeHandle(buffer, visible)
        self.handles[name] = handle
        return handle


def test_chunk_count_powers_of_two():
    assert chunk_count(10) == 1
    assert chunk_count(80_000) == 128
    assert chunk_count(1_000_000) == 512
    assert chunk_count(100_000_000) == 512


def test_spatial_chunks_partition_and_compactness():
    rng = np.random.default_rng(0)
    means = rng.uniform(-1, 1, (10_000, 3))
    order, bounds = spatial_chunks(means, 16)
    assert sorted(order.tolist()) == list(range(10_000))  # a permutation
    sizes = np.diff(bounds)
    assert len(sizes) == 16 and sizes.max() - sizes.min() <= 1
    # Each chunk's box is about (1/16)^(1/3) of the whole in each axis: compact, not slabs.
    for c in range(16):
        pts = means[order[bounds[c] : bounds[c + 1]]]
        extent = pts.max(0) - pts.min(0)
        assert extent.max() < 1.3  # the whole cube is 2 wide; a slab would be 2 in two axes


def test_spatial_chunks_degenerate():
    order, bounds = spatial_chunks(np.zeros((0, 3)), 8)
    assert order.size == 0 and bounds.tolist() == [0, 0]
    order, bounds = spatial_chunks(np.zeros((3, 3)), 8)  # fewer Gaussians than chunks
    assert sorted(order.tolist()) == [0, 1, 2] and bounds[-1] == 3


def test_packing_matches_viser_and_updates_are_chunked():
    scene = random_scene(5000, seed=1)
    chunks = SplatChunks(scene, num_chunks=16)
    api = FakeSceneApi()
    base = base_rgba(scene.dc_colors, scene.opacities)
    splats = ChunkedSplats(api, chunks, base)
    assert len(api.handles) == 16
    # Each chunk's buffer is exactly our static geometry plus its RGBA word (viser's packing round-trips).
    for c, handle in enumerate(splats.handles):
        sl = chunks.chunk_slice(c)
        expected = chunks.geometry[sl].copy()
        expected[:, 7] = rgba_words(base)[chunks.order[sl]]
        np.testing.assert_array_equal(handle.buffer, expected)

    # Nothing changed: nothing sent.
    stats = splats.update(base)
    assert stats.bytes_sent == 0 and stats.chunks_resent == 0

    # Tint one chunk's worth of Gaussians: only that chunk is resent.
    looks = LookCache(base)
    chunk_of = chunks.chunk_of()
    sel = chunk_of == 3
    stats = splats.update(looks.rgba("hide", sel))
    assert stats.chunks_resent == 0 and stats.chunks_toggled == 1  # a fully hidden chunk is switched off
    assert splats.handles[3].visible is False and splats.handles[2].visible is True
    stats = splats.update(looks.rgba("hide", np.zeros(len(scene), bool)))
    assert stats.chunks_resent == 0 and stats.chunks_toggled == 1 and splats.handles[3].visible is True

    sel = np.zeros(len(scene), bool)
    sel[chunks.order[chunks.chunk_slice(5)][:10]] = True
    sel[chunks.order[chunks.chunk_slice(9)][:10]] = True
    stats = splats.update(looks.rgba("isolate", sel))
    # Chunks 5 and 9 are partly visible (resent); the other 14 are switched off without sending a buffer.
    assert stats.chunks_resent == 2 and stats.chunks_toggled == 14
    sizes = np.diff(chunks.bounds)
    assert stats.bytes_sent == (sizes[5] + sizes[9]) * BYTES_PER_GAUSSIAN
    assert stats.share == pytest.approx(2 / 16, rel=0.01)


def test_packing_through_a_real_viser_server():
    import viser

    from viewer.app import port_is_free

    port = next(p for p in range(18300, 18400) if port_is_free("127.0.0.1", p))
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    try:
        scene = random_scene(3000, seed=4)
        chunks = SplatChunks(scene, num_chunks=4)
        base = base_rgba(scene.dc_colors, scene.opacities)
        splats = ChunkedSplats(server.scene, chunks, base)
        for c, handle in enumerate(splats.handles):
            sl = chunks.chunk_slice(c)
            expected = chunks.geometry[sl].copy()
            expected[:, 7] = rgba_words(base)[chunks.order[sl]]
            np.testing.assert_array_equal(handle.buffer, expected)
        looks = LookCache(base)
        sel = chunks.chunk_of() == 2
        stats = splats.update(looks.rgba("isolate", sel))
        assert stats.chunks_toggled == 3 and stats.chunks_resent == 0
        assert [h.visible for h in splats.handles] == [False, False, True, False]
    finally:
        server.stop()


def test_highlight_resends_only_chunks_of_changed_gaussians():
    scene = random_scene(8000, seed=2)
    chunks = SplatChunks(scene, num_chunks=32)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    plain, dimmed = looks.layers("highlight")
    chunk_of = chunks.chunk_of()
    a = np.isin(chunk_of, [1, 2])
    b = np.isin(chunk_of, [2, 7])
    empty = np.zeros(len(scene), bool)

    # Without the dimmed copies, dimming the rest resends everything on the first selection.
    naive = ChunkedSplats(FakeSceneApi(), chunks, base)
    assert naive.update(looks.rgba("highlight", a)).chunks_resent == 32

    api = FakeSceneApi()
    splats = ChunkedSplats(api, chunks, base)
    prefetched = splats.prefetch_dim(dimmed)
    assert prefetched == len(scene) * BYTES_PER_GAUSSIAN and splats.node_count() == 64
    assert not any(h.visible for name, h in api.handles.items() if "/dim/" in name)
    first = splats.update(looks.rgba("highlight", a), plain=plain, dimmed=dimmed)  # empty → A
    assert first.chunks_resent == 2 and first.chunks_toggled == 30
    assert first.share == pytest.approx(2 / 32)
    second = splats.update(looks.rgba("highlight", b), plain=plain, dimmed=dimmed)  # A → B
    assert second.chunks_resent == 1  # chunk 7 joins; 2 stays tinted; 1 goes back to its dimmed copy
    assert second.chunks_toggled == 1
    cleared = splats.update(looks.rgba("highlight", empty), plain=plain, dimmed=dimmed)  # B → nothing
    assert cleared.bytes_sent == 0 and cleared.chunks_toggled == 32
    assert splats.node_count() == 64  # the mixed chunks' third copies are gone
    # What shows is exactly the look: one visible node per chunk, holding the chunk's words.
    look = looks.rgba("highlight", b)
    splats.update(look, plain=plain, dimmed=dimmed)
    words = rgba_words(look)[chunks.order]
    for i in range(32):
        shown = [
            h
            for name, h in api.handles.items()
            if name.endswith(f"chunk_{i:03d}") and h.visible and not getattr(h, "removed", False)
        ]
        assert len(shown) == 1
        np.testing.assert_array_equal(shown[0].buffer[:, 7], words[chunks.chunk_slice(i)])
    # Without dimming, the first selection needs no dimmed copies at all.
    tint_only = ChunkedSplats(FakeSceneApi(), chunks, base)
    assert tint_only.update(looks.rgba("highlight", a, dim_rest=False), plain=plain, dimmed=dimmed).chunks_resent == 2


def _assert_browser_shows(api: FakeSceneApi, chunks: SplatChunks, look: np.ndarray) -> None:
    """Each chunk with something to draw has exactly one visible node holding its words; the others show none."""
    words = rgba_words(look)[chunks.order]
    for i in range(chunks.num_chunks):
        shown = [
            h
            for name, h in api.handles.items()
            if name.endswith(f"chunk_{i:03d}") and h.visible and not getattr(h, "removed", False)
        ]
        part = words[chunks.chunk_slice(i)]
        if not (part >> 24).any():
            assert shown == [], i
            continue
        assert len(shown) == 1, (i, len(shown))
        np.testing.assert_array_equal(shown[0].buffer[:, 7], part)


def test_random_looks_always_show_exactly_the_look():
    """Selections, clears and mode switches in a random order, with and without the dimmed copies prefetched:
    after every update the browser's visible nodes hold exactly the requested look."""
    scene = random_scene(3000, seed=5)
    chunks = SplatChunks(scene, num_chunks=16)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    chunk_of = chunks.chunk_of()
    rng = np.random.default_rng(0)
    for prefetch in (False, True):
        api = FakeSceneApi()
        splats = ChunkedSplats(api, chunks, base)
        if prefetch:
            splats.prefetch_dim(looks.layers("highlight")[1])
        for _ in range(40):
            mode = str(rng.choice(["highlight", "isolate", "hide"]))
            kind = rng.integers(4)
            if kind == 0:
                selection = np.zeros(len(scene), bool)
            elif kind == 1:
                selection = np.isin(chunk_of, rng.choice(16, size=rng.integers(1, 5), replace=False))
            elif kind == 2:
                selection = rng.random(len(scene)) < 0.1
            else:
                selection = np.ones(len(scene), bool)
            plain, dimmed = looks.layers(mode)
            look = looks.rgba(mode, selection)
            splats.update(look, plain=plain, dimmed=dimmed)
            _assert_browser_shows(api, chunks, look)
        assert splats.node_count() <= 3 * chunks.num_chunks


def test_look_cache_matches_reference():
    scene = random_scene(3000, seed=3)
    base = base_rgba(scene.dc_colors, scene.opacities)
    rng = np.random.default_rng(0)
    sel = rng.random(3000) < 0.2
    labels = rng.integers(-1, 5, 3000)
    colors = label_colors(labels)
    cache = LookCache(base)
    for mode in ("highlight", "isolate", "hide", "clusters", "pca"):
        for s in (sel, np.zeros(3000, bool)):
            got = cache.rgba(mode, s, colors=colors, colors_key=("clusters", 0))
            np.testing.assert_array_equal(got, compute_rgba(base, mode, s, colors=colors), err_msg=mode)
            got = cache.rgba(mode, s, colors=colors, colors_key=("clusters", 0), dim_rest=False)
            np.testing.assert_array_equal(got, compute_rgba(base, mode, s, colors=colors, dim_rest=False))


def test_looks_semantics():
    base = np.array([[100, 100, 100, 200], [10, 20, 30, 255]], dtype=np.uint8)
    sel = np.array([True, False])
    hl = compute_rgba(base, "highlight", sel)
    assert hl[0, 0] > 100 and hl[0, 2] < 100  # tinted toward orange
    assert (hl[1, :3] < base[1, :3]).all() and hl[1, 3] == 255  # dimmed, not hidden
    np.testing.assert_array_equal(compute_rgba(base, "highlight", ~np.ones(2, bool)), base)
    assert compute_rgba(base, "isolate", sel)[:, 3].tolist() == [200, 0]
    assert compute_rgba(base, "hide", sel)[:, 3].tolist() == [0, 255]


def test_label_and_pca_colors():
    labels = np.array([0, 0, 1, -1, 2])
    c = label_colors(labels)
    assert (c[0] == c[1]).all() and not (c[0] == c[2]).all()
    assert (c[3] == 128).all()  # unlabelled → grey
    feats = torch.cat([torch.zeros(50, 8), torch.ones(50, 8)])
    feats[:, 0] += torch.linspace(0, 1, 100)
    rgb = pca_colors(feats)
    assert rgb.shape == (100, 3) and rgb.dtype == np.uint8
    assert abs(int(rgb[:50, 0].mean()) - int(rgb[50:, 0].mean())) > 100  # the two groups are far apart


def test_incremental_look_equals_the_reference_over_a_click_sequence():
    """LookCache updates the previous highlight look where the selection changed; over random small and large
    changes, dim on and off, colourings switched, every look equals `compute_rgba` and no returned look is
    changed afterwards (clients may still hold it)."""
    scene = random_scene(5000, seed=4)
    base = base_rgba(scene.dc_colors, scene.opacities)
    rng = np.random.default_rng(1)
    colors = label_colors(rng.integers(-1, 6, 5000))
    cache = LookCache(base)
    sel = np.zeros(5000, bool)
    held: list[tuple[np.ndarray, np.ndarray]] = []
    for step in range(80):
        if step % 9 == 0:
            sel = rng.random(5000) < 0.3
        else:
            flip = rng.choice(5000, size=int(rng.integers(1, 200)), replace=False)
            sel = sel.copy()
            sel[flip] = ~sel[flip]
        mode = "clusters" if step % 13 == 5 else "highlight"
        dim = bool(step % 7)
        got = cache.rgba(mode, sel, colors=colors, colors_key=("c", 0), dim_rest=dim)
        want = compute_rgba(base, mode, sel, colors=colors, dim_rest=dim)
        np.testing.assert_array_equal(got, want, err_msg=str(step))
        held.append((got, want))
    for got, want in held:
        np.testing.assert_array_equal(got, want)


def _node_state(api: FakeSceneApi) -> dict[str, tuple[bool, bool, bytes]]:
    return {
        name: (bool(h.visible), bool(getattr(h, "removed", False)), h.buffer.tobytes())
        for name, h in api.handles.items()
    }


def test_incremental_update_equals_the_full_comparison():
    """A random click sequence (object and scattered selections, growing and shrinking, clears, dim on and off,
    colourings and modes switched, the dimmed copies prefetched midway) applied to two clients, one through the
    selection-aware path and one comparing every chunk: after every step both hold the same nodes with the same
    buffers and visibility, the update cost the same, and the browser shows exactly the look."""
    scene = random_scene(4000, seed=8)
    chunks = SplatChunks(scene, num_chunks=32)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    chunk_of = chunks.chunk_of()
    rng = np.random.default_rng(3)
    colors = label_colors(rng.integers(-1, 6, 4000))
    fast_api, ref_api = FakeSceneApi(), FakeSceneApi()
    fast = ChunkedSplats(fast_api, chunks, base)
    ref = ChunkedSplats(ref_api, chunks, base)
    ref.incremental = False
    sel = np.zeros(len(scene), bool)
    took_incremental = 0
    for step in range(150):
        kind = rng.integers(6)
        if kind == 0:
            sel = np.zeros(len(scene), bool)
        elif kind == 1:
            sel = np.isin(chunk_of, rng.choice(32, size=rng.integers(1, 4), replace=False))
        elif kind == 2:
            sel = sel | (rng.random(len(scene)) < 0.02)
        elif kind == 3:
            sel = sel & (rng.random(len(scene)) < 0.7)
        else:
            sel = sel.copy()
            flip = rng.choice(len(scene), size=int(rng.integers(1, 50)), replace=False)
            sel[flip] = ~sel[flip]
        mode = "highlight" if step % 17 else str(rng.choice(["isolate", "hide", "clusters"]))
        dim = bool(step % 11)
        if step == 40:
            for s in (fast, ref):
                s.prefetch_dim(looks.layers("highlight")[1])
        plain, dimmed = looks.layers(mode, colors=colors, colors_key="c")  # type: ignore[arg-type]
        look = looks.rgba(mode, sel, colors=colors, colors_key="c", dim_rest=dim)  # type: ignore[arg-type]
        before = fast._last_look
        got = fast.update(look, plain=plain, dimmed=dimmed)
        want = ref.update(look, plain=plain, dimmed=dimmed)
        took_incremental += before is not None
        assert (got.bytes_sent, got.chunks_resent, got.chunks_toggled) == (
            want.bytes_sent,
            want.chunks_resent,
            want.chunks_toggled,
        ), step
        assert _node_state(fast_api) == _node_state(ref_api), step
        _assert_browser_shows(fast_api, chunks, look)
    assert took_incremental > 100  # the sequence did exercise the incremental path


def test_look_carries_its_parts_and_slices_do_not():
    scene = random_scene(500, seed=2)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    _, dimmed = looks.layers("highlight")
    sel = np.zeros(500, bool)
    sel[:50] = True
    look = looks.rgba("highlight", sel)
    parts = look_parts(look)
    assert parts is not None and parts[1] is dimmed
    np.testing.assert_array_equal(parts[0], sel)
    sel[:] = False  # the caller's mask may change afterwards; the look keeps its own copy
    assert parts[0][:50].all()
    assert look_parts(look[:10]) is None and look_parts(look + 0) is None
    empty = looks.rgba("highlight", np.zeros(500, bool))
    assert look_parts(empty) is not None and look_parts(empty)[0] is None
    assert look_parts(looks.rgba("isolate", sel)) is None

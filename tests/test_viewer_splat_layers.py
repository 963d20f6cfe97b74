"""Look layers under parent frames (viewer/splat_layers.py) against the per-chunk reference (`ChunkedSplats`): over
random click sequences the browser draws exactly the same thing, with fewer messages and fewer bytes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import random_scene
from tests.helpers.splat_browser import RecordingSceneApi, drawn_words, expected_words
from viewer.looks import LookCache, LookParts, base_rgba, compute_rgba, label_colors
from viewer.splat_layers import LayeredSplats, blend_words, blend_words_reference
from viewer.splats import ChunkedSplats, SplatChunks


def _selection(rng, kind: int, sel: np.ndarray, chunk_of: np.ndarray, num_chunks: int) -> np.ndarray:
    n = len(sel)
    if kind == 0:
        return np.zeros(n, bool)
    if kind == 1:  # whole chunks: the tint layer's case
        return np.isin(chunk_of, rng.choice(num_chunks, size=rng.integers(1, 4), replace=False))
    if kind == 2:  # a blob: whole chunks and a boundary
        centre = rng.integers(n)
        return np.abs(np.arange(n) - centre) < rng.integers(50, 600)
    if kind == 3:
        return sel | (rng.random(n) < 0.02)
    if kind == 4:
        return sel & (rng.random(n) < 0.7)
    out = sel.copy()
    flip = rng.choice(n, size=int(rng.integers(1, 50)), replace=False)
    out[flip] = ~out[flip]
    return out


@pytest.mark.parametrize(("seed", "compiled"), [(3, True), (11, True), (3, False)])
def test_layers_draw_what_the_reference_draws_over_random_clicks(seed: int, compiled: bool):
    """Clicks, clears, dim on and off, colourings and modes switched, the extra layers prefetched midway: after every
    step the layered client draws exactly what the reference client draws, which is exactly the look (with the
    compiled counts and row packing, and with their NumPy references)."""
    scene = random_scene(4000, seed=seed)
    chunks = SplatChunks(scene, num_chunks=32)
    base = base_rgba(scene.dc_colors, scene.opacities)
    base[:300, 3] = 0  # some transparent Gaussians: a chunk of them shows nothing
    looks = LookCache(base)
    chunk_of = chunks.chunk_of()
    rng = np.random.default_rng(seed)
    colors = label_colors(rng.integers(-1, 6, len(scene)))
    fast_api, ref_api = RecordingSceneApi(), RecordingSceneApi()
    fast = LayeredSplats(fast_api, chunks, base)
    fast.compiled = compiled
    ref = ChunkedSplats(ref_api, chunks, base)
    sel = np.zeros(len(scene), bool)
    fast_bytes = ref_bytes = 0
    for step in range(160):
        sel = _selection(rng, int(rng.integers(6)), sel, chunk_of, chunks.num_chunks)
        mode = "highlight" if step % 17 else str(rng.choice(["isolate", "hide", "clusters", "pca"]))
        dim = bool(step % 11)
        if step == 40:
            fast.prefetch(looks.layers("highlight")[1], looks.tinted("highlight"))
            ref.prefetch_dim(looks.layers("highlight")[1])
        plain, dimmed = looks.layers(mode, colors=colors, colors_key="c")  # type: ignore[arg-type]
        look = looks.rgba(mode, sel, colors=colors, colors_key="c", dim_rest=dim)  # type: ignore[arg-type]
        lazy = looks.parts(mode, sel, colors=colors, colors_key="c", dim_rest=dim)  # type: ignore[arg-type]
        fast_bytes += fast.update(lazy if step % 3 else look, plain=plain, dimmed=dimmed).bytes_sent
        ref_bytes += ref.update(look, plain=plain, dimmed=dimmed).bytes_sent
        want = expected_words(look, chunks)
        np.testing.assert_array_equal(drawn_words(ref_api, chunks), want, err_msg=f"reference, step {step}")
        np.testing.assert_array_equal(drawn_words(fast_api, chunks), want, err_msg=f"layers, step {step}")
    # Scattered random edits cost about the same bytes both ways (batches of mixed chunks travel together); the
    # messages are far fewer. Object-sized selections are cheaper in bytes too (the test below, bench_bytes).
    assert fast_bytes < 1.25 * ref_bytes
    assert fast_api.messages < 0.5 * ref_api.messages, (fast_api.messages, ref_api.messages)
    assert fast.node_count() <= 4 * chunks.num_chunks


def test_the_incremental_targets_equal_the_full_comparison():
    """The same click sequence through the selection-aware path (given the look's parts, never making its array)
    and through the every-chunk comparison leaves the two clients drawing the same words."""
    scene = random_scene(3000, seed=5)
    chunks = SplatChunks(scene, num_chunks=16)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    apis = [RecordingSceneApi(), RecordingSceneApi()]
    fast, full = (LayeredSplats(api, chunks, base) for api in apis)
    full.incremental = False
    rng = np.random.default_rng(2)
    chunk_of = chunks.chunk_of()
    sel = np.zeros(len(scene), bool)
    unmade = 0
    for step in range(120):
        sel = _selection(rng, int(rng.integers(6)), sel, chunk_of, chunks.num_chunks)
        plain, dimmed = looks.layers("highlight")
        lazy = looks.parts("highlight", sel, dim_rest=bool(step % 5))
        assert isinstance(lazy, LookParts)
        fast.update(lazy, plain=plain, dimmed=dimmed)
        unmade += lazy._rgba is None
        full.update(lazy.rgba(), plain=plain, dimmed=dimmed)
        want = compute_rgba(base, "highlight", sel, dim_rest=bool(step % 5))
        np.testing.assert_array_equal(lazy.rgba(), want)
        np.testing.assert_array_equal(drawn_words(apis[0], chunks), drawn_words(apis[1], chunks), err_msg=str(step))
        np.testing.assert_array_equal(drawn_words(apis[0], chunks), expected_words(want, chunks))
    assert unmade == 119  # only the first update (nothing to compare with yet) made the array


def test_a_click_is_frame_messages_and_the_touched_chunks_only():
    """Dimming the scene is two frame messages, not one per chunk; a chunk wholly inside the selection switches to
    the prefetched tint layer; only the selection's boundary chunks are sent."""
    scene = random_scene(8000, seed=2)
    chunks = SplatChunks(scene, num_chunks=64)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    plain, dimmed = looks.layers("highlight")
    api = RecordingSceneApi()
    splats = LayeredSplats(api, chunks, base)
    splats.prefetch(dimmed, looks.tinted("highlight"))
    chunk_of = chunks.chunk_of()
    inside = np.isin(chunk_of, [3, 4])
    edge = chunks.order[chunks.chunk_slice(9)][:10]
    sel = inside.copy()
    sel[edge] = True
    before = api.messages
    stats = splats.update(looks.rgba("highlight", sel), plain=plain, dimmed=dimmed)
    # base frame off, dim on, tint on; dim nodes of chunks 3, 4, 9 off; tint nodes 3, 4 on; one mix node (created
    # empty, then given its buffer as it is: two messages).
    assert api.messages - before == 3 + 3 + 2 + 2
    assert stats.chunks_resent == 1 and stats.bytes_sent == np.diff(chunks.bounds)[9] * 32
    np.testing.assert_array_equal(drawn_words(api, chunks), expected_words(looks.rgba("highlight", sel), chunks))
    # The boundary moves within chunk 9: its mix node is refilled in place (one message, no removal, no new node).
    sel[edge[:5]] = False
    nodes, before = len(api.nodes), api.messages
    stats = splats.update(looks.rgba("highlight", sel), plain=plain, dimmed=dimmed)
    assert api.messages - before == 1 and len(api.nodes) == nodes and stats.chunks_resent == 1
    np.testing.assert_array_equal(drawn_words(api, chunks), expected_words(looks.rgba("highlight", sel), chunks))
    # Another object: its chunks and the previous one's only.
    other = np.isin(chunk_of, [20])
    before = api.messages
    stats = splats.update(looks.rgba("highlight", other), plain=plain, dimmed=dimmed)
    assert stats.bytes_sent == 0  # a whole chunk: the tint layer has it
    # dim 3, 4, 9 back on, dim 20 off, tint 3, 4 off, tint 20 on, the mix node of 9 removed.
    assert api.messages - before == 4 + 2 + 1 + 1
    # Clearing: frames only (and the lazily kept node states stay behind the hidden frames).
    before = api.messages
    stats = splats.update(looks.rgba("highlight", np.zeros(len(scene), bool)), plain=plain, dimmed=dimmed)
    assert api.messages - before == 3 and stats.bytes_sent == 0
    np.testing.assert_array_equal(drawn_words(api, chunks), expected_words(base, chunks))


def test_a_mixed_chunk_is_resent_when_its_selection_changes_at_the_same_count():
    """A chunk mixed before and after a click keeps its batch only when its words are unchanged: the selected
    Gaussians swapped inside it (the same count) are resent; a click that leaves it alone sends nothing for it."""
    scene = random_scene(6000, seed=8)
    chunks = SplatChunks(scene, num_chunks=32)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    plain, dimmed = looks.layers("highlight")
    api = RecordingSceneApi()
    splats = LayeredSplats(api, chunks, base)
    splats.prefetch(dimmed, looks.tinted("highlight"))
    members = [chunks.order[chunks.chunk_slice(c)] for c in (5, 6)]
    sizes = np.diff(chunks.bounds)
    sel = np.zeros(len(scene), bool)
    sel[members[0][:20]] = True
    sel[members[1][:30]] = True
    splats.update(looks.parts("highlight", sel), plain=plain, dimmed=dimmed)
    sel[members[0][:20]] = False  # chunk 5: 20 other Gaussians selected, the same count
    sel[members[0][20:40]] = True
    stats = splats.update(looks.parts("highlight", sel), plain=plain, dimmed=dimmed)
    assert stats.chunks_resent >= 1 and stats.bytes_sent >= sizes[5] * 32
    want = expected_words(looks.rgba("highlight", sel), chunks)
    np.testing.assert_array_equal(drawn_words(api, chunks), want)
    # Chunk 5 and 6 travelled together in one batch; now a third, far chunk joins: 5 and 6 are unchanged.
    splats_alone = LayeredSplats(RecordingSceneApi(), chunks, base)
    splats_alone.prefetch(dimmed, looks.tinted("highlight"))
    splats_alone.update(looks.parts("highlight", np.zeros(len(scene), bool)), plain=plain, dimmed=dimmed)
    sel_a = np.zeros(len(scene), bool)
    sel_a[members[0][:20]] = True
    splats_alone.update(looks.parts("highlight", sel_a), plain=plain, dimmed=dimmed)
    sel_b = sel_a.copy()
    sel_b[chunks.order[chunks.chunk_slice(30)][:5]] = True
    stats = splats_alone.update(looks.parts("highlight", sel_b), plain=plain, dimmed=dimmed)
    assert stats.bytes_sent == sizes[30] * 32  # chunk 5's batch kept: only the new chunk travels


def test_the_selected_counts_and_mixed_rows_are_made_once_per_look():
    """Every browser shown the same look reads the per-chunk counts the first one made (one pass over the
    selection per click, not one per browser), which equal a count made another way, and browsers in step send the
    mixed chunks' rows the first one made; each draws the look."""
    scene = random_scene(3000, seed=6)
    chunks = SplatChunks(scene, num_chunks=16)
    base = base_rgba(scene.dc_colors, scene.opacities)
    looks = LookCache(base)
    plain, dimmed = looks.layers("highlight")
    apis = [RecordingSceneApi() for _ in range(3)]
    clients = [LayeredSplats(api, chunks, base) for api in apis]
    for client in clients:
        client.update(looks.parts("highlight", np.zeros(len(scene), bool)), plain=plain, dimmed=dimmed)
    sel = np.random.default_rng(0).random(len(scene)) < 0.1
    lazy = looks.parts("highlight", sel)
    assert isinstance(lazy, LookParts)
    for client in clients:
        client.update(lazy, plain=plain, dimmed=dimmed)
    counts = lazy._counts[1]
    assert all(c.chunks.chunk_ids() is lazy._counts[0] for c in clients)
    assert chunks.order.dtype == np.int32 and all(c._order32 is chunks.order for c in clients)  # no copy a browser
    assert lazy.chunk_counts(chunks.chunk_ids(), chunks.num_chunks) is counts
    by_chunk = [int(sel[chunks.order[chunks.chunk_slice(c)]].sum()) for c in range(chunks.num_chunks)]
    assert counts.tolist() == by_chunk
    buffers = [[node.buffer for node in client._mix_nodes.values()] for client in clients]
    assert buffers[0] and all(len(b) == len(buffers[0]) for b in buffers)
    for first, *others in zip(*buffers, strict=True):
        assert all(np.shares_memory(first, other) for other in others)
    for api in apis:
        np.testing.assert_array_equal(drawn_words(api, chunks), expected_words(lazy.rgba(), chunks))
    # A browser given another tinted layer blends other words: it makes its own rows.
    other_tint = LayeredSplats(RecordingSceneApi(), chunks, base)
    other_tint.update(looks.parts("highlight", np.zeros(len(scene), bool)), plain=plain, dimmed=dimmed)
    other_tint.update(lazy, plain=plain, dimmed=dimmed, tinted=dimmed.copy())
    assert other_tint._mix_nodes
    for node in other_tint._mix_nodes.values():
        assert not any(np.shares_memory(node.buffer, first) for first in buffers[0])
    # A browser a step behind (its own mixed chunks differ) makes its own rows, and draws the look too.
    late = LayeredSplats(RecordingSceneApi(), chunks, base)
    late_sel = sel & (np.arange(len(scene)) < 1500)
    late.update(looks.parts("highlight", late_sel), plain=plain, dimmed=dimmed)
    late.update(lazy, plain=plain, dimmed=dimmed)
    np.testing.assert_array_equal(drawn_words(late.scene_api, chunks), expected_words(lazy.rgba(), chunks))


def test_layers_through_a_real_viser_server():
    """The frames and nodes are real viser nodes: names under the layer frames, visibility as decided."""
    import viser

    from viewer.app import port_is_free

    port = next(p for p in range(18400, 18500) if port_is_free("127.0.0.1", p))
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    try:
        scene = random_scene(3000, seed=4)
        chunks = SplatChunks(scene, num_chunks=4)
        base = base_rgba(scene.dc_colors, scene.opacities)
        looks = LookCache(base)
        plain, dimmed = looks.layers("highlight")
        splats = LayeredSplats(server.scene, chunks, base)
        splats.prefetch(dimmed, looks.tinted("highlight"))
        stats = splats.update(looks.rgba("highlight", chunks.chunk_of() == 2), plain=plain, dimmed=dimmed)
        assert stats.bytes_sent == 0
        assert [f.visible for f in splats._frames] == [False, True, True, True]
        assert splats._handles[2][2].name == "/splats/tint/chunk_002" and splats._handles[2][2].visible
        assert not splats._handles[1][2].visible and splats._handles[1][1].visible
        # A mixed chunk: its mix node is made through viser's API (empty, then its buffer) and holds the exact look.
        sel = chunks.chunk_of() == 2
        sel[chunks.order[chunks.chunk_slice(1)][:7]] = True
        stats = splats.update(looks.rgba("highlight", sel), plain=plain, dimmed=dimmed)
        (node,) = splats._mix_nodes.values()
        assert node.name.startswith("/splats/mix/batch_") and node.visible
        look = looks.rgba("highlight", sel).view(np.uint32).reshape(-1)
        np.testing.assert_array_equal(node.buffer[:, 7], look[chunks.order[chunks.chunk_slice(1)]])
        np.testing.assert_array_equal(node.buffer[:, :7], chunks.geometry[chunks.chunk_slice(1), :7])
    finally:
        server.stop()


def test_blend_words_equals_the_select():
    """The branch-free blend (wrapping uint32 arithmetic) picks exactly the tint or the rest word, extremes included."""
    rng = np.random.default_rng(1)
    rest = rng.integers(0, 2**32, 5000, dtype=np.uint32)
    tint = rng.integers(0, 2**32, 5000, dtype=np.uint32)
    rest[:4], tint[:4] = [0, 2**32 - 1, 0, 2**32 - 1], [2**32 - 1, 0, 0, 2**32 - 1]
    selected = rng.random(5000) < 0.5
    selected[:4] = True
    got = blend_words(selected, rest, tint - rest)
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, blend_words_reference(selected, rest, tint))
    flipped = blend_words(~selected, rest, tint - rest)
    np.testing.assert_array_equal(flipped, blend_words_reference(~selected, rest, tint))

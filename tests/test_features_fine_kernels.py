"""The fine click's compiled kernels against their references: the growth's strongest links and search
(features/_grow_kernels.py, grow.py `NeighbourGrowth.compiled`) and the pieces of what growth dropped
(features/_pieces_kernels.py, pieces.py `SeparatePieces.after_growth`), and their compilation at warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.features import grow
from backend.features._grow_kernels import reach, search_buffers, strongest_links, strongest_links_reference
from backend.features._pieces_kernels import dropped_pieces
from backend.features.grow import NeighbourGrowth, grow_reference
from backend.features.neighbors import knn_neighbors
from backend.features.pieces import SeparatePieces, pieces_reference


def _random_graph(seed: int, n: int = 400, k: int = 6) -> tuple[np.ndarray, torch.Tensor]:
    """A directed neighbour table that is not a k-NN one (repeats, self-loops, one-way edges, a hub)."""
    rng = np.random.default_rng(seed)
    nb = rng.integers(0, n, (n, k))
    nb[rng.random((n, k)) < 0.1] = 7
    return nb, F.normalize(torch.from_numpy(rng.normal(size=(n, 3))).float(), dim=1)


def _tabletop_click_field(seed: int, fine_noise: float, fine_labels: bool = False):
    """A warmed-up click field over a 20k tabletop: features made from its ground truth (one 12-d direction per object
    and per part, plus noise), its real 8 nearest neighbours, and (optionally) the parts as fine cluster labels."""
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop

    synth = build_tabletop(seed=seed, num_gaussians=20_000)
    g = torch.Generator().manual_seed(seed + 1)
    n = len(synth.object_labels)
    if fine_labels:  # the order the fields were drawn in (each test's field as it was)
        coarse = F.normalize(torch.randn(int(synth.object_labels.max()) + 1, 12, generator=g), dim=1)
        fine = F.normalize(torch.randn(int(synth.part_labels.max()) + 1, 12, generator=g), dim=1)
    else:
        fine = F.normalize(torch.randn(int(synth.part_labels.max()) + 1, 12, generator=g), dim=1)
        coarse = F.normalize(torch.randn(int(synth.object_labels.max()) + 1, 12, generator=g), dim=1)
    feats = torch.cat(
        [
            F.normalize(coarse[synth.object_labels] + 0.1 * torch.randn(n, 12, generator=g), dim=1),
            F.normalize(fine[synth.part_labels] + fine_noise * torch.randn(n, 12, generator=g), dim=1),
        ],
        dim=1,
    )
    tensors = {
        "features": feats,
        "coarse_centroids": torch.zeros(0, 12),
        "neighbors": knn_neighbors(synth.scene.means, 8),
    }
    if fine_labels:
        tensors["fine_labels"] = torch.from_numpy(synth.part_labels.astype(np.int64))
    return synth, FeatureField(synth.scene, "click", tensors).warm_up()


def _links(growth: NeighbourGrowth, cut: float, fn=strongest_links) -> tuple[np.ndarray, np.ndarray]:
    n = growth.neighbors.shape[0]
    down, up = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    rank = np.arange(n, dtype=np.int32) if growth.rank is None else growth.rank
    scratch = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    fn(growth.neighbors, growth.cos, rank, np.float32(cut), down, up, *scratch)
    return down, up


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("levels", [None, 2])
def test_the_strongest_links_match_numpy_and_are_agreeing_edges(seed: int, levels: int | None) -> None:
    nb, feats = _random_graph(seed)
    n = len(nb)
    growth = NeighbourGrowth(nb, feats, order=np.random.default_rng(seed).permutation(n))
    if levels is not None:  # cosines on a coarse grid: many pairs tie, and the tie rule decides
        growth.cos = (np.round(growth.cos * levels) / levels).astype(np.float32)
    for cut in (-1.0, 0.0, 0.5, 0.99):
        down, up = _links(growth, cut)
        ref_down, ref_up = strongest_links_reference(growth.neighbors, growth.cos, growth.rank, np.float32(cut))
        assert np.array_equal(down, ref_down) and np.array_equal(up, ref_up), cut
        plain = _links(growth, cut, strongest_links.py_func)
        assert np.array_equal(plain[0], down) and np.array_equal(plain[1], up)
        graph = growth._symmetric(cut)
        for p in range(n):
            row = set(graph.indices[graph.indptr[p] : graph.indptr[p + 1]].tolist())
            assert down[p] == -1 or (down[p] < p and int(down[p]) in row)
            assert up[p] == -1 or (up[p] > p and int(up[p]) in row)
            assert (down[p] == -1) == (not any(q < p for q in row))  # a link whenever there is a candidate
            assert (up[p] == -1) == (not any(q > p for q in row))


@pytest.mark.parametrize("graph_seed", range(3))
@pytest.mark.parametrize("links", ["strongest", "none", "shuffled"])
def test_the_compiled_search_matches_the_reference(graph_seed: int, links: str) -> None:
    # The links only speed the search up: with none (every node is its own fragment) or with links that are other
    # agreeing edges than the strongest (each node's row reversed), the answer is the whole graph's all the same.
    nb, feats = _random_graph(graph_seed)
    n = len(nb)
    rng = np.random.default_rng(50 + graph_seed)
    order = rng.permutation(n)
    growth = NeighbourGrowth(nb, feats, order=order).prepare(0.0)
    for trial in range(10):
        positions = np.flatnonzero(rng.random(n) < rng.uniform(0.1, 1.0))
        seeds = order[positions[rng.integers(0, positions.size, int(rng.integers(1, 5)))]]
        if trial % 3 == 0:
            seeds = np.concatenate([seeds, rng.integers(0, n, 2)])  # some not selected
        for edge in (-1.0, 0.2, 0.7, 0.95):
            graph = growth._symmetric(edge)
            if links == "none":
                graph.down[:] = -1
                graph.up[:] = -1
            elif links == "shuffled":
                for p in range(n):
                    row = graph.indices[graph.indptr[p] : graph.indptr[p + 1]][::-1]
                    graph.down[p] = next((q for q in row if q < p), -1)
                    graph.up[p] = next((q for q in row if q > p), -1)
            ref = grow_reference(nb, feats, order[positions], seeds, edge_cos=edge)
            growth.compiled = True
            keep = growth.keep_nodes(positions, seeds, edge_cos=edge)
            got = order[positions] if keep is None else order[positions[keep]]
            assert np.array_equal(np.sort(got), ref), (trial, edge)
            assert (growth._buffers[0] == -1).all()  # the labels are clear again for the next click
            growth.compiled = False  # the previous path, the two SciPy searches, on the same graph
            previous = growth.keep_nodes(positions, seeds, edge_cos=edge)
            every = np.ones(positions.size, dtype=bool)  # None: every node kept
            assert np.array_equal(every if keep is None else keep, every if previous is None else previous)
            growth._graph = None  # the next cut's graph, with its own links


def test_the_compiled_search_as_python_gives_the_same_answer() -> None:
    nb, feats = _random_graph(9)
    n = len(nb)
    growth = NeighbourGrowth(nb, feats, order=np.random.default_rng(9).permutation(n)).prepare(0.3)
    graph = growth._symmetric(0.3)
    rng = np.random.default_rng(9)
    for _ in range(5):
        nodes = np.flatnonzero(rng.random(n) < 0.6)
        start = rng.integers(0, nodes.size, 3)
        answers = []
        for fn in (reach, reach.py_func):
            buffers = search_buffers(n)
            keep = np.empty(nodes.size, dtype=bool)
            count = fn(nodes, start, graph.down, graph.up, graph.indptr, graph.indices, *buffers, keep)
            assert count == keep.sum() and (buffers[0] == -1).all()
            answers.append(keep)
        assert np.array_equal(answers[0], answers[1])


def test_a_selection_the_links_split_is_joined_through_whole_rows() -> None:
    # A path 0 - 1 - ... - 9 whose links are cut (down/up point nowhere): every node is its own fragment and the
    # rows alone join them; a node whose only neighbour is unselected is dropped.
    n = 10
    nb = np.array([[max(i - 1, 0), min(i + 1, n - 1)] for i in range(n)])
    feats = F.normalize(torch.ones(n, 3), dim=1)
    growth = NeighbourGrowth(nb, feats).prepare(0.5)
    graph = growth._symmetric(0.5)
    graph.down[:] = -1
    graph.up[:] = -1
    nodes = np.array([0, 1, 2, 3, 5, 6, 7, 9])
    keep = growth.keep_nodes(nodes, np.array([2]), edge_cos=0.5)
    assert keep.tolist() == [True, True, True, True, False, False, False, False]
    assert growth.keep_nodes(nodes, np.array([4]), edge_cos=0.5) is None  # no seed selected: nothing to grow from
    assert growth.keep_nodes(np.array([0, 1, 2]), np.array([0]), edge_cos=0.5) is None  # all linked


def _dispatcher(fn):
    """The numba dispatcher a `core.jit.kernel` compiled (None before its first call)."""
    import numba

    for cell in fn.__closure__:
        contents = cell.cell_contents
        if isinstance(contents, list):
            return next((c for c in contents if isinstance(c, numba.core.registry.CPUDispatcher)), None)
    return None


def test_warm_up_compiles_the_fine_clicks_kernels_for_the_types_a_click_passes() -> None:
    # After the field's warm-up, a fine click (growth and pieces on the fast path) adds no signature to the kernels:
    # nothing compiles inside a click.
    from backend.synthetic import orbit_cameras

    synth, field = _tabletop_click_field(seed=0, fine_noise=0.4)
    signatures = {fn: list(_dispatcher(fn).signatures) for fn in (reach, dropped_pieces)}
    cam = orbit_cameras(synth, views=2, resolution=96, seed=0)[0]
    growth = field._growths[("fine", None)][1]
    grew = 0
    for px in [(48.0, 48.0), (40.0, 52.0), (56.0, 44.0)]:
        field.segment(cam, [px], level="fine")
        grew += growth._buffers is not None
    assert grew
    for fn, before in signatures.items():
        assert list(_dispatcher(fn).signatures) == before, fn


def _pieces_case(seed: int, with_clusters: bool):
    rng = np.random.default_rng(seed)
    n = 500
    means = rng.uniform(-1, 1, (n, 3))
    nb = knn_neighbors(means, 6).numpy()
    group = rng.integers(0, 3, n)
    noise = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    feats = F.normalize(torch.eye(4)[group] + 0.2 * noise, dim=1)
    clusters = np.where(rng.random(n) < 0.8, group, -1) if with_clusters else None
    return rng, nb, feats, clusters


@pytest.mark.parametrize("with_clusters", [False, True])
def test_the_pieces_after_growth_match_the_id_path_and_the_reference(with_clusters: bool) -> None:
    rng, nb, feats, clusters = _pieces_case(4, with_clusters)
    n = len(nb)
    order = rng.permutation(n)
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    finder = SeparatePieces(nb, feats.T, clusters)
    growth = NeighbourGrowth(nb, feats, order=order)
    block_bank = np.ascontiguousarray(feats.T.numpy()[:, order])  # [D, N] column p = Gaussian order[p]
    found = 0
    for trial in range(12):
        positions = np.flatnonzero(rng.random(n) < 0.5)  # ascending nodes, as a PrunedBank gives them
        selected = order[positions]
        if trial % 2:  # an arbitrary mask (the kernel must not rely on growth's answer)
            keep = rng.random(positions.size) < 0.4
        else:  # what growth keeps
            keep = growth.keep_nodes(positions, selected[:2], edge_cos=0.9)
            if keep is None:
                continue
        grown = selected[keep]
        seeds = grown[:3]
        for cut in (0.0, 0.6, 0.9):
            fast = finder.after_growth(selected, keep, grown, positions, rank, seeds, piece_cos=cut)
            assert np.array_equal(fast, finder(selected, grown, seeds, piece_cos=cut)), (trial, cut)  # same order
            # The features read by node from the bank in the growth's numbering (a PrunedBank's): the same answer.
            by_node = finder.after_growth(
                selected, keep, grown, positions, rank, seeds, piece_cos=cut, block_bank=block_bank
            )
            assert np.array_equal(by_node, fast), (trial, cut)
            ref = pieces_reference(nb, feats.numpy(), clusters, selected, grown, seeds, piece_cos=cut)
            assert np.array_equal(np.sort(fast), ref), (trial, cut)
            found += fast.size
    assert found  # some pieces were added back


def test_the_pieces_kernel_numbers_pieces_by_first_member() -> None:
    # Dropped nodes 0..5 (positions 1, 2, 4, 5, 7, 8 of a 9-node selection): links 0-2, 2-4 (through neighbours)
    # and 3-5 make pieces {0, 2, 4}, {1}, {3, 5}; node 1 touches a kept one.
    nodes = np.arange(9, dtype=np.int64)
    keep = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    dropped = np.flatnonzero(~keep)
    rest = dropped.copy()  # ids = nodes
    nb = np.array([[i, i] for i in range(9)], dtype=np.int32)
    nb[1] = [4, 1]  # dropped 0 (node 1) - dropped 2 (node 4)
    nb[4] = [7, 4]  # dropped 2 - dropped 4 (node 7)
    nb[5] = [8, 5]  # dropped 3 (node 5) - dropped 5 (node 8)
    nb[2] = [3, 2]  # dropped 1 (node 2) touches node 3, kept
    rank = np.arange(9, dtype=np.int32)
    for fn in (dropped_pieces, dropped_pieces.py_func):
        touch, comp = np.empty(6, dtype=bool), np.empty(6, dtype=np.int64)
        assert fn(nodes, keep, dropped, rest, nb, rank, touch, comp) == 3
        assert comp.tolist() == [0, 1, 0, 2, 0, 2]
        assert touch.tolist() == [False, True, False, False, False, False]


def test_the_compiled_paths_run_once_prepared_and_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CLI click never warms the field up: it keeps the SciPy searches and the id path rather than paying numba's
    # import and loading; after `prepare` (the field's warm-up) the kernels run.
    from backend.features import pieces as pieces_module

    nb, feats = _random_graph(1)
    n = len(nb)
    calls: list[str] = []
    monkeypatch.setattr(grow, "reach", lambda *a: calls.append("reach") or reach(*a))
    monkeypatch.setattr(pieces_module, "dropped_pieces", lambda *a: calls.append("pieces") or dropped_pieces(*a))
    order = np.random.default_rng(1).permutation(n)
    growth = NeighbourGrowth(nb, feats, order=order)
    finder = SeparatePieces(nb, feats.T)
    positions, seeds = np.arange(0, n, 2), order[[0]]

    def click() -> np.ndarray | None:
        keep = growth.keep_nodes(positions, seeds, edge_cos=0.2)
        assert keep is not None
        selected = order[positions]
        finder.after_growth(selected, keep, selected[keep], positions, growth.rank, seeds, piece_cos=0.2)
        return keep

    before = click()
    assert calls == [] and growth._graph.down is None
    growth.prepare(0.2)
    finder.prepare()
    assert calls == ["reach", "pieces"]  # each compiled once, on a tiny input
    calls.clear()
    assert np.array_equal(click(), before)
    assert calls == ["reach", "pieces"]
    growth.compiled = finder.fast = False  # the previous paths on demand
    calls.clear()
    assert np.array_equal(click(), before) and calls == []


def test_a_field_without_warm_up_clicks_without_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.features.field import FeatureField
    from backend.synthetic import build_tabletop, orbit_cameras

    synth = build_tabletop(seed=0, num_gaussians=5_000)
    n = len(synth.object_labels)
    g = torch.Generator().manual_seed(2)
    part = F.normalize(torch.randn(int(synth.part_labels.max()) + 1, 12, generator=g), dim=1)
    obj = F.normalize(torch.randn(int(synth.object_labels.max()) + 1, 12, generator=g), dim=1)
    feats = torch.cat([obj[synth.object_labels], part[synth.part_labels]], dim=1)
    feats = feats + 0.05 * torch.randn(n, 24, generator=g)
    tensors = {
        "features": feats,
        "coarse_centroids": torch.zeros(0, 12),
        "neighbors": knn_neighbors(synth.scene.means, 8),
    }
    monkeypatch.setattr(grow, "reach", lambda *a: pytest.fail("the compiled search ran without warm-up"))
    field = FeatureField(synth.scene, "click", tensors)
    cam = orbit_cameras(synth, views=2, resolution=96, seed=0)[0]
    masks = [field.segment(cam, [px], level="fine").mask for px in [(48.0, 48.0), (40.0, 52.0)]]
    growth = field._growths[("fine", None)][1]
    assert not growth._prepared and growth._buffers is None
    assert any(m.any() for m in masks)


def _fast_paths(field, on: bool) -> None:
    """Every fast path of a click (compiled kernels, block positions, masks in place) on, or all off (the previous
    paths, each held to its own reference by the tests above and in test_*_kernel.py)."""
    field.cells_in_block_order = field.hidden_on_mask = on
    field._ray_caster().compiled = field._floater_filter().compiled = on
    field._floater_filter().keep_by_cell = on
    for patches in field._hidden.values():
        patches.compiled = on
    for _, pruned in field._pruned.values():
        pruned.vectorised = pruned.compiled = on
    for _, growth in field._growths.values():
        growth.fast = growth.compiled = on
    for _, pieces in field._piece_finders.values():
        pieces.fast = on


def test_a_fine_click_selects_the_same_on_the_fast_paths_as_on_the_previous_ones(monkeypatch) -> None:
    # The fast paths meet inside `FeatureField.segment`: growth's mask over the block positions, the pieces it
    # dropped (over the WHOLE thresholded selection's positions), the floater filter writing the mask from the grown
    # positions. Each is tested alone above; this holds the whole click to the previous paths, with pieces found.
    from backend.synthetic import orbit_cameras

    synth, field = _tabletop_click_field(seed=1, fine_noise=0.5, fine_labels=True)
    dropped = []
    real = SeparatePieces.after_growth

    def spy(self, selected, keep, *args, **kwargs):
        dropped.append(int((~keep).sum()))
        return real(self, selected, keep, *args, **kwargs)

    monkeypatch.setattr(SeparatePieces, "after_growth", spy)
    differ = 0
    for cam in orbit_cameras(synth, views=3, resolution=96, seed=1):
        for y in range(8, 96, 11):
            for x in range(8, 96, 11):
                _fast_paths(field, True)
                new = field.segment(cam, [(float(x), float(y))], level="fine").mask
                _fast_paths(field, False)
                differ += not np.array_equal(new, field.segment(cam, [(float(x), float(y))], level="fine").mask)
    assert sum(d > 0 for d in dropped) >= 3  # growth dropped something and the pieces step ran on it
    assert differ == 0

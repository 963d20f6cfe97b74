"""Where a fine click's CPU time goes (`time.thread_time`, far below the wall clock on a loaded box): the ray cast
and blend, the blocked product over the fine bank (coarse ⊕ fine), the growth from the clicked Gaussians
(`NeighbourGrowth.keep_nodes` on the selection's `PrunedBank` positions: one compiled search,
features/_grow_kernels.py), the pieces growth dropped that are the same part (`SeparatePieces.after_growth`, from
growth's mask: features/_pieces_kernels.py), the floater filter (its cells still in block order after the growth),
the [N] mask and the hidden patches, and the whole `FeatureField.segment`. Beside them, on the same selections and
interleaved so that the same load hits both: the growth's previous path (`compiled` off: two SciPy breadth-first
searches, over the backbone then the rest), the one before it (`grow_components`: components of the whole selected
subgraph, by Gaussian id) and the pieces' previous path (`SeparatePieces.__call__`: marks by id).

Keys: `click_fine_cpu_{ray,product,grow,pieces,floaters,mask,hidden,segment}_ms`,
`click_fine_cpu_grow_{scipy,previous}_ms`, `click_fine_cpu_pieces_previous_ms` (medians), `click_fine_cpu_grow_p95_ms`,
and `click_fine_grow_mismatches` / `click_fine_pieces_mismatches` (clicks whose growth or pieces differ from the
previous paths').
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .common import Figure, percentile

PARTS = ("ray", "product", "grow", "pieces", "floaters", "mask", "hidden", "segment")


def fine_click_parts(field, cameras: list, pixels: list) -> dict[str, float]:
    """The parts of each fine click, as `FeatureField._segment` runs them on the fast path."""
    from backend.features.threads import compute_threads

    level = "fine"
    bank = field._bank(level, None)
    pruned = field._pruned_bank(level, None, bank)
    growth = field._growth(level, None, bank)
    pieces = field._pieces(level, None, bank)
    patches = field._hidden_patches(level)
    cells = field._cells_in_block_order(level, None)
    cut = growth.edge_cut(field.impl.grow_edge_cos(level))
    piece_cut = growth.edge_cut(field.impl.piece_cos(level))
    keep_ratio = field.impl.floater_keep_ratio(level)
    parts: dict[str, list[float]] = {k: [] for k in (*PARTS, "scipy", "previous", "pieces_previous")}
    grow_mismatches = pieces_mismatches = 0
    clock = time.thread_time
    with compute_threads():
        for k, (cam, px) in enumerate(zip(cameras, pixels, strict=True)):
            t0 = clock()
            q, seeds = field._queries(cam, [px], level, None)
            t1 = clock()
            positions, _ = pruned.select_positions(q, None, field.default_threshold(level))
            selected = pruned.perm[positions]
            parts["ray"].append(t1 - t0)
            parts["product"].append(clock() - t1)
            keeps = {}
            for compiled in (True, False) if k % 2 else (False, True):  # the compiled search and the SciPy one
                growth.compiled = compiled
                t0 = clock()
                keeps[compiled] = growth.keep_nodes(positions, seeds, edge_cos=cut)
                parts["grow" if compiled else "scipy"].append(clock() - t0)
            growth.compiled = True
            keep = keeps[True]
            every = np.ones(positions.size, dtype=bool)
            grow_mismatches += not np.array_equal(
                every if keep is None else keep, every if keeps[False] is None else keeps[False]
            )
            grown, grown_cells = selected, cells[positions]
            if keep is not None:
                grown, grown_cells = grown[keep], grown_cells[keep]
            extra = {True: np.zeros(0, np.int64), False: np.zeros(0, np.int64)}
            for fast in (True, False) if k % 2 else (False, True):
                t0 = clock()
                if grown.size != selected.size:
                    if fast:
                        extra[fast] = pieces.after_growth(
                            selected,
                            keep,
                            grown,
                            positions,
                            growth.rank,
                            seeds,
                            piece_cos=piece_cut,
                            block_bank=pruned,  # as `FeatureField.segment` passes it (`pieces_by_node`)
                        )
                    else:
                        extra[fast] = pieces(selected, grown, seeds, piece_cos=piece_cut)
                parts["pieces" if fast else "pieces_previous"].append(clock() - t0)
            pieces_mismatches += not np.array_equal(extra[True], extra[False])
            t0 = clock()
            kept = field._floater_filter()(grown, seeds, keep_ratio=keep_ratio, cells=grown_cells)
            if extra[True].size:
                kept = np.concatenate([kept, extra[True]])
            t1 = clock()
            out = np.zeros(field.num_gaussians, dtype=bool)
            out[kept] = True
            t2 = clock()
            if patches is not None:
                patches.follow(out, seeds)
            t3 = clock()
            field.segment(cam, [px], level=level)
            t4 = clock()
            previous = growth.grow_components(selected, seeds, edge_cos=cut)
            t5 = clock()
            grow_mismatches += not np.array_equal(np.sort(grown), np.sort(previous))
            for key, dt in zip(
                ("floaters", "mask", "hidden", "segment", "previous"),
                (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                strict=True,
            ):
                parts[key].append(dt)
    out = {f"click_fine_cpu_{key}_ms": percentile(np.multiply(parts[key], 1e3), 50) for key in PARTS}
    out["click_fine_cpu_grow_p95_ms"] = percentile(np.multiply(parts["grow"], 1e3), 95)
    out["click_fine_cpu_grow_scipy_ms"] = percentile(np.multiply(parts["scipy"], 1e3), 50)
    out["click_fine_cpu_grow_previous_ms"] = percentile(np.multiply(parts["previous"], 1e3), 50)
    out["click_fine_cpu_pieces_previous_ms"] = percentile(np.multiply(parts["pieces_previous"], 1e3), 50)
    out["click_fine_grow_mismatches"] = grow_mismatches
    out["click_fine_pieces_mismatches"] = pieces_mismatches
    return out


def fine_click_figures(r: dict[str, Any], label: str) -> list[Figure]:
    if "click_fine_cpu_segment_ms" not in r:
        return []
    cpu = {k: r[f"click_fine_cpu_{k}_ms"] for k in PARTS}
    scipy, previous = r["click_fine_cpu_grow_scipy_ms"], r["click_fine_cpu_grow_previous_ms"]
    pieces_previous = r["click_fine_cpu_pieces_previous_ms"]
    return [
        Figure(
            "latency",
            f"click, fine: CPU time of a click p50, {label}",
            cpu["segment"],
            "ms",
            f"time.thread_time: ray cast + blend + query {cpu['ray']:.1f}, blocked product {cpu['product']:.1f}, "
            f"growth {cpu['grow']:.2f}, pieces {cpu['pieces']:.2f}, floater filter {cpu['floaters']:.2f}, "
            f"[N] mask {cpu['mask']:.2f}, hidden patches {cpu['hidden']:.2f} (medians of each part)",
            "click_fine_cpu_segment_ms",
        ),
        Figure(
            "latency",
            f"click, fine: growth from the click, CPU p50, {label}",
            cpu["grow"],
            "ms",
            f"one compiled search over the selection's block positions (p95 {r['click_fine_cpu_grow_p95_ms']:.2f}); "
            f"the previous path (two SciPy searches) {scipy:.2f} ms on the same selections: "
            f"×{scipy / max(cpu['grow'], 1e-9):.1f}, the one before it (components of the selected subgraph by id) "
            f"{previous:.2f} ms; {int(r['click_fine_grow_mismatches'])} of {int(r['clicks'])} growths differ",
            "click_fine_cpu_grow_ms",
        ),
        Figure(
            "latency",
            f"click, fine: pieces growth dropped, CPU p50, {label}",
            cpu["pieces"],
            "ms",
            f"from growth's mask over the selection's nodes; the previous path (marks by id) {pieces_previous:.2f} ms: "
            f"×{pieces_previous / max(cpu['pieces'], 1e-9):.1f}; {int(r['click_fine_pieces_mismatches'])} of "
            f"{int(r['clicks'])} differ",
            "click_fine_cpu_pieces_ms",
        ),
    ]

"""Where a fine click's CPU time goes (`time.thread_time`, far below the wall clock on a loaded box): the ray cast
and blend, the blocked product over the fine bank (coarse ⊕ fine), the growth from the clicked Gaussians
(`NeighbourGrowth.keep_nodes`: the selection's `PrunedBank` positions, the backbone search then the rest's rows),
the floater filter (its cells still in block order after the growth), and the whole `FeatureField.segment`. The
growth's previous path (`NeighbourGrowth.grow_components`: components of the whole selected subgraph, by Gaussian
id) runs on the same selections, interleaved, so the two are measured under the same load.

Keys: `click_fine_cpu_{ray,product,grow,floaters,segment}_ms`, `click_fine_cpu_grow_previous_ms` (medians) and
`click_fine_grow_mismatches` (clicks whose growth differs from the previous path's).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .common import Figure, percentile


def fine_click_parts(field, cameras: list, pixels: list) -> dict[str, float]:
    """The parts of each fine click, as `FeatureField._segment` runs them on the fast path."""
    from backend.features.threads import compute_threads

    level = "fine"
    bank = field._bank(level, None)
    pruned = field._pruned_bank(level, None, bank)
    growth = field._growth(level, None, bank)
    cells = field._cells_in_block_order(level, None)
    cut = growth.edge_cut(field.impl.grow_edge_cos(level))
    keep_ratio = field.impl.floater_keep_ratio(level)
    parts: dict[str, list[float]] = {k: [] for k in ("ray", "product", "grow", "floaters", "segment", "previous")}
    mismatches = 0
    with compute_threads():
        for cam, px in zip(cameras, pixels, strict=True):
            t0 = time.thread_time()
            q, seeds = field._queries(cam, [px], level, None)
            t1 = time.thread_time()
            positions, _ = pruned.select_positions(q, None, field.default_threshold(level))
            selected = pruned.perm[positions]
            t2 = time.thread_time()
            keep = growth.keep_nodes(positions, seeds, edge_cos=cut)
            grown, grown_cells = selected, cells[positions]
            if keep is not None:
                grown, grown_cells = grown[keep], grown_cells[keep]
            t3 = time.thread_time()
            field._floater_filter()(grown, seeds, keep_ratio=keep_ratio, cells=grown_cells)
            t4 = time.thread_time()
            field.segment(cam, [px], level=level)
            t5 = time.thread_time()
            previous = growth.grow_components(selected, seeds, edge_cos=cut)
            t6 = time.thread_time()
            mismatches += not np.array_equal(np.sort(grown), np.sort(previous))
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
                parts[key].append(dt * 1e3)
    out = {f"click_fine_cpu_{key}_ms": percentile(parts[key], 50) for key in parts if key != "previous"}
    out["click_fine_cpu_grow_previous_ms"] = percentile(parts["previous"], 50)
    out["click_fine_grow_mismatches"] = mismatches
    return out


def fine_click_figures(r: dict[str, Any], label: str) -> list[Figure]:
    if "click_fine_cpu_segment_ms" not in r:
        return []
    cpu = {k: r[f"click_fine_cpu_{k}_ms"] for k in ("ray", "product", "grow", "floaters", "segment")}
    previous = r["click_fine_cpu_grow_previous_ms"]
    return [
        Figure(
            "latency",
            f"click, fine: CPU time of a click p50, {label}",
            cpu["segment"],
            "ms",
            f"time.thread_time: ray cast + blend + query {cpu['ray']:.1f}, blocked product {cpu['product']:.1f}, "
            f"growth {cpu['grow']:.1f}, floater filter {cpu['floaters']:.1f} (medians of each part)",
            "click_fine_cpu_segment_ms",
        ),
        Figure(
            "latency",
            f"click, fine: growth from the click, CPU p50, {label}",
            cpu["grow"],
            "ms",
            f"backbone search over the selection's block positions, then the rest's rows; the previous path "
            f"(components of the selected subgraph by id) {previous:.1f} ms on the same selections: "
            f"×{previous / max(cpu['grow'], 1e-9):.2f}; {int(r['click_fine_grow_mismatches'])} of {int(r['clicks'])} "
            f"growths differ from it",
            "click_fine_cpu_grow_ms",
        ),
    ]

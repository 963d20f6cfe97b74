"""The click's blocked bank on a real capture: features our code did not make, selections against the reference.

The latency benchmark's features come from our synthetic scenes, grouped as our recipe groups them. Here the bank is
made from a real splat file's own attributes (colour, position, scale, rotation, opacity: 12 or 24 unit dimensions,
grouped as that capture happens to be), and for clicks at random Gaussians, one to three positives, some with a
negative, at three thresholds, `PrunedBank.select` is compared with the whole-bank reference (`reference_select`).
Beside it, the product and threshold step over the same runs two ways: the tiles' one compiled pass
(`_lane_kernels.lane_products`) and the previous path (OpenBLAS's matrix-vector product run by run over the bank
stored [D, N], then the threshold).

    python -m bench.real_bank [--model /work/shared/data/real/biker.spz] [--every 1] [--clicks 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODELS = (Path("/work/shared/data/real/biker.spz"), Path("/work/shared/data/real/biker.compressed.ply"))


def capture_features(scene, dims: int) -> torch.Tensor:  # → [dims, N] unit columns from the splats' attributes
    """Centred, unit-length rows of the capture's own attributes (no training: what a real scene's spread of
    values looks like to the blocks), the first `dims` of them."""
    means = scene.means.float()
    parts = [
        scene.dc_colors.float(),
        means,
        scene.log_scales.float(),
        means**2,
        torch.nn.functional.normalize(scene.quats.float(), dim=1),
        scene.logit_opacities.float()[:, None],
        means**3,
        scene.dc_colors.float() ** 2,
        scene.log_scales.float()[:, :1] * means[:, :1],
    ]
    f = torch.cat(parts, 1)[:, :dims]
    f = torch.nn.functional.normalize(f - f.mean(0), dim=1)
    return f.T.contiguous()


def compare(bank: torch.Tensor, *, clicks: int, seed: int = 0) -> dict[str, float]:
    """Selections against the reference, and the product step's time both ways (medians over the clicks)."""
    from backend.features._pruned_kernels import comparison_threshold
    from backend.features.pruned import PrunedBank, reference_select
    from backend.features.threads import single_threaded_blas

    rng = np.random.default_rng(seed)
    b = bank.numpy()
    n = b.shape[1]
    pruned = PrunedBank(bank.clone()).warm_up()
    blocked = pruned.columns_between(0, n)  # the previous layout: [D, N] in block order
    mismatches = checked = 0
    shares, tiles_ms, blas_ms = [], [], []
    for trial in range(clicks):
        q = torch.from_numpy(b[:, rng.choice(n, 1 + trial % 3)].T.copy())
        if trial % 2:
            q = torch.nn.functional.normalize(
                q + 0.1 * torch.randn(q.shape, generator=torch.Generator().manual_seed(trial)), dim=1
            )
        neg = torch.from_numpy(b[:, rng.choice(n, 1)].T.copy()) if trial % 5 == 0 else None
        for thr in (0.7, 0.85, 0.95):
            got = np.sort(pruned.select(q, neg, thr)[0])
            mismatches += not np.array_equal(got, reference_select(q, neg, bank, thr))
            checked += 1
        qn = q.numpy().astype(np.float32)
        bounds = pruned.live_bounds(qn, 0.85)
        width = int((bounds[:, 1] - bounds[:, 0]).sum())
        shares.append(width / n)
        t0 = time.perf_counter()
        pruned._select_compiled(qn, None, bounds, width, 0.85)
        tiles_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        with single_threaded_blas():
            out = np.empty(width, np.float32)
            off = 0
            for lo, hi in bounds.tolist():
                s = out[off : off + hi - lo]
                np.matmul(qn[0], blocked[:, lo:hi], out=s)
                for row in qn[1:]:
                    np.maximum(s, row @ blocked[:, lo:hi], out=s)
                off += hi - lo
            np.flatnonzero(out > comparison_threshold(0.85))
        blas_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "gaussians": n,
        "dims": b.shape[0],
        "selections": checked,
        "mismatches": mismatches,
        "bank_back_exact": bool(np.array_equal(pruned.in_gaussian_order(), b)),
        "share_read_p50": float(np.median(shares)),
        "tiles_p50_ms": float(np.median(tiles_ms)),
        "blas_runs_p50_ms": float(np.median(blas_ms)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real_bank", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="a splat file (default: the biker capture)")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th Gaussian (a quicker run)")
    parser.add_argument("--clicks", type=int, default=40)
    args = parser.parse_args(argv)
    if args.every < 1 or args.clicks < 1:
        print("bench.real_bank: --every and --clicks must be at least 1", file=sys.stderr)
        return 2
    from backend.core.errors import SplatsegError
    from backend.io.scene_folder import load_scene

    for path in args.model or DEFAULT_MODELS:
        try:
            scene, _ = load_scene(path)
        except (SplatsegError, OSError) as err:
            print(f"bench.real_bank: {err}", file=sys.stderr)
            return 2
        if args.every > 1:
            scene = scene.subset(torch.arange(0, len(scene), args.every))
        for dims in (12, 24):
            r = compare(capture_features(scene, dims), clicks=args.clicks)
            print(
                f"{path.name}: {r['gaussians']} Gaussians, D={r['dims']}: {r['mismatches']} of {r['selections']} "
                f"selections differ from the whole-bank reference; bank back bit-exact {r['bank_back_exact']}; "
                f"share read p50 {r['share_read_p50']:.2f}; product + threshold p50: tiles {r['tiles_p50_ms']:.3f} ms, "
                f"OpenBLAS run by run {r['blas_runs_p50_ms']:.3f} ms (×{r['blas_runs_p50_ms'] / r['tiles_p50_ms']:.2f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`splatseg synth`: write a synthetic scene (model, cameras, images, ground-truth labels)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..synthetic import write_synthetic_scene

    write_synthetic_scene(
        args.out,
        preset=args.preset,
        seed=args.seed,
        views=args.views,
        resolution=args.resolution,
        num_gaussians=args.gaussians,
        progress=True,
    )
    print(f"wrote a synthetic {args.preset} scene to {args.out}")
    return 0

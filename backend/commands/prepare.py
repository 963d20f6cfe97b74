"""`splatseg prepare`: make the masks every feature method trains from (SAM, a folder, or ground truth)."""

from __future__ import annotations

import argparse

from ..core.errors import SplatsegError


def run(args: argparse.Namespace) -> int:
    from ..masks.prepare import prepare_masks

    if not args.noise >= 0:
        raise SplatsegError(f"--noise must be a number ≥ 0 (0 = clean labels), got {args.noise}")
    masks = prepare_masks(
        args.scene,
        source=args.masks,
        workspace=args.workspace,
        sam_model=args.sam_model,
        sam_checkpoint=args.sam_checkpoint,
        noise_strength=args.noise,
    )
    print(f"wrote {masks.index['source']} masks of {len(masks.views)} views to {masks.root}")
    return 0

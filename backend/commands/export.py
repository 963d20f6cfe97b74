"""`splatseg export`: write the selected Gaussians in one of the export formats; one JSON line."""

from __future__ import annotations

import argparse
import json

from ..core.errors import SplatsegError


def run(args: argparse.Namespace) -> int:
    from ..export import export_selection, trimesh_file_type
    from ..io.scene_folder import load_scene
    from ..io.selection import load_selection

    trimesh_file_type(args.format, args.output)  # a mesh named .glb must be a GLB: refuse before loading anything
    scene, model_path = load_scene(args.scene)
    if args.output.resolve() == model_path.resolve():
        raise SplatsegError(f"refusing to overwrite the input model {model_path}; choose another -o path")
    mask = load_selection(args.selection, len(scene))
    count = export_selection(scene, mask, args.output, format=args.format)
    print(json.dumps({"format": args.format, "count": count, "output": str(args.output)}))
    return 0

"""`splatseg` on the command line: the contract in design.md.

Every user mistake ends as one line on stderr and a non-zero exit (a `SplatsegError`, an argument error or an OS
error on a user path); anything else is a bug and keeps its traceback. Heavy imports (torch, viser) happen inside
the commands so `splatseg --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import SplatsegError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line that says where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _pixel(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"pixel {text!r} is not X,Y (e.g. 120,88)") from None
    return x, y


def _rgb(text: str) -> tuple[float, float, float]:
    try:
        r, g, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"colour {text!r} is not R,G,B in [0, 1] (e.g. 1,1,1)") from None
    return r, g, b


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workspace", type=Path, default=None, help="where splatseg keeps its caches (default SCENE/.splatseg)"
    )


# ---- commands ----
def cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import write_synthetic_scene

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


def cmd_render(args: argparse.Namespace) -> int:
    from .render_view import render_command

    render_command(
        args.scene,
        view=args.view,
        what=args.what,
        out=args.output,
        selection=args.selection,
        background=args.background,
        backend=args.backend,
        workspace=args.workspace,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_selection
    from .io.scene_folder import load_scene
    from .selection import load_selection

    scene, model_path = load_scene(args.scene)
    if args.output.resolve() == model_path.resolve():
        raise SplatsegError(f"refusing to overwrite the input model {model_path}; choose another -o path")
    mask = load_selection(args.selection, len(scene))
    count = export_selection(scene, mask, args.output, format=args.format)
    print(json.dumps({"format": args.format, "count": count, "output": str(args.output)}))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import SECTIONS, run_bench

    unknown = [s for s in args.section or [] if s not in SECTIONS]
    if unknown:
        raise SplatsegError(f"unknown bench section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    run_bench(quick=args.quick, json_out=args.json_out, sections=args.section)
    return 0


def _not_yet(name: str, issue: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise SplatsegError(f"`splatseg {name}` is not implemented yet ({issue}); see README.md for what works today")

    return run


# ---- parser ----
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="splatseg",
        description="Segment pre-trained 3D Gaussian Splatting scenes: click, slide from part to whole, query, export.",
    )
    parser.add_argument("--version", action="version", version=f"splatseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("demo", help="synthetic scene → prepare → train → view, in the browser")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_not_yet("demo", "the viewer is being built"))

    p = sub.add_parser("synth", help="write a procedural scene with ground-truth labels")
    p.add_argument("out", type=Path, help="output scene folder (created; must be empty or a previous synthetic scene)")
    p.add_argument("--preset", default="tabletop", help="scene preset (default: tabletop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=_positive_int, default=36, help="number of orbit cameras (default 36)")
    p.add_argument("--resolution", type=_positive_int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--gaussians", type=_positive_int, default=80_000, help="number of Gaussians (default 80000)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("render", help="render one view of a scene to an image")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--view", required=True, help="camera name (its image stem)")
    p.add_argument("--what", choices=["rgb", "depth", "alpha", "mask"], default="rgb")
    p.add_argument(
        "--selection", type=Path, default=None, help="bool .npy over the model's Gaussians (for --what mask)"
    )
    p.add_argument("--background", type=_rgb, default=(0.0, 0.0, 0.0), help="R,G,B in [0,1] (default 0,0,0)")
    p.add_argument("--backend", choices=["auto", "torch", "gsplat"], default="auto")
    p.add_argument("-o", "--output", type=Path, required=True, help=".png image (depth: 16-bit mm), or .npy raw")
    _add_workspace(p)
    p.set_defaults(func=cmd_render)

    for name, help_text in [
        ("prepare", "compute masks for every view (SAM, user masks or synthetic labels)"),
        ("train", "train per-Gaussian affinity features"),
        ("view", "open the scene in the browser"),
        ("segment", "segment from a click, headless"),
        ("query", "find Gaussians by text"),
    ]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_not_yet(name, "planned"))
    p = sub.add_parser("export", help="write a selection as PLY / splat / labelled PLY / points / mesh")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--selection", type=Path, required=True, help="bool .npy over the model's Gaussians")
    p.add_argument(
        "--format",
        choices=["ply", "inverse-ply", "labels-ply", "splat", "points", "mesh"],
        default="ply",
        help="ply: the selected Gaussians; inverse-ply: the rest; labels-ply: all with a `segment` property",
    )
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="measure speed and accuracy (the README's table)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, skip the long accuracy runs")
    p.add_argument("--json", type=Path, default=None, dest="json_out", help="also write the figures as JSON")
    p.add_argument("--section", action="append", default=None, help="run only this section (repeatable)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SplatsegError as e:
        print(f"splatseg {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"splatseg {args.command}: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"splatseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

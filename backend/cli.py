"""`splatseg` on the command line: the contract in docs/architecture.md.

Every user mistake ends as one line on stderr and a non-zero exit (a `SplatsegError`, an argument error or an OS
error on a user path); anything else is a bug and keeps its traceback. Heavy imports (torch, viser) happen inside
the commands so `splatseg --help` is instant.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .core.errors import SplatsegError

EXIT_USER_ERROR = 2
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
"""A full disk, a file-size limit, a quota, a read-only file system: the user's machine, not a bug."""


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


def _origin(text: str) -> str:
    """An origin as browsers send it: scheme://host[:port], nothing after (a typo would silently match nothing)."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise argparse.ArgumentTypeError(
            f"origin {text!r} is not http(s)://HOST[:PORT] (e.g. https://splats.example.org)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


_GENERATE = "\0generate"  # `--token` given without a value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535 (0 = any free port)")
    return value


def _check_host(host: str) -> None:
    """An address this machine can listen on: resolvable, and one of its own (else binding fails obscurely)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SplatsegError(
            f"--host {host!r} is not an address or a known host name; e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    for family, _, _, _, address in infos:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((address[0], 0))
            except OSError:
                continue
            return
    raise SplatsegError(
        f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine) or 0.0.0.0 (all)"
    )


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workspace", type=Path, default=None, help="where splatseg keeps its caches (default SCENE/.splatseg)"
    )


# ---- commands ----
def cmd_synth(args: argparse.Namespace) -> int:
    from .commands.synth import run

    return run(args)


def cmd_train(args: argparse.Namespace) -> int:
    from .commands.train import run

    return run(args)


def cmd_segment(args: argparse.Namespace) -> int:
    from .commands.segment import run

    return run(args)


def cmd_render(args: argparse.Namespace) -> int:
    from .commands.render import run

    return run(args)


def cmd_view(args: argparse.Namespace) -> int:
    from viewer import ViewerApp
    from viewer.auth import generate_token

    _check_host(args.host)
    token = args.token
    generated = token == _GENERATE or (token is None and args.share)
    if generated:  # --token alone, or --share without one: a share link must never open an unguarded viewer
        token = generate_token()
    app = ViewerApp(
        args.scene,
        host=args.host,
        port=args.port,
        workspace=args.workspace,
        render=args.render,
        token=token,
        share=args.share,
        sa3d_predictor=args.predictor,
        allow_origins=tuple(args.allow_origin),
        background_field=True,  # the first frame does not wait for the features (issue 13: real-size scenes)
    )
    if generated:
        print(f"splatseg view: access token (enter it in the browser): {token}", flush=True)
    print(f"splatseg view: open {app.url} in a browser (Ctrl+C to stop)", flush=True)
    app.wait()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _check_host(args.host)
    app = run_demo(port=args.port, host=args.host, workdir=args.workdir)
    app.wait()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .commands.export import run

    return run(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.run import SECTIONS, run_bench

    unknown = [s for s in args.section or [] if s not in SECTIONS]
    if unknown:
        raise SplatsegError(f"unknown bench section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if args.json_out is not None and not args.json_out.parent.is_dir():  # checked before a run that can take an hour
        raise SplatsegError(f"--json {args.json_out}: folder {args.json_out.parent} does not exist; create it first")
    run_bench(quick=args.quick, json_out=args.json_out, sections=args.section)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from .commands.text import run_query as run

    return run(args)


def cmd_prepare_text(args: argparse.Namespace) -> int:
    from .commands.text import run_prepare_text as run

    return run(args)


def cmd_prepare(args: argparse.Namespace) -> int:
    from .commands.prepare import run

    return run(args)


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
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where the demo scene is cached (default ~/.cache/splatseg/demo)"
    )
    p.set_defaults(func=cmd_demo)

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

    p = sub.add_parser("prepare", help="compute masks for every view (SAM, user masks or synthetic labels)")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument(
        "--masks",
        default="auto",
        metavar="sam|labels|sam-like|geometric|PATH",
        help="mask source: SAM, a synthetic scene's labels (sam-like: with SAM automatic-generator statistics), "
        "geometric (segments of splatseg's own renders by depth, normals and colour: needs no download, rougher "
        "than SAM), or a folder of per-view masks "
        "(default: labels when the scene has labels/, else sam)",
    )
    p.add_argument(
        "--views",
        type=_positive_int,
        default=None,
        help="scenes without cameras: number of virtual orbit cameras (default 48)",
    )
    p.add_argument(
        "--resolution",
        type=_positive_int,
        default=None,
        help="scenes without cameras: virtual camera size in pixels (default 512)",
    )
    p.add_argument("--sam-checkpoint", type=Path, default=None, help="SAM weights (.pth); needed offline")
    p.add_argument(
        "--sam-model",
        choices=["vit_h", "vit_l", "vit_b"],
        default=None,
        help="default: from the checkpoint name, else vit_h",
    )
    p.add_argument("--noise", type=float, default=1.0, help="labels: SAM-like noise strength, 0 = clean (default 1)")
    _add_workspace(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train per-Gaussian affinity features (after `prepare`)")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--method", choices=["click", "saga"], default="click", help="Click-Gaussian (default) or SAGA")
    p.add_argument("--iterations", type=_positive_int, default=None, help="training steps (default: the method's)")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where to train: auto (default) = the CUDA GPU when torch sees one, else the CPU",
    )
    _add_workspace(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("segment", help="segment from a click, headless; prints one JSON line")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--view", default=None, help="camera name (its image stem); with --prompts, the default view")
    p.add_argument("--pixel", type=_pixel, action="append", default=None, help="X,Y full-resolution pixel to click")
    p.add_argument(
        "--prompts",
        type=Path,
        default=None,
        metavar="FILE.json",
        help='many prompts in one call, one JSON line each: [{"pixels": [[X, Y]], "negatives": [], "view": NAME, '
        '"level": ..., "scale": ..., "threshold": ...}, ...] (only "pixels" is required)',
    )
    p.add_argument("--negative", type=_pixel, action="append", default=[], help="X,Y pixel whose segment to remove")
    p.add_argument(
        "--method",
        choices=["click", "saga", "sa3d"],
        default=None,
        help="default: the last trained; sa3d: no training (SAM masks lifted view by view)",
    )
    granularity = p.add_mutually_exclusive_group()
    granularity.add_argument("--level", choices=["coarse", "fine"], default=None, help="click: object or part")
    granularity.add_argument("--scale", type=float, default=None, help="SAGA: 3D scale in scene units")
    p.add_argument("--threshold", type=float, default=None, help="similarity to select (default: the method's)")
    p.add_argument("--mask-out", type=Path, default=None, help="write the selection as a bool .npy")
    p.add_argument("--out", type=Path, default=None, help="write the selected Gaussians as a PLY")
    sa3d = p.add_argument_group("--method sa3d")
    sa3d.add_argument("--views", type=_positive_int, default=None, help="views to self-prompt in (default 8)")
    sa3d.add_argument(
        "--predictor",
        default=None,
        metavar="sam|labels|FOLDER",
        help="the 2D segmenter SA3D prompts: SAM (default), a synthetic scene's ground-truth labels, or a folder of "
        "per-view masks (as `prepare --masks FOLDER` reads)",
    )
    sa3d.add_argument("--masks", choices=["sam", "labels"], default=None, help=argparse.SUPPRESS)  # old --predictor
    sa3d.add_argument("--sam-checkpoint", type=Path, default=None, help="SAM weights (.pth); needed offline")
    sa3d.add_argument(
        "--sam-model", choices=["vit_h", "vit_l", "vit_b"], default=None, help="default: from the file name"
    )
    _add_workspace(p)
    p.set_defaults(func=cmd_segment)
    p = sub.add_parser("view", help="open the scene in the browser")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--render", choices=["client", "server"], default="client", help="server: gsplat frames (CUDA)")
    p.add_argument(
        "--token",
        nargs="?",
        const=_GENERATE,
        default=None,
        help="clients must enter this token before they see the scene (given alone: a random one is printed)",
    )
    p.add_argument(
        "--share", action="store_true", help="also print a public share link (needs internet; implies --token)"
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        type=_origin,
        default=[],
        metavar="URL",
        help="also accept browser pages from this origin (a reverse proxy's address, e.g. https://splats.example.org)",
    )
    p.add_argument(
        "--predictor",
        default="sam",
        metavar="sam|labels|FOLDER",
        help="what the SA3D panel prompts: SAM (default; loads on first use), a synthetic scene's labels, or a folder "
        "of per-view masks",
    )
    _add_workspace(p)
    p.set_defaults(func=cmd_view)
    p = sub.add_parser("export", help="write a selection as PLY / splat / labelled PLY / points / mesh")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--selection", type=Path, required=True, help="bool .npy over the model's Gaussians")
    p.add_argument(
        "--format",
        choices=["ply", "inverse-ply", "labels-ply", "compressed-ply", "splat", "points", "mesh"],
        default="ply",
        help="ply: the selected Gaussians; inverse-ply: the rest; labels-ply: all with a `segment` property; "
        "compressed-ply: the selection as a SuperSplat compressed PLY; "
        "points, mesh: in the format -o names (.ply, .glb, .obj; mesh also .stl)",
    )
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("query", help="find Gaussians by text (needs `prepare-text`)")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("text", help='what to find, e.g. "the red mug"')
    p.add_argument("--top", type=_positive_int, default=5, help="ranked clusters to print (default 5)")
    p.add_argument(
        "--threshold",
        type=float,
        nargs="?",
        const=0.5,
        default=None,
        help="select every cluster with relevancy ≥ T (default 0.5 when given bare); without it, the best cluster",
    )
    p.add_argument("--level", choices=["coarse", "fine", "both"], default="both", help="objects, parts or both")
    p.add_argument("--mask-out", type=Path, default=None, help="write the selection as a bool .npy")
    p.add_argument("--out", type=Path, default=None, help="write the selected Gaussians as a PLY")
    p.add_argument("--clip-model", default=None, help="open_clip model[:tag] (default: the one prepare-text used)")
    p.add_argument("--clip-checkpoint", type=Path, default=None, help="CLIP weights file (needed offline)")
    p.add_argument(
        "--snap", choices=["coarse", "fine"], default=None, help="language field: select whole clusters of this level"
    )
    _add_workspace(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("prepare-text", help="CLIP-embed every cluster for text queries (after `train`)")
    p.add_argument("scene", type=Path, help="scene folder (or model file)")
    p.add_argument("--clip-model", default="ViT-B-16", help="open_clip model[:tag] (default ViT-B-16, laion2b)")
    p.add_argument("--clip-checkpoint", type=Path, default=None, help="CLIP weights file (needed offline)")
    p.add_argument("--views", type=_positive_int, default=None, help="views rendered per cluster (default 10)")
    p.add_argument("--backend", choices=["auto", "torch", "gsplat"], default="auto")
    p.add_argument(
        "--field", action="store_true", help="build the per-Gaussian language field from the masks (finds parts too)"
    )
    _add_workspace(p)
    p.set_defaults(func=cmd_prepare_text)

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
    except OSError as e:
        if e.errno not in _DISK_ERRNOS:
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        print(
            f"splatseg {args.command}: error: {e.strerror or e}{where}; free some space or write elsewhere "
            "(nothing was left half-written)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"splatseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

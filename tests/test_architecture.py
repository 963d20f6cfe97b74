"""Imports flow one way (docs/architecture.md): a module imports only from its own package or from a lower layer.

Every module of `backend/`, `viewer/` and `bench/` is parsed with `ast` (no import is executed), and each
`import`/`from ... import` it holds — lazy ones inside functions and `TYPE_CHECKING` ones included — is checked
against the layer table below. A second check finds cycles between packages, so two packages of the same layer
cannot lean on each other either.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "viewer", "bench")

LAYERS: dict[str, int] = {
    "backend": 0,  # the package itself (its version string)
    "backend.core": 0,  # scene, camera, selection types, errors, rotations: no I/O
    "backend.io": 1,  # files in and out
    "backend.workspace": 2,
    "backend.render": 2,
    "backend.viewpoints": 2,
    "backend.masks": 3,
    "backend.features": 3,
    "backend.lift": 3,
    "backend.language": 3,
    "backend.synthetic": 3,
    "backend.export": 3,
    "backend.segment": 3,
    "backend.commands": 4,  # argument checks, printing, JSON
    "viewer": 4,  # the viser app: above the backend, beside the commands
    "backend.demo": 5,  # the composition roots: the only backend modules that may import viewer
    "backend.cli": 6,
    "bench": 7,  # a leaf: nothing imports it but the CLI's `bench` command
}
SAME_LAYER_OK = {2, 3}
"""Within these layers one package may use another (render ↔ viewpoints, features → masks); the cycle check keeps
them honest. Layer 4 may not: the viewer never calls a command and a command never calls the viewer."""
EXCEPTIONS = {("backend.cli", "bench")}
"""`splatseg bench` runs the benchmarks: the composition root may reach the leaf."""


def group_of(module: str) -> str:
    """The longest entry of LAYERS that is `module` or a package above it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS and (name != "backend" or module == "backend"):  # "backend" alone is only its __init__
            return name
    raise AssertionError(
        f"{module} has no layer: add it (or its package) to LAYERS in tests/test_architecture.py and to "
        "docs/architecture.md"
    )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved."""
    mod = module_name(path)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return [(t, line) for t, line in found if t.split(".")[0] in PACKAGES]


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def edges() -> list[tuple[str, str, str]]:
    """(importer group, imported group, "file:line") for every import that leaves its group."""
    out = []
    for path in project_files():
        src = group_of(module_name(path))
        for target, line in imports_of(path):
            dst = group_of(target)
            if dst != src:
                out.append((src, dst, f"{path.relative_to(ROOT)}:{line} imports {target}"))
    return out


def test_every_module_has_a_layer():
    for path in project_files():
        group_of(module_name(path))  # raises with the fix in its message


def test_imports_point_down():
    wrong = []
    for src, dst, where in edges():
        if (src, dst) in EXCEPTIONS:
            continue
        a, b = LAYERS[src], LAYERS[dst]
        if b > a or (b == a and a not in SAME_LAYER_OK):
            wrong.append(f"{where}: {src} (layer {a}) may not import {dst} (layer {b})")
    assert not wrong, "upward or sideways imports (see docs/architecture.md for the layers):\n" + "\n".join(wrong)


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for src, dst, at in edges():
        graph[src].add(dst)
        where.setdefault((src, dst), at)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            steps = [where[(a, b)] for a, b in itertools.pairwise(cycle)]
            raise AssertionError("import cycle " + " → ".join(cycle) + ":\n" + "\n".join(steps))


def test_the_checker_sees_a_bad_import(tmp_path):
    """The rule itself can fail: an upward import written into a throwaway module is found and named."""
    bad = tmp_path / "backend" / "core" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..features import field\nfrom viewer.app import ViewerApp\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = [(group_of(t), line) for t, line in imports_of(bad)]
    finally:
        ROOT = old
    assert found == [("backend.features", 1), ("viewer", 2)]
    assert all(LAYERS[g] > LAYERS["backend.core"] for g, _ in found)


def test_tests_import_helpers_not_benchmarks():
    """Shared test code lives in tests/helpers/; only the benchmark's own test may import `bench`."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "test_bench.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            wrong += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "bench"
            ]
    assert not wrong, "tests import shared helpers from tests/helpers/, not from benchmarks:\n" + "\n".join(wrong)

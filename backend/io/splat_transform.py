"""PlayCanvas `splat-transform`, the converter behind SuperSplat, as an independent reader and writer of splat files.

splatseg's exports are only useful if other tools read them, and its readers are only right if they agree with
what other tools write. `splat-transform` (npm `@playcanvas/splat-transform`, MIT) reads .ply, .compressed.ply,
.splat, .spz, .sog and writes .ply, .compressed.ply, .spz, .splat, .sog: the interop tests (`tests/test_interop.py`)
and the interop bench use it as the oracle.

It is pinned (`VERSION`) and installed from npm on first use into a folder git ignores (`<repo>/.interop`, or
`$SPLATSEG_INTEROP_DIR`), once per machine: `npm install --ignore-scripts` fetches the package and its npm
dependencies only and runs nothing (its WebGPU dependency ships its binaries inside the npm package; no browser or
other download happens). Missing `node`/`npm`, no registry, or a failed install is `SplatTransformUnavailable`, which
the tests turn into a skip that says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGE = "@playcanvas/splat-transform"
VERSION = "3.7.0"
INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 300


class SplatTransformUnavailable(RuntimeError):
    """splat-transform cannot be installed or run here (no node/npm, no registry access, install failed)."""


def default_prefix() -> Path:
    """Where the npm package is installed: `$SPLATSEG_INTEROP_DIR`, else `.interop/` at the repository root."""
    env = os.environ.get("SPLATSEG_INTEROP_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".interop"


class SplatTransform:
    """One installed splat-transform: run it on files, ask it what it read."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.cli = prefix / "node_modules" / ".bin" / "splat-transform"

    def run(self, *args: str | os.PathLike[str], timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """`splat-transform ARGS` (quiet, overwriting); raises `RuntimeError` with its stderr when it fails."""
        command = [str(self.cli), "-q", "-w", *map(str, args)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_node_env())
        if proc.returncode != 0:
            raise RuntimeError(
                f"splat-transform {' '.join(map(str, args))} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def convert(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
        """Read SOURCE and write TARGET, each in the format its name says (`.ply`, `.compressed.ply`, `.spz`, …)."""
        self.run(source, target)
        return Path(target)

    def info(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """What splat-transform read from PATH: format, numGaussians, shBands, extraColumns (its `--info json`)."""
        return _json_of(self.run(path, "null", "--info", "json").stdout)

    def stats(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Per-column statistics of what it read (its `--stats json`): min, max, median, mean in *activated* form
        (scale = exp, opacity = sigmoid, f_dc = base colour), one list entry per column of `stats[0].columns`."""
        return _json_of(self.run(path, "null", "--stats", "json").stdout)

    def version(self) -> str:
        proc = subprocess.run([str(self.cli), "--version"], capture_output=True, text=True, timeout=60, env=_node_env())
        return (proc.stdout + proc.stderr).strip()


def _json_of(stdout: str) -> dict[str, Any]:
    """The JSON object in splat-transform's stdout (it prints a banner line before it)."""
    start = stdout.find("{")
    end = stdout.rfind("}")
    if start < 0 or end < start:
        raise RuntimeError(f"splat-transform printed no JSON: {stdout[-500:]!r}")
    return json.loads(stdout[start : end + 1])


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_COLOR="1", npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")
    return env


def ensure_splat_transform(prefix: Path | None = None) -> SplatTransform:
    """The pinned splat-transform, installed into PREFIX first if it is not there yet (one install per machine).

    Concurrent callers (parallel test runs) take a file lock, so one installs and the others wait and reuse it.
    """
    prefix = default_prefix() if prefix is None else Path(prefix)
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SplatTransformUnavailable("node and npm are not on PATH (install Node.js to run the interop checks)")
    tool = SplatTransform(prefix)
    if _installed(tool):
        return tool
    prefix.mkdir(parents=True, exist_ok=True)
    with _locked(prefix / ".install.lock"):
        if not _installed(tool):
            _install(prefix)
    if not _installed(tool):
        raise SplatTransformUnavailable(
            f"{PACKAGE}@{VERSION} installed into {prefix} but `splat-transform --version` does not answer "
            f"{VERSION} ({tool.version() if tool.cli.exists() else 'no CLI'}); Node.js may be too old"
        )
    return tool


def _installed(tool: SplatTransform) -> bool:
    if not tool.cli.exists():
        return False
    try:
        return f"v{VERSION}" in tool.version()
    except (OSError, subprocess.SubprocessError):
        return False


def _install(prefix: Path) -> None:
    # A package.json of its own keeps npm from walking up into any project above the prefix.
    manifest = prefix / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "splatseg-interop", "private": True}) + "\n")
    command = [
        "npm",
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",  # fetch the packages, run nothing (no postinstall downloads)
        "--no-save",
        "--loglevel=error",
        f"{PACKAGE}@{VERSION}",
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=_node_env())
    except subprocess.TimeoutExpired:
        raise SplatTransformUnavailable(f"`npm install {PACKAGE}@{VERSION}` took over {INSTALL_TIMEOUT_S} s") from None
    except OSError as e:
        raise SplatTransformUnavailable(f"could not run npm ({e})") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise SplatTransformUnavailable(f"`npm install {PACKAGE}@{VERSION}` failed (exit {proc.returncode}): {tail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

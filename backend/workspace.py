"""The workspace: where everything splatseg computes for a scene lives (`SCENE/.splatseg/` or `--workspace DIR`).

`manifest.json` says, for each file, which command and parameters made it, with which splatseg version and when,
and the inputs it was computed from (path, size, mtime, sha256). Before a cache is used its inputs are compared
with the files on disk, so retraining the 3DGS model makes the masks and features computed from the old one stale,
and the CLI says which command to run again instead of segmenting with features that belong to other Gaussians.

Tensors are stored with safetensors (never pickle: a workspace may come from someone else). Every write is atomic.
Input files are only ever read.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shlex
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

import backend
from backend.core.errors import InputError, StaleCacheError
from backend.io.atomic import atomic_path, write_text_atomic

try:
    import fcntl
except ImportError:  # Windows: only the in-process lock
    fcntl = None  # type: ignore[assignment]

WORKSPACE_DIRNAME = ".splatseg"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_HASH_CHUNK = 1 << 20  # bytes read at a time: a 250 MB model is hashed in constant memory


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


class Workspace:
    """One scene's workspace folder and its manifest.

    The folder is created on the first write, not here, so that reading a scene never leaves a `.splatseg/` behind.
    """

    def __init__(self, scene_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> None:
        self.scene_dir = Path(scene_dir)
        """The scene folder; relative input paths in the manifest are relative to it."""
        if root is None:
            if not self.scene_dir.is_dir():
                what = "is a file" if self.scene_dir.exists() else "does not exist"
                raise InputError(f"scene folder {self.scene_dir} {what}; give the scene folder (or --workspace DIR)")
            root = self.scene_dir / WORKSPACE_DIRNAME
        self.root = Path(root)
        """The workspace folder."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"workspace {self.root} is a file, not a folder; give a folder to --workspace")
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) → sha256

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # ---- paths -------------------------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Where workspace file `name` (a relative path such as `features/click.safetensors`) lives."""
        parts = PurePosixPath(name).parts
        if not name or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
            raise ValueError(f"workspace file name {name!r} must be a relative path inside the workspace")
        if name == MANIFEST_NAME:
            raise ValueError(f"{MANIFEST_NAME} is the workspace's own record; pick another name")
        return self.root.joinpath(*parts)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    # ---- manifest ----------------------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The manifest as stored (an empty one when the workspace has none yet)."""
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": MANIFEST_FORMAT, "files": {}}
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as e:
            raise StaleCacheError(
                f"{self.manifest_path} is not valid JSON ({e}); delete the workspace {self.root} and run "
                f"`splatseg prepare {_quote(self.scene_dir)}` again"
            ) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise StaleCacheError(
                f"{self.manifest_path} is not a splatseg manifest; delete the workspace {self.root} and run "
                f"`splatseg prepare {_quote(self.scene_dir)}` again"
            )
        return manifest

    def entry(self, name: str) -> dict[str, Any] | None:
        """The manifest record of `name`: made_by, params, splatseg_version, time, inputs; None if unrecorded."""
        self.path(name)  # validates the name
        return self.manifest()["files"].get(name)

    def has(self, name: str) -> bool:
        """Whether `name` is recorded in the manifest and present on disk (fresh or not)."""
        return self.entry(name) is not None and self.path(name).exists()

    def record(
        self,
        name: str,
        *,
        made_by: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, str | os.PathLike[str]],
    ) -> None:
        """Record how workspace file `name` (already written) was made and which input files it depends on.

        `made_by` is the command that makes it (e.g. "prepare", "train"): stale-cache messages tell the user to run
        `splatseg MADE_BY SCENE` again. `params` must be JSON-serialisable (Paths and numpy scalars are converted).
        """
        if not self.path(name).exists():
            raise FileNotFoundError(f"record {name!r}: write {self.path(name)} before recording it")
        with self._manifest_lock():
            manifest = self.manifest()
            known = {
                (rec["path"], rec["size"], rec["mtime_ns"]): rec["sha256"]
                for entry in manifest["files"].values()
                for rec in entry.get("inputs", {}).values()
            }
            fingerprints = {key: self._fingerprint(Path(p), known) for key, p in inputs.items()}
            manifest["format"] = MANIFEST_FORMAT
            manifest["files"][name] = {
                "made_by": made_by,
                "params": json.loads(json.dumps(dict(params), default=_json_default)),
                "splatseg_version": backend.__version__,
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "inputs": fingerprints,
            }
            self._write_manifest(manifest)

    def check_fresh(self, name: str, *, inputs: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
        """Raise `StaleCacheError` unless `name` exists and every input it was made from is unchanged.

        Size and mtime equal to the record means unchanged, without reading the file; otherwise the file is hashed,
        and a file that was only touched (same sha256) is fresh. `inputs`, when given, are the files the caller
        would compute `name` from now (e.g. {"model": find_model(SCENE)}): a different file (the trainer wrote a
        later iteration) is stale too.
        """
        entry = self.entry(name)
        if entry is None or not self.path(name).exists():
            raise StaleCacheError(
                f"{name} has not been computed in the workspace {self.root}; run `splatseg prepare "
                f"{_quote(self.scene_dir)}` (and `splatseg train` for features) first"
            )
        rerun = f"run `splatseg {entry['made_by']} {_quote(self.scene_dir)}` again"
        touched: dict[str, dict[str, Any]] = {}
        for key, rec in entry["inputs"].items():
            recorded = self._resolve(rec["path"])
            if inputs is not None and key in inputs:
                current = Path(inputs[key])
                if current.resolve() != recorded.resolve():
                    raise StaleCacheError(
                        f"{name} was computed from {recorded}, but the scene's {key} is now {current}; {rerun}"
                    )
            try:
                stat = recorded.stat()
            except FileNotFoundError:
                raise StaleCacheError(f"{name} was computed from {recorded}, which no longer exists; {rerun}") from None
            if stat.st_size == rec["size"] and stat.st_mtime_ns == rec["mtime_ns"]:
                continue
            if stat.st_size != rec["size"]:
                raise StaleCacheError(f"{name} was computed from an older {recorded.name} (size changed); {rerun}")
            if self._sha256(recorded, stat) != rec["sha256"]:
                raise StaleCacheError(f"{name} was computed from an older {recorded.name} (sha256 changed); {rerun}")
            touched[key] = {**rec, "mtime_ns": stat.st_mtime_ns}
        if touched:  # same content, new mtime: remember it so the next check skips the hash
            with self._manifest_lock():
                manifest = self.manifest()
                stored = manifest["files"].get(name)
                if stored is not None:
                    stored["inputs"].update(touched)
                    self._write_manifest(manifest)

    # ---- tensors -----------------------------------------------------------------------------------------------
    def save_tensors(
        self,
        name: str,
        tensors: Mapping[str, np.ndarray | Tensor],
        *,
        made_by: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> Path:
        """Write named arrays to a safetensors file in the workspace (atomically) and record it; returns its path."""
        as_torch = {key: _cpu_tensor(key, value) for key, value in tensors.items()}
        target = self.path(name)
        with atomic_path(target) as tmp:
            safetensors.torch.save_file(as_torch, str(tmp))
        self.record(name, made_by=made_by, params=params or {}, inputs=inputs or {})
        return target

    def load_tensors(self, name: str, *, verify: bool = True) -> dict[str, Tensor]:
        """Read a safetensors file from the workspace (CPU tensors), checking first that it is fresh."""
        if verify:
            self.check_fresh(name)
        target = self.path(name)
        try:
            return safetensors.torch.load_file(str(target), device="cpu")
        except FileNotFoundError:
            raise StaleCacheError(
                f"{name} is missing from the workspace {self.root}; run `splatseg prepare "
                f"{_quote(self.scene_dir)}` first"
            ) from None
        except Exception as e:  # safetensors raises its own SafetensorError for damaged files
            raise StaleCacheError(
                f"{target} is damaged ({e}); delete it and run `splatseg prepare {_quote(self.scene_dir)}` again"
            ) from None

    # ---- internals ---------------------------------------------------------------------------------------------
    def _resolve(self, recorded: str) -> Path:
        path = Path(recorded)
        return path if path.is_absolute() else self.scene_dir / path

    def _fingerprint(self, path: Path, known: Mapping[tuple[str, int, int], str]) -> dict[str, Any]:
        """{"path", "size", "mtime_ns", "sha256"}; the path is relative to the scene folder when inside it, so a
        moved scene folder keeps its cache."""
        stat = path.stat()
        try:
            stored = path.resolve().relative_to(self.scene_dir.resolve()).as_posix()
        except ValueError:
            stored = str(path.resolve())
        sha = known.get((stored, stat.st_size, stat.st_mtime_ns)) or self._sha256(path, stat)
        return {"path": stored, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}

    def _sha256(self, path: Path, stat: os.stat_result) -> str:
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        write_text_atomic(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        """Serialise manifest read-modify-writes between threads (viewer, training) and processes (CLI, viewer).

        The process lock is an flock on the workspace folder itself, so no lock file is left behind.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if fcntl is None:
                yield
                return
            fd = os.open(self.root, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock


def _cpu_tensor(key: str, value: np.ndarray | Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu().contiguous()
    array = np.asarray(value)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == object:
        raise TypeError(f"tensor {key!r} is an object array; safetensors stores numeric arrays only")
    return torch.from_numpy(np.ascontiguousarray(array))


def _json_default(value: object) -> object:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"workspace params must be JSON values; {type(value).__name__} is not")


def _quote(path: Path) -> str:
    return shlex.quote(str(path))

"""`segment --prompts FILE.json`: a JSON list of prompts, checked whole before any is run (the file is untrusted)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from ..core.errors import SplatsegError

MAX_BYTES = 16 * 2**20
MAX_PROMPTS = 100_000
MAX_POINTS = 256
KEYS = {"pixels", "negatives", "view", "level", "scale", "threshold"}


@dataclasses.dataclass(frozen=True)
class Prompt:
    view: str
    pixels: list[tuple[float, float]]
    negatives: list[tuple[float, float]]
    level: str | None = None
    scale: float | None = None
    threshold: float | None = None


def read_prompts(path: str | os.PathLike[str], *, default_view: str | None) -> list[Prompt]:
    """The prompts in `path`, or a SplatsegError naming the first thing wrong (the prompt's index and the fix)."""
    p = Path(path)
    if not p.is_file():
        raise SplatsegError(f"--prompts {p}: no such file")
    if p.stat().st_size > MAX_BYTES:
        raise SplatsegError(f"--prompts {p}: larger than {MAX_BYTES >> 20} MB; split it into several files")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SplatsegError(f"--prompts {p}: not JSON ({e}); give a list of prompts") from None
    if not isinstance(data, list) or not data:
        raise SplatsegError(f'--prompts {p}: give a non-empty JSON list, e.g. [{{"pixels": [[120, 88]]}}]')
    if len(data) > MAX_PROMPTS:
        raise SplatsegError(f"--prompts {p}: {len(data)} prompts; at most {MAX_PROMPTS} per call")
    return [_prompt(item, i, p, default_view) for i, item in enumerate(data)]


def _prompt(item: Any, i: int, path: Path, default_view: str | None) -> Prompt:
    where = f"--prompts {path}: prompt {i}"
    if not isinstance(item, dict):
        raise SplatsegError(f'{where} is not an object; write {{"pixels": [[X, Y]]}}')
    unknown = set(item) - KEYS
    if unknown:
        raise SplatsegError(f"{where}: unknown key {sorted(unknown)[0]!r}; the keys are {', '.join(sorted(KEYS))}")
    view = item.get("view", default_view)
    if not isinstance(view, str) or not view:
        raise SplatsegError(f'{where}: no view; add "view": NAME or give --view')
    pixels = _points(item.get("pixels"), f"{where}: pixels", required=True)
    negatives = _points(item.get("negatives", []), f"{where}: negatives", required=False)
    level = item.get("level")
    if level is not None and level not in ("coarse", "fine"):
        raise SplatsegError(f'{where}: level must be "coarse" or "fine"')
    return Prompt(
        view,
        pixels,
        negatives,
        level,
        _number(item.get("scale"), f"{where}: scale"),
        _number(item.get("threshold"), f"{where}: threshold"),
    )


def _points(value: Any, where: str, *, required: bool) -> list[tuple[float, float]]:
    if not isinstance(value, list) or (required and not value) or len(value) > MAX_POINTS:
        need = "a non-empty" if required else "a"
        raise SplatsegError(f"{where}: give {need} list of at most {MAX_POINTS} [X, Y] pixels")
    out = []
    for v in value:
        if not (isinstance(v, list) and len(v) == 2) or None in v:
            raise SplatsegError(f"{where}: {v!r} is not an [X, Y] pixel")
        out.append((_number(v[0], where), _number(v[1], where)))
    return out  # type: ignore[return-value]


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SplatsegError(f"{where}: {value!r} is not a finite number")
    return float(value)

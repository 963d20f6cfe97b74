"""The shared session: one scene, one selection, one set of view settings, seen by every connected client.

Clients only keep their own camera. Every action (a click, a box, undo, a slider) goes through the session, which
holds one lock: two people acting at once are served one after the other, and one who would wait longer than a
moment is told who is busy rather than left with a frozen panel. Listeners (one `ClientView` per browser) are told
what changed and update their splats and widgets; the look (RGBA per Gaussian) is computed once per change and
shared by all of them.

Nothing here imports viser: the session is tested headless and the benchmarks time it directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from backend.camera import Camera
from backend.errors import SplatsegError
from backend.export import export_selection
from backend.render import RayCaster
from backend.scene import GaussianScene
from backend.selection import SelectionState, SelectOp, combine, select_in_rect
from backend.workspace import Workspace

from .looks import LookCache, ViewMode, base_rgba, label_colors, pca_colors

Change = Literal["look", "selection", "settings", "field", "job", "clients"]
ExportKind = Literal["selection", "without", "labels"]
EXPORTS: dict[ExportKind, tuple[str, str]] = {
    "selection": ("ply", "selection"),
    "without": ("inverse-ply", "without_selection"),
    "labels": ("labels-ply", "labelled"),
}
"""Export kind → (export format, file name part)."""

LOCK_WAIT_S = 2.0
"""How long an action waits for another client's to finish before the user is told the session is busy."""


class FeatureFieldLike(Protocol):
    """What the viewer needs of `backend.features.field.FeatureField` (the affinity-features issue's API)."""

    method: str  # "click" | "saga"
    levels: Any  # the granularity levels a click field offers (e.g. ("coarse", "fine"))

    def segment(
        self,
        camera: Camera,
        positives: list[tuple[float, float]],
        negatives: Any = (),
        *,
        level: Any = None,
        scale: float | None = None,
        threshold: float | None = None,
    ) -> Any: ...  # SegmentResult: mask [N] bool, scores [N] float32, milliseconds

    def cluster_labels(self, level: Any = None, *, scale: float | None = None) -> Any: ...  # [N] int, -1 = none

    def gaussian_features(self, level: Any = None, scale: float | None = None) -> torch.Tensor: ...  # [N, D]


class Busy(SplatsegError):
    """Another client's action holds the session."""


class NoFeatures(SplatsegError):
    """A click needs affinity features the workspace does not have yet."""


class SessionListener(Protocol):
    def on_change(self, kinds: frozenset[str]) -> None: ...

    def on_notify(self, title: str, body: str, color: str | None) -> None: ...


@dataclasses.dataclass
class Settings:
    """The shared controls. Changing one re-runs the current prompt where it matters (level, scale, threshold)."""

    view: ViewMode = "highlight"
    op: SelectOp = "replace"
    """How a click or box combines with the selection."""
    level: str | None = None
    """Granularity of a `click` field ("coarse" = whole objects, "fine" = parts)."""
    scale: float | None = None
    """3D scale of a `saga` field's prompt."""
    threshold: float | None = None
    """Similarity cut-off; None uses the field's own default."""
    negative_clicks: bool = False
    """Plain clicks are negative points (for devices without a modifier key)."""
    front_only: bool = True
    """Box selection takes only the visible surface."""
    dim_rest: bool = True
    """Highlight dims the unselected Gaussians (off: only the selection is tinted, and fewer bytes are resent)."""


@dataclasses.dataclass
class Prompt:
    """The points of the object being selected now: all in one view, refined click by click."""

    id: int
    camera: Camera
    base: np.ndarray  # [N] bool: the selection before the prompt's first click
    positives: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    negatives: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    op: SelectOp = "replace"

    def same_view(self, camera: Camera) -> bool:
        return (
            camera.width == self.camera.width
            and camera.height == self.camera.height
            and np.allclose(camera.world_to_camera, self.camera.world_to_camera, atol=1e-6)
            and np.allclose(camera.K, self.camera.K, atol=1e-6)
        )


@dataclasses.dataclass(frozen=True)
class ActionResult:
    message: str
    milliseconds: float
    """Server time from the event to the selection computed (segmentation and set operation, not the sending)."""
    count: int


@dataclasses.dataclass(frozen=True)
class SelectionStats:
    count: int
    bbox_min: np.ndarray | None  # [3]
    bbox_max: np.ndarray | None  # [3]


class Session:
    """Everything every client shares. Thread-safe: viser runs callbacks on a thread pool."""

    def __init__(
        self,
        scene: GaussianScene,
        *,
        workspace: Workspace,
        scene_path: Path | None = None,
        model_path: Path | None = None,
        cameras: list[Camera] | None = None,
        field: FeatureFieldLike | None = None,
        field_problem: str | None = None,
        has_masks: bool = False,
    ) -> None:
        self.scene = scene
        self.workspace = workspace
        self.scene_path = scene_path
        self.model_path = model_path
        self.cameras = cameras or []
        self.selection = SelectionState(len(scene))
        self.settings = Settings()
        self.field: FeatureFieldLike | None = None
        self.field_problem: str | None = field_problem
        """Why there is no field (shown in the panel); None when there is one."""
        self.has_masks = has_masks
        self.prompt: Prompt | None = None
        self.busy_with: str | None = None
        """What holds the lock now ("client 3: click"), for the busy message."""
        self.last_action_ms: float | None = None
        self.client_count = 0
        self.jobs: Any = None
        """The background `JobRunner` (prepare, train), set by the app."""

        self._lock = threading.RLock()
        self._listeners: list[SessionListener] = []
        self._listeners_lock = threading.Lock()
        self._prompt_ids = itertools.count(1)
        self._looks = LookCache(base_rgba(scene.dc_colors, scene.opacities))
        self._caster: RayCaster | None = None
        self._colors: dict[object, np.ndarray] = {}
        self._rgba_key: object = None
        self._rgba: np.ndarray | None = None
        self._stats_version = -1
        self._stats = SelectionStats(0, None, None)
        self._means_np = scene.means.detach().cpu().numpy()
        self._heat: np.ndarray | None = None
        """[N, 3] uint8 relevancy heat-map colours from a text query, shown instead of the scene's while set."""
        self._heat_version = 0
        if field is not None:
            self.set_field(field)

    # ---- listeners ---------------------------------------------------------------------------------------------
    def subscribe(self, listener: SessionListener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: SessionListener) -> None:
        with self._listeners_lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, *kinds: str) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener.on_change(frozenset(kinds))
            except Exception as e:  # one broken client must not stop the others
                print(f"splatseg view: a client failed to update ({type(e).__name__}: {e})")

    def notify_all(self, title: str, body: str, color: str | None = None) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            with contextlib.suppress(Exception):
                listener.on_notify(title, body, color)

    # ---- the lock ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def acting(self, who: str, what: str) -> Iterator[None]:
        """Hold the session for one action; `Busy` if another client's action does not finish within a moment."""
        if not self._lock.acquire(timeout=LOCK_WAIT_S):
            holder = self.busy_with or "another action"
            raise Busy(f"the session is busy ({holder}); try again in a moment")
        previous = self.busy_with
        self.busy_with = f"{who}: {what}"
        try:
            yield
        finally:
            self.busy_with = previous
            self._lock.release()

    # ---- features ----------------------------------------------------------------------------------------------
    def set_field(self, field: FeatureFieldLike | None, problem: str | None = None) -> None:
        with self._lock:
            self.field = field
            self.field_problem = problem if field is None else None
            self._colors.clear()
            self.prompt = None
            if field is not None:
                levels = list(getattr(field, "levels", ()) or ())
                if field.method == "click" and levels and self.settings.level not in levels:
                    self.settings.level = str(levels[0])
                if field.method == "saga" and self.settings.scale is None:
                    self.settings.scale = getattr(field, "default_scale", None)
            self._rgba_key = None
        self._emit("field", "settings", "look")

    def _require_field(self) -> FeatureFieldLike:
        if self.field is None:
            from .hints import no_features_message

            cuda = torch.cuda.is_available()
            raise NoFeatures(no_features_message(len(self.scene), self.cameras, cuda=cuda, why=self.field_problem))
        return self.field

    def _segment_kwargs(self) -> dict[str, Any]:
        field = self._require_field()
        kwargs: dict[str, Any] = {"threshold": self.settings.threshold}
        if field.method == "saga":
            kwargs["scale"] = self.settings.scale
        else:
            kwargs["level"] = self.settings.level
        return kwargs

    # ---- actions -----------------------------------------------------------------------------------------------
    def click(self, camera: Camera, pixel: tuple[float, float], *, positive: bool, who: str = "") -> ActionResult:
        """A prompt point: in the clusters view, pick the cluster under it; otherwise segment by feature affinity.

        Points accumulate while the camera stays where it is (one prompt: positives and negatives refine the same
        object); moving the camera starts a new prompt on top of the selection as it then is.
        """
        if self.settings.negative_clicks:
            positive = not positive
        with self.acting(who, "click"):
            t0 = time.perf_counter()
            if self.settings.view == "clusters":
                return self._pick_cluster(camera, pixel, positive, t0)
            field = self._require_field()
            prompt = self.prompt
            if prompt is None or not prompt.same_view(camera) or prompt.op != self.settings.op:
                prompt = Prompt(next(self._prompt_ids), camera, self.selection.mask.copy(), op=self.settings.op)
            (prompt.positives if positive else prompt.negatives).append(pixel)
            self.prompt = prompt
            self.selection.set(
                self._run_prompt(field, prompt), label="click", merge_key=("prompt", prompt.id, self._points(prompt))
            )
            ms = (time.perf_counter() - t0) * 1e3
            self.last_action_ms = ms
        self._emit("selection", "look")
        sign = "+" if positive else "−"
        return ActionResult(f"{sign} point: {self.selection.count:,} selected", ms, self.selection.count)

    @staticmethod
    def _points(prompt: Prompt) -> int:
        return len(prompt.positives) + len(prompt.negatives)

    def _run_prompt(self, field: FeatureFieldLike, prompt: Prompt) -> np.ndarray:  # → the new selection [N] bool
        """base ∘ object(positives, negatives), minus whatever the negative points point at.

        Negatives refine the object (SAM-style) and also take their own object out of the result, so a negative
        click on something selected earlier deselects it whatever the mode; with only negatives, that is all.
        """
        kwargs = self._segment_kwargs()
        n = len(self.scene)
        if prompt.positives:
            result = field.segment(prompt.camera, list(prompt.positives), list(prompt.negatives), **kwargs)
            out = combine(prompt.base, _as_mask(result.mask, n), prompt.op)
        else:
            out = prompt.base.copy()
        if prompt.negatives:
            result = field.segment(prompt.camera, list(prompt.negatives), [], **kwargs)
            out &= ~_as_mask(result.mask, n)
        return out

    def rerun_prompt(self, who: str = "") -> ActionResult | None:
        """After a level/scale/threshold change: the same points, new parameters, the same undo step."""
        if self.prompt is None or self.field is None:
            return None
        with self.acting(who, "refine"):
            t0 = time.perf_counter()
            prompt = self.prompt
            self.selection.set(
                self._run_prompt(self.field, prompt),
                label="click",
                merge_key=("prompt", prompt.id, self._points(prompt)),
            )
            ms = (time.perf_counter() - t0) * 1e3
        self._emit("selection", "look")
        return ActionResult(f"{self.selection.count:,} selected", ms, self.selection.count)

    def _pick_cluster(self, camera: Camera, pixel: tuple[float, float], positive: bool, t0: float) -> ActionResult:
        gid = self.gaussian_at(camera, pixel)
        if gid is None:
            raise SplatsegError("nothing under the cursor: click on a coloured cluster")
        labels = self._cluster_labels()
        label = int(labels[gid])
        if label < 0:
            raise SplatsegError("that Gaussian belongs to no cluster (grey); click a coloured one")
        op: SelectOp = self.settings.op if positive else "subtract"
        self.prompt = None
        self.selection.apply(labels == label, op, label="cluster")
        ms = (time.perf_counter() - t0) * 1e3
        self.last_action_ms = ms
        self._emit("selection", "look")
        return ActionResult(f"cluster {label}: {self.selection.count:,} selected", ms, self.selection.count)

    def gaussian_at(self, camera: Camera, pixel: tuple[float, float]) -> int | None:
        """The Gaussian contributing most to the pixel (what the user sees there), or None over the background."""
        if self._caster is None:
            self._caster = RayCaster(self.scene)
        with torch.no_grad():
            ids, weights = self._caster.weights(camera, pixel)
        if ids.numel() == 0:
            return None
        return int(ids[int(torch.argmax(weights))])

    def rect(
        self, camera: Camera, rect: tuple[float, float, float, float], *, op: SelectOp | None = None, who: str = ""
    ):
        """Box selection: the Gaussians projected inside `rect` (pixels of `camera`), front surface only by default."""
        with self.acting(who, "box"):
            t0 = time.perf_counter()
            with torch.no_grad():
                inside = select_in_rect(
                    self.scene.means,
                    camera,
                    rect,
                    opacities=self.scene.opacities,
                    sigma_max=self.scene.scales.max(dim=1).values,
                    front_only=self.settings.front_only,
                )
            self.prompt = None
            self.selection.apply(inside, op or self.settings.op, label="box")
            ms = (time.perf_counter() - t0) * 1e3
            self.last_action_ms = ms
        self._emit("selection", "look")
        return ActionResult(
            f"box: {int(inside.sum()):,} inside, {self.selection.count:,} selected", ms, self.selection.count
        )

    def edit(self, what: Literal["undo", "redo", "invert", "clear"], who: str = "") -> ActionResult:
        with self.acting(who, what):
            t0 = time.perf_counter()
            changed = getattr(self.selection, what)()
            self.prompt = None
            ms = (time.perf_counter() - t0) * 1e3
        if changed:
            self._emit("selection", "look")
        note = "" if changed else " (nothing to do)"
        return ActionResult(f"{what}{note}: {self.selection.count:,} selected", ms, self.selection.count)

    def update_settings(self, who: str = "", **changes: Any) -> ActionResult | None:
        """Change shared settings; a granularity or threshold change re-runs the current prompt."""
        with self.acting(who, "settings"):
            changed = {k: v for k, v in changes.items() if getattr(self.settings, k) != v}
            if not changed:
                return None
            for key, value in changed.items():
                setattr(self.settings, key, value)
            if "op" in changed:
                self.prompt = None
        kinds = ["settings"]
        if {"view", "level", "scale", "dim_rest"} & changed.keys():
            kinds.append("look")
        self._emit(*kinds)
        if {"level", "scale", "threshold"} & changed.keys():
            return self.rerun_prompt(who)
        return None

    # ---- what the clients show ---------------------------------------------------------------------------------
    def _level_or_default(self) -> Any:
        if self.settings.level is not None:
            return self.settings.level
        levels = list(getattr(self.field, "levels", ()) or ())
        return levels[0] if levels else None

    def _cluster_key(self) -> tuple[Any, ...]:
        if self.field is not None and self.field.method == "saga":
            return ("clusters", None, self.settings.scale)
        return ("clusters", self._level_or_default(), None)

    def _cluster_labels(self) -> np.ndarray:  # [N] int, -1 = none: segment-everything at the current granularity
        field = self._require_field()
        key = ("labels", *self._cluster_key()[1:])
        if key not in self._colors:
            if field.method == "saga":
                labels = field.cluster_labels(None, scale=self.settings.scale)
            else:
                labels = field.cluster_labels(self._level_or_default())
            self._colors[key] = np.asarray(_to_numpy(labels)).reshape(-1)
        return self._colors[key]

    def _view_colors(self) -> tuple[np.ndarray | None, object]:
        if self._heat is not None and self.settings.view == "highlight":
            return self._heat, ("heat", self._heat_version)
        view = self.settings.view
        if view not in ("clusters", "pca") or self.field is None:
            return None, None
        if view == "clusters":
            key: object = self._cluster_key()
            if key not in self._colors:
                self._colors[key] = label_colors(self._cluster_labels())
        else:
            scale = self.settings.scale if self.field.method == "saga" else None
            level = None if self.field.method == "saga" else self._level_or_default()
            key = ("pca", level, scale)
            if key not in self._colors:
                with torch.no_grad():
                    self._colors[key] = pca_colors(self.field.gaussian_features(level=level, scale=scale))
        return self._colors[key], key

    def rgba(self) -> np.ndarray:  # [N, 4] uint8: the current look
        with self._lock:
            colors, colors_key = self._view_colors_safe()
            s = self.settings
            key = (self.selection.version, s.view, colors_key, s.dim_rest)
            if key != self._rgba_key or self._rgba is None:
                self._rgba = self._looks.rgba(
                    self._mode(), self.selection.mask, colors=colors, colors_key=colors_key, dim_rest=s.dim_rest
                )
                self._rgba_key = key
            return self._rgba

    @property
    def look_style(self):  # → looks.LookStyle
        return self._looks.style

    def look_layers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (look, plain, dimmed), each [N, 4] uint8
        """The current look and the two per-chunk looks the browser keeps ready (`ChunkedSplats.update`)."""
        with self._lock:
            rgba = self.rgba()
            colors, colors_key = self._view_colors_safe()
            plain, dimmed = self._looks.layers(self._mode(), colors=colors, colors_key=colors_key)
            return rgba, plain, dimmed

    def _view_colors_safe(self) -> tuple[np.ndarray | None, object]:
        try:
            return self._view_colors()
        except Exception as e:  # a broken field must not take the scene away: fall back to the scene's colours
            self.notify_all("Colouring failed", f"{type(e).__name__}: {e}", "red")
            self.settings.view = "highlight"
            return None, None

    def stats(self) -> SelectionStats:
        with self._lock:
            if self._stats_version != self.selection.version:
                mask = self.selection.mask
                count = int(mask.sum())
                if count:
                    pts = self._means_np[mask]
                    self._stats = SelectionStats(count, pts.min(0), pts.max(0))
                else:
                    self._stats = SelectionStats(0, None, None)
                self._stats_version = self.selection.version
            return self._stats

    # ---- export ------------------------------------------------------------------------------------------------
    def export(self, kind: ExportKind, who: str = "") -> tuple[Path, int]:
        """Write an export under `<workspace>/exports/` (atomically); returns (path, Gaussians written).

        The selection is copied under the lock and written outside it, so a long write does not block the others.
        """
        if kind not in EXPORTS:
            raise SplatsegError(f"unknown export {kind!r}; choose one of {', '.join(EXPORTS)}")
        with self.acting(who, "export"):
            mask = self.selection.mask.copy()
        fmt, part = EXPORTS[kind]
        path = self.workspace.path(f"exports/{self.export_stem()}_{part}_{self.export_stamp()}.ply")
        count = export_selection(self.scene, mask, path, format=fmt)  # type: ignore[arg-type]
        return path, count

    def export_stem(self) -> str:
        return self.workspace.scene_dir.resolve().name or "scene"

    @staticmethod
    def export_stamp() -> str:
        """Time to the microsecond: two exports never share a name, so one never replaces another mid-download."""
        return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")

    def load_mask(self, mask: np.ndarray, *, label: str = "upload", who: str = "") -> None:
        """Replace the selection with a mask [N] (an uploaded `.npy`); one undo step."""
        with self.acting(who, label):
            self.prompt = None
            self.selection.set(mask, label=label)
        self._emit("selection", "look")

    def apply_mask(self, mask: np.ndarray, op: str, *, label: str, merge_key: object = None, who: str = "") -> None:
        """Combine a mask [N] from another source (a text query, an SA3D run) with the selection; one undo step per
        merge key, so a run that refines its mask view after view undoes in one go."""
        with self.acting(who, label):
            self.prompt = None
            self.selection.apply(_as_mask(mask, len(self.scene)), op, label=label, merge_key=merge_key)  # type: ignore[arg-type]
        self._emit("selection", "look")

    def set_heat(self, colors: np.ndarray | None) -> None:
        """Show per-Gaussian colours [N, 3] uint8 (a relevancy heat map) instead of the scene's; None turns it off."""
        with self._lock:
            self._heat = None if colors is None else np.asarray(colors, dtype=np.uint8).reshape(len(self.scene), 3)
            self._heat_version += 1
        self._emit("look")

    def _mode(self) -> ViewMode:
        """The look mode: a heat map shows its colours the way the cluster and PCA views do."""
        if self._heat is not None and self.settings.view == "highlight":
            return "pca"
        return self.settings.view

    def changed(self, *kinds: str) -> None:
        """Tell every client that something outside the actions above changed (masks prepared, a job's progress)."""
        self._emit(*kinds)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_mask(mask: Any, n: int) -> np.ndarray:  # → [N] bool
    m = _to_numpy(mask).astype(bool).reshape(-1)
    if m.shape[0] != n:
        raise SplatsegError(f"the features gave a mask of {m.shape[0]} for {n} Gaussians; retrain the features")
    return m

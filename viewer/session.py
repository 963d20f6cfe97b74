"""The shared session: one scene, one selection, one set of view settings, seen by every connected client.

Clients only keep their own camera. Every action (a click, a box, undo, a slider) goes through the session, which
holds one lock: two people acting at once are served one after the other, and one who would wait longer than a
moment is told who is busy rather than left with a frozen panel. Listeners (one `ClientView` per browser) are told
what changed and update their splats and widgets; the look (RGBA per Gaussian) is computed once per change and
shared by all of them.

Nothing here imports viser: the session is tested headless and the benchmarks time it directly.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.errors import SplatsegError
from backend.core.scene import GaussianScene
from backend.core.selection import SelectionState, SelectOp, combine, select_in_rect
from backend.export import export_selection
from backend.render import RayCaster
from backend.workspace import Workspace

from .bus import LOCK_WAIT_S as LOCK_WAIT_S
from .bus import Busy as Busy
from .bus import SessionBus
from .bus import SessionListener as SessionListener
from .looks import LookCache, ViewMode, base_rgba
from .prompt import Prompt
from .session_looks import SelectionStats as SelectionStats
from .session_looks import SessionLooks, to_numpy

if TYPE_CHECKING:
    from backend.features.field import FeatureField

Change = Literal["look", "selection", "settings", "field", "job", "clients"]
ExportKind = Literal["selection", "without", "labels"]
EXPORTS: dict[ExportKind, tuple[str, str]] = {
    "selection": ("ply", "selection"),
    "without": ("inverse-ply", "without_selection"),
    "labels": ("labels-ply", "labelled"),
}
"""Export kind → (export format, file name part)."""


class NoFeatures(SplatsegError):
    """A click needs affinity features the workspace does not have yet."""


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


@dataclasses.dataclass(frozen=True)
class ActionResult:
    message: str
    milliseconds: float
    """Server time from the event to the selection computed (segmentation and set operation, not the sending)."""
    count: int


class Session(SessionBus, SessionLooks):
    """Everything every client shares. Thread-safe: viser runs callbacks on a thread pool."""

    def __init__(
        self,
        scene: GaussianScene,
        *,
        workspace: Workspace,
        scene_path: Path | None = None,
        model_path: Path | None = None,
        cameras: list[Camera] | None = None,
        field: FeatureField | None = None,
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
        self.field: FeatureField | None = None
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
        self._parts_key: object = None
        self._parts: object = None
        self._stats_version = -1
        self._stats = SelectionStats(0, None, None)
        self._means_np = scene.means.detach().cpu().numpy()
        self._heat: np.ndarray | None = None
        """[N, 3] uint8 relevancy heat-map colours from a text query, shown instead of the scene's while set."""
        self._heat_version = 0
        if field is not None:
            self.set_field(field)

    # ---- features ----------------------------------------------------------------------------------------------
    def set_field(self, field: FeatureField | None, problem: str | None = None) -> None:
        with self._lock:
            self.field = field
            self.field_problem = problem if field is None else None
            self._colors.clear()
            self.prompt = None
            if field is not None:
                levels = list(getattr(field, "levels", ()) or ())
                if not field.uses_scale and levels and self.settings.level not in levels:
                    self.settings.level = str(levels[0])
                if field.uses_scale and self.settings.scale is None:
                    self.settings.scale = getattr(field, "default_scale", None)
            self._rgba_key = self._parts_key = None
        self._emit("field", "settings", "look")

    def _require_field(self) -> FeatureField:
        if self.field is None:
            from .hints import no_features_message

            cuda = torch.cuda.is_available()
            raise NoFeatures(no_features_message(len(self.scene), self.cameras, cuda=cuda, why=self.field_problem))
        return self.field

    def _segment_kwargs(self) -> dict[str, Any]:
        field = self._require_field()
        kwargs: dict[str, Any] = {"threshold": self.settings.threshold}
        if field.uses_scale:
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
            if prompt is None or prompt.who != who or not prompt.same_view(camera) or prompt.op != self.settings.op:
                prompt = Prompt(
                    next(self._prompt_ids), camera, self.selection.mask.copy(), op=self.settings.op, who=who
                )
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

    def _run_prompt(self, field: FeatureField, prompt: Prompt) -> np.ndarray:  # → the new selection [N] bool
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

    def changed(self, *kinds: str) -> None:
        """Tell every client that something outside the actions above changed (masks prepared, a job's progress)."""
        self._emit(*kinds)


def _as_mask(mask: Any, n: int) -> np.ndarray:  # → [N] bool
    m = to_numpy(mask).astype(bool).reshape(-1)
    if m.shape[0] != n:
        raise SplatsegError(f"the features gave a mask of {m.shape[0]} for {n} Gaussians; retrain the features")
    return m

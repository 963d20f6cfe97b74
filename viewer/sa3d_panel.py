"""The "Segment without training" panel: a click runs SA3D (SAM + lifting + self-prompting) in the background.

For a scene that has no features yet: arm the mode, click an object, and SAM's mask in your view is lifted onto the
Gaussians, then refined view after view among the scene's cameras. Each view's mask is shown in the panel as it
comes, with the selection growing in 3D (merged into one undo step); the end result is a normal selection that
undo, export and sharing handle like any other.

Self-contained: it reaches the viewer only through `Sa3dPanelHooks`, so the viewer wires it in with one call and one
`if` in its click handler, and the tests drive `Sa3dRunner` (the thread, no widgets) directly. No numerics here: the
work is `backend.lift.segment_sa3d`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from backend.core.camera import Camera
from backend.core.errors import SplatsegError
from backend.lift import GeometryCache, MaskPredictor, Sa3dOptions, Sa3dResult, ViewStep, segment_sa3d
from backend.lift.predictor import Granularity

if TYPE_CHECKING:
    import viser

    from backend.core.scene import GaussianScene

GRANULARITY: dict[str, Granularity] = {"Whole object": "whole", "Part": "part", "SAM's best": "best"}
MODES = {"Replace": "replace", "Add": "add", "Subtract": "subtract"}
PREVIEW_SIDE = 256
"""Preview images are sent at most this big (a PNG per view to every client that shows the panel)."""


@dataclasses.dataclass(frozen=True)
class Sa3dPanelHooks:
    """What the panel needs from the viewer."""

    runner: Sa3dRunner
    """One per scene, shared by every client's panel: one run at a time (SAM's predictor is not thread-safe) and
    one cache of rasterised views."""
    select: Callable[[np.ndarray, str, object], None]
    """select(mask [N] bool, op "replace" | "add" | "subtract", merge_key): apply to the shared selection (one undo
    step per merge key) and refresh the clients; the same hook the text panel takes."""
    notify: Callable[[str, str, str | None], None]
    """notify(title, body, colour) in this browser."""
    progress: Callable[[float | None, str], None] | None = None
    """Optional: mirror the progress elsewhere (the viewer's job bar) as progress(fraction or None, status)."""


class Sa3dRunner:
    """One SA3D run at a time, in a daemon thread, with per-view callbacks; cancellable between views.

    Dataset views are rasterised once and kept (`GeometryCache`), so a second object from the same scene costs
    mostly SAM's embeddings, and those the predictor caches too.
    """

    def __init__(
        self,
        scene: GaussianScene,
        cameras: Sequence[Camera],  # the views self-prompting moves through (the clicked view is the browser's own)
        predictor: Callable[[], MaskPredictor],  # loads the 2D predictor on first use, or raises SplatsegError
        *,
        predictor_name: str = "SAM",  # what the panel calls it ("SAM", "the ground-truth labels", "your masks")
    ) -> None:
        self.scene = scene
        self.predictor_name = predictor_name
        self.cameras = list(cameras)
        self._predictor = predictor
        self.geometry = GeometryCache(scene)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self.last: Sa3dResult | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        camera: Camera,
        pixel: tuple[float, float],
        options: Sa3dOptions,
        *,
        on_view: Callable[[ViewStep], None],
        on_done: Callable[[Sa3dResult], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Start segmenting what `pixel` (x, y) shows in `camera`; `SplatsegError` if a run is under way."""
        with self._lock:
            if self.running:
                raise SplatsegError("a segmentation without training is already running; wait or cancel it")
            self._cancel.clear()
            self._thread = threading.Thread(
                target=self._run, args=(camera, pixel, options, on_view, on_done, on_error), name="splatseg-sa3d"
            )
            self._thread.daemon = True
            self._thread.start()

    def cancel(self) -> None:
        """Stop after the view in progress (the selection keeps what the views so far gave)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _run(self, camera, pixel, options, on_view, on_done, on_error) -> None:
        try:
            predictor = self._predictor()
            result = segment_sa3d(
                self.scene,
                self.cameras,
                predictor,
                view=camera,
                pixels=[pixel],
                options=options,
                geometry=self.geometry,
                on_view=on_view,
                should_stop=self._cancel.is_set,
            )
            self.last = result
            on_done(result)
        except BaseException as e:  # reported to the browser; the thread ends either way
            on_error(e)


def preview_image(step: ViewStep, *, max_side: int = PREVIEW_SIDE) -> np.ndarray:  # → [h, w, 3] uint8
    """The view as the predictor saw it (dark grey without an image), its answer in orange, the 3D mask rendered
    before it in blue outline, and the prompt points as red dots."""
    h, w = step.rendered.shape
    base = step.image.astype(np.float32) if step.image is not None else np.full((h, w, 3), 40.0, np.float32)
    out = base * 0.6
    if step.mask is not None:
        out[step.mask] = out[step.mask] * 0.4 + np.array([255.0, 150.0, 0.0]) * 0.6
    edge = step.rendered & ~_eroded(step.rendered)
    out[edge] = (60.0, 140.0, 255.0)
    r = max(1, min(h, w) // 64)
    for x, y in step.points:
        xi, yi = int(x), int(y)
        out[max(yi - r, 0) : yi + r + 1, max(xi - r, 0) : xi + r + 1] = (255.0, 30.0, 30.0)
    out = out.clip(0, 255).astype(np.uint8)
    step_px = max(1, -(-max(h, w) // max_side))
    return out[::step_px, ::step_px]


def _eroded(mask: np.ndarray) -> np.ndarray:  # [H, W] bool, one pixel in from every side
    e = mask.copy()
    e[1:] &= mask[:-1]
    e[:-1] &= mask[1:]
    e[:, 1:] &= mask[:, :-1]
    e[:, :-1] &= mask[:, 1:]
    return e


class Sa3dPanel:
    """The widgets of one client's training-free segmentation, and what they do."""

    def __init__(self, gui: viser.GuiApi, hooks: Sa3dPanelHooks, *, order: float = 1.7) -> None:
        self.hooks = hooks
        self.runner = hooks.runner
        self._runs = itertools.count(1)
        self._run_id = 0
        self._t0 = 0.0
        with gui.add_folder("Segment without training", order=order, expand_by_default=False):
            self.about = gui.add_markdown(
                f"No features needed: tick the box, then click an object. {self.runner.predictor_name} segments it "
                "in your view, and the mask is carried to the scene's cameras one by one (SA3D). Takes seconds per "
                "view on a CPU."
            )
            self.arm = gui.add_checkbox("Clicks segment without training", False)
            self.views = gui.add_slider("Views", 1, 16, 1, 8, hint="How many views to refine in (the clicked one too)")
            self.granularity = gui.add_dropdown("Click means", tuple(GRANULARITY), initial_value="Whole object")
            self.mode = gui.add_dropdown("Mode", tuple(MODES), initial_value="Replace", hint="How it combines")
            self.live = gui.add_checkbox("Show the selection grow", True, hint="Update the 3D selection every view")
            self.bar = gui.add_progress_bar(0.0, visible=False, animated=True)
            self.status = gui.add_markdown("")
            self.preview = gui.add_image(np.zeros((8, 8, 3), np.uint8), label="View", visible=False)
            self.cancel = gui.add_button("Cancel", visible=False, color="red")
        self.cancel.on_click(lambda _: self.runner.cancel())

    @property
    def armed(self) -> bool:
        """Whether a click in the scene should start a run (the viewer's click handler asks)."""
        return bool(self.arm.value)

    def run(self, camera: Camera, pixel: tuple[float, float]) -> None:
        """Segment what the click at `pixel` (x, y) in the browser's `camera` shows, in the background."""
        granularity: Granularity = GRANULARITY[str(self.granularity.value)]
        options = Sa3dOptions(views=int(self.views.value), granularity=granularity)
        if self.runner.running:  # another client's run: say so here, before touching this panel's widgets
            raise SplatsegError("a segmentation without training is already running; wait or cancel it")
        self._run_id = next(self._runs)
        self._t0 = time.perf_counter()
        # The widgets first: a run that fails at once reports from its thread, and must not be overwritten here.
        self._show_progress(0.0, f"asking {self.runner.predictor_name} in your view…")
        self.bar.visible = self.cancel.visible = True
        try:
            self.runner.start(
                camera, pixel, options, on_view=self._on_view, on_done=self._on_done, on_error=self._on_error
            )
        except SplatsegError:
            self.bar.visible = self.cancel.visible = False
            self.status.content = ""
            raise

    # ---- callbacks (from the runner's thread) ----------------------------------------------------------------------
    def _on_view(self, step: ViewStep) -> None:
        verdict = "used" if step.accepted else "skipped (disagrees with the 3D mask)"
        agree = "" if np.isnan(step.agreement) else f" · agreement {step.agreement:.2f}"
        self._show_progress(
            (step.index + 1) / step.total,
            f"view {step.index + 1}/{step.total} ({step.camera.name}): {verdict}{agree} · "
            f"**{step.selected:,}** Gaussians",
        )
        self.preview.image = preview_image(step)
        self.preview.visible = True
        if self.live.value and step.accepted:
            # A live update that finds the session busy is skipped, not fatal: the run's end applies the result.
            with contextlib.suppress(SplatsegError):
                self.hooks.select(step.selection, MODES[str(self.mode.value)], ("sa3d", self._run_id))

    def _on_done(self, result: Sa3dResult) -> None:
        self.hooks.select(result.mask, MODES[str(self.mode.value)], ("sa3d", self._run_id))
        seconds = time.perf_counter() - self._t0
        why = {"views": "", "converged": " (it stopped changing)", "no_views": " (no more cameras see it)"}.get(
            result.stopped, " (cancelled)"
        )
        text = (
            f"**{int(result.mask.sum()):,}** Gaussians from {result.views_used} of {len(result.steps)} views{why}"
            f" · {seconds:.1f} s"
        )
        self._finish(text)
        self.hooks.notify("Segmented without training", text.replace("**", ""), "green")

    def _on_error(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, SplatsegError) else f"{type(error).__name__}: {error}"
        self._finish(f"Failed: {message}")
        self.hooks.notify("Could not segment", message, "red")

    def _show_progress(self, fraction: float | None, status: str) -> None:
        self.status.content = status
        if fraction is not None:
            self.bar.value = 100.0 * fraction
        if self.hooks.progress is not None:
            self.hooks.progress(fraction, status.replace("**", ""))

    def _finish(self, text: str) -> None:
        self.status.content = text
        self.bar.visible = self.cancel.visible = False
        if self.hooks.progress is not None:
            self.hooks.progress(1.0, text.replace("**", ""))


def add_sa3d_panel(gui: viser.GuiApi, hooks: Sa3dPanelHooks, *, order: float = 1.7) -> Sa3dPanel:
    """Add the "Segment without training" folder to one client's GUI (`client.gui`)."""
    return Sa3dPanel(gui, hooks, order=order)


def predictor_title(predictor: str) -> str:
    """What the panel calls `--predictor PREDICTOR`, so the user sees which 2D segmenter answers their click."""
    return {"sam": "SAM", "labels": "The ground-truth labels"}.get(predictor, f"Your masks ({predictor})")


def predictor_loader(
    *,
    predictor: str = "sam",
    sam_checkpoint: str | None = None,
    sam_model: str | None = None,
    scene_dir: str | None = None,
    cameras: Sequence[Camera] | None = None,
) -> Callable[[], MaskPredictor]:
    """A `Sa3dPanelHooks.predictor` that loads PREDICTOR once (`sam`, `labels` of a synthetic scene in SCENE_DIR,
    or a folder of per-view masks for CAMERAS), shared by every client (thread-safe). The demo names `labels` to
    run offline; nothing picks the ground truth by itself."""
    from backend.lift.predictor import check_predictor, make_predictor

    check_predictor(predictor, scene_dir)  # a typo is refused when the viewer starts, not on the first click
    lock = threading.Lock()
    loaded: list[MaskPredictor] = []

    def get() -> MaskPredictor:
        with lock:
            if not loaded:
                made, _ = make_predictor(
                    scene_dir or ".", predictor, cameras=cameras, sam_checkpoint=sam_checkpoint, sam_model=sam_model
                )
                loaded.append(made)
            return loaded[0]

    return get


__all__ = [
    "Sa3dPanel",
    "Sa3dPanelHooks",
    "Sa3dRunner",
    "add_sa3d_panel",
    "predictor_loader",
    "predictor_title",
    "preview_image",
]

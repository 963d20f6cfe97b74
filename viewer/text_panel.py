"""The "Find by text" panel: type what to find; the best cluster is selected, the top 5 are listed with their
relevancy (click one to select it instead), and a heat map can colour every Gaussian by relevancy.

Self-contained: it reaches the viewer only through `TextPanelHooks` (where the `TextIndex` comes from, what to do
with a mask, with heat-map colours, with a message), so the viewer wires it in with one call and the tests drive it
with a stand-in GUI. No numerics here: ranking, masks and colours come from `backend.language`.

viser sends a text box's value on every keystroke, so a search runs when typing pauses (`DEBOUNCE_S`) or at once
on the Find button; searches made while typing one query replace each other in the undo history (one merge key)
instead of leaving a step per pause.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.core.errors import SplatsegError
from backend.language.query import ClusterMatch, QueryResult, TextIndex
from backend.language.relevancy import DEFAULT_THRESHOLD, heat_colors

if TYPE_CHECKING:
    import viser

TOP = 5
DEBOUNCE_S = 0.6
LEVELS = {"Objects and parts": "both", "Objects": "coarse", "Parts": "fine"}
MODES = {"Replace": "replace", "Add": "add", "Subtract": "subtract"}

ProgressFn = Callable[[float | None, str], None]


@dataclasses.dataclass(frozen=True)
class TextPanelHooks:
    """What the panel needs from the viewer."""

    index: Callable[[], TextIndex]
    """The loaded index, or a `SplatsegError` saying what is missing (no clusters, no embeddings). Loading CLIP takes
    seconds: `TextIndexLoader` caches it."""
    select: Callable[[np.ndarray, str, object], None]
    """select(mask [N] bool, op "replace" | "add" | "subtract", merge_key): apply to the shared selection (one undo
    step per merge key) and refresh the clients."""
    show_heat: Callable[[np.ndarray | None], None]
    """show_heat(colours [N, 3] uint8) switches the relevancy heat map on with these colours; None switches it off."""
    notify: Callable[[str, str, str | None], None]
    """notify(title, body, colour) in this browser."""
    prepare: Callable[[], None] | None = None
    """Start `prepare-text` as a viewer job (shown as a button while the scene has no text embeddings)."""


class TextPanel:
    """The widgets of one client's text search, and what they do."""

    def __init__(self, gui: viser.GuiApi, hooks: TextPanelHooks, *, order: float = 1.5) -> None:
        self.hooks = hooks
        self.last: QueryResult | None = None
        """The latest query's result (what the list and the heat map show)."""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sessions = itertools.count(1)
        self._session = next(self._sessions)

        with gui.add_folder("Find by text", order=order):
            self.text = gui.add_text("Find", "", hint='What to find, e.g. "the red mug"; searches when you pause')
            self.find = gui.add_button("Find")
            self.level = gui.add_dropdown("Look for", tuple(LEVELS), initial_value="Objects and parts")
            self.mode = gui.add_dropdown("Mode", tuple(MODES), initial_value="Replace", hint="How it combines")
            self.all_above = gui.add_checkbox(
                "Every match above threshold", False, hint="Otherwise only the best cluster"
            )
            self.threshold = gui.add_slider("Relevancy threshold", 0.0, 1.0, 0.01, DEFAULT_THRESHOLD, disabled=True)
            self.heat = gui.add_checkbox("Relevancy heat map", False)
            self.results = gui.add_markdown("")
            self.picks = [gui.add_button(f"#{i + 1}", visible=False) for i in range(TOP)]
            self.prepare_btn = gui.add_button("Prepare text search", visible=False)

        self.text.on_update(self._user(self._typed))
        self.find.on_click(self._user(lambda: self.search(new_session=True)))
        self.level.on_update(self._user(self._rerun))
        self.all_above.on_update(self._user(self._threshold_toggled))
        self.threshold.on_update(self._user(self._rerun))
        self.heat.on_update(self._user(self._heat_toggled))
        for i, button in enumerate(self.picks):
            button.on_click(self._user(lambda i=i: self.pick(i)))
        self.prepare_btn.on_click(self._user(self._prepare))

    # ---- actions -------------------------------------------------------------------------------------------------
    def search(self, *, new_session: bool = False) -> QueryResult | None:
        """Run the query in the text box and select its best match (or every match above the threshold)."""
        self._cancel_timer()
        text = str(self.text.value).strip()
        if not text:
            return None
        if new_session:
            self._session = next(self._sessions)
        index = self._index()
        if index is None:
            return None
        threshold = float(self.threshold.value) if self.all_above.value else None
        result = index.query(text, level=LEVELS[str(self.level.value)], top=TOP, threshold=threshold)  # type: ignore[arg-type]
        with self._lock:
            self.last = result
        self._show(result)
        if not result.selected:  # keep the selection as it is: a miss should not wipe the user's work
            self.hooks.notify("No match", f'nothing scored ≥ {threshold or 0:.2f} for "{text}"', "yellow")
            return result
        self.hooks.select(result.mask, MODES[str(self.mode.value)], ("text", self._session))
        return result

    def pick(self, i: int) -> None:
        """Select the i-th listed cluster instead of the best one (one more undo step)."""
        with self._lock:
            result = self.last
        if result is None or i >= len(result.ranked):
            return
        index = self._index()
        if index is None:
            return
        match = result.ranked[i]
        self._session = next(self._sessions)
        self.hooks.select(index.mask_of([match]), MODES[str(self.mode.value)], ("text-pick", self._session))

    def _typed(self) -> None:
        self._cancel_timer()
        if not str(self.text.value).strip():
            return
        timer = threading.Timer(DEBOUNCE_S, self._guarded(self.search))
        timer.daemon = True
        with self._lock:
            self._timer = timer
        timer.start()

    def _rerun(self) -> None:
        if str(self.text.value).strip():
            self.search()

    def _threshold_toggled(self) -> None:
        self.threshold.disabled = not bool(self.all_above.value)
        self._rerun()

    def _heat_toggled(self) -> None:
        with self._lock:
            result = self.last
        if not self.heat.value or result is None:
            self.hooks.show_heat(None)
            return
        index = self._index()
        if index is not None:
            self.hooks.show_heat(heat_colors(index.heat(result)))

    def _prepare(self) -> None:
        if self.hooks.prepare is not None:
            self.hooks.prepare()

    # ---- display -------------------------------------------------------------------------------------------------
    def _show(self, result: QueryResult) -> None:
        top = result.ranked[:TOP]
        chosen = {(m.level, m.id) for m in result.selected}
        lines = [f'**{result.count:,}** Gaussians for "{result.text}" · {result.milliseconds:.0f} ms']
        if not top:
            lines.append("No cluster has a text embedding at this level.")
        self.results.content = "  \n".join(lines)
        for i, button in enumerate(self.picks):
            if i < len(top):
                button.label = _label(i, top[i], (top[i].level, top[i].id) in chosen)
                button.visible = True
            else:
                button.visible = False
        if self.heat.value:
            self._heat_toggled()

    def _index(self) -> TextIndex | None:
        try:
            index = self.hooks.index()
        except SplatsegError as e:
            self.prepare_btn.visible = self.hooks.prepare is not None and "prepare-text" in str(e)
            self.results.content = str(e)
            self.hooks.notify("Text search unavailable", str(e), "yellow")
            return None
        self.prepare_btn.visible = False
        return index

    # ---- plumbing ------------------------------------------------------------------------------------------------
    def _cancel_timer(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _guarded(self, action: Callable[[], Any]) -> Callable[[], None]:
        """Errors become messages in this browser; the server keeps serving."""

        def run() -> None:
            try:
                action()
            except SplatsegError as e:
                self.hooks.notify("Could not search", str(e), "red")
            except Exception as e:  # a bug must not kill the callback thread silently
                self.hooks.notify("Internal error", f"{type(e).__name__}: {e}", "red")
                raise

        return run

    def _user(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        """Run only for changes a person made (viser reports values set from code with client None)."""
        guarded = self._guarded(action)

        def handler(event: Any) -> None:
            if getattr(event, "client", True) is None:
                return
            guarded()

        return handler


def add_text_panel(gui: viser.GuiApi, hooks: TextPanelHooks, *, order: float = 1.5) -> TextPanel:
    """Add the "Find by text" folder to one client's GUI (`client.gui`)."""
    return TextPanel(gui, hooks, order=order)


def _label(i: int, m: ClusterMatch, selected: bool) -> str:
    what = "object" if m.level == "coarse" else "part" if m.level == "fine" else m.level
    mark = "✓ " if selected else ""
    return f"{mark}{i + 1}. {what} {m.id} · {m.score:.2f} · {m.count:,} Gaussians"


class TextIndexLoader:
    """Loads the scene's `TextIndex` once (CLIP takes seconds) and shares it between clients and threads.

    `invalidate()` after `prepare-text` or retraining; a failed load is not cached, so the next search tries again.
    """

    def __init__(
        self,
        scene_path: str | os.PathLike[str],
        *,
        workspace_root: str | os.PathLike[str] | None = None,
        clip_model: str | None = None,
        clip_checkpoint: str | os.PathLike[str] | None = None,
    ) -> None:
        self.scene_path = Path(scene_path)
        self.workspace_root = workspace_root
        self.clip_model = clip_model
        self.clip_checkpoint = clip_checkpoint
        self._lock = threading.Lock()
        self._index: TextIndex | None = None

    def __call__(self) -> TextIndex:
        with self._lock:
            if self._index is None:
                self._index = TextIndex.open(
                    self.scene_path,
                    clip_model=self.clip_model,
                    clip_checkpoint=self.clip_checkpoint,
                    workspace_root=self.workspace_root,
                )
            return self._index

    def invalidate(self) -> None:
        with self._lock:
            self._index = None

    def prepare_job(self) -> Callable[[ProgressFn], None]:
        """`work(progress)` for the viewer's `JobRunner`: compute the cluster embeddings, then reload the index."""

        def work(progress: ProgressFn) -> None:
            from backend.language.clip import DEFAULT_CLIP_MODEL
            from backend.language.query import prepare_text

            prepare_text(
                self.scene_path,
                clip_model=self.clip_model or DEFAULT_CLIP_MODEL,
                clip_checkpoint=self.clip_checkpoint,
                workspace_root=self.workspace_root,
                progress=progress,
            )
            self.invalidate()

        return work

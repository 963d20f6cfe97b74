"""One client's control panel: widgets that send actions to the session and mirror its shared settings.

Every browser gets its own widgets (`client.gui`), so a token can keep the controls from a client until it is
authenticated; what the widgets show is the session's, so when one person moves the threshold slider everyone's
slider moves. Assigning a value from here fires viser's update callbacks with `client=None`; handlers ignore those,
which is what keeps the mirroring from echoing back into the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .assets import help_text
from .looks import VIEW_MODES
from .session import Session

if TYPE_CHECKING:
    import viser

OPS = {"Replace": "replace", "Add": "add", "Subtract": "subtract"}
DEFAULT_THRESHOLD = 0.5
HELP = help_text()


class PanelActions(Protocol):
    """What the panel asks of its client view (each wraps a session call and reports errors to this browser)."""

    def set_settings(self, **changes: Any) -> None: ...

    def edit(self, what: str) -> None: ...

    def export(self, kind: str) -> None: ...

    def prepare(self) -> None: ...

    def train(self, method: str = "click") -> None: ...

    def load_selection(self, name: str, content: bytes) -> None: ...

    def save_selection(self) -> None: ...


def _from_user(callback: Callable[[], None]) -> Callable[[Any], None]:
    """Run `callback` only for changes a person made in this browser, not for values mirrored from the session."""

    def handler(event: Any) -> None:
        if event.client is None:
            return
        callback()

    return handler


class Panel:
    """The widgets of one client."""

    def __init__(self, gui: viser.GuiApi, session: Session, actions: PanelActions, *, share_url: str | None = None):
        self.gui = gui
        self.session = session
        self.actions = actions
        s = session.settings

        self.status = gui.add_markdown("Loading…", order=0)

        with gui.add_folder("Select", order=1):
            self.op = gui.add_dropdown("Mode", tuple(OPS), initial_value=_key(OPS, s.op), hint="How a click combines")
            self.level = gui.add_dropdown("Granularity", ("—",), initial_value="—", hint="Whole objects or parts")
            self.scale = gui.add_slider(
                "Scale", 0.0, 1.0, 0.01, 0.8, hint="Part ↔ whole: the prompt's 3D scale, as a quantile of the masks'"
            )
            self.auto_threshold = gui.add_checkbox("Auto threshold", s.threshold is None)
            self.threshold = gui.add_slider(
                "Threshold", 0.0, 1.0, 0.01, s.threshold or DEFAULT_THRESHOLD, disabled=s.threshold is None
            )
            self.negative = gui.add_checkbox("Clicks are negative", s.negative_clicks, hint="For touch screens")
            self.front_only = gui.add_checkbox("Box: visible surface only", s.front_only)
            self.edit = gui.add_button_group("Edit", ("Undo", "Redo", "Invert", "Clear"))

        with gui.add_folder("View", order=2):
            self.view = gui.add_dropdown("Show", tuple(VIEW_MODES), initial_value=_key(VIEW_MODES, s.view))
            self.dim_rest = gui.add_checkbox(
                "Dim the rest", s.dim_rest, hint="Off: only the selection is tinted (less to send on slow links)"
            )
            self.stats = gui.add_markdown("", order=None)

        with gui.add_folder("Export", order=3):
            self.export_sel = gui.add_button("Selection (PLY)", icon=None)
            self.export_without = gui.add_button("Scene without selection (PLY)")
            self.export_labels = gui.add_button("Labelled scene (PLY)")
            self.save_sel = gui.add_button("Selection mask (.npy)")
            self.upload = gui.add_upload_button("Load selection (.npy)", mime_type="*/*")
            self.exports_note = gui.add_markdown(f"Saved under `{session.workspace.root / 'exports'}`")

        with gui.add_folder("Features", order=4):
            self.features_md = gui.add_markdown("")
            self.prepare_btn = gui.add_button("Prepare masks")
            from backend.features.method import method_names

            self.method = gui.add_dropdown("Method", method_names(), initial_value="click", hint="What to train")
            self.train_btn = gui.add_button("Train features")
            self.progress = gui.add_progress_bar(0.0, visible=False, animated=True)

        with gui.add_folder("Session", order=5, expand_by_default=False):
            self.clients_md = gui.add_markdown("")
            share = f"Share link: {share_url}" if share_url else ""
            self.share_md = gui.add_markdown(share, visible=bool(share_url))
            gui.add_markdown(HELP)

        self.op.on_update(_from_user(lambda: actions.set_settings(op=OPS[self.op.value])))
        self.level.on_update(_from_user(lambda: actions.set_settings(level=self.level.value)))
        self.scale.on_update(_from_user(self._scale_changed))
        self.auto_threshold.on_update(_from_user(self._threshold_changed))
        self.threshold.on_update(_from_user(self._threshold_changed))
        self.negative.on_update(_from_user(lambda: actions.set_settings(negative_clicks=bool(self.negative.value))))
        self.front_only.on_update(_from_user(lambda: actions.set_settings(front_only=bool(self.front_only.value))))
        self.view.on_update(_from_user(lambda: actions.set_settings(view=VIEW_MODES[self.view.value])))
        self.dim_rest.on_update(_from_user(lambda: actions.set_settings(dim_rest=bool(self.dim_rest.value))))
        self.edit.on_click(_from_user(lambda: actions.edit(self.edit.value.lower())))
        self.export_sel.on_click(_from_user(lambda: actions.export("selection")))
        self.export_without.on_click(_from_user(lambda: actions.export("without")))
        self.export_labels.on_click(_from_user(lambda: actions.export("labels")))
        self.save_sel.on_click(_from_user(actions.save_selection))
        self.upload.on_upload(
            _from_user(lambda: actions.load_selection(self.upload.value.name, self.upload.value.content))
        )
        self.prepare_btn.on_click(_from_user(actions.prepare))
        self.train_btn.on_click(_from_user(lambda: actions.train(self.method.value)))

        self.sync(frozenset({"settings", "selection", "field", "job", "clients"}))

    def _scale_changed(self) -> None:
        quantiles = getattr(self.session.field, "quantiles", None)
        q = float(self.scale.value)
        self.actions.set_settings(scale=float(quantiles.inverse(q)) if quantiles is not None else q)

    def _threshold_changed(self) -> None:
        auto = bool(self.auto_threshold.value)
        self.threshold.disabled = auto
        self.actions.set_settings(threshold=None if auto else float(self.threshold.value))

    # ---- mirroring the session ---------------------------------------------------------------------------------
    def sync(self, kinds: frozenset[str]) -> None:
        session, s = self.session, self.session.settings
        if kinds & {"settings", "field"}:
            field = session.field
            self.op.value = _key(OPS, s.op)
            self.view.value = _key(VIEW_MODES, s.view)
            self.negative.value = s.negative_clicks
            self.front_only.value = s.front_only
            self.dim_rest.value = s.dim_rest
            self.auto_threshold.value = s.threshold is None
            self.threshold.disabled = s.threshold is None
            if s.threshold is not None:
                self.threshold.value = s.threshold
            elif field is not None and hasattr(field, "default_threshold"):
                self.threshold.value = float(field.default_threshold(None if field.uses_scale else s.level))
            uses_scale = field is not None and field.uses_scale
            levels = tuple(str(v) for v in (getattr(field, "levels", ()) or ())) if field is not None else ()
            self.level.visible = bool(levels)
            if levels:
                if tuple(self.level.options) != levels:
                    self.level.options = levels
                if s.level in levels:
                    self.level.value = s.level
            self.scale.visible = uses_scale
            quantiles = getattr(field, "quantiles", None)
            if uses_scale and s.scale is not None and quantiles is not None:
                self.scale.value = round(float(np.asarray(quantiles(np.array([s.scale])))[0]), 2)
        if kinds & {"selection", "settings", "field"}:
            self._sync_status()
        if kinds & {"field", "job"}:
            self._sync_features()
        if "clients" in kinds:
            n = session.client_count
            self.clients_md.content = f"**{n}** client{'s' if n != 1 else ''} connected (shared selection)"

    def _sync_status(self) -> None:
        session = self.session
        st = session.stats()
        n = len(session.scene)
        last = f" · last action {session.last_action_ms:.1f} ms" if session.last_action_ms is not None else ""
        self.status.content = f"**{st.count:,}** of {n:,} Gaussians selected{last}"
        if st.count and st.bbox_min is not None and st.bbox_max is not None:
            lo, hi = st.bbox_min, st.bbox_max
            size = hi - lo
            self.stats.content = (
                f"Selected: **{st.count:,}**  \nBox min: {_vec(lo)}  \nBox max: {_vec(hi)}  \nSize: {_vec(size)}"
            )
        else:
            self.stats.content = "Nothing selected."

    def _sync_features(self) -> None:
        session = self.session
        jobs = getattr(session, "jobs", None)
        field = session.field
        if field is not None:
            text = f"Features: **{field.method}**"
        else:
            masks = "masks ready" if session.has_masks else "no masks yet"
            text = f"No features yet ({masks}). {session.field_problem or ''}".strip()
        running = jobs is not None and jobs.running
        if running:
            text += f"  \n{jobs.name}: {jobs.status}"
        self.features_md.content = text
        self.prepare_btn.disabled = running
        self.train_btn.disabled = running or not session.has_masks
        self.progress.visible = running
        if running:
            fraction = jobs.fraction
            self.progress.animated = fraction is None
            self.progress.value = 100.0 if fraction is None else round(100.0 * fraction, 1)


def _key(mapping: dict[str, Any], value: Any) -> str:
    for k, v in mapping.items():
        if v == value:
            return k
    return next(iter(mapping))


def _vec(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in np.asarray(v).tolist()) + ")"

"""What one browser has: its splat chunks, its panel, and the handlers that turn its clicks into session actions.

Every handler runs through `_run`, which is where bad input meets the user: a `SplatsegError` (a click before
features exist, a busy session, a malformed upload) becomes a notification in that browser; anything else becomes a
red notification plus a traceback in the server log. Either way the server keeps serving.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.core.errors import SplatsegError
from backend.io.selection import load_selection, save_selection
from backend.viewpoints.up_choice import ESTIMATED

from .client_camera import camera_from_handle, screen_to_pixel
from .first_frame import after_first_frame
from .panels import Panel
from .sa3d_panel import Sa3dPanelHooks, add_sa3d_panel
from .session import Busy, NoFeatures, Session
from .splat_layers import LayeredSplats
from .splats import UpdateStats
from .text_panel import TextPanelHooks, add_text_panel
from .updates import PendingSlot

if TYPE_CHECKING:
    import viser

    from .context import ClientContext

PREFETCH_MAX_GAUSSIANS = 2_000_000
"""Above this the browser's sort would suffer from the copies; the first selection then sends the chunks it needs
once (the dimmed rest, the selected object), and later clicks reuse them."""
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
"""Larger exports are only saved in the workspace: a websocket download of gigabytes helps no one."""


class ClientView:
    """One connected (and, with a token, authenticated) browser."""

    def __init__(self, client: viser.ClientHandle, ctx: ClientContext) -> None:
        self.client = client
        self.ctx = ctx
        self.session: Session = ctx.session
        self.who = f"client {client.client_id}"
        self._update_lock = threading.Lock()
        self._pending = PendingSlot(self._apply, ctx.updates) if ctx.updates is not None else None
        """This browser's changes not yet sent (updates.py): a click never waits for another browser's update."""
        self.closed = False
        self.last_update: UpdateStats | None = None
        """Bytes the last look change sent to this browser (the figures measure this)."""
        self.prefetched_bytes = 0
        self.first_frame_at: float | None = None
        """When (time.monotonic) this browser said it had drawn the scene; None until then."""
        self.prefetched_at: float | None = None
        """When the dimmed and tinted copies went out (after `first_frame_at`, never before)."""

        self.splats: LayeredSplats | None = None
        if ctx.server_frames is None:
            self.splats = LayeredSplats(client.scene, ctx.chunks, self.session.rgba())
        else:
            ctx.server_frames.attach(client)
        up_choice = ctx.up_choice() if ctx.up_choice is not None else ESTIMATED
        self.panel = Panel(client.gui, self.session, self, share_url=ctx.share_url, up_choice=up_choice)
        self.text_panel = add_text_panel(
            client.gui,
            TextPanelHooks(
                index=ctx.text_index,
                select=self._select_from("text"),
                show_heat=self.session.set_heat,
                notify=self.notify,
                prepare=lambda: self._run(
                    lambda: self.session.jobs.start("Preparing text search", ctx.text_index.prepare_job(), who=self.who)
                ),
            ),
        )
        self.sa3d = add_sa3d_panel(
            client.gui,
            Sa3dPanelHooks(runner=ctx.sa3d_runner, select=self._select_from("sa3d"), notify=self.notify),
        )

        scene = client.scene
        scene.on_click()(lambda event: self._run(lambda: self._click(event, positive=True)))
        scene.on_click(modifier="alt")(lambda event: self._run(lambda: self._click(event, positive=False)))
        scene.on_click(modifier="cmd/ctrl")(lambda event: self._run(lambda: self._click(event, positive=False)))
        scene.on_rect_select(modifier="shift")(lambda event: self._run(lambda: self._rect(event, None)))
        scene.on_rect_select(modifier="cmd/ctrl+shift")(lambda event: self._run(lambda: self._rect(event, "subtract")))
        for label, key, modifier, what in (
            ("Undo", "Z", "cmd/ctrl", "undo"),
            ("Redo", "Y", "cmd/ctrl", "redo"),
            ("Invert selection", "I", "cmd/ctrl", "invert"),
            ("Clear selection", "escape", None, "clear"),
        ):
            command = client.gui.add_command(label, hotkey=key, modifier=modifier)  # type: ignore[arg-type]
            command.on_trigger(lambda _event, what=what: self.edit(what))
        self.session.subscribe(self)
        self._prefetch_after_first_frame()  # last: the browser's answer then means all of the above was drawn

    # ---- plumbing ----------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return not self.closed and self.ctx.is_connected(self.client.client_id)

    def close(self) -> None:
        self.closed = True
        if self._pending is not None:
            self._pending.close()
        with self._update_lock:  # an update in flight finishes first; then the splat buffers go
            self.splats = None
        self._pending = None
        self.session.unsubscribe(self)
        if self.ctx.server_frames is not None:
            self.ctx.server_frames.detach(self.client)

    def notify(self, title: str, body: str, color: str | None = None, *, seconds: float | None = 6.0) -> None:
        if not self.connected:
            return
        with contextlib.suppress(Exception):
            self.client.add_notification(title, body, color=color, auto_close_seconds=seconds)  # type: ignore[arg-type]

    def _run(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Busy as e:
            self.notify("Busy", str(e), "yellow")
        except NoFeatures as e:
            self.notify("No features yet", str(e), "yellow", seconds=10.0)
        except SplatsegError as e:
            self.notify("Could not do that", str(e), "red", seconds=10.0)
        except Exception as e:
            traceback.print_exc()
            self.notify(
                "Internal error", f"{type(e).__name__}: {e} (the server log has the details)", "red", seconds=None
            )
        return None

    # ---- session → browser -------------------------------------------------------------------------------------
    def on_change(self, kinds: frozenset[str]) -> None:
        """Called on the acting thread: only marks this browser's slot; the update runs on the update worker."""
        if self.closed:
            return
        if self._pending is not None:
            self._pending.mark(kinds)
        else:
            self._apply(kinds)

    def _apply(self, kinds: frozenset[str]) -> None:  # the newest look, whatever changes led to it
        if self.closed:
            return
        with self._update_lock:
            if "look" in kinds:
                if self.splats is not None:
                    look, plain, dimmed = self.session.look_parts()  # a click's look is never made into an array
                    self.last_update = self.splats.update(look, plain=plain, dimmed=dimmed)
                elif self.ctx.server_frames is not None:
                    self.ctx.server_frames.refresh(self.client)
            self.panel.sync(kinds)

    def _prefetch_after_first_frame(self) -> None:
        """The dimmed and tinted copies triple what the browser merges, sorts and draws: they go once it has drawn
        the scene (first_frame.py), never on a timer that a slow browser's first frame outlasts."""
        if self.splats is None or len(self.session.scene) > PREFETCH_MAX_GAUSSIANS:
            return

        def drawn() -> None:
            self.first_frame_at = time.monotonic()
            self._prefetch()

        after_first_frame(self.client, drawn, still_wanted=lambda: not self.closed)

    def _prefetch(self) -> None:
        if self.closed or self.splats is None:
            return
        with self._update_lock:
            if self.splats is None:  # closed meanwhile
                return
            try:
                _, _, dimmed = self.session.look_parts()
                self.prefetched_at = time.monotonic()
                self.prefetched_bytes = self.splats.prefetch(dimmed, self.session.tint_layer())
            except Exception as e:  # a client gone meanwhile: nothing to do
                if self.connected:
                    print(f"splatseg view: could not send the dimmed and tinted copies to {self.who} ({e})")

    def on_notify(self, title: str, body: str, color: str | None) -> None:
        self.notify(title, body, color)

    # ---- browser → session -------------------------------------------------------------------------------------
    def _camera(self):
        try:
            return camera_from_handle(self.client.camera)
        except AssertionError:  # viser asserts until the browser has reported its camera once
            raise SplatsegError("the browser has not reported its camera yet; try again in a second") from None

    def _select_from(self, label: str) -> Callable[[Any, str, object], None]:
        """The `select` hook of the text and SA3D panels: their masks join the shared selection like a click's."""

        def select(mask: Any, op: str, key: object) -> None:
            self._run(lambda: self.session.apply_mask(mask, op, label=label, merge_key=key, who=self.who))

        return select

    def _click(self, event: Any, *, positive: bool) -> None:
        camera = self._camera()
        pixel = screen_to_pixel(camera, event.screen_pos)
        if positive and self.sa3d.armed:  # "segment without training" mode: SA3D runs in the background
            self.sa3d.run(camera, pixel)
            return
        result = self.session.click(camera, pixel, positive=positive, who=self.who)
        self.panel.status.content = f"**{result.count:,}** of {len(self.session.scene):,} Gaussians selected · " + (
            f"{result.message} ({result.milliseconds:.1f} ms)"
        )

    def _rect(self, event: Any, op: str | None) -> None:
        camera = self._camera()
        x0, y0 = screen_to_pixel(camera, event.screen_min)
        x1, y1 = screen_to_pixel(camera, event.screen_max)
        self.session.rect(camera, (x0, y0, x1, y1), op=op, who=self.who)  # type: ignore[arg-type]

    # ---- PanelActions ------------------------------------------------------------------------------------------
    def set_settings(self, **changes: Any) -> None:
        self._run(lambda: self.session.update_settings(self.who, **changes))

    def edit(self, what: str) -> None:
        self._run(lambda: self.session.edit(what, self.who))  # type: ignore[arg-type]

    def export(self, kind: str) -> None:
        self._run(lambda: self._export(kind))

    def _export(self, kind: str) -> None:
        note = self.client.add_notification("Exporting…", "writing the file", loading=True, with_close_button=False)
        try:
            path, count = self.session.export(kind, self.who)  # type: ignore[arg-type]
        except BaseException:
            note.remove()
            raise
        self._offer(path, f"{count:,} Gaussians", note)

    def _offer(self, path: Path, what: str, note: Any) -> None:
        """Send a finished file to this browser, unless it left meanwhile (the file stays in the workspace)."""
        if not self.connected:
            print(f"splatseg view: {self.who} left before its download; kept {path}")
            return
        size = path.stat().st_size
        if size <= MAX_DOWNLOAD_BYTES:
            self.client.send_file_download(path.name, path.read_bytes(), save_immediately=True)
            body = f"{what} → {path.name} (downloading; also saved in {path.parent})"
        else:
            body = f"{what} → {path} ({size / 2**20:.0f} MiB: too large to download; copy it from the server)"
        note.title, note.body, note.loading, note.with_close_button = "Exported", body, False, True
        note.auto_close_seconds = 10.0

    def save_selection(self) -> None:
        def work() -> None:
            with self.session.acting(self.who, "save"):
                mask = self.session.selection.mask.copy()
            stamp = self.session.export_stamp()
            path = self.session.workspace.path(f"exports/{self.session.export_stem()}_selection_{stamp}.npy")
            save_selection(path, mask)
            note = self.client.add_notification("Saved", str(path), loading=False)
            self._offer(path, f"{int(mask.sum()):,} selected", note)

        self._run(work)

    def load_selection(self, name: str, content: bytes) -> None:
        def work() -> None:
            n = len(self.session.scene)
            if len(content) > 8 * n + 4096:  # int64 0/1 is the largest form load_selection accepts
                raise SplatsegError(f"{name} is {len(content):,} bytes, too large for a selection of {n:,} Gaussians")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload.npy"
                path.write_bytes(content)
                try:
                    mask = load_selection(path, n)
                except SplatsegError as e:
                    raise SplatsegError(str(e).replace(str(path), name)) from None
            self.session.load_mask(mask, who=self.who)
            self.notify("Selection loaded", f"{int(mask.sum()):,} Gaussians from {name}", "green")

        self._run(work)

    def set_up(self, choice: str) -> None:
        """The Up dropdown: every browser turns to the choice, and the workspace remembers it."""
        if self.ctx.set_up is not None:
            self._run(lambda: self.ctx.set_up(choice))

    def prepare(self) -> None:
        self._run(lambda: self.ctx.start_prepare(self.who))

    def train(self, method: str = "click") -> None:
        self._run(lambda: self.ctx.start_train(self.who, method))

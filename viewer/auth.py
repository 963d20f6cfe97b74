"""`--token T`: a browser sees neither the scene nor the controls until it enters T.

viser sends a client only what is added to its own `client.scene` / `client.gui` (plus anything on the server-wide
API, which the viewer leaves empty), so the gate is simply to build nothing for a client but a token box, and build
its splats and panel once the token matches. Comparison is constant-time and wrong guesses are slowed down, so the
token cannot be probed quickly from a share link.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.core.errors import SplatsegError

if TYPE_CHECKING:
    import viser

MAX_FREE_ATTEMPTS = 3
"""Wrong tokens before each further attempt costs a delay."""


class TokenGate:
    def __init__(self, token: str | None) -> None:
        if token is not None and not token.strip():
            raise SplatsegError("--token must not be empty")
        self.token = token
        self._failures: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def check(self, client_id: int, attempt: str) -> bool:
        """Whether `attempt` is the token; repeated failures from one client are delayed (1 s, 2 s, … up to 10 s)."""
        if self.token is None:
            return True
        ok = hmac.compare_digest(attempt.strip().encode(), self.token.encode())
        with self._lock:
            failures = 0 if ok else self._failures.get(client_id, 0) + 1
            self._failures[client_id] = failures
        if not ok and failures > MAX_FREE_ATTEMPTS:
            time.sleep(min(10.0, float(failures - MAX_FREE_ATTEMPTS)))
        return ok

    def forget(self, client_id: int) -> None:
        with self._lock:
            self._failures.pop(client_id, None)

    def show(self, client: viser.ClientHandle, on_granted: Callable[[], None]) -> None:
        """Put the token box in this client's panel; `on_granted` runs (once) when the right token is entered."""
        gui = client.gui
        note = gui.add_markdown("This splatseg session is protected. Enter the access token to open the scene.")
        box = gui.add_text("Access token", "", hint="Given with --token when the viewer was started")
        button = gui.add_button("Open scene")
        granted = threading.Event()

        def attempt(_event: object) -> None:
            if granted.is_set():
                return
            if self.check(client.client_id, box.value):
                granted.set()
                for handle in (note, box, button):
                    handle.remove()
                on_granted()
            else:
                client.add_notification(
                    "Wrong token", "That is not this session's token.", color="red", auto_close_seconds=5.0
                )

        button.on_click(attempt)

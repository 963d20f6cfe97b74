"""The session's two ways of talking to its browsers: a listener bus (what changed, notifications) and the one
lock an action holds, with the message a second client gets while it is held."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol

from backend.core.errors import SplatsegError

LOCK_WAIT_S = 2.0
"""How long an action waits for another client's to finish before the user is told the session is busy."""


class Busy(SplatsegError):
    """Another client's action holds the session."""


class SessionListener(Protocol):
    def on_change(self, kinds: frozenset[str]) -> None: ...

    def on_notify(self, title: str, body: str, color: str | None) -> None: ...


class SessionBus:
    """Listeners and the action lock, for `Session` (which sets `_lock`, `_listeners`, `_listeners_lock` and
    `busy_with` in its constructor)."""

    _lock: threading.RLock
    _listeners: list[SessionListener]
    _listeners_lock: threading.Lock
    busy_with: str | None

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

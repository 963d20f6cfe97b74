"""Long work (preparing masks, training features) off the event loop, one job at a time, with progress.

A scene opened before it was prepared still shows at once; Prepare and Train run here in a thread while everyone
keeps orbiting and box-selecting. Progress and the outcome reach every client through the session (a progress bar
and a notification); a failure is a message, never a dead server.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from backend.core.errors import SplatsegError

ProgressFn = Callable[[float | None, str], None]
"""progress(fraction in [0, 1] or None when unknown, status text)."""


class JobRunner:
    """Runs one named job at a time; `emit` is told ("job") whenever its progress or state changes."""

    def __init__(self, emit: Callable[[], None], notify: Callable[[str, str, str | None], None]) -> None:
        self._emit = emit
        self._notify = notify
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.name: str | None = None
        """The running job ("Preparing masks"), or None."""
        self.fraction: float | None = None
        self.status: str = ""
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        name: str,
        work: Callable[[ProgressFn], Any],
        *,
        who: str = "",
        on_done: Callable[[Any], None] | None = None,
    ) -> None:
        """Start `work(progress)` in a thread; raises `SplatsegError` if a job is already running."""
        with self._lock:
            if self.running:
                raise SplatsegError(f"{self.name} is already running; wait for it to finish")
            self.name, self.fraction, self.status, self.last_error = name, None, "starting", None
            self._thread = threading.Thread(
                target=self._run, args=(name, work, who, on_done), name=f"splatseg-{name}", daemon=True
            )
            self._thread.start()
        self._emit()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _progress(self, fraction: float | None, status: str) -> None:
        self.fraction = None if fraction is None else min(max(float(fraction), 0.0), 1.0)
        self.status = status
        self._emit()

    def _run(self, name: str, work: Callable[[ProgressFn], Any], who: str, on_done: Callable[[Any], None] | None):
        t0 = time.perf_counter()
        try:
            result = work(self._progress)
            if on_done is not None:
                on_done(result)
        except SplatsegError as e:
            self.last_error = str(e)
            self._notify(f"{name} failed", str(e), "red")
        except Exception as e:  # a bug in a job must not take the viewer down; say what happened
            self.last_error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
            self._notify(f"{name} failed", f"{type(e).__name__}: {e} (the server log has the traceback)", "red")
        else:
            by = f" (started by {who})" if who else ""
            self._notify(f"{name} finished", f"in {time.perf_counter() - t0:.0f} s{by}", "green")
        finally:
            with self._lock:
                self.name, self.fraction, self.status = None, None, ""
            self._emit()

"""Bringing browsers up to date off the clicking thread: one pending slot per browser, latest wins.

A click used to recolour every browser's splats one after another on the thread that handled the click, so with
20 browsers the clicker waited for 19 other diffs and sends. Now `Session._emit` only
marks each browser's slot (`PendingSlot`: the kinds of change since its last update) and hands it to the shared
`UpdateWorker`; the click returns as soon as the selection is computed. A browser is in the worker's queue at most
once: changes that arrive while it waits merge into its slot, and its update reads the session's newest look when
it runs, so five quick clicks cost a slow browser one update, not five. A browser whose slot fills while it is
being updated goes to the back of the queue, so one busy browser cannot starve the others.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

UPDATE_THREADS = 2
"""Worker threads: the diff is numpy (it releases the GIL), so two keep both cores of a small server busy."""


class UpdateWorker:
    """A few daemon threads running submitted updates in arrival order; `drain` waits until all have run."""

    def __init__(self, threads: int = UPDATE_THREADS, *, name: str = "splatseg-updates") -> None:
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            self._queue.append(job)
            self._cond.notify()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopped)
                if self._stopped:
                    return
                job = self._queue.popleft()
                self._running += 1
            try:
                job()
            except Exception as e:  # one broken browser must not stop the others' updates
                print(f"splatseg view: a client failed to update ({type(e).__name__}: {e})")
            finally:
                del job  # an idle worker must not keep the last browser (and its buffers) alive
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


class PendingSlot:
    """One browser's changes not yet sent: `mark` merges kinds and queues `apply` once; latest wins."""

    def __init__(self, apply: Callable[[frozenset[str]], None], worker: UpdateWorker) -> None:
        self._apply = apply
        self._worker = worker
        self._lock = threading.Lock()
        self._kinds: set[str] = set()
        self._queued = False
        self.closed = False

    def mark(self, kinds: frozenset[str]) -> None:
        with self._lock:
            if self.closed:
                return
            self._kinds |= kinds
            if self._queued:  # already waiting (or running, and it will requeue itself): merge and return
                return
            self._queued = True
        self._worker.submit(self._run)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._kinds.clear()

    def _run(self) -> None:
        with self._lock:
            kinds = frozenset(self._kinds)
            self._kinds.clear()
        try:
            if kinds and not self.closed:
                self._apply(kinds)
        finally:
            with self._lock:
                again = bool(self._kinds) and not self.closed
                self._queued = again
            if again:  # changed while it was being updated: to the back of the queue, behind the others
                self._worker.submit(self._run)

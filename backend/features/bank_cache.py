"""The field's prepared banks per granularity: an LRU bounded by bytes, and a background builder that fills it.

A SAGA bank is made for one scale: the gated, normalised features ([D, N] float32, 128 MB at 1M Gaussians and
32 channels) regrouped in place into its `PrunedBank` (the field's only copy, plus ~28 bytes a Gaussian), a few seconds
of CPU at 1M. A person clicks many times at a few scales (the automatic scale is on a grid, `auto_scale.py`; the
slider rests between moves), so the banks are kept while they fit in `BankCache.budget` bytes. A click at a scale
whose bank is not built does not wait for it: it takes the exact path over the ungated features
(`SagaMethod.select_unbuilt`) and asks `BankBuilder` to build the bank in the background for the next click.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from torch import Tensor

DEFAULT_BUDGET = 1 << 30
"""Bytes of prepared banks a field keeps (1 GiB: at 1M Gaussians about six SAGA scales, each its gated bank kept
once, as its `PrunedBank`; at 200k about thirty). The `keep` most recent entries stay whatever their size."""


def nbytes(value: Any) -> int:
    """Bytes held by a tensor, an array, or a tuple / object of them (a `PrunedBank`'s arrays)."""
    if isinstance(value, Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "__dict__"):  # an array and a view of it (`PrunedBank._flat` of its tiles) count once
        owners: dict[int, int] = {}
        for v in vars(value).values():
            if isinstance(v, np.ndarray):
                root = v
                while isinstance(root.base, np.ndarray):
                    root = root.base
                owners[id(root)] = max(owners.get(id(root), 0), int(root.nbytes))
            elif isinstance(v, Tensor):
                owners[id(v)] = nbytes(v)
        return sum(owners.values())
    return 0


class BankCache:
    """An LRU of prepared banks that evicts the least recently used while it holds more than `budget` bytes and
    more than `keep` entries (so a huge scene still keeps as many as the field kept before the budget: three)."""

    def __init__(self, budget: int = DEFAULT_BUDGET, keep: int = 3) -> None:
        self.budget = int(budget)
        self.keep = int(keep)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: Hashable) -> Any | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        self._entries.move_to_end(key)
        return hit[0]

    def put(self, key: Hashable, value: Any) -> list[Hashable]:  # → the keys evicted
        self.pop(key)
        size = nbytes(value)
        self._entries[key] = (value, size)
        self.bytes += size
        evicted = []
        while len(self._entries) > self.keep and self.bytes > self.budget:
            old, (_, old_size) = self._entries.popitem(last=False)
            self.bytes -= old_size
            evicted.append(old)
        return evicted

    def pop(self, key: Hashable) -> Any | None:
        hit = self._entries.pop(key, None)
        if hit is None:
            return None
        self.bytes -= hit[1]
        return hit[0]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Hashable]:  # oldest first
        return list(self._entries)

    def values(self) -> list[Any]:  # oldest first
        return [v for v, _ in self._entries.values()]


class BankBuilder:
    """One background thread that builds banks a click asked for, the most recent request first.

    `build(key)` runs outside every lock (it reads the features, never the caches) at a lower CPU priority where
    the system allows it; `store(key, value)` is then called under `lock`, the field's click lock, so a click
    sees a bank either whole or not at all. Requests already pending or built are ignored; at most `pending`
    wait (a slider dragged across many scales: the oldest requests are dropped, the latest is built next).
    """

    def __init__(
        self,
        build: Callable[[Hashable], Any],
        store: Callable[[Hashable, Any], None],
        lock: threading.RLock,
        *,
        pending: int = 2,
    ) -> None:
        self._build = build
        self._store = store
        self._lock = lock
        self._limit = pending
        self._queue: OrderedDict[Hashable, None] = OrderedDict()
        self._busy: Hashable | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        """The last builds that failed (a message each, at most 10): their clicks keep the exact unbuilt path."""

    def request(self, key: Hashable) -> None:
        with self._cv:
            if key == self._busy or key in self._queue:
                return
            self._queue[key] = None
            while len(self._queue) > self._limit:
                self._queue.popitem(last=False)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="splatseg-bank-builder", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being built (tests, benchmarks); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and self._busy is None, timeout)

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError, PermissionError):  # Linux: a thread has its own nice
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            with self._cv:
                if not self._queue:
                    self._busy = None
                    self._cv.notify_all()
                    self._thread = None
                    return
                key, _ = self._queue.popitem(last=True)  # the most recent request
                self._busy = key
            try:
                value = self._build(key)
                with self._lock:
                    self._store(key, value)
            except Exception as e:  # a failed build must not end the thread; the clicks stay on the exact path
                self.errors = [*self.errors[-9:], f"{key}: {type(e).__name__}: {e}"]
            with self._cv:
                self._busy = None
                self._cv.notify_all()

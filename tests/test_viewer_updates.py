"""Browser updates run off the acting thread, one pending slot per browser, latest wins (viewer/updates.py)."""

from __future__ import annotations

import threading
import time

import numpy as np

from backend.workspace import Workspace
from tests.conftest import random_scene
from viewer.client_view import ClientView
from viewer.context import ClientContext
from viewer.looks import LookParts
from viewer.session import Session
from viewer.updates import PendingSlot, UpdateWorker


class Recorder:
    """An `apply` that records the kinds it got; the first call can be held until `release` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[frozenset[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, kinds: frozenset[str]) -> None:
        self.calls.append(kinds)
        self.started.set()
        assert self.release.wait(10)


def test_changes_while_queued_or_running_coalesce_into_one_more_update():
    worker = UpdateWorker(threads=1)
    try:
        rec = Recorder(hold=True)
        slot = PendingSlot(rec, worker)
        slot.mark(frozenset({"look"}))
        assert rec.started.wait(5)
        t0 = time.perf_counter()
        for kinds in ({"selection"}, {"look"}, {"settings"}, {"look", "job"}):
            slot.mark(frozenset(kinds))  # the caller (a click) never waits for the running update
        assert time.perf_counter() - t0 < 0.5
        rec.release.set()
        assert worker.drain(10)
        assert rec.calls == [frozenset({"look"}), frozenset({"selection", "look", "settings", "job"})]
    finally:
        worker.stop()


def test_a_browser_changed_during_its_update_goes_behind_the_others():
    worker = UpdateWorker(threads=1)
    order: list[str] = []
    try:
        slots: dict[str, PendingSlot] = {}

        def apply_a(kinds):
            order.append("a")
            if len(order) == 1:  # the session changes again while A is being updated
                slots["a"].mark(frozenset({"look"}))
                slots["b"].mark(frozenset({"look"}))

        slots["a"] = PendingSlot(apply_a, worker)
        slots["b"] = PendingSlot(lambda kinds: order.append("b"), worker)
        slots["a"].mark(frozenset({"look"}))
        assert worker.drain(10)
        assert order == ["a", "b", "a"]
    finally:
        worker.stop()


def test_a_failing_update_does_not_stop_the_worker(capsys):
    worker = UpdateWorker(threads=1)
    try:

        def broken(kinds):
            raise RuntimeError("socket gone")

        rec = Recorder()
        PendingSlot(broken, worker).mark(frozenset({"look"}))
        PendingSlot(rec, worker).mark(frozenset({"look"}))
        assert worker.drain(10)
        assert rec.calls == [frozenset({"look"})]
        assert "a client failed to update (RuntimeError: socket gone)" in capsys.readouterr().out
    finally:
        worker.stop()


def test_a_closed_slot_sends_nothing():
    worker = UpdateWorker(threads=1)
    try:
        rec = Recorder()
        slot = PendingSlot(rec, worker)
        slot.close()
        slot.mark(frozenset({"look"}))
        assert worker.drain(10)
        assert rec.calls == []
    finally:
        worker.stop()


class SlowSplats:
    """A browser whose splat update takes as long as the test says (a slow diff or a congested send)."""

    def __init__(self, hold: bool) -> None:
        self.looks: list[np.ndarray] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def update(self, rgba, *, plain, dimmed):
        assert self.release.wait(10)
        self.looks.append((rgba.rgba() if isinstance(rgba, LookParts) else rgba).copy())
        return None


class FakePanel:
    def __init__(self) -> None:
        self.synced: list[frozenset[str]] = []

    def sync(self, kinds) -> None:
        self.synced.append(kinds)


def _view(session: Session, ctx: ClientContext, splats: SlowSplats) -> ClientView:
    view = ClientView.__new__(ClientView)  # the update path only, no viser
    view.session, view.ctx, view.closed, view.splats = session, ctx, False, splats
    view.panel = FakePanel()
    view._update_lock = threading.Lock()
    view._pending = PendingSlot(view._apply, ctx.updates)
    session.subscribe(view)
    return view


def test_a_slow_browser_neither_delays_the_session_nor_receives_stale_looks(tmp_path):
    session = Session(random_scene(300), workspace=Workspace(tmp_path))
    worker = UpdateWorker(threads=2)
    try:
        ctx = ClientContext(session=session, is_connected=lambda client_id: True, updates=worker)
        slow, fast = SlowSplats(hold=True), SlowSplats(hold=False)
        slow_view, fast_view = _view(session, ctx, slow), _view(session, ctx, fast)
        t0 = time.perf_counter()
        for i in range(5):  # five selection changes in a row while one browser is stuck
            session.apply_mask(np.arange(300) < 50 * (i + 1), "replace", label="test", who="client 1")
        assert time.perf_counter() - t0 < 2.0  # the acting thread never waited for the stuck browser
        slow.release.set()
        assert worker.drain(10)
        final = session.look_layers()[0]
        assert len(slow.looks) <= 2  # the one in flight, then one with the newest look: not five
        np.testing.assert_array_equal(slow.looks[-1], final)
        np.testing.assert_array_equal(fast.looks[-1], final)
        assert "selection" in set().union(*slow_view.panel.synced)
        fast_view.close()
        session.apply_mask(np.zeros(300, bool), "replace", label="test", who="client 1")
        assert worker.drain(10)
        np.testing.assert_array_equal(fast.looks[-1], final)  # closed: no further sends
    finally:
        worker.stop()

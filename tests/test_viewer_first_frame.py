"""The dimmed and tinted copies go to a browser only after it says it has drawn the scene (viewer/first_frame.py):
never on a timer, never to a browser that leaves or never draws, and a first click before then still shows right.

The browser here answers viser's render round trip when the test says so; everything on the server side is the real
code (`ClientView`'s prefetch, `LayeredSplats`, a session), with viser's scene API recorded
(tests/helpers/splat_browser.py)."""

from __future__ import annotations

import threading
import time

import numpy as np

from backend.workspace import Workspace
from tests.conftest import random_scene
from tests.helpers.splat_browser import RecordingSceneApi, drawn_words, expected_words
from viewer.client_view import ClientView
from viewer.context import ClientContext
from viewer.first_frame import MAX_PROBES, PROBE_PIXELS, after_first_frame, wait_first_frame
from viewer.session import Session
from viewer.splat_layers import LayeredSplats
from viewer.splats import SplatChunks

SLOW_FIRST_FRAME_S = 3.5
"""Longer than the fixed timer the copies used to follow (3 s): a timer of any such length fails this test."""


class _Camera:
    def __init__(self) -> None:
        self.reported = False

    @property
    def wxyz(self) -> np.ndarray:
        assert self.reported  # as viser's CameraHandle does until the browser has reported its camera
        return np.array([1.0, 0.0, 0.0, 0.0])


class SlowBrowser:
    """A client that reports its camera and answers the render round trip only when told (`draw`), or leaves; its
    first `blank` answers show nothing (the splats not mounted yet), as viser's client's first capture does, and
    the next `fading` ones a splat still fading in."""

    def __init__(self, client_id: int = 1, *, blank: int = 0, fading: int = 0) -> None:
        self.client_id = client_id
        self.camera = _Camera()
        self.drawn = threading.Event()
        self.left = threading.Event()
        self.blank = blank
        self.fading = fading
        self.probes: list[tuple[int, int, str]] = []
        self.render_asked_at: float | None = None
        self.answered_at: float | None = None

    def draw(self) -> None:
        self.answered_at = time.monotonic()
        self.drawn.set()

    def get_render(
        self, height: int, width: int, *, transport_format: str = "jpeg", timeout: float | None = None
    ) -> np.ndarray:
        self.probes.append((height, width, transport_format))
        self.render_asked_at = time.monotonic()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.drawn.wait(0.01):
            if self.left.is_set():
                raise RuntimeError("Render request failed: the client disconnected before returning a frame.")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("no frame")
        image = np.zeros((height, width, 4), np.uint8)  # PNG: transparent where nothing is drawn
        if self.blank > 0:
            self.blank -= 1
        else:
            image[height // 2, width // 3] = (90, 60, 30, 200 - 20 * self.fading)  # one splat, fading in
            self.fading = max(0, self.fading - 1)
        return image


class _NoPanel:
    def sync(self, kinds) -> None:
        pass


def _view(tmp_path) -> tuple[ClientView, SlowBrowser, RecordingSceneApi]:
    scene = random_scene(3000)
    session = Session(scene, workspace=Workspace(tmp_path))
    browser = SlowBrowser()
    api = RecordingSceneApi()
    view = ClientView.__new__(ClientView)  # the prefetch's parts only, no viser
    view.client, view.session, view.who, view.closed = browser, session, "client 1", False
    view.ctx = ClientContext(session=session, is_connected=lambda client_id: client_id == 1)
    view._update_lock = threading.Lock()
    view._pending = None
    view.prefetched_bytes, view.first_frame_at, view.prefetched_at = 0, None, None
    view.splats = LayeredSplats(api, SplatChunks(scene, num_chunks=16), session.rgba())
    return view, browser, api


def _copies(api: RecordingSceneApi) -> list[str]:
    return [name for name in api.nodes if name.startswith(("/splats/dim/", "/splats/tint/"))]


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_the_copies_wait_for_the_first_frame_however_long_it_takes(tmp_path):
    view, browser, api = _view(tmp_path)
    view._prefetch_after_first_frame()
    time.sleep(0.2)
    assert browser.render_asked_at is None, "the probe renders from the browser's camera: it waits for it"
    browser.camera.reported = True
    assert _wait(lambda: browser.render_asked_at is not None, 5)
    time.sleep(SLOW_FIRST_FRAME_S)
    assert _copies(api) == [] and view.prefetched_bytes == 0, "the copies went out before the browser had drawn"
    browser.draw()
    assert _wait(lambda: view.prefetched_bytes > 0, 10)
    assert view.first_frame_at is not None and view.prefetched_at is not None
    assert browser.answered_at <= view.first_frame_at <= view.prefetched_at
    n = len(view.session.scene)
    assert view.prefetched_bytes == 2 * n * 32  # the dimmed and the tinted copy, whole
    assert len(_copies(api)) == 2 * 16
    assert browser.probes == [(PROBE_PIXELS, PROBE_PIXELS, "png")] * 2  # drawn, then the same again: settled


def test_blank_or_changing_probes_mean_not_settled_yet_and_a_view_of_nothing_gets_the_copies_in_the_end():
    browser = SlowBrowser(blank=2)
    browser.camera.reported = True
    browser.draw()
    assert wait_first_frame(browser, timeout=30)
    assert len(browser.probes) == 4  # two blank answers (alike, but nothing drawn), then the splat twice

    fading = SlowBrowser(fading=3)  # three frames of a splat still fading in, then it stays
    fading.camera.reported = True
    fading.draw()
    assert wait_first_frame(fading, timeout=30)
    assert len(fading.probes) == 5  # three fading, the full one, the full one again

    nothing = SlowBrowser(blank=10**6)  # the scene lies outside the browser's view
    nothing.camera.reported = True
    nothing.draw()
    assert wait_first_frame(nothing, timeout=30)
    assert len(nothing.probes) == MAX_PROBES


def test_a_browser_that_leaves_or_never_draws_gets_no_copies(tmp_path):
    view, browser, api = _view(tmp_path)
    browser.camera.reported = True
    view._prefetch_after_first_frame()
    assert _wait(lambda: browser.render_asked_at is not None, 5)
    browser.left.set()  # viser raises RuntimeError from get_render when the client disconnects
    view.closed = True
    time.sleep(0.3)
    assert _copies(api) == [] and view.prefetched_bytes == 0

    never = SlowBrowser(2)
    never.camera.reported = True
    done = []
    thread = after_first_frame(never, lambda: done.append(1), timeout=0.3)
    thread.join(5)
    assert not thread.is_alive() and done == []

    class Garbage(SlowBrowser):  # an untrusted client answering with something that does not decode
        def get_render(self, height, width, **kwargs):
            raise ValueError("not a PNG")

    garbage = Garbage(4)
    garbage.camera.reported = True
    assert not wait_first_frame(garbage, timeout=30)

    gone = SlowBrowser(3)  # never reports its camera; the view closes meanwhile
    closed = threading.Timer(0.2, lambda: setattr(gone, "closed", True))
    closed.start()
    t0 = time.monotonic()
    assert not wait_first_frame(gone, timeout=30, still_wanted=lambda: not getattr(gone, "closed", False))
    assert time.monotonic() - t0 < 5 and gone.render_asked_at is None


def test_a_first_selection_before_the_first_frame_shows_right_and_the_copies_follow(tmp_path):
    view, browser, api = _view(tmp_path)
    view.panel = _NoPanel()
    browser.camera.reported = True
    view._prefetch_after_first_frame()
    mask = np.zeros(len(view.session.scene), bool)
    mask[:700] = True
    view.session.apply_mask(mask, "replace", label="test", who="test")
    view._apply(frozenset({"look"}))
    assert view.last_update is not None and view.last_update.bytes_sent > 0  # what the selection needed, now
    assert view.prefetched_bytes == 0
    browser.draw()
    assert _wait(lambda: view.prefetched_bytes > 0, 10)
    chunks = view.splats.chunks
    assert np.array_equal(drawn_words(api, chunks), expected_words(view.session.rgba(), chunks))
    view.session.edit("clear", "test")  # and the copies are what a clear now shows, with nothing resent
    view._apply(frozenset({"look"}))
    assert view.last_update.bytes_sent == 0
    assert np.array_equal(drawn_words(api, chunks), expected_words(view.session.rgba(), chunks))

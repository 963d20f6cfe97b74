"""When a browser has drawn the scene once: the moment work that would slow its first frame may follow.

viser's client merges every splat node into one buffer, sorts it and draws it, hidden nodes included (a hidden node
is moved off screen, not left out). The dimmed and tinted copies a browser keeps ready for selections therefore
triple what a browser merges, uploads, sorts and shades; if they arrive before its first frame (a software-WebGL
browser can take tens of seconds to draw the first one), that first frame waits for all three copies. A fixed timer
cannot know how slow a browser is, so the copies follow a signal from the browser itself.

The signal is viser's own render round trip (`ClientHandle.get_render`) at a few pixels: the client handles its
message queue in order from its render loop, so the request is taken up after the scene's chunks sent before it,
and the answer comes back once the client has rendered the scene with them. The probe renders from the browser's
own camera (so the sort order it leaves behind is the one the next frame wants) and asks for a tiny image (its
pixel cost is nothing; its vertex cost is one more pass over the scene, once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

PROBE_PIXELS = 8
"""Width and height of the probe render: the answer is the signal; the picture is thrown away."""
FIRST_FRAME_TIMEOUT_S = 900.0
"""A browser that has not drawn by then (a hidden tab never does) gets no copies ahead of time; its first
selection then sends the chunks it needs once."""
CAMERA_POLL_S = 0.05


class _Client(Protocol):
    client_id: int
    camera: Any

    def get_render(self, height: int, width: int, **kwargs: Any) -> Any: ...


def camera_known(client: _Client) -> bool:
    """Whether the browser has reported its camera (viser asserts on reading it until then)."""
    try:
        client.camera.wxyz  # noqa: B018 (the read is the check)
    except AssertionError:
        return False
    return True


def wait_first_frame(
    client: _Client,
    *,
    timeout: float = FIRST_FRAME_TIMEOUT_S,
    still_wanted: Callable[[], bool] = lambda: True,
) -> bool:
    """Block until `client` has drawn the scene sent to it so far; False if it left, never drew within `timeout`,
    or `still_wanted()` turned False meanwhile. Call it on a thread of its own: it waits on the browser."""
    deadline = time.monotonic() + timeout
    while not camera_known(client):  # the probe renders from the browser's own camera
        if not still_wanted() or time.monotonic() > deadline:
            return False
        time.sleep(CAMERA_POLL_S)
    if not still_wanted():
        return False
    try:
        client.get_render(PROBE_PIXELS, PROBE_PIXELS, timeout=max(0.0, deadline - time.monotonic()))
    except (TimeoutError, RuntimeError):  # never drew in time, or left (viser raises RuntimeError then)
        return False
    return still_wanted()


def after_first_frame(
    client: _Client,
    then: Callable[[], None],
    *,
    timeout: float = FIRST_FRAME_TIMEOUT_S,
    still_wanted: Callable[[], bool] = lambda: True,
) -> threading.Thread:
    """Run `then` on a daemon thread once `client` has drawn its first frame (`wait_first_frame`); never if it
    does not. Returns the thread (started)."""

    def run() -> None:
        if wait_first_frame(client, timeout=timeout, still_wanted=still_wanted):
            then()

    thread = threading.Thread(target=run, name=f"first-frame-{client.client_id}", daemon=True)
    thread.start()
    return thread

"""When a browser has drawn the scene once: the moment work that would slow its first frame may follow.

viser's client merges every splat node into one buffer, sorts it and draws it, hidden nodes included (a hidden node
is moved off screen, not left out). The dimmed and tinted copies a browser keeps ready for selections therefore
triple what a browser merges, uploads, sorts and shades; if they arrive before its first frame (a software-WebGL
browser can take tens of seconds to draw the first one), that first frame waits for all three copies. A fixed timer
cannot know how slow a browser is, so the copies follow a signal from the browser itself.

The signal is viser's own render round trip (`ClientHandle.get_render`) at a few pixels, from the browser's own
camera. The client handles its message queue in order from its render loop, so the request is taken up after the
scene's chunks sent before it; but the answer alone is not the signal: measured on the biker capture in headless
chromium with software WebGL, the first answer came back empty (the splats not yet mounted) one whole frame (~40 s
on a loaded box) before the splats showed, and copies sent on the first answer that showed them still slowed the
frames right after it (the sort and the fade-in), so the screenshot that found the splats came ~70 s later. So the
probe asks for a PNG (transparent where nothing is drawn) and repeats until two answers in a row show the same
splats: drawn, sorted, faded in. Each probe is one frame of the browser's, which it draws anyway while the scene
comes in. A scene wholly outside the browser's view never shows a splat: after `MAX_PROBES` answers the browser has
drawn that many frames, and the copies go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

PROBE_PIXELS = 12
"""Height of the probe render (its width follows the browser's aspect): only whether anything is drawn matters."""
MAX_PROBES = 8
"""Probes after which the copies go whatever the answers showed (the splats may all lie outside the browser's
view): the browser has drawn that many frames with the scene by then."""
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


def drawn(image: np.ndarray) -> bool:  # [H, W, 4] uint8 (PNG, transparent background)
    """Whether a probe render shows any splat: its alpha is above zero somewhere."""
    return image.ndim == 3 and image.shape[-1] == 4 and bool(image[..., 3].any())


def settled(image: np.ndarray, previous: np.ndarray | None) -> bool:  # [H, W, 4] uint8 each
    """Drawn, and the same as the frame before: the splats are in, sorted and faded in."""
    return previous is not None and drawn(image) and image.shape == previous.shape and np.array_equal(image, previous)


def probe_size(client: _Client) -> tuple[int, int]:  # (height, width)
    """`PROBE_PIXELS` high, as wide as the browser's view is for that height (what the user sees, scaled down)."""
    try:
        aspect = client.camera.image_width / max(1, client.camera.image_height)
    except (AssertionError, AttributeError, TypeError):
        aspect = 1.0
    return PROBE_PIXELS, int(min(4 * PROBE_PIXELS, max(1, round(PROBE_PIXELS * aspect))))


def wait_first_frame(
    client: _Client,
    *,
    timeout: float = FIRST_FRAME_TIMEOUT_S,
    still_wanted: Callable[[], bool] = lambda: True,
) -> bool:
    """Block until `client` has drawn the scene sent to it so far and settled (two probe renders in a row show
    the same splats, or `MAX_PROBES` answers came back); False if it left, did not answer within `timeout`, or
    `still_wanted()` turned False meanwhile. Call it on a thread of its own: it waits on the browser."""
    deadline = time.monotonic() + timeout
    while not camera_known(client):  # the probe renders from the browser's own camera
        if not still_wanted() or time.monotonic() > deadline:
            return False
        time.sleep(CAMERA_POLL_S)
    previous = None
    for _ in range(MAX_PROBES):
        if not still_wanted():
            return False
        height, width = probe_size(client)
        try:
            image = client.get_render(
                height, width, transport_format="png", timeout=max(0.0, deadline - time.monotonic())
            )
        except (TimeoutError, RuntimeError):  # never drew in time, or left (viser raises RuntimeError then)
            return False
        except Exception:  # an answer that does not decode: the client is untrusted; it gets no copies ahead
            return False
        image = np.asarray(image)
        if image.ndim != 3:
            return False
        if settled(image, previous):
            break
        previous = image
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

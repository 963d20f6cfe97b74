"""The viewer as a network server, driven over viser's own websocket protocol (viewer/ws_client.py).

Token guessing is limited per address without blocking anyone else, a foreign web page is turned away, oversized
and malformed messages are dropped, a huge viewport cannot make the server allocate more than 8192², and a client
without the token cannot open a share tunnel.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
from viser import _messages

from backend.synthetic import write_synthetic_scene
from viewer.app import ViewerApp
from viewer.auth import AttemptLimiter, OriginPolicy, generate_token
from viewer.client_camera import MAX_VIEWPORT, camera_from_viewport
from viewer.ws_client import ViserWsClient

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sec") / "scene"
    write_synthetic_scene(folder, views=3, resolution=32, num_gaussians=2000)
    return folder


@pytest.fixture
def app(scene):
    app = ViewerApp(scene, port=0, token=TOKEN, verbose=False, field_loader=None)
    yield app
    app.stop()


def _splats_sent(client: ViserWsClient) -> bool:
    return any("GaussianSplats" in t for t in client.types())


def test_limiter_counts_per_address_and_globally():
    now = [0.0]
    limiter = AttemptLimiter(per_address=10, global_limit=15, window_s=60, free=100, clock=lambda: now[0])
    for _ in range(10):
        assert limiter.wait_s("a") == 0
        limiter.failed("a")
    assert 59 < limiter.wait_s("a") <= 60  # 10 a minute
    assert limiter.wait_s("b") == 0
    for _ in range(5):
        limiter.failed("b")
    assert limiter.wait_s("c") > 0  # the global cap: 15 a minute over everyone
    now[0] = 61.0
    assert limiter.wait_s("a") == limiter.wait_s("c") == 0
    backoff = AttemptLimiter(free=2, clock=lambda: now[0])
    waits = []
    for _ in range(5):
        backoff.failed("x")
        waits.append(backoff.wait_s("x"))
    assert waits == [0, 0, 1.0, 2.0, 4.0]  # doubling after the free tries
    backoff.succeeded("x")
    assert backoff.wait_s("x") == 0


def test_generated_token_is_long():
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) * 6 >= 128 for t in tokens)


def test_origin_policy():
    policy = OriginPolicy("127.0.0.1", allowed=["https://splats.example.org/"])
    assert policy.allows(None, "127.0.0.1:8080")  # a script, not a page
    assert policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert policy.allows("http://localhost:8080", "localhost:8080")
    assert policy.allows("https://splats.example.org", "127.0.0.1:8080")
    assert not policy.allows("https://evil.example.com", "127.0.0.1:8080")
    assert not policy.allows("http://rebind.evil.com:8080", "rebind.evil.com:8080")  # DNS rebinding
    assert not policy.allows("null", "127.0.0.1:8080")
    assert not policy.allows("https://x.share.viser.studio", "127.0.0.1:8080")
    policy.share_open = True
    assert policy.allows("https://x.share.viser.studio", "127.0.0.1:8080")


def test_viewport_is_clamped():
    cam = camera_from_viewport(
        position=np.zeros(3), wxyz=np.array([1.0, 0, 0, 0]), fov_y=1.0, width=2_000_000, height=1_000_000
    )
    assert max(cam.width, cam.height) == MAX_VIEWPORT and cam.width == 2 * cam.height


def test_guessing_is_limited_and_blocks_nobody(app):
    url = app.url
    attacker = ViserWsClient(url)
    box = attacker.wait_gui("Access token")
    button = attacker.wait_gui("Open scene")
    t0 = time.monotonic()
    for i in range(30):
        attacker.set_value(box, f"guess-{i}")
        attacker.set_value(button, True)
    attacker.wait_for(lambda m: "Notification" in m.get("type", "") and "Too many" in str(m), timeout=10)
    assert app.gate.dropped > 0  # the flood beyond 10 messages/s never reached the thread pool
    # Reconnecting does not reset the count: the address is what is limited.
    attacker.close()
    time.sleep(1.0)  # let the address's message budget refill a little
    again = ViserWsClient(url)
    again.enter_token("another-guess")
    again.wait_for(lambda m: "Notification" in m.get("type", ""), timeout=10)
    again.close()
    assert app.gate.limiter._streak["127.0.0.1"] >= 5  # the new connection continued the address's streak
    checked = len(app.gate.limiter._recent.get("127.0.0.1", ()))
    assert checked <= 10, checked
    # Nothing slept: a second client is answered at once (its address is locked too, so it is told to wait).
    other = ViserWsClient(url)
    other.wait_gui("Access token", timeout=5)
    other.close()
    assert time.monotonic() - t0 < 10
    assert not _splats_sent(other)


def test_right_token_opens_and_unauthenticated_share_is_refused(app, monkeypatch):
    calls = []
    monkeypatch.setattr(app.server, "request_share_url", lambda *a, **k: calls.append(1))
    stranger = ViserWsClient(app.url)
    stranger.wait_gui("Access token")
    stranger.send(_messages.ShareUrlRequest())
    time.sleep(0.5)
    assert calls == [] and not _splats_sent(stranger)
    stranger.close()
    user = ViserWsClient(app.url)
    user.enter_token(TOKEN)
    user.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=20)
    user.send(_messages.ShareUrlRequest())
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == [1]  # the guard passes an authenticated client's request on to viser
    user.close()


def test_foreign_origin_is_closed_before_any_scene(scene):
    app = ViewerApp(scene, port=0, verbose=False, field_loader=None)  # no token: the origin check is all there is
    try:
        evil = ViserWsClient(app.url, origin="https://evil.example.com")
        evil.closed.wait(5)
        assert evil.closed.is_set() and not _splats_sent(evil)
        good = ViserWsClient(app.url, origin=app.url)
        good.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=20)
        good.close()
    finally:
        app.stop()


def test_huge_and_malformed_messages_are_dropped(app):
    big = ViserWsClient(app.url)
    big.wait_gui("Access token")
    big.send_raw(b"\0" * (8 << 20))  # 8 MB: over the 1 MiB cap, the connection is closed
    assert big.closed.wait(5)
    junk = ViserWsClient(app.url)
    junk.wait_gui("Access token")
    for raw in (b"\xc1", msgspec.msgpack.encode({"type": "NoSuchMessage"}), msgspec.msgpack.encode([1, 2, 3])):
        try:
            junk.send_raw(raw)
        except Exception:
            break
    probe = ViserWsClient(app.url)  # the server still serves
    probe.wait_gui("Access token", timeout=5)
    probe.close()


def test_huge_viewport_then_rect_stays_bounded(scene):
    app = ViewerApp(scene, port=0, verbose=False, field_loader=None)
    try:
        client = ViserWsClient(app.url)
        client.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=20)
        client.send_camera(width=2_000_000, height=2_000_000)
        time.sleep(0.3)
        view = next(iter(app.views.values()))
        cam = view._camera()
        assert max(cam.width, cam.height) <= MAX_VIEWPORT
        client.close()
    finally:
        app.stop()


def test_a_departed_browser_leaves_nothing_behind(app):
    """What the server built for a browser (its splat nodes and their buffers, its pending-update slot) is freed
    when it leaves: RSS returning after a crowd left depends on it. (The `ClientView` object itself can outlive the
    connection while viser still holds the connection's handlers; what it holds is dropped in `close`.)"""
    import gc
    import weakref

    user = ViserWsClient(app.url)
    user.enter_token(TOKEN)
    user.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=20)
    deadline = time.monotonic() + 10
    while not app.views and time.monotonic() < deadline:
        time.sleep(0.05)
    (view,) = app.views.values()
    refs = [weakref.ref(view.splats), weakref.ref(view._pending)]
    app.session.changed("look")  # an update queued on the worker as it leaves
    del view
    user.close()
    deadline = time.monotonic() + 10
    while app.session.client_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.updates.drain(10)
    deadline = time.monotonic() + 10  # viser drops its handle on its own loop; give it a moment
    while any(r() is not None for r in refs) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.1)
    alive = [type(r()).__name__ for r in refs if r() is not None]
    assert not alive, f"still referenced after the browser left: {alive}"

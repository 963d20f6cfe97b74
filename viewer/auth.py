"""Who may use the viewer: the websocket's Origin, a token, a cap on message size, and who may ask for a share link.

`--token T`: a browser sees neither the scene nor the controls until it enters T. viser sends a client only what is
added to its own `client.scene` / `client.gui` (plus anything on the server-wide API, which the viewer leaves empty),
so the gate is simply to build nothing for a client but a token box, and build its splats and panel once the token
matches. Comparison is constant-time.

Wrong guesses are limited by *source address* across all its connections and over all addresses together
(`AttemptLimiter`), with a doubling lock-out. A locked-out attempt is refused at once with the time left: nothing
ever sleeps, because viser runs every callback of every client on one shared thread pool, and a sleeping worker
delays everyone's clicks (an earlier `time.sleep` here let 40 guessing connections freeze the viewer for minutes).

Before any of that, each websocket is screened when it opens (`TokenGate.install`): a browser always sends `Origin`,
and one from another site (any web page the user visits can open a websocket to 127.0.0.1) is closed before a byte
of the scene is sent; incoming messages are capped at `MAX_MESSAGE_BYTES` (viser allows 50 MB); and viser's
`ShareUrlRequest` (which opens a public tunnel) is honoured only for a client that entered the token.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backend.core.errors import SplatsegError

if TYPE_CHECKING:
    import viser

MAX_MESSAGE_BYTES = 1 << 20
"""Largest websocket message a client may send (camera updates and widget values are a few hundred bytes)."""

MAX_TOKEN_CHARS = 1024
"""Longer attempts are refused without comparing (the token box is for tokens, not payloads)."""

UNAUTHENTICATED_RATE = 10.0
"""Messages a second that clients not (yet) through the token may send, per source address, beyond the burst."""

UNAUTHENTICATED_BURST = 40
"""Messages such clients may send at once (the first camera reports, typing the token)."""

FLOOD_CLOSE = 100
"""Messages dropped from one client without the token before its connection is closed."""

SHARE_DOMAIN = "share.viser.studio"
"""Where viser's share tunnel serves the viewer from; its pages may connect while a share link is open."""


def generate_token() -> str:
    """A fresh token of 192 random bits (URL-safe text), for `--token` given bare and for `--share`."""
    return secrets.token_urlsafe(24)


# ---- guess limiting --------------------------------------------------------------------------------------------------


class AttemptLimiter:
    """Counts wrong tokens per source address and in total over a sliding window, and says how long to wait.

    An address gets `per_address` wrong tries per `window_s`; past `free` consecutive failures each further one also
    locks it for 1, 2, 4, … s (at most `max_lock_s`). All addresses together get `global_limit` per window, so many
    addresses cannot multiply the rate. Pure bookkeeping (no sleeping, no threads): the caller refuses the attempt
    when `wait_s` is positive. Not thread-safe on its own; `TokenGate` holds a lock around it.
    """

    def __init__(
        self,
        *,
        per_address: int = 10,
        global_limit: int = 60,
        window_s: float = 60.0,
        free: int = 3,
        max_lock_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address, self.global_limit, self.window_s = per_address, global_limit, window_s
        self.free, self.max_lock_s, self.clock = free, max_lock_s, clock
        self._recent: dict[str, collections.deque[float]] = {}  # address → times of its wrong tries in the window
        self._everyone: collections.deque[float] = collections.deque()
        self._streak: dict[str, int] = {}  # address → wrong tries since its last success
        self._locked_until: dict[str, float] = {}

    def wait_s(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        now = self.clock()
        self._prune(now)
        wait = self._locked_until.get(address, now) - now
        recent = self._recent.get(address)
        if recent is not None and len(recent) >= self.per_address:
            wait = max(wait, recent[0] + self.window_s - now)
        if len(self._everyone) >= self.global_limit:
            wait = max(wait, self._everyone[0] + self.window_s - now)
        return max(0.0, wait)

    def failed(self, address: str) -> None:
        now = self.clock()
        self._recent.setdefault(address, collections.deque()).append(now)
        self._everyone.append(now)
        streak = self._streak.get(address, 0) + 1
        self._streak[address] = streak
        if streak > self.free:
            self._locked_until[address] = now + min(self.max_lock_s, 2.0 ** (streak - self.free - 1))

    def succeeded(self, address: str) -> None:
        self._streak.pop(address, None)
        self._locked_until.pop(address, None)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._everyone and self._everyone[0] <= horizon:
            self._everyone.popleft()
        for address in list(self._recent):
            recent = self._recent[address]
            while recent and recent[0] <= horizon:
                recent.popleft()
            if not recent and self._locked_until.get(address, now) <= now:
                # Quiet for a whole window: forget the address (bounded memory under many addresses).
                del self._recent[address]
                self._streak.pop(address, None)
                self._locked_until.pop(address, None)


class TokenBucket:
    """`rate` events a second with bursts of `burst`, per key; `take` says whether one more is allowed now."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._level: dict[str, tuple[float, float]] = {}  # key → (tokens, when)

    def take(self, key: str) -> bool:
        now = self.clock()
        tokens, then = self._level.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if len(self._level) > 10_000:  # many addresses: keep only the ones still below a full bucket
            self._level = {k: v for k, v in self._level.items() if v[0] + (now - v[1]) * self.rate < self.burst}
        if tokens < 1.0:
            self._level[key] = (tokens, now)
            return False
        self._level[key] = (tokens - 1.0, now)
        return True


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    retry_after_s: float = 0.0
    """> 0 when the attempt was refused unchecked (too many wrong tries): how long to wait."""


# ---- origins ---------------------------------------------------------------------------------------------------------


class OriginPolicy:
    """Which web pages may open the viewer's websocket.

    A browser sends `Origin` on every websocket handshake; scripts and test clients usually send none and are
    allowed (they are not a page the user happened to visit). A page is allowed when its origin is the server it
    was loaded from (`Origin` host:port = the request's `Host`) *and* that host is this machine by a name an
    attacker cannot point elsewhere (an IP address, localhost, this machine's host name): a DNS-rebinding page has
    a matching Host but a domain name. `--allow-origin URL` adds origins (a reverse proxy's public address), and an
    open share link adds its tunnel's pages.
    """

    def __init__(self, host: str, allowed: Iterable[str] = ()) -> None:
        self.allowed = {_normal_origin(o) for o in allowed}
        self.names = {"localhost", host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
        self.share_open = False

    def allows(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        origin = _normal_origin(origin)
        if origin in self.allowed:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # includes "null" (sandboxed frames, file:// pages)
        if self.share_open and parts.scheme == "https" and parts.hostname.endswith("." + SHARE_DOMAIN):
            return True
        if host_header is None or parts.netloc.lower() != host_header.strip().lower():
            return False
        return parts.hostname in self.names or _is_ip(parts.hostname)


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


# ---- the gate --------------------------------------------------------------------------------------------------------


class TokenGate:
    def __init__(
        self,
        token: str | None,
        *,
        host: str = "127.0.0.1",
        allowed_origins: Iterable[str] = (),
        limiter: AttemptLimiter | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise SplatsegError("--token must not be empty (give --token alone to have one generated)")
        self.token = token
        self.origins = OriginPolicy(host, allowed_origins)
        self.limiter = limiter or AttemptLimiter()
        self.bucket = TokenBucket(UNAUTHENTICATED_RATE, UNAUTHENTICATED_BURST)
        self.dropped = 0
        """Messages dropped from clients without the token that sent too many."""
        self._lock = threading.Lock()
        self._addresses: dict[int, str] = {}  # client id → source address
        self._refused: set[int] = set()  # connections closed for their Origin
        self._granted: set[int] = set()  # clients that entered the token

    @property
    def enabled(self) -> bool:
        return self.token is not None

    # ---- the connection ----------------------------------------------------------------------------------------
    def install(self, server: viser.ViserServer) -> None:
        """Screen every websocket as it opens, and guard viser's share-link messages."""
        from viser import _messages

        ws_server = server._websock_server

        async def screen(conn: Any) -> None:  # runs on viser's event loop, before any message is sent or read
            socket_ = ws_server._live_connections.get(conn.client_id)
            if socket_ is None:
                return
            socket_.protocol.max_message_size = MAX_MESSAGE_BYTES
            remote = socket_.remote_address
            headers = socket_.request.headers if socket_.request is not None else {}
            with self._lock:
                self._addresses[conn.client_id] = str(remote[0]) if remote else "unknown"
            if not self.origins.allows(headers.get("Origin"), headers.get("Host")):
                with self._lock:
                    self._refused.add(conn.client_id)
                await socket_.close(1008, "origin not allowed; start the viewer with --allow-origin")
                return
            self._throttle(conn, socket_)

        ws_server.on_client_connect(screen)
        for message in (_messages.ShareUrlRequest, _messages.ShareUrlDisconnect):
            originals = list(ws_server._incoming_handlers.get(message, []))
            ws_server._incoming_handlers[message] = [self._guard(originals)]

    def _throttle(self, conn: Any, socket_: Any) -> None:
        """Drop what a client without the token sends beyond UNAUTHENTICATED_RATE (per address), on the event loop.

        Every message viser accepts becomes a callback on the shared thread pool; a guessing script sending
        thousands of button clicks a second would queue them ahead of everyone's clicks even though each is refused
        at once. Dropping them here costs the pool nothing; a client that keeps flooding is disconnected (after
        FLOOD_CLOSE dropped messages), so it costs the event loop no more either.
        """
        from viser import _messages

        original = conn._handle_incoming_message
        dropped = [0]

        async def handle(client_id: int, message: Any) -> None:
            # Camera reports are handled on the event loop (and the first one is what makes viser show the client
            # its token box), so they always pass.
            if not isinstance(message, _messages.ViewerCameraMessage) and not self._may_send(client_id):
                dropped[0] += 1
                if dropped[0] == FLOOD_CLOSE:
                    await socket_.close(1008, "too many messages before the token")
                return
            await original(client_id, message)

        conn._handle_incoming_message = handle

    def _may_send(self, client_id: int) -> bool:
        with self._lock:
            if self.token is None or client_id in self._granted:
                return True
            if self.bucket.take(self._addresses.get(client_id, "unknown")):
                return True
            self.dropped += 1
            return False

    def _guard(self, handlers: list[Callable[[int, Any], None]]) -> Callable[[int, Any], None]:
        def guarded(client_id: int, message: Any) -> None:
            if self.may_share(client_id):
                for handler in handlers:
                    handler(client_id, message)

        return guarded

    def admitted(self, client_id: int) -> bool:
        """False for a connection closed for its Origin: build nothing for it."""
        with self._lock:
            return client_id not in self._refused

    def may_share(self, client_id: int) -> bool:
        """Only a client that entered the token may open or close a share link (with no token, none may)."""
        with self._lock:
            return self.enabled and client_id in self._granted and client_id not in self._refused

    def address_of(self, client_id: int) -> str:
        with self._lock:
            return self._addresses.get(client_id, "unknown")

    # ---- the token ---------------------------------------------------------------------------------------------
    def check(self, address: str, attempt: str) -> Verdict:
        """Whether `attempt` is the token; refused unchecked (with the wait) while `address` is locked out."""
        if self.token is None:
            return Verdict(True)
        with self._lock:
            wait = self.limiter.wait_s(address)
            if wait > 0:
                return Verdict(False, wait)
            attempt = attempt.strip()
            ok = len(attempt) <= MAX_TOKEN_CHARS and hmac.compare_digest(attempt.encode(), self.token.encode())
            if ok:
                self.limiter.succeeded(address)
            else:
                self.limiter.failed(address)
        return Verdict(ok)

    def grant(self, client_id: int) -> None:
        with self._lock:
            self._granted.add(client_id)

    def forget(self, client_id: int) -> None:
        """A client left (its address's failure count stays: reconnecting does not reset it)."""
        with self._lock:
            self._addresses.pop(client_id, None)
            self._refused.discard(client_id)
            self._granted.discard(client_id)

    def show(self, client: viser.ClientHandle, on_granted: Callable[[], None]) -> None:
        """Put the token box in this client's panel; `on_granted` runs (once) when the right token is entered."""
        gui = client.gui
        note = gui.add_markdown("This splatseg session is protected. Enter the access token to open the scene.")
        box = gui.add_text("Access token", "", hint="Given with --token when the viewer was started")
        button = gui.add_button("Open scene")
        granted = threading.Event()
        last_refusal = [0.0]

        def attempt(_event: object) -> None:
            if granted.is_set():
                return
            verdict = self.check(self.address_of(client.client_id), str(box.value))
            if verdict.ok:
                granted.set()
                self.grant(client.client_id)
                for handle in (note, box, button):
                    handle.remove()
                on_granted()
            elif verdict.retry_after_s > 0:
                if time.monotonic() - last_refusal[0] < 1.0:
                    return  # told a moment ago: no notification flood
                last_refusal[0] = time.monotonic()
                client.add_notification(
                    "Too many wrong tokens",
                    f"Try again in {verdict.retry_after_s:.0f} s.",
                    color="red",
                    auto_close_seconds=5.0,
                )
            else:
                client.add_notification(
                    "Wrong token", "That is not this session's token.", color="red", auto_close_seconds=5.0
                )

        button.on_click(attempt)

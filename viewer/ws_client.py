"""A browser stand-in speaking viser's websocket protocol: the security tests and the load bench drive the viewer.

Client → server: one msgpack dict per message (`Message.as_serializable_dict()` with its "type"), as viser's
TypeScript client sends. Server → client: windows of messages framed as [8 B raw size][8 B compressed size]
[zstd(msgpack {"messages": [...]})][binary buffers] (see viser's `_message_producer`); only the msgpack part is
decoded here. The subprotocol carries viser's version, as the real client's does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import viser
import zstandard
from viser import _messages
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class ViserWsClient:
    def __init__(self, url: str, *, origin: str | None = None, max_size: int | None = None) -> None:
        ws_url = url.replace("http://", "ws://")
        self.ws = connect(
            ws_url,
            subprotocols=[f"viser-v{viser.__version__}"],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
            max_size=max_size,
            open_timeout=10,
        )
        self.messages: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.bytes_received = 0
        self.closed = threading.Event()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        with contextlib.suppress(ConnectionClosed):  # refused at once (a foreign Origin): `closed` tells
            self.send_camera()

    # ---- sending -----------------------------------------------------------------------------------------------
    def send(self, message: _messages.Message) -> None:
        self.send_raw(msgspec.msgpack.encode(message.as_serializable_dict()))

    def send_raw(self, data: bytes) -> None:
        self.ws.send(data)

    def send_camera(self, width: int = 640, height: int = 480) -> None:
        self.send(
            _messages.ViewerCameraMessage(
                wxyz=(1.0, 0.0, 0.0, 0.0),
                position=(0.0, 0.0, -3.0),
                fov=0.9,
                near=0.01,
                far=100.0,
                image_height=height,
                image_width=width,
                look_at=(0.0, 0.0, 0.0),
                up_direction=(0.0, -1.0, 0.0),
            )
        )

    def click(self, x: float = 0.5, y: float = 0.5) -> None:
        self.send(
            _messages.ScenePointerMessage(
                event_type="click",
                ray_origin=(0.0, 0.0, -3.0),
                ray_direction=(0.0, 0.0, 1.0),
                screen_pos=((x, y),),
                modifier=None,
            )
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.send(
            _messages.ScenePointerMessage(
                event_type="rect-select",
                ray_origin=None,
                ray_direction=None,
                screen_pos=((x0, y0), (x1, y1)),
                modifier=None,
            )
        )

    def set_value(self, uuid: str, value: Any) -> None:
        self.send(_messages.GuiUpdateMessage(uuid=uuid, updates={"value": value}))

    def enter_token(self, token: str, timeout: float = 10.0) -> None:
        box = self.wait_gui("Access token", timeout)
        button = self.wait_gui("Open scene", timeout)
        self.set_value(box, token)
        self.set_value(button, True)

    def close(self) -> None:
        self.ws.close()

    # ---- receiving ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        zstd = zstandard.ZstdDecompressor()
        try:
            while True:
                data = self.ws.recv()
                now = time.perf_counter()
                assert isinstance(data, bytes)
                self.bytes_received += len(data)
                raw_size = int.from_bytes(data[:8], "little")
                packed = int.from_bytes(data[8:16], "little")
                window = msgspec.msgpack.decode(zstd.decompress(data[16 : 16 + packed], max_output_size=raw_size))
                with self._cond:
                    for message in window["messages"]:
                        self.messages.append(message)
                        self.arrivals.append(now)
                    self._cond.notify_all()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, *, start: int = 0) -> int:
        """Index of the first message from `start` on that satisfies `predicate`; TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.messages)):
                    if predicate(self.messages[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise TimeoutError("no such message")
                self._cond.wait(min(left, 0.2))

    def wait_gui(self, label: str, timeout: float = 10.0) -> str:
        i = self.wait_for(lambda m: m.get("type", "").startswith("Gui") and _label(m) == label, timeout)
        return self.messages[i]["uuid"]

    def types(self) -> set[str]:
        with self._cond:
            return {m.get("type", "") for m in self.messages}

    def notifications(self) -> list[str]:
        with self._cond:
            return [
                str(m.get("props", {}).get("title", m.get("title", "")))
                for m in self.messages
                if "Notification" in m.get("type", "")
            ]


def _label(message: dict[str, Any]) -> str | None:
    props = message.get("props")
    return props.get("label") if isinstance(props, dict) else None

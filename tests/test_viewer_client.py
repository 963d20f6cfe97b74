"""A client's handlers without a browser: errors become notifications, uploads are parsed defensively, a client that
leaves mid-export gets nothing sent and the file in the workspace is whole."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from backend.core.errors import SplatsegError
from backend.io.ply import read_ply
from backend.workspace import Workspace
from tests.conftest import random_scene
from viewer.client_view import ClientView
from viewer.context import ClientContext
from viewer.session import Busy, NoFeatures, Session


class FakeNote:
    def __init__(self, title, body, **kwargs):
        self.title, self.body, self.kwargs = title, body, kwargs
        self.removed = False

    def remove(self):
        self.removed = True


class FakeClient:
    def __init__(self, client_id: int = 1):
        self.client_id = client_id
        self.notes: list[FakeNote] = []
        self.downloads: list[tuple[str, bytes]] = []

    def add_notification(self, title, body, **kwargs):
        note = FakeNote(title, body, **kwargs)
        self.notes.append(note)
        return note

    def send_file_download(self, name, content, save_immediately=False):
        self.downloads.append((name, content))


def _view(tmp_path, *, connected: bool = True) -> tuple[ClientView, FakeClient, Session]:
    scene = random_scene(500)
    session = Session(scene, workspace=Workspace(tmp_path))
    client = FakeClient()
    view = ClientView.__new__(ClientView)  # the handlers only, no viser
    view.client, view.session, view.who, view.closed = client, session, "client 1", False
    clients = {client.client_id} if connected else set()
    view.ctx = ClientContext(session=session, is_connected=lambda client_id: client_id in clients)
    view._update_lock = threading.Lock()
    return view, client, session


@pytest.mark.parametrize(
    "error, title, color",
    [
        (Busy("the session is busy (client 2: export)"), "Busy", "yellow"),
        (NoFeatures("no features"), "No features yet", "yellow"),
        (SplatsegError("bad input"), "Could not do that", "red"),
        (RuntimeError("a bug"), "Internal error", "red"),
    ],
)
def test_errors_become_notifications(tmp_path, error, title, color):
    view, client, _ = _view(tmp_path)

    def fail():
        raise error

    assert view._run(fail) is None  # nothing escapes into viser's callback thread
    assert client.notes[-1].title == title and client.notes[-1].kwargs["color"] == color
    assert str(error).split(" (")[0] in client.notes[-1].body


def test_upload_parsing(tmp_path):
    view, client, session = _view(tmp_path)
    mask = np.zeros(500, bool)
    mask[:42] = True
    buf = io.BytesIO()
    np.save(buf, mask)
    view.load_selection("mine.npy", buf.getvalue())
    assert session.selection.count == 42 and client.notes[-1].title == "Selection loaded"
    view.load_selection("junk.npy", b"not a numpy file")
    assert client.notes[-1].title == "Could not do that" and "junk.npy" in client.notes[-1].body
    buf = io.BytesIO()
    np.save(buf, np.zeros(499, bool))
    view.load_selection("short.npy", buf.getvalue())
    assert "500" in client.notes[-1].body
    view.load_selection("huge.npy", b"\0" * 10_000_000)
    assert "too large" in client.notes[-1].body
    assert session.selection.count == 42  # failed uploads changed nothing


def test_export_sends_the_file_and_keeps_it(tmp_path):
    view, client, session = _view(tmp_path)
    session.selection.set(np.arange(500) < 100)
    view.export("selection")
    ((name, content),) = client.downloads
    saved = tmp_path / ".splatseg" / "exports" / name
    assert name.endswith(".ply") and saved.read_bytes() == content and len(read_ply(saved)) == 100
    assert client.notes[-1].title == "Exported" and client.notes[-1].loading is False


def test_client_leaving_mid_export_gets_nothing_and_the_file_is_whole(tmp_path):
    view, client, session = _view(tmp_path, connected=False)
    session.selection.set(np.arange(500) < 100)
    view.export("selection")
    assert client.downloads == []
    files = list((tmp_path / ".splatseg" / "exports").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    assert len(read_ply(files[0])) == 100


def test_export_of_empty_selection_is_a_message(tmp_path):
    view, client, _ = _view(tmp_path)
    view.export("selection")
    assert client.notes[-1].title == "Could not do that" and "empty" in client.notes[-1].body
    assert client.notes[0].removed  # the "Exporting…" note went away
    assert not (tmp_path / ".splatseg" / "exports").exists() or not any((tmp_path / ".splatseg" / "exports").iterdir())

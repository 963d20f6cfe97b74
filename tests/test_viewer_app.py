"""The viewer app without a browser: startup errors, camera conventions, the token gate, background jobs, the CLI."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.core.camera import look_at
from backend.core.errors import SplatsegError
from backend.synthetic import write_synthetic_scene
from viewer.app import ViewerApp, initial_view, port_is_free, up_direction
from viewer.auth import MAX_FREE_ATTEMPTS, TokenGate
from viewer.client_camera import camera_from_viewport, quat_to_matrix, screen_to_pixel, viewport_of
from viewer.jobs import JobRunner


def _free_port(start: int) -> int:
    return next(p for p in range(start, start + 200) if port_is_free("127.0.0.1", p))


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("view") / "scene"
    write_synthetic_scene(folder, views=2, resolution=16, num_gaussians=2000, progress=False)
    return folder


# ---- camera conventions --------------------------------------------------------------------------------------------
def test_viewport_roundtrip_and_viser_rotation_convention():
    import viser.transforms as vtf

    cam = look_at(
        "c",
        np.array([1.0, -3.0, 2.0]),
        np.array([0.2, 0.1, 0.0]),
        np.array([0.0, 0.0, 1.0]),
        width=320,
        height=240,
        fov_y_deg=50,
    )
    vp = viewport_of(cam)
    np.testing.assert_allclose(vtf.SO3(vp["wxyz"]).as_matrix(), quat_to_matrix(vp["wxyz"]), atol=1e-12)
    back = camera_from_viewport(position=vp["position"], wxyz=vp["wxyz"], fov_y=vp["fov"], width=320, height=240)
    np.testing.assert_allclose(back.world_to_camera, cam.world_to_camera, atol=1e-9)
    np.testing.assert_allclose(back.K, cam.K, atol=1e-9)
    # The canvas centre looks along the camera's +z: what viser calls the look direction.
    _, d = back.ray(screen_to_pixel(back, (0.5, 0.5)))
    np.testing.assert_allclose(d, vtf.SO3(vp["wxyz"]).as_matrix()[:, 2], atol=1e-9)
    assert math.isclose(vp["fov"], math.radians(50), rel_tol=1e-9)


def test_up_direction_and_initial_view():
    cams = [
        look_at(
            f"c{i}",
            np.array([3 * math.cos(a), 3 * math.sin(a), 1.5]),
            np.zeros(3),
            np.array([0.0, 0.0, 1.0]),
            width=64,
            height=64,
            fov_y_deg=50,
        )
        for i, a in enumerate(np.linspace(0, 2 * math.pi, 8, endpoint=False))
    ]
    up = up_direction(cams)
    assert up[2] > 0.9
    start = initial_view(cams, np.zeros((10, 3)))
    np.testing.assert_allclose(start["position"], cams[0].center, atol=1e-9)
    forward = (start["look_at"] - start["position"]) / np.linalg.norm(start["look_at"] - start["position"])
    np.testing.assert_allclose(forward, cams[0].camera_to_world[:3, 2], atol=1e-9)
    assert up_direction([]).tolist() == [0.0, 0.0, 1.0]


# ---- startup -------------------------------------------------------------------------------------------------------
def test_app_opens_a_scene_without_features(tiny_scene):
    app = ViewerApp(tiny_scene, port=_free_port(18700), verbose=False)
    try:
        assert app.url.startswith("http://127.0.0.1:")
        assert app.session.field is None and app.session.field_problem
        assert not app.session.has_masks
        assert app.chunks.num_chunks >= 1
        assert app.server.get_host() == "127.0.0.1"  # localhost unless --host says otherwise
    finally:
        app.stop()


def test_app_startup_errors(tiny_scene, tmp_path):
    with pytest.raises(SplatsegError):
        ViewerApp(tmp_path / "nope", port=_free_port(18750), verbose=False)
    if not torch.cuda.is_available():
        with pytest.raises(SplatsegError, match="CUDA"):
            ViewerApp(tiny_scene, port=_free_port(18750), render="server", verbose=False)
    port = _free_port(18760)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        with pytest.raises(SplatsegError, match="in use"):
            ViewerApp(tiny_scene, port=port, verbose=False)
    finally:
        blocker.close()
    with pytest.raises(SplatsegError, match="empty"):
        ViewerApp(tiny_scene, port=_free_port(18770), token="  ", verbose=False)
    with pytest.raises(SplatsegError, match="--predictor sma"):  # the SA3D panel's predictor is checked at start
        ViewerApp(tiny_scene, port=_free_port(18780), sa3d_predictor="sma", verbose=False)


def test_cli_view_errors_are_one_line(tiny_scene, tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("splatseg view: error:") and err.count("\n") == 1
    if not torch.cuda.is_available():
        assert main(["view", str(tiny_scene), "--render", "server", "--port", str(_free_port(18780))]) == 2
        assert "--render client" in capsys.readouterr().err


# ---- token gate ----------------------------------------------------------------------------------------------------
def test_token_gate():
    assert TokenGate(None).check(1, "anything")
    gate = TokenGate("s3cret")
    assert gate.enabled
    assert not gate.check(1, "guess")
    assert gate.check(1, " s3cret ")  # pasted with spaces
    for _ in range(MAX_FREE_ATTEMPTS):
        assert not gate.check(2, "x")
    t0 = time.monotonic()
    assert not gate.check(2, "x")  # the next wrong guess is slowed down
    assert time.monotonic() - t0 >= 0.9
    gate.forget(2)


# ---- background jobs -----------------------------------------------------------------------------------------------
def test_jobs_run_in_background_and_report():
    events, notes = [], []
    runner = JobRunner(emit=lambda: events.append(runner.fraction), notify=lambda t, b, c: notes.append((t, c)))
    release = threading.Event()
    done = []

    def work(progress):
        progress(0.5, "half")
        release.wait(5)
        return 42

    runner.start("Training", work, on_done=done.append)
    assert runner.running
    with pytest.raises(SplatsegError, match="already running"):
        runner.start("Training", work)
    release.set()
    assert runner.wait(5)
    assert done == [42] and notes[-1] == ("Training finished", "green") and 0.5 in events

    def broken(progress):
        raise RuntimeError("boom")

    runner.start("Preparing", broken)
    assert runner.wait(5)
    assert notes[-1] == ("Preparing failed", "red") and "boom" in runner.last_error
    runner.start("Preparing", lambda p: (_ for _ in ()).throw(SplatsegError("no labels")))
    assert runner.wait(5)
    assert runner.last_error == "no labels"


# ---- --render server -----------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_server_frames_render_the_look_on_cuda(tmp_path):
    from backend.render import gsplat_available
    from tests.conftest import random_scene
    from viewer.server_frames import ServerFrames
    from viewer.session import Session

    if not gsplat_available():
        pytest.skip("needs CUDA and gsplat")
    from backend.workspace import Workspace

    scene = random_scene(5000)
    session = Session(scene, workspace=Workspace(tmp_path))
    frames = ServerFrames(session)
    cam = look_at(
        "c", np.array([0.0, -3.0, 0.8]), np.zeros(3), np.array([0.0, 0.0, 1.0]), width=320, height=240, fov_y_deg=50
    )
    vp = viewport_of(cam)

    class Handle:
        position, wxyz, fov, image_width, image_height = vp["position"], vp["wxyz"], vp["fov"], 320, 240

    class Client:
        client_id = 1
        camera = Handle()

    rgb, depth = frames.frame(Client())
    assert rgb.shape == (240, 320, 3) and rgb.dtype == np.uint8 and depth.shape == (240, 320)
    assert rgb.std() > 5 and (depth > 0).any()
    session.selection.set(np.arange(len(scene)) < 2500)
    tinted, _ = frames.frame(Client())
    assert np.abs(tinted.astype(int) - rgb.astype(int)).mean() > 5  # highlight applied in image space
    session.update_settings(view="isolate")
    isolated, _ = frames.frame(Client())
    assert isolated.mean() < rgb.mean()  # half of the Gaussians gone

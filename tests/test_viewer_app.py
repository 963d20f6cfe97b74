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
from backend.core.scene import GaussianScene
from backend.synthetic import write_synthetic_scene
from viewer.app import ViewerApp, initial_view, port_is_free, up_direction
from viewer.auth import TokenGate
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


def test_a_non_finite_screen_position_is_refused():
    """The browser's click position is untrusted: NaN or infinite stops before it joins a prompt."""
    from backend.core.errors import SplatsegError

    cam = camera_from_viewport(position=np.zeros(3), wxyz=np.array([1.0, 0, 0, 0]), fov_y=1.0, width=64, height=48)
    assert screen_to_pixel(cam, (0.5, 0.25)) == (32.0, 12.0)
    for bad in ((math.nan, 0.5), (0.5, math.inf), (-math.inf, math.nan)):
        with pytest.raises(SplatsegError, match="screen position"):
            screen_to_pixel(cam, bad)


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


def test_without_cameras_the_view_starts_upright_from_the_estimated_up():
    """A scene tall along y and heavier at +y (a standing subject in OpenCV axes): up is −y, the start is level."""
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3000, 3, generator=g) * torch.tensor([0.2, 1.0, 0.2])
    n = len(means)
    scene = GaussianScene.from_activated(
        means=means,
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.05),
        opacities=torch.full((n,), 0.9),
        colors=torch.full((n, 3), 0.5),
    )
    up = up_direction([], scene)
    np.testing.assert_allclose(up, [0, -1, 0])
    start = initial_view([], means.numpy(), up)
    offset = start["position"] - start["look_at"]
    assert offset @ up > 0 and abs(offset @ up) < np.linalg.norm(offset)  # above the subject, looking at it


def test_train_minutes_estimate_grows_with_the_work():
    from viewer.hints import train_minutes_estimate

    cams = [
        look_at("a", np.array([0, 0, -3.0]), np.zeros(3), np.array([0, -1.0, 0]), width=512, height=512, fov_y_deg=50)
    ]
    small = train_minutes_estimate(10_000, cams, cuda=False)
    large = train_minutes_estimate(1_000_000, cams * 48, cuda=False)
    assert 1 <= small < large and train_minutes_estimate(1_000_000, cams * 48, cuda=True) < large


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
    assert TokenGate(None).check("1.2.3.4", "anything").ok
    gate = TokenGate("s3cret")
    assert gate.enabled
    assert not gate.check("1.2.3.4", "guess").ok
    assert gate.check("1.2.3.4", " s3cret ").ok  # pasted with spaces
    t0 = time.monotonic()
    verdicts = [gate.check("5.6.7.8", "x") for _ in range(20)]
    assert time.monotonic() - t0 < 0.5  # refused at once: nothing sleeps
    checked = [v for v in verdicts if v.retry_after_s == 0]
    assert len(checked) == 4 and not any(v.ok for v in verdicts)  # 3 free tries, then the 1 s lock-out
    assert gate.check("1.2.3.4", "s3cret").ok  # another address is not locked out


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


def test_up_choice_turns_the_view_and_is_remembered(tiny_scene):
    """The viewer's Up dropdown: the choice turns the view, is stored in the workspace, and the next viewer of the
    scene starts with it; a choice that is not on the list is refused and changes nothing."""
    from backend.core.errors import InputError
    from backend.viewpoints.up_choice import UP_FILE

    app = ViewerApp(tiny_scene, port=_free_port(18800), verbose=False)
    try:
        estimated = tuple(app.server.initial_camera.up)
        app.set_up("-x")
        assert tuple(app.server.initial_camera.up) == (-1.0, 0.0, 0.0)
        stored = app.workspace.path(UP_FILE).read_text()
        with pytest.raises(InputError, match="unknown up direction"):
            app.set_up("sideways")
        assert app.workspace.path(UP_FILE).read_text() == stored and app.up_choice == "-x"
    finally:
        app.stop()
    again = ViewerApp(tiny_scene, port=_free_port(18810), verbose=False)
    try:
        assert tuple(again.server.initial_camera.up) == (-1.0, 0.0, 0.0)
        assert again._context().up_choice() == "-x"
        again.set_up("estimated")
        np.testing.assert_allclose(again.server.initial_camera.up, estimated)
    finally:
        again.stop()

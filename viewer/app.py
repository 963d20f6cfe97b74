"""`splatseg view`: the viser server, the shared session, and a `ClientView` per browser.

Everything that can fail on bad input (the scene, the cameras, `--render server` without CUDA, a busy port) fails
here, before a server starts, as a `SplatsegError` the CLI prints as one line. After that, failures are messages in
the browser. Missing masks or features do not stop the scene from opening: the panel offers Prepare and Train.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from backend.core.camera import Camera
from backend.core.errors import SplatsegError
from backend.core.scene import GaussianScene
from backend.io.cameras import has_camera_files, load_cameras
from backend.io.scene_folder import load_scene, scene_dir_of
from backend.viewpoints.up_choice import ESTIMATED, resolve_up, save_up, saved_up
from backend.viewpoints.virtual import stored_virtual_cameras
from backend.workspace import Workspace

from .assets import theme
from .auth import TokenGate
from .client_camera import viewport_of
from .context import ClientContext
from .hints import FEATURES_LOADED, FIELD_LOADING
from .jobs import JobRunner, ProgressFn
from .memory import return_freed_memory
from .sa3d_panel import Sa3dRunner, predictor_loader, predictor_title
from .session import Session
from .splats import SplatChunks
from .text_panel import TextIndexLoader
from .updates import UpdateWorker

if TYPE_CHECKING:
    from backend.features.field import FeatureField

RenderMode = Literal["client", "server"]
SHARE_TIMEOUT_S = 20.0
BRAND = tuple(theme()["brand_color"])

FieldLoader = Callable[[Path, Workspace, GaussianScene], "FeatureField"]
"""(scene path, workspace, the scene already loaded) → a feature field, or a `SplatsegError` saying what to run."""


def load_field_for(scene_path: Path, workspace: Workspace, scene: GaussianScene) -> FeatureField:
    """The scene's most recently trained features (`backend.features`), warmed up so the first click is fast."""
    try:
        from backend.features.field import load_field
    except ImportError:
        raise SplatsegError("affinity features are not available in this installation") from None
    field = load_field(workspace, scene=scene)
    return field.warm_up()


def train_features(scene_path: Path, workspace: Workspace, progress: ProgressFn, *, method: str = "click") -> None:
    """Train the scene's affinity features (`backend.features.train`) into the workspace."""
    try:
        from backend.features.train import train_features as train
    except ImportError:
        raise SplatsegError("feature training is not available in this installation") from None
    progress(None, f"training {method} features (a minute or more on a CPU)")
    train(scene_path, method=method, workspace=workspace.root, progress=False)  # type: ignore[arg-type]


def prepare_masks_for(scene_path: Path, workspace: Workspace, progress: ProgressFn) -> None:
    from backend.masks.prepare import prepare_masks, viewer_source

    source, note = viewer_source(scene_path)
    progress(0.0, note)
    prepare_masks(
        scene_path,
        source=source,
        workspace=workspace.root,
        progress=False,
        on_view=lambda done, total, name: progress(done / total, f"masks: view {done}/{total} ({name})"),
    )


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def up_direction(cameras: list[Camera], scene: GaussianScene | None = None) -> np.ndarray:  # [3]
    """The scene's up: the mean of the cameras' up vectors (−y of each OpenCV camera); without cameras the up axis
    estimated from the Gaussians (`backend.viewpoints.estimate_up`), or +z when there is no scene either."""
    if not cameras:
        if scene is not None and len(scene):
            from backend.viewpoints import estimate_up

            return estimate_up(scene)
        return np.array([0.0, 0.0, 1.0])
    ups = np.stack([-c.camera_to_world[:3, 1] for c in cameras])
    up = ups.mean(0)
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-6 else np.array([0.0, 0.0, 1.0])


def initial_view(cameras: list[Camera], means: np.ndarray, up: np.ndarray | None = None) -> dict[str, Any]:
    """Where a browser starts: the first training view, looking at the scene's middle along its optical axis;
    without cameras, from the side and a little above (along `up`, default +z)."""
    centre = np.median(means, axis=0) if len(means) else np.zeros(3)
    if not cameras:
        extent = float(np.percentile(np.linalg.norm(means - centre, axis=1), 90)) if len(means) else 1.0
        up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, np.float64)
        side = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
        side /= np.linalg.norm(side)
        return {"position": centre + (2.5 * side + up) * extent, "look_at": centre, "fov": np.deg2rad(60)}
    cam = cameras[0]
    view = viewport_of(cam)
    forward = cam.camera_to_world[:3, 2]
    depth = float((centre - view["position"]) @ forward)
    if depth <= 0:
        depth = 1.0
    return {"position": view["position"], "look_at": view["position"] + forward * depth, "fov": view["fov"]}


class ViewerApp:
    """A running viewer. `ViewerApp(scene).url`; `.wait()` serves until Ctrl+C; `.stop()` ends it."""

    def __init__(
        self,
        scene_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        workspace: str | Path | None = None,
        render: RenderMode = "client",
        token: str | None = None,
        share: bool = False,
        allow_origins: tuple[str, ...] = (),
        num_chunks: int | None = None,
        field_loader: FieldLoader | None = load_field_for,
        verbose: bool = True,
        sa3d_predictor: str = "sam",
        background_field: bool = False,
    ) -> None:
        """`background_field`: load and warm trained features as a job after the server is up, so the first frame
        does not wait for them (at 3M Gaussians the field takes as long as everything else before the first frame);
        clicks say the features are loading until they are in."""
        import viser

        self.scene_path = Path(scene_path)
        self.verbose = verbose
        if render not in ("client", "server"):
            raise SplatsegError(f"--render must be client or server, not {render!r}")
        if render == "server":
            from .server_frames import require_cuda

            require_cuda()  # before anything is loaded or bound: a clear error, no half-started server
        scene, model_path = load_scene(self.scene_path)
        scene_dir = scene_dir_of(self.scene_path)
        ws = Workspace(scene_dir, workspace)
        try:
            cameras = load_cameras(scene_dir) if has_camera_files(scene_dir) else stored_virtual_cameras(ws, model_path)
        except SplatsegError as e:
            cameras = []
            self._log(f"no cameras ({e}); starting from a default view")
        self.field_loader = field_loader
        background = background_field and field_loader is not None and _has_trained_features(ws)
        if background:
            field, problem = None, FIELD_LOADING
        else:
            field, problem = self._try_load_field(ws, scene)
        self.session = Session(
            scene,
            workspace=ws,
            scene_path=self.scene_path,
            model_path=model_path,
            cameras=cameras,
            field=field,
            field_problem=problem,
            has_masks=_has_masks(ws),
        )
        self.session.jobs = JobRunner(emit=lambda: self.session.changed("job"), notify=self.session.notify_all)
        # Text search (CLIP loads on the first query) and SA3D (SAM loads on the first run), shared by all clients.
        self.text_index = TextIndexLoader(self.scene_path, workspace_root=ws.root)
        self.sa3d_runner = Sa3dRunner(
            scene,
            cameras,
            predictor_loader(predictor=sa3d_predictor, scene_dir=str(scene_dir), cameras=cameras),
            predictor_name=predictor_title(sa3d_predictor),
        )
        self.chunks = SplatChunks(scene, num_chunks=num_chunks)
        self.gate = TokenGate(token, host=host, allowed_origins=allow_origins)
        self.views: dict[int, Any] = {}
        self.updates = UpdateWorker()
        """Runs every browser's splat and panel updates, one pending slot per browser (updates.py)."""
        self._views_lock = threading.Lock()
        self.share_url: str | None = None

        if not port_is_free(host, port):
            raise SplatsegError(f"port {port} on {host} is in use; pick another with --port")
        try:
            self.server = viser.ViserServer(host=host, port=port, verbose=False)
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise SplatsegError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
            raise SplatsegError(f"cannot listen on {host}:{port} ({e}); check --host") from None
        self.host, self.port = host, self.server.get_port()
        self.gate.install(self.server)
        self.server_frames = None
        if render == "server":
            from .server_frames import ServerFrames

            self.server_frames = ServerFrames(self.session)

        gui = self.server.gui
        gui.configure_theme(control_width=theme()["control_width"], show_share_button=share, brand_color=BRAND)
        gui.set_panel_label(theme()["panel_label"])
        self.workspace, self.cameras = ws, cameras
        self.up_choice = saved_up(ws)
        up = up_direction(cameras, scene) if self.up_choice == ESTIMATED else resolve_up(self.up_choice, scene)
        self.server.scene.set_up_direction(tuple(up))
        start = initial_view(cameras, scene.means.detach().cpu().numpy(), up)
        self.server.initial_camera.up = tuple(up)
        self.server.initial_camera.position = tuple(start["position"])
        self.server.initial_camera.look_at = tuple(start["look_at"])
        self.server.initial_camera.fov = float(start["fov"])

        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)
        if share:
            self.gate.origins.share_open = True
            self.share_url = self._request_share_url()
        if background:
            self.session.jobs.start(
                "Loading features", lambda _progress: self._try_load_field(ws, scene), on_done=self._field_loaded
            )

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()
        self.updates.stop()

    def wait(self) -> None:
        """Serve until interrupted."""
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def _log(self, text: str) -> None:
        if self.verbose:
            print(f"splatseg view: {text}", flush=True)

    def _request_share_url(self) -> str | None:
        result: list[str | None] = [None]

        def ask() -> None:
            with contextlib.suppress(Exception):
                result[0] = self.server.request_share_url(verbose=False)

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        thread.join(SHARE_TIMEOUT_S)
        url = result[0]
        if url:
            self._log(f"share link (anyone with it can open the viewer; expires in 24 h): {url}")
        else:
            self._log(
                "--share: could not reach viser's share server (this machine looks offline); "
                f"the viewer is only at {self.url}"
            )
        return url

    # ---- clients -----------------------------------------------------------------------------------------------
    def _on_connect(self, client) -> None:
        if not self.gate.admitted(client.client_id):  # closed for its Origin: build nothing
            return
        if self.gate.enabled:
            self.gate.show(client, lambda: self._open(client))
        else:
            self._open(client)

    def _open(self, client) -> None:
        from .client_view import ClientView

        view = ClientView(client, self._context())
        with self._views_lock:
            if client.client_id not in self.server.get_clients():  # left while its view was being built
                view.close()
                return
            self.views[client.client_id] = view
            self.session.client_count = len(self.views)
        self.session.changed("clients")

    def _context(self) -> ClientContext:
        return ClientContext(
            session=self.session,
            is_connected=lambda client_id: client_id in self.server.get_clients(),
            chunks=self.chunks,
            server_frames=self.server_frames,
            share_url=self.share_url,
            text_index=self.text_index,
            sa3d_runner=self.sa3d_runner,
            start_prepare=self.start_prepare,
            start_train=self.start_train,
            set_up=self.set_up,
            up_choice=lambda: self.up_choice,
            updates=self.updates,
        )

    def set_up(self, choice: str) -> None:
        """Turn the scene's up to CHOICE (an axis or "estimated") in every browser and remember it in the workspace."""
        up = up_direction(self.cameras, self.session.scene) if choice == ESTIMATED else None
        up = resolve_up(choice, self.session.scene) if up is None else up  # refuses an unknown choice
        save_up(self.workspace, choice)
        self.up_choice = choice
        self.server.scene.set_up_direction(tuple(up))
        self.server.initial_camera.up = tuple(up)
        for client in self.server.get_clients().values():
            client.camera.up_direction = tuple(up)

    def _on_disconnect(self, client) -> None:
        self.gate.forget(client.client_id)
        with self._views_lock:
            view = self.views.pop(client.client_id, None)
            self.session.client_count = len(self.views)
        if view is not None:
            view.close()
        self.session.changed("clients")
        if view is not None:
            del view
            return_freed_memory()

    # ---- features ----------------------------------------------------------------------------------------------
    def _try_load_field(self, ws: Workspace, scene: GaussianScene) -> tuple[FeatureField | None, str | None]:
        if self.field_loader is None:
            return None, "no features loaded"
        try:
            return self.field_loader(self.scene_path, ws, scene), None
        except SplatsegError as e:
            return None, str(e)

    def _field_loaded(self, loaded: tuple[FeatureField | None, str | None]) -> None:
        self.session.set_field(*loaded)
        field, problem = loaded
        self._log(f"{FEATURES_LOADED}: clicks select now" if field is not None else f"features not loaded: {problem}")

    def reload_field(self) -> None:
        field, problem = self._try_load_field(self.session.workspace, self.session.scene)
        self.session.has_masks = _has_masks(self.session.workspace)
        self.session.set_field(field, problem)
        self.text_index.invalidate()  # new features mean new clusters: the text index must reload

    def start_prepare(self, who: str = "") -> None:
        ws = self.session.workspace

        def done(_result: object) -> None:
            self.session.has_masks = True
            self.session.changed("field")

        self.session.jobs.start(
            "Preparing masks", lambda progress: prepare_masks_for(self.scene_path, ws, progress), who=who, on_done=done
        )

    def start_train(self, who: str = "", method: str = "click") -> None:
        if not _has_masks(self.session.workspace):
            raise SplatsegError("prepare the masks first (the Prepare masks button)")
        ws = self.session.workspace

        def done(_result: object) -> None:
            with torch.no_grad():
                self.reload_field()

        self.session.jobs.start(
            f"Training {method} features",
            lambda progress: train_features(self.scene_path, ws, progress, method=method),
            who=who,
            on_done=done,
        )


def _has_trained_features(ws: Workspace) -> bool:
    try:
        from backend.features.store import trained_methods
    except ImportError:
        return False
    return bool(trained_methods(ws))


def _has_masks(ws: Workspace) -> bool:
    try:
        return ws.has("masks")
    except SplatsegError:
        return False

"""`--render server`: frames rendered with gsplat on the server's GPU and streamed as viser's background image.

For scenes too large for a browser, or to see view-dependent colour (the browser path shows only the DC term), each
client's camera is rendered on CUDA and sent with its depth, so viser composites its own overlays correctly. The
selection look is applied in image space: a selection channel is rendered alongside the colour (Σ w·[selected]) and
tints or dims each pixel by how much of it is selected; isolate and hide drop the hidden Gaussians before rendering.
One worker thread per client renders the newest camera only, so a fast orbit drops frames instead of queueing them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
import torch

from backend.core.errors import SplatsegError
from backend.core.scene import SH_C0, GaussianScene
from backend.render import gsplat_available, render, to_uint8

from .client_camera import camera_from_handle
from .looks import TINT

if TYPE_CHECKING:
    import viser

    from .session import Session

MAX_FRAME_WIDTH = 1600
"""Wider canvases are rendered at this width and upscaled by the browser."""


def require_cuda() -> None:
    if not gsplat_available():
        raise SplatsegError(
            "--render server renders frames with gsplat on a CUDA GPU, and this machine has none (or gsplat is "
            "missing); use --render client (the default), which renders the splats in the browser"
        )


class ServerFrames:
    """Renders every attached client's view on CUDA and streams it."""

    def __init__(self, session: Session) -> None:
        require_cuda()
        self.session = session
        self.scene = session.scene.to("cuda")
        self._wake: dict[int, threading.Event] = {}
        self._stop: dict[int, threading.Event] = {}

    def attach(self, client: viser.ClientHandle) -> None:
        wake, stop = threading.Event(), threading.Event()
        self._wake[client.client_id], self._stop[client.client_id] = wake, stop
        client.camera.on_update(lambda _camera: wake.set())
        threading.Thread(target=self._worker, args=(client, wake, stop), daemon=True).start()
        wake.set()

    def detach(self, client: viser.ClientHandle) -> None:
        stop = self._stop.pop(client.client_id, None)
        wake = self._wake.pop(client.client_id, None)
        if stop is not None and wake is not None:
            stop.set()
            wake.set()

    def refresh(self, client: viser.ClientHandle) -> None:
        wake = self._wake.get(client.client_id)
        if wake is not None:
            wake.set()

    def _worker(self, client: viser.ClientHandle, wake: threading.Event, stop: threading.Event) -> None:
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if stop.is_set():
                return
            try:
                rgb, depth = self.frame(client)
            except AssertionError:  # no camera reported yet
                continue
            except Exception as e:
                print(f"splatseg view: server render failed ({type(e).__name__}: {e})")
                continue
            client.scene.set_background_image(rgb, format="jpeg", jpeg_quality=90, depth=depth)

    def frame(self, client: viser.ClientHandle) -> tuple[np.ndarray, np.ndarray]:  # [H, W, 3] u8, [H, W] f32
        camera = camera_from_handle(client.camera)
        if camera.width > MAX_FRAME_WIDTH:
            camera = camera.scaled(MAX_FRAME_WIDTH, max(1, round(camera.height * MAX_FRAME_WIDTH / camera.width)))
        session = self.session
        rgba = torch.from_numpy(np.ascontiguousarray(session.rgba())).to("cuda")  # [N, 4] uint8
        selection = torch.from_numpy(np.ascontiguousarray(session.selection.mask)).to("cuda")
        view = session.settings.view
        visible = rgba[:, 3] > 0
        scene, sel, colors = self.scene, selection, rgba[:, :3]
        if not bool(visible.all()):
            scene, sel, colors = self.scene.subset(visible), selection[visible], colors[visible]
        if view in ("clusters", "pca"):
            scene = _with_colors(scene, colors.float() / 255.0)
        with torch.no_grad():
            out = render(scene, camera, features=sel.float()[:, None], backend="gsplat")
            rgb = out.rgb.clamp(0, 1)
            if view == "highlight" and bool(selection.any()):
                m = (out.features[..., 0] / out.alpha.clamp(min=1e-6)).clamp(0, 1)[..., None]  # [H, W, 1]
                style = session.look_style
                tint = torch.as_tensor(TINT / 255.0, device=rgb.device, dtype=rgb.dtype)
                tinted = rgb * (1 - style.tint_strength) + tint * style.tint_strength
                rgb = tinted * m + rgb * style.dim * (1 - m)
        return to_uint8(rgb), out.depth.float().cpu().numpy()


def _with_colors(scene: GaussianScene, colors: torch.Tensor) -> GaussianScene:  # colors [N, 3] in [0, 1]
    sh = torch.zeros(len(scene), 1, 3, device=scene.device)
    sh[:, 0] = (colors - 0.5) / SH_C0
    return GaussianScene(
        means=scene.means,
        quats=scene.quats,
        log_scales=scene.log_scales,
        logit_opacities=scene.logit_opacities,
        sh=sh,
    )

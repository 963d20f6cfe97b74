"""The layered splats in a real browser (Debian's chromium, Playwright, viser's own client): after each selection
change the page shows the same pixels as with the per-chunk reference (`ChunkedSplats`), so viser's renderer does
hide a splat node whose parent frame is hidden, and the node states kept behind hidden frames never show.

Selections are applied on the server (no features needed): whole chunks (the tint layer), a blob across chunk
boundaries (mix nodes), another blob (an object-to-object change), then a clear.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import pytest

from backend.synthetic import write_synthetic_scene
from tests.test_browser_e2e import CHROMIUM, CHROMIUM_ARGS, PANEL_LEFT, VIEWPORT, _playwright, _png, _wait
from viewer import client_view
from viewer.app import ViewerApp, port_is_free
from viewer.looks import LookParts
from viewer.splat_layers import LayeredSplats
from viewer.splats import ChunkedSplats

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class ReferenceSplats(ChunkedSplats):
    """The previous path, with the calls `ClientView` makes (the tinted layer is not used; the look is made)."""

    def prefetch(self, dimmed: np.ndarray, tinted: np.ndarray | None = None) -> int:
        return self.prefetch_dim(dimmed)

    def update(self, rgba, **layers):
        return super().update(rgba.rgba() if isinstance(rgba, LookParts) else rgba, **layers)


@pytest.fixture(scope="module")
def plain_scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("layers") / "scene"
    write_synthetic_scene(folder, views=2, resolution=16, num_gaussians=3000, progress=False)
    return folder


def _shot(cdp) -> np.ndarray:  # → [H, PANEL_LEFT, 3] int16
    """A screenshot through the DevTools protocol: Playwright's own waits for fonts first, which on a loaded box
    with software WebGL can outlast any timeout."""
    data = base64.b64decode(cdp.send("Page.captureScreenshot", {"format": "png"})["data"])
    return _png(data)[:, :PANEL_LEFT].astype(np.int16)


def _settled(cdp, timeout: float = 300.0) -> np.ndarray:
    """A screenshot once two in a row agree (the messages drawn, the sort and the fade-in done)."""
    time.sleep(1.5)
    deadline = time.monotonic() + timeout
    last = _shot(cdp)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        img = _shot(cdp)
        if np.abs(img - last).mean() < 0.3:
            return img
        last = img
    raise AssertionError("the page did not settle")


def _pictures(scene: Path, cls: type, masks: list[tuple[str, np.ndarray | None]]) -> dict[str, np.ndarray]:
    sync_playwright = _playwright()
    port = next(p for p in range(18900, 19100) if port_is_free("127.0.0.1", p))
    original = client_view.LayeredSplats
    client_view.LayeredSplats = cls  # type: ignore[misc]
    app = ViewerApp(scene, port=port, num_chunks=16, verbose=False)
    out: dict[str, np.ndarray] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(app.url)
            view = _wait(lambda: next(iter(app.views.values()), None), 30, "the browser to connect")
            assert isinstance(view.splats, cls)
            # The copies follow the browser's own word that it has drawn the scene (viewer/first_frame.py).
            _wait(lambda: view.prefetched_bytes, 300, "the prefetched layers")
            assert view.first_frame_at is not None and view.first_frame_at <= view.prefetched_at
            cdp = page.context.new_cdp_session(page)
            _wait(lambda: _shot(cdp).std() > 20, 600, "the splats to render", interval=0.5)
            out["plain"] = _settled(cdp)
            for name, mask in masks:
                before = view.last_update
                if mask is None:
                    app.session.edit("clear")
                else:
                    app.session.apply_mask(mask, "replace", label="test", who="test")
                _wait(lambda before=before: view.last_update is not before, 30, f"the update for {name}")
                out[name] = _settled(cdp)
            browser.close()
    finally:
        app.stop()
        client_view.LayeredSplats = original  # type: ignore[misc]
    return out


def test_layers_draw_what_the_reference_draws_in_chromium(plain_scene: Path):
    from backend.io.scene_folder import load_scene
    from viewer.splats import SplatChunks

    scene, _ = load_scene(plain_scene)
    chunk_of = SplatChunks(scene, num_chunks=16).chunk_of()
    means = scene.means.numpy()
    centre = means.mean(0)
    far = means[np.argsort(np.linalg.norm(means - centre, axis=1))[int(0.8 * len(means))]]

    def near(point: np.ndarray, k: int) -> np.ndarray:  # the k Gaussians nearest `point`: never empty
        mask = np.zeros(len(means), bool)
        mask[np.argsort(np.linalg.norm(means - point, axis=1))[:k]] = True
        return mask

    masks = [
        ("whole chunks", np.isin(chunk_of, [2, 5])),
        ("blob", near(centre, 400)),
        ("other blob", near(far, 300)),
        ("cleared", None),
    ]
    layered = _pictures(plain_scene, LayeredSplats, masks)
    reference = _pictures(plain_scene, ReferenceSplats, masks)
    for name, _ in [("plain", None), *masks]:
        diff = np.abs(layered[name] - reference[name])
        assert diff.mean() < 1.0 and np.percentile(diff, 99.5) < 40, (name, diff.mean(), np.percentile(diff, 99.5))
    # The selections did change the picture (dimmed the rest) against the cleared one, the scene's own colours (the
    # first "plain" picture may still be fading in on a loaded box with software WebGL).
    for name in ("whole chunks", "blob", "other blob"):
        assert np.abs(layered[name] - layered["cleared"]).mean() > 5, name

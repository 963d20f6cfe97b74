"""End to end in a real browser: Debian's chromium, driven by Playwright, against `splatseg view`.

Loads the page, waits until the splats are drawn, clicks a known object of a tiny prepared and trained synthetic
scene, checks that the selection count changed (in the panel and on the server) and that the object's pixels turned
toward the highlight colour in a screenshot, then exports the selection from the browser and parses the download.
Never downloads a browser: it uses /usr/bin/chromium (software WebGL via SwiftShader) or skips, saying why.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.camera import Camera
from backend.io.ply import read_ply
from backend.render import RayCaster
from backend.synthetic import write_synthetic_scene
from viewer.app import ViewerApp, port_is_free
from viewer.client_camera import camera_from_handle
from viewer.headless import CHROMIUM_ARGS  # software WebGL (SwiftShader), no network

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1000, "height": 700}
PANEL_LEFT = 640
"""Page x where viser's floating control panel begins: clicks must land left of it."""
SCREENSHOT_DIR_ENV = "SPLATSEG_SCREENSHOT_DIR"


def _playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser test never downloads one")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")
    return sync_playwright


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` returns something other than None, False or 0; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False and not (isinstance(value, int) and value == 0):
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def trained_scene(tmp_path_factory) -> Path:
    """The cheapest scene that exercises the real pipeline: 3000 Gaussians, 4 views at 64 px, noisy labels,
    a short click training."""
    folder = tmp_path_factory.mktemp("e2e") / "scene"
    write_synthetic_scene(folder, views=4, resolution=64, num_gaussians=3000, progress=False)
    from backend.demo import prepare_and_train

    # Clean masks and a short training: the field is good enough on some objects, and the test clicks one of those.
    prepare_and_train(folder, iterations=100, noise_strength=0.0, quiet=True)
    return folder


def _visible_object_pixel(app: ViewerApp, camera: Camera, labels: np.ndarray) -> tuple[int, tuple[float, float]]:
    """An object and a pixel (left of the panel) where it is the front-most thing and where the trained field's
    answer matches it best: the browser plumbing is under test here, not the features' accuracy."""
    scene = app.session.scene
    field = app.session.field
    assert field is not None, app.session.field_problem
    caster = RayCaster(scene)
    w2c = camera.world_to_camera
    means = scene.means.double().numpy()
    p = means @ w2c[:3, :3].T + w2c[:3, 3]
    u = camera.fx * p[:, 0] / p[:, 2] + camera.cx
    v = camera.fy * p[:, 1] / p[:, 2] + camera.cy
    ok = (p[:, 2] > 0) & (u > 40) & (u < PANEL_LEFT - 40) & (v > 160) & (v < camera.height - 40)
    best: tuple[float, int, tuple[float, float]] | None = None
    for obj in sorted(set(labels[ok].tolist()) - {0, 1}):
        ids = np.nonzero(ok & (labels == obj))[0]
        cu, cv = np.median(u[ids]), np.median(v[ids])
        tried = 0
        for k in ids[np.argsort(np.hypot(u[ids] - cu, v[ids] - cv))][:60]:
            px = (float(round(u[k])) + 0.5, float(round(v[k])) + 0.5)
            with torch.no_grad():
                hit, w = caster.weights(camera, px)
            if not hit.numel() or labels[int(hit[int(torch.argmax(w))])] != obj or float(w.sum()) < 0.9:
                continue
            mask = field.segment(camera, [px]).mask
            truth = labels == obj
            iou = float((mask & truth).sum() / max((mask | truth).sum(), 1))
            if best is None or iou > best[0]:
                best = (iou, int(obj), px)
            tried += 1
            if tried == 3:
                break
    assert best is not None and best[0] > 0.4, f"no object is segmented well enough to click (best {best})"
    return best[1], best[2]


def _patch(img: np.ndarray, x: float, y: float, r: int = 3) -> np.ndarray:  # → mean RGB [3] around (x, y)
    xi, yi = int(x), int(y)
    return img[yi - r : yi + r + 1, xi - r : xi + r + 1, :3].reshape(-1, 3).astype(np.float64).mean(0)


def _png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_click_highlight_export_in_chromium(trained_scene: Path, tmp_path: Path):
    sync_playwright = _playwright()
    port = next(p for p in range(18500, 18700) if port_is_free("127.0.0.1", p))
    app = ViewerApp(trained_scene, port=port, num_chunks=8, verbose=False)
    labels = np.load(trained_scene / "gaussian_labels.npz")["object"]
    rays: list[tuple[tuple[float, float], np.ndarray]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            page.goto(app.url)

            view = _wait(lambda: next(iter(app.views.values()), None), 30, "the browser to connect")
            client = view.client
            client.scene.on_click()(lambda e: rays.append((e.screen_pos, np.asarray(e.ray_direction))))
            _wait(lambda: client.camera._state.update_timestamp > 0, 30, "the browser's camera")
            assert view.splats is not None and len(view.splats.handles) == 8
            # The splats are drawn once the canvas is no longer one flat colour.
            _wait(lambda: _png(page.screenshot())[:, :PANEL_LEFT].std() > 20, 120, "the splats to render", interval=0.5)
            time.sleep(1.0)  # let the sort settle for a stable "before" frame
            before = _png(page.screenshot())
            camera = camera_from_handle(client.camera)
            assert (camera.width, camera.height) == (VIEWPORT["width"], VIEWPORT["height"])
            obj, (x, y) = _visible_object_pixel(app, camera, labels)

            page.mouse.click(x, y)
            count = _wait(lambda: app.session.selection.count, 30, "the click to select something")
            selected = app.session.selection.mask
            assert np.mean(labels[selected] == obj) > 0.5, "the click selected mostly something else"
            page.get_by_text(f"{count:,} of {len(labels):,}").first.wait_for(timeout=10_000)

            # viser's click ray agrees with the Camera built from its viewport (the convention check).
            _wait(lambda: rays, 5, "the click event")
            screen, direction = rays[-1]
            _, ours = camera.ray((screen[0] * camera.width, screen[1] * camera.height))
            np.testing.assert_allclose(ours, direction / np.linalg.norm(direction), atol=2e-3)

            # The rest of the frame was dimmed (to 0.35 of its brightness) while the clicked pixel kept its red
            # channel or moved toward the orange highlight. The red channel is the robust sign: a yellow object
            # tinted orange barely changes hue, and an edge pixel blends the tinted object with dimmed background.
            last: dict[str, object] = {}
            region = (slice(160, VIEWPORT["height"]), slice(0, PANEL_LEFT))

            def highlighted():
                img = _png(page.screenshot())
                p_after, p_before = _patch(img, x, y), _patch(before, x, y)
                d = p_after - p_before
                red_kept = p_after[0] / max(p_before[0], 1.0)
                lum = img[region].astype(np.float64).sum(-1) + 1.0
                frame = float(np.median(lum / (before[region].astype(np.float64).sum(-1) + 1.0)))
                last.update(img=img, d=d, red_kept=red_kept, frame=frame)
                return img if frame < 0.6 and (d[0] - d[2] > 25 or red_kept > frame + 0.2) else None

            (tmp_path / "e2e_before.png").write_bytes(_png_bytes(before))
            try:
                after = _wait(highlighted, 120, "the highlight to be drawn", interval=0.5)
            except AssertionError:
                (tmp_path / "e2e_last.png").write_bytes(_png_bytes(last["img"]))
                raise AssertionError(
                    f"no highlight at ({x}, {y}) on object {obj}: colour change {last['d']}, red kept "
                    f"{last['red_kept']:.2f}, rest of the frame at {last['frame']:.2f} of its brightness"
                ) from None
            shot = tmp_path / "e2e_selected.png"
            shot.write_bytes(page.screenshot())
            if os.environ.get(SCREENSHOT_DIR_ENV):
                out_dir = Path(os.environ[SCREENSHOT_DIR_ENV])
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, out_dir / "e2e_selected.png")
            diff = np.abs(after[:, :PANEL_LEFT].astype(int) - before[:, :PANEL_LEFT].astype(int)).sum(-1)
            assert (diff > 30).mean() > 0.02  # dimming the rest changed much of the frame
            assert view.last_update is not None and view.last_update.bytes_sent > 0

            # A second browser shares the selection (and keeps its own camera).
            page2 = browser.new_page(viewport={"width": 800, "height": 600})
            page2.goto(app.url)
            _wait(lambda: app.session.client_count == 2, 30, "the second client")
            page2.get_by_text(f"{count:,} of {len(labels):,}").first.wait_for(timeout=20_000)
            second = next(v for v in app.views.values() if v is not view)
            _wait(lambda: second.client.camera._state.update_timestamp > 0, 30, "the second camera")
            assert second.client.camera.image_width == 800  # its own canvas, its own camera
            page2.close()
            _wait(lambda: app.session.client_count == 1, 30, "the second client to leave")

            # Export from the browser: the download parses as a PLY with the selected count.
            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="Selection (PLY)", exact=True).click()
            download = info.value
            target = tmp_path / download.suggested_filename
            download.save_as(target)
            assert target.suffix == ".ply"
            assert len(read_ply(target)) == count
            saved = list((trained_scene / ".splatseg" / "exports").glob("*_selection_*.ply"))
            assert len(saved) == 1 and len(read_ply(saved[0])) == count
            browser.close()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def untrained_scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("e2e_plain") / "scene"
    write_synthetic_scene(folder, views=2, resolution=16, num_gaussians=2000, progress=False)
    return folder


def test_token_gate_in_chromium(untrained_scene: Path):
    """With --token, a browser gets a token box and nothing else until it enters the token."""
    sync_playwright = _playwright()
    port = next(p for p in range(18700, 18900) if port_is_free("127.0.0.1", p))
    app = ViewerApp(untrained_scene, port=port, token="open-sesame", verbose=False)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(app.url)
            page.get_by_text("Access token").first.wait_for(timeout=30_000)
            box = page.locator("input:visible").first  # viser does not tie the label to the input
            time.sleep(1.0)
            assert app.views == {}  # no splats, no panel for this client yet
            assert page.get_by_text("Selection (PLY)").count() == 0
            box.fill("wrong")
            page.get_by_text("Open scene").click()
            page.get_by_text("Wrong token").first.wait_for(timeout=10_000)
            assert app.views == {}
            box.fill("open-sesame")
            page.get_by_text("Open scene").click()
            view = _wait(lambda: next(iter(app.views.values()), None), 30, "the scene to open")
            assert view.splats is not None
            page.get_by_text("Selection (PLY)").first.wait_for(timeout=20_000)
            # A scene without features opens anyway and offers to prepare them.
            page.get_by_text("Prepare masks").first.wait_for(timeout=10_000)
            assert app.session.field is None
            browser.close()
    finally:
        app.stop()

"""`prepare_masks` end to end on a tiny synthetic scene: labels, user folders, SAM (tiny, random), swaps, staleness."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import backend.masks.prepare as prepare_module
import backend.render as render_package
from backend.core.errors import InputError, SplatsegError, StaleCacheError
from backend.io.cameras import load_cameras
from backend.masks.labels import LabelMasks, read_view_labels
from backend.masks.maskset import MaskSet
from backend.masks.noise import ground_truth_masks
from backend.masks.prepare import MASKS_NAME, default_source, open_masks, prepare_masks
from backend.synthetic import write_synthetic_scene
from backend.workspace import Workspace


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tensors are tiny: a second intra-op thread only adds spin-waits (35× slower on a busy 2-core CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_scene(folder, views=3, resolution=48, num_gaussians=8000, progress=False)
    return folder


@pytest.fixture
def scene(synthetic, tmp_path):
    """A private copy, so a test may write its workspace or change the model."""
    shutil.copytree(synthetic, tmp_path / "scene")
    return tmp_path / "scene"


_RENDERS: dict = {}


@pytest.fixture(autouse=True)
def _render_once(monkeypatch):
    """Every test here prepares the same three views of the same model: render each once per session (the CPU
    renderer is the slow part; the masks code under test runs every time)."""
    real = render_package.render

    def cached(scene, camera, **kwargs):
        key = (camera.name, len(scene), float(scene.means.double().sum()), float(scene.logit_opacities.double().sum()))
        if key not in _RENDERS:
            _RENDERS[key] = real(scene, camera, **kwargs)
        return _RENDERS[key]

    monkeypatch.setattr(render_package, "render", cached)  # prepare renders through RenderMemo


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith(f".{MASKS_NAME}."))


def test_prepare_with_labels_writes_a_maskset_for_every_camera(scene):
    assert default_source(scene) == "labels"
    reports: list[tuple[int, int, str]] = []
    masks = prepare_masks(scene, progress=False, on_view=lambda *r: reports.append(r))
    cameras = load_cameras(scene)
    # The viewer's progress bar: one report per view, after it is written, counting up to the total.
    assert reports == [(i + 1, len(cameras), c.name) for i, c in enumerate(cameras)]
    assert masks.root == scene / ".splatseg" / MASKS_NAME
    assert (masks.root / "index.json").is_file()
    assert masks.views == [c.name for c in cameras]
    assert masks.index["source"] == "labels" and masks.index["params"]["noise"]["strength"] == 1.0
    for cam, view in zip(cameras, masks):
        assert view.masks.shape[1:] == (cam.height, cam.width)
        assert len(view.masks) > 5
        np.testing.assert_array_equal(view.scores, 1.0)
        # Objects on a 1.2 × 0.8 m table: scales in metres, finite for all but the smallest masks.
        finite = view.scales[np.isfinite(view.scales)]
        assert np.isfinite(view.scales).mean() > 0.6
        assert (finite > 0.005).all() and (finite < 3.0).all()
        np.testing.assert_array_equal(view.masks, LabelMasks(scene)(cam).masks)  # what the source gave
    entry = Workspace(scene).entry(MASKS_NAME)
    assert entry["made_by"] == "prepare" and entry["inputs"]["model"]["path"] == "point_cloud.ply"
    assert entry["params"]["source"] == "labels"


def test_clean_labels_and_plausible_scales(scene):
    """Strength 0 stores the ground truth; the table (1.2 × 0.8 m, 2·‖std‖ ≈ 0.8 m) measures far larger than the
    things on it (5–30 cm). At 48² the smallest masks are all edge, so only the objects are checked."""
    masks = prepare_masks(scene, noise_strength=0.0, progress=False)
    for name in masks.views:
        view = masks.read_view(name)
        part, obj = read_view_labels(scene, name)
        np.testing.assert_array_equal(view.masks, ground_truth_masks(part, obj))
        objects = [int(o) for o in np.unique(obj) if o]
        table = view.scales[objects.index(1)]  # ground_truth_masks puts objects first, ids ascending
        others = view.scales[[objects.index(o) for o in objects if o != 1]]
        assert 0.4 < table < 1.0
        assert 0.04 < np.nanmedian(others) < 0.3
        assert (others[np.isfinite(others)] < table).all()


def test_second_prepare_replaces_the_first_atomically(scene, monkeypatch):
    first = prepare_masks(scene, noise_strength=0.0, progress=False)
    before = first.read_view("view_001").masks
    second = prepare_masks(scene, noise_strength=2.0, noise_seed=5, progress=False)
    assert second.root == first.root and second.exists()
    assert second.index["params"]["noise"]["strength"] == 2.0
    after = second.read_view("view_001").masks
    assert before.shape != after.shape or not np.array_equal(before, after)
    assert _leftovers(second.root.parent) == []
    assert Workspace(scene).entry(MASKS_NAME)["params"]["noise"]["strength"] == 2.0

    # A prepare that fails half-way leaves the previous masks exactly as they were.
    calls = []

    def broken(self, camera):
        calls.append(camera.name)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return original(self, camera)

    original = LabelMasks.__call__
    monkeypatch.setattr(LabelMasks, "__call__", broken)
    with pytest.raises(RuntimeError, match="boom"):
        prepare_masks(scene, noise_strength=0.0, progress=False)
    kept = MaskSet(second.root)
    assert kept.index["params"]["noise"]["strength"] == 2.0
    np.testing.assert_array_equal(kept.read_view("view_001").masks, after)
    assert _leftovers(second.root.parent) == []


def test_abandoned_staging_folders_of_dead_processes_are_removed(scene):
    ws_root = scene / ".splatseg"
    (ws_root / ".masks.partial-999999999-dead").mkdir(parents=True)
    prepare_masks(scene, progress=False)
    assert _leftovers(ws_root) == []


def test_prepare_with_a_user_folder_and_a_separate_workspace(scene, tmp_path):
    cams = load_cameras(scene)
    folder = tmp_path / "my_masks"
    folder.mkdir()
    part, _ = read_view_labels(scene, "view_002")
    np.save(folder / "view_002.npy", np.stack([part == p for p in np.unique(part) if p]))
    np.save(folder / "view_000.npy", np.zeros((1, 48, 48), bool))  # only an empty mask: a view with none
    masks = prepare_masks(scene, source=folder, workspace=tmp_path / "ws", progress=False)
    assert masks.root == tmp_path / "ws" / MASKS_NAME
    assert not (scene / ".splatseg").exists()
    assert masks.views == ["view_000", "view_002"]  # view_001 has no file
    assert len(masks.read_view("view_000").masks) == 0
    assert len(masks.read_view("view_002").masks) == len(np.unique(part)) - 1
    assert masks.index["source"] == "folder"
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "view_000.npy", np.ones((1, 48, 48), bool))
    np.save(bad / "view_001.npy", np.zeros((1, 40, 48), bool))
    with pytest.raises(InputError, match=r"view_001.*48×40.*48×48"):
        prepare_masks(scene, source=bad, workspace=tmp_path / "ws", progress=False)
    assert MaskSet(masks.root).views == ["view_000", "view_002"]  # untouched
    assert cams


def test_labels_source_needs_a_labels_folder(scene):
    shutil.rmtree(scene / "labels")
    assert default_source(scene) == "sam"
    with pytest.raises(InputError, match=r"--masks labels needs a synthetic scene's labels/ folder.*--masks sam"):
        prepare_masks(scene, source="labels", progress=False)
    with pytest.raises(InputError, match="not sam, labels, sam-like, geometric or a folder"):
        prepare_masks(scene, source=scene / "nowhere", progress=False)


def test_prepare_with_sam_runs_the_generator_on_every_view(scene, monkeypatch):
    import backend.masks.sam as sam_module

    monkeypatch.setattr(sam_module, "load_sam", lambda model, checkpoint, device=None: sam_module.build_sam_tiny(0))
    options = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    masks = prepare_masks(scene, source="sam", sam_model="vit_b", sam_options=options, progress=False)
    assert masks.views == ["view_000", "view_001", "view_002"]
    assert masks.index["params"]["sam_model"] == "vit_b"
    for view in masks:
        assert view.masks.shape[1:] == (48, 48)
        assert ((view.scores >= -1) & (view.scores <= 2)).all()


def test_open_masks_says_what_to_run(scene):
    ws = Workspace(scene)
    with pytest.raises(SplatsegError, match=r"no masks yet: run `splatseg prepare .*` first"):
        open_masks(ws, scene)
    prepare_masks(scene, progress=False)
    assert open_masks(ws, scene).views == ["view_000", "view_001", "view_002"]
    model = scene / "point_cloud.ply"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # a retrained model: same size, other content
    model.write_bytes(bytes(data))
    with pytest.raises(StaleCacheError, match="prepare"):
        open_masks(Workspace(scene), scene)


def test_index_is_written_last(scene, monkeypatch):
    order = []
    real_write_view, real_write_index = MaskSet.write_view, MaskSet.write_index
    monkeypatch.setattr(MaskSet, "write_view", lambda self, v: (order.append("view"), real_write_view(self, v)))
    monkeypatch.setattr(
        MaskSet, "write_index", lambda self, *a, **k: (order.append("index"), real_write_index(self, *a, **k))
    )
    prepare_masks(scene, progress=False)
    assert order == ["view", "view", "view", "index"]
    assert json.loads((scene / ".splatseg" / MASKS_NAME / "index.json").read_text())["views"]
    assert prepare_module.MASKS_NAME == "masks"

"""The bad-input corpus: one table of hostile or careless inputs, each → one line on stderr, exit 2, no traceback,
and not one byte of the scene folder (model, cameras, images, labels, workspace) changed.

Each case gets its own copy of a small prepared scene with synthetic click features (written as `splatseg train`
writes them), breaks it with `setup`, runs the command line in-process and hashes the folder before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.io.ply import read_ply, write_ply
from backend.masks.maskset import INDEX_FILE

Setup = Callable[[Path, Path], None]  # (scene folder, scratch folder outside it)


@pytest.fixture(scope="module")
def base_scene(tmp_path_factory) -> Path:
    from backend.synthetic import write_synthetic_scene

    folder = tmp_path_factory.mktemp("corpus") / "scene"
    write_synthetic_scene(folder, views=3, resolution=32, num_gaussians=2000)
    assert main(["prepare", str(folder), "--masks", "labels"]) == 0
    assert main(["train", str(folder), "--iterations", "10"]) == 0  # click features, as a user's workspace has
    return folder


def _hash_tree(folder: Path) -> dict[str, str]:
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _settle(scene: Path) -> None:
    """A copied scene's files have new inodes: let the workspace re-record them once (as the first run after a
    copy does), so the hash before the bad run is of a settled folder."""
    from backend.workspace import Workspace

    ws = Workspace(scene)
    for name in ws.manifest()["files"]:
        ws.check_fresh(name)


def _view(scene: Path) -> str:
    return json.loads((scene / "cameras.json").read_text())[0]["img_name"]


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "|b1") -> None:
    """A .npy whose header claims `shape` but which holds no data (what a hostile file looks like)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})


def _model(scene: Path) -> Path:
    return scene / "point_cloud.ply"


def _shrink_model(count: int) -> Setup:
    def setup(scene: Path, scratch: Path) -> None:
        model = read_ply(_model(scene))
        keep = np.zeros(len(model), dtype=bool)
        keep[:count] = True
        write_ply(_model(scene), model.subset(keep))

    return setup


def _lie_about_vertex_count(scene: Path, scratch: Path) -> None:
    data = _model(scene).read_bytes()
    head, _, body = data.partition(b"end_header\n")
    n = int(head.split(b"element vertex ")[1].split(b"\n")[0])
    head = head.replace(f"element vertex {n}\n".encode(), f"element vertex {n - 10}\n".encode())
    _model(scene).write_bytes(head + b"end_header\n" + body)


def _zero_masks(scene: Path, scratch: Path) -> None:
    cams = json.loads((scene / "cameras.json").read_text())
    folder = scene / "zero_masks"
    folder.mkdir()
    for cam in cams:
        np.save(folder / f"{cam['img_name']}.npy", np.zeros((2, cam["height"], cam["width"]), dtype=bool))
    shutil.rmtree(scene / ".splatseg")
    assert main(["prepare", str(scene), "--masks", str(folder)]) == 0


def _mask_folder(make: Callable[[Path, dict], None]) -> Setup:
    def setup(scene: Path, scratch: Path) -> None:
        cam = json.loads((scene / "cameras.json").read_text())[0]
        folder = scene / "my_masks"
        folder.mkdir()
        make(folder / f"{cam['img_name']}.npy", cam)

    return setup


def _truncated_mask(path: Path, cam: dict) -> None:
    np.save(path, np.ones((3, cam["height"], cam["width"]), dtype=bool))
    path.write_bytes(path.read_bytes()[:-100])


def _write(relative: str, content: bytes) -> Setup:
    def setup(scene: Path, scratch: Path) -> None:
        (scene / relative).write_bytes(content)

    return setup


def _manifest_field(scene: Path, scratch: Path) -> None:
    path = scene / ".splatseg" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["features/click.safetensors"]["inputs"]["model"]["size"] = "big"
    path.write_text(json.dumps(manifest))


def _drop_label_keys(scene: Path, scratch: Path) -> None:
    import safetensors.torch

    from backend.workspace import Workspace

    ws = Workspace(scene)
    path = ws.path("features/click.safetensors")
    tensors = safetensors.torch.load_file(str(path))
    ws.save_tensors(
        "features/click.safetensors",
        {"features": tensors["features"], "neighbors": tensors["neighbors"]},
        made_by="train",
        params={},
        inputs={"model": _model(scene)},
    )


def _neighbors(change: Callable[[np.ndarray], np.ndarray]) -> Setup:
    """The features file's neighbour table changed (the compiled kernels index with it unchecked)."""
    return _features_tensor("neighbors", change)


def _features_tensor(key: str, change: Callable[[np.ndarray], np.ndarray], method: str = "click") -> Setup:
    """One tensor of the features file changed (as `_neighbors` does for the neighbour table)."""

    def setup(scene: Path, scratch: Path) -> None:
        import safetensors.torch
        import torch

        from backend.workspace import Workspace

        if method != "click":
            assert main(["train", str(scene), "--method", method, "--iterations", "3"]) == 0
        ws = Workspace(scene)
        path = ws.path(f"features/{method}.safetensors")
        tensors = safetensors.torch.load_file(str(path))
        tensors[key] = torch.from_numpy(np.ascontiguousarray(change(tensors[key].numpy())))
        ws.save_tensors(
            f"features/{method}.safetensors", tensors, made_by="train", params={}, inputs={"model": _model(scene)}
        )

    return setup


def _huge_label(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    labels[7] = 2**31 - 1  # a cluster id that would size a 16 GB count
    return labels


def _one_nan(features: np.ndarray) -> np.ndarray:
    features = features.copy()
    features[11, 3] = np.nan  # one Gaussian: every ray through it blended to NaN, its clicks selecting nothing
    return features


def _point_past_the_end(nb: np.ndarray) -> np.ndarray:
    nb = nb.copy()
    nb[5, 2] = 10**6
    return nb


def _huge_camera(scene: Path, scratch: Path) -> None:
    cams = json.loads((scene / "cameras.json").read_text())
    for cam in cams:
        cam["width"] = cam["height"] = 200_000
    (scene / "cameras.json").write_text(json.dumps(cams))
    shutil.rmtree(scene / "images")


def _hard_link(scene: Path, scratch: Path) -> None:
    os.link(_model(scene), scratch / "link.ply")


def _selection(make: Callable[[Path], None]) -> Setup:
    def setup(scene: Path, scratch: Path) -> None:
        make(scratch / "sel.npy")

    return setup


S, V, T = "{scene}", "{view}", "{tmp}"
SEG = ["segment", S, "--view", V, "--pixel", "16,16", "--method", "click"]
SAGA = ["segment", S, "--view", V, "--pixel", "16,16", "--method", "saga"]
EXPORT = ["export", S, "--selection", f"{T}/sel.npy", "-o", f"{T}/out.ply"]

CASES: list[tuple[str, Setup | None, list[str], str]] = [
    # 1. an output that is an input of the scene
    ("segment --out model", None, [*SEG, "--out", f"{S}/point_cloud.ply"], "refusing to overwrite"),
    ("segment --mask-out model", None, [*SEG, "--mask-out", f"{S}/point_cloud.ply"], "refusing to overwrite"),
    ("segment --mask-out cameras", None, [*SEG, "--mask-out", f"{S}/cameras.json"], "refusing to overwrite"),
    ("segment --out into images/", None, [*SEG, "--out", f"{S}/images/new.ply"], "inside"),
    ("segment --mask-out into workspace", None, [*SEG, "--mask-out", f"{S}/.splatseg/x.npy"], "inside"),
    ("query --mask-out model", None, ["query", S, "mug", "--mask-out", f"{S}/point_cloud.ply"], "refusing"),
    ("render -o model", None, ["render", S, "--view", V, "-o", f"{S}/point_cloud.ply"], "refusing to overwrite"),
    ("export -o hard link to model", _hard_link, [*EXPORT[:4], "-o", f"{T}/link.ply"], "refusing to overwrite"),
    ("export -o labels/", None, [*EXPORT[:4], "-o", f"{S}/labels/x.ply"], "inside"),
    # 3. allocations sized by a file
    ("selection 0 bytes", _selection(lambda p: p.write_bytes(b"")), EXPORT, "is empty"),
    ("selection claims 1e12", _selection(lambda p: _npy_header_only(p, (10**12,))), EXPORT, "entries"),
    (
        "selection truncated",
        _selection(lambda p: (np.save(p, np.ones(2000, bool)), p.write_bytes(p.read_bytes()[:-500]))),
        EXPORT,
        "truncated",
    ),
    ("selection of objects", _selection(lambda p: _npy_header_only(p, (2000,), "|O")), EXPORT, "pickle"),
    (
        "mask claims 1e9 masks",
        _mask_folder(lambda p, c: _npy_header_only(p, (10**9, c["height"], c["width"]))),
        ["prepare", S, "--masks", f"{S}/my_masks"],
        "masks",
    ),
    (
        "mask of the wrong size",
        _mask_folder(lambda p, c: _npy_header_only(p, (3, 96, 96))),
        ["prepare", S, "--masks", f"{S}/my_masks"],
        "camera is",
    ),
    ("mask truncated", _mask_folder(_truncated_mask), ["prepare", S, "--masks", f"{S}/my_masks"], "truncated"),
    ("cameras of 200000² without images", _huge_camera, ["render", S, "--view", V, "-o", f"{T}/x.png"], "16384"),
    # 5. tracebacks that became one line
    ("train on 0 Gaussians", _shrink_model(0), ["train", S, "--iterations", "2"], "0 Gaussian"),
    ("train saga on 1 Gaussian", _shrink_model(1), ["train", S, "--method", "saga", "--iterations", "2"], "1 Gauss"),
    ("train after all-zero masks", _zero_masks, ["train", S, "--iterations", "2"], "no segments"),
    ("garbage masks/index.json", _write(f".splatseg/masks/{INDEX_FILE}", b"\x00garbage"), ["train", S], "index"),
    (
        "masks/index.json views of the wrong type",
        _write(f".splatseg/masks/{INDEX_FILE}", b'{"views": 5, "source": "labels"}'),
        ["train", S],
        "mask index",
    ),
    ("manifest field of the wrong type", _manifest_field, SEG, "damaged"),
    ("view --port 99999", None, ["view", S, "--port", "99999"], "0..65535"),
    ("view --host 999.1.1.1", None, ["view", S, "--host", "999.1.1.1"], "--host"),
    # 6. silent wrong answers
    ("--threshold nan", None, [*SEG, "--threshold", "nan"], "--threshold"),
    ("--threshold 5", None, [*SEG, "--threshold", "5"], "--threshold"),
    ("--threshold -1", None, [*SEG, "--threshold", "-1"], "--threshold"),
    ("query --threshold nan", None, ["query", S, "mug", "--threshold", "nan"], "--threshold"),
    ("PLY with more vertices than its header", _lie_about_vertex_count, EXPORT, "header says"),
    ("features without label keys", _drop_label_keys, SEG, "lacks"),
    ("neighbours past the last Gaussian", _neighbors(_point_past_the_end), [*SEG, "--level", "fine"], "outside"),
    ("neighbours negative", _neighbors(lambda nb: nb - 1), [*SEG, "--level", "fine"], "outside"),
    ("neighbours as floats", _neighbors(lambda nb: nb.astype(np.float32)), SEG, "integer table"),
    ("uncovered share too short", _features_tensor("uncovered_share", lambda s: s[:100]), SEG, "uncovered_share"),
    ("uncovered share too long", _features_tensor("uncovered_share", lambda s: np.tile(s, 2)), SEG, "uncovered_share"),
    ("uncovered share as a column", _features_tensor("uncovered_share", lambda s: s[:, None]), SEG, "uncovered_share"),
    ("fine label past the centroids", _features_tensor("fine_labels", _huge_label), SEG, "fine_labels"),
    ("coarse label below -1", _features_tensor("coarse_labels", lambda lab: lab - 2), SEG, "coarse_labels"),
    ("labels as floats", _features_tensor("fine_labels", lambda lab: lab.astype(np.float32)), SEG, "fine_labels"),
    ("click features of 0 channels", _features_tensor("features", lambda f: f[:, :0]), SEG, "no channels"),
    ("click features narrower than the coarse half", _features_tensor("features", lambda f: f[:, :2]), SEG, "coarse"),
    ("click features narrower than the fine centroids", _features_tensor("features", lambda f: f[:, :13]), SEG, "fine"),
    ("click features with a NaN", _features_tensor("features", _one_nan), SEG, "NaN or infinite"),
    ("saga gate bias infinite", _features_tensor("gate_bias", lambda b: b + np.inf, "saga"), SAGA, "gate_bias"),
    ("saga gate of 3 channels", _features_tensor("gate_weight", lambda w: w[:3], "saga"), SAGA, "gate_weight"),
    ("saga gate bias of 3 channels", _features_tensor("gate_bias", lambda b: b[:3], "saga"), SAGA, "gate_bias"),
    ("saga quantiles empty", _features_tensor("quantiles", lambda q: q[:0], "saga"), SAGA, "quantiles"),
    ("saga quantiles NaN", _features_tensor("quantiles", lambda q: q * np.nan, "saga"), SAGA, "quantiles"),
    ("saga quantiles descending", _features_tensor("quantiles", lambda q: q[::-1], "saga"), SAGA, "quantiles"),
    ("saga auto scale too short", _features_tensor("auto_scale", lambda a: a[:10], "saga"), SAGA, "auto_scale"),
    ("neighbours one column per row", _neighbors(lambda nb: nb.reshape(-1)), SEG, "integer table"),
]


@pytest.mark.parametrize(("name", "setup", "argv", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(base_scene, tmp_path, capsys, name, setup, argv, needle):
    scene = tmp_path / "scene"
    shutil.copytree(base_scene, scene)
    _settle(scene)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if setup is not None:
        setup(scene, scratch)
    capsys.readouterr()
    before = _hash_tree(scene)
    args = [a.format(scene=scene, view=_view(scene), tmp=scratch) for a in argv]
    with pytest.raises(SystemExit) if args[0] == "view" and "--port" in args else _no_exit():
        rc = main(args)
        assert rc == 2, name
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1].split("\r")[-1].strip()  # after any progress bar or log line
    assert err.count("error:") == 1 and last.startswith("splatseg") and "error:" in last, err
    assert needle in last, err
    assert _hash_tree(scene) == before, f"{name}: an input file changed"


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_full_disk_during_export_is_one_line_and_leaves_no_file(base_scene, tmp_path):
    """A file-size limit makes the write fail with EFBIG, as a full disk fails with ENOSPC."""
    n = len(read_ply(_model(base_scene)))
    np.save(tmp_path / "sel.npy", np.ones(n, dtype=bool))
    out = tmp_path / "out" / "x.ply"
    out.parent.mkdir()

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [
            *(sys.executable, "-m", "backend.cli", "export", str(base_scene)),
            "--selection",
            str(tmp_path / "sel.npy"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "too large" in result.stderr.lower() or "space" in result.stderr.lower()
    assert list(out.parent.iterdir()) == []  # no partial file, no temporary left behind


def test_output_check_compares_files_not_names(base_scene, tmp_path):
    from backend.io.outputs import OutputIsInputError, check_outputs

    link = tmp_path / "elsewhere.ply"
    os.link(_model(base_scene), link)
    with pytest.raises(OutputIsInputError):
        check_outputs(base_scene, [("-o", link)])
    with pytest.raises(OutputIsInputError):  # a second path to the same file, via a symlinked folder
        (tmp_path / "alias").symlink_to(base_scene)
        check_outputs(base_scene, [("-o", tmp_path / "alias" / "point_cloud.ply")])
    with pytest.raises(OutputIsInputError, match="both name"):
        check_outputs(base_scene, [("--out", tmp_path / "a.ply"), ("--mask-out", tmp_path / "a.ply")])
    check_outputs(base_scene, [("--out", tmp_path / "fine.ply"), ("--mask-out", base_scene / "sel.npy")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_workspace_fails_before_training(base_scene, tmp_path, capsys):
    scene = tmp_path / "scene"
    shutil.copytree(base_scene, scene)
    ws = scene / ".splatseg"
    for root, dirs, _ in os.walk(ws):
        for d in dirs:
            os.chmod(Path(root) / d, 0o555)
    os.chmod(ws, 0o555)
    try:
        assert main(["train", str(scene), "--iterations", "2"]) == 2
        assert "cannot write to the workspace" in capsys.readouterr().err
    finally:
        for root, _dirs, _ in os.walk(ws):
            os.chmod(root, 0o755)

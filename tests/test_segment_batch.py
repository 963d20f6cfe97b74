"""`splatseg segment --prompts FILE.json`: one JSON line per prompt, each the line `--pixel` prints for it."""

from __future__ import annotations

import json

import pytest

from backend.cli import main
from tests.helpers.feature_scenes import TinyScene, trained_tiny_scene

TIMING = ("milliseconds", "total_milliseconds")


@pytest.fixture
def trained_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return trained_tiny_scene(tmp_path_factory)


def _lines(capsys, *argv: str) -> list[dict]:
    assert main(list(argv)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in TIMING}


def test_each_batch_line_equals_the_single_call(trained_scene: TinyScene, tmp_path, capsys) -> None:
    a = trained_scene.deepest_pixel("view_00", (1, 2))
    b = trained_scene.deepest_pixel("view_00", (3,))
    upper = trained_scene.deepest_pixel("view_01", (2,))
    prompts = [
        {"pixels": [list(a)]},
        {"pixels": [list(b)], "level": "fine"},
        {"pixels": [list(a)], "negatives": [list(b)], "threshold": 0.5},
        {"pixels": [list(upper)], "view": "view_01", "level": "fine"},
    ]
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(prompts))
    batch = _lines(capsys, "segment", str(trained_scene.folder), "--view", "view_00", "--prompts", str(path))
    assert len(batch) == len(prompts)
    for prompt, line in zip(prompts, batch, strict=True):
        argv = ["segment", str(trained_scene.folder), "--view", prompt.get("view", "view_00")]
        argv += [a for p in prompt["pixels"] for a in ("--pixel", f"{p[0]},{p[1]}")]
        argv += [a for p in prompt.get("negatives", []) for a in ("--negative", f"{p[0]},{p[1]}")]
        if "level" in prompt:
            argv += ["--level", prompt["level"]]
        if "threshold" in prompt:
            argv += ["--threshold", str(prompt["threshold"])]
        (single,) = _lines(capsys, *argv)
        assert _without_timing(line) == _without_timing(single)
    assert len({line["count"] for line in batch}) > 1  # the prompts select different things


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ("{}", "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"pixels": []}]', "prompt 0: pixels: give a non-empty list"),
        ('[{"pixels": [[1, null]]}]', "is not an [X, Y] pixel"),
        ('[{"pixels": [[1, 2]], "colour": 1}]', "unknown key 'colour'"),
        ('[{"pixels": [[1, 2]], "level": "medium"}]', "level must be"),
        ('[{"pixels": [[1, 2]], "threshold": "high"}]', "not a finite number"),
        ('[{"pixels": [[1, 2]], "view": "nope"}]', "nope"),
    ],
)
def test_bad_prompt_files_are_one_line(trained_scene: TinyScene, tmp_path, capsys, content, message) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(content)
    code = main(["segment", str(trained_scene.folder), "--view", "view_00", "--prompts", str(path)])
    err = capsys.readouterr()
    assert code != 0 and message in err.err and len(err.err.strip().splitlines()) == 1 and err.out == ""


def test_pixel_and_prompts_are_exclusive(trained_scene: TinyScene, tmp_path, capsys) -> None:
    path = tmp_path / "prompts.json"
    path.write_text('[{"pixels": [[1, 2]]}]')
    folder = str(trained_scene.folder)
    assert main(["segment", folder, "--view", "view_00", "--pixel", "1,2", "--prompts", str(path)]) != 0
    assert "not both" in capsys.readouterr().err
    assert main(["segment", folder, "--pixel", "1,2"]) != 0
    assert "--view NAME is needed" in capsys.readouterr().err

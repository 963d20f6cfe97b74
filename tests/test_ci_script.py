"""`.ci/run` runs the README's test command verbatim and fails when any part of it fails (`set -e` alone does not
stop at a failure inside an `&&` list: a failed install once let CI go on to ruff and pass)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    return next(b.strip() for b in blocks if "pytest" in b)


def test_ci_runs_the_readme_test_command() -> None:
    assert _readme_test_command() in (ROOT / ".ci" / "run").read_text()


def test_a_failing_step_of_the_test_command_fails_the_ci_script(tmp_path) -> None:
    """The CI script's own lines, with the test command's first step made to fail: the script must stop non-zero
    before ruff."""
    script = (ROOT / ".ci" / "run").read_text()
    script = script.replace('cd "$(dirname "$0")/.."', f"cd {tmp_path}")
    script = script.replace("python3 -m venv .venv", "false", 1)  # the install fails
    script = re.sub(r"if ! command -v chromium.*?\nfi\n", "", script, flags=re.S)  # no apt here
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    ruff = tmp_path / ".venv" / "bin" / "ruff"
    ruff.write_text("#!/bin/sh\necho ruff ran\n")
    ruff.chmod(0o755)
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ruff ran" not in proc.stdout, (proc.returncode, proc.stdout)

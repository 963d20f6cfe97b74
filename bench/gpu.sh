#!/usr/bin/env bash
# Every GPU figure in one run (< 8 minutes on one GPU): see bench/gpu.py. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's venv when there is one (the README's set-up), else whatever python is on PATH; PYTHON overrides.
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout 480 "$PYTHON" -m bench.gpu "$@"

#!/usr/bin/env bash
# Every GPU figure in one run (< 8 minutes on one GPU, after gsplat's one-time CUDA build): see bench/gpu.py.
# GPU_SH_LIMIT (seconds, default 900) is the hard limit for everything, the build included; the JSON is rewritten
# after each step, so a run cut short keeps what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's venv when there is one (the README's set-up), else whatever python is on PATH; PYTHON overrides.
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout "${GPU_SH_LIMIT:-900}" "$PYTHON" -m bench.gpu "$@"

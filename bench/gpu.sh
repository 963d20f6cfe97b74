#!/usr/bin/env bash
# Every GPU figure in one run (< 8 minutes on one GPU): see bench/gpu.py. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 "${PYTHON:-python}" -m bench.gpu "$@"

#!/usr/bin/env bash
# The one-GPU check of issue 14, on one H100/H200 in under 8 minutes (bench/gpu_check.py says what each
# line measures). On a machine without a GPU, `bench/gpu_check.sh --cpu-smoke` runs every part at toy
# shapes (tests/test_gpu_check.py does, so the script cannot rot).
#   bench/gpu_check.sh [--cpu-smoke] [--only mfu bf16 flex decode eval16k] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then python=.venv/bin/python; fi
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/phi4-inductor-cache}
exec timeout 480 "$python" bench/gpu_check.py "$@"

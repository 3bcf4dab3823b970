#!/usr/bin/env bash
# Python 3.10 (JetPack 6's Python) with the oldest runtime dependencies pyproject.toml accepts
# (scripts/oldest-constraints.txt), runtime-only (`pip install ".[cpu]"`, no torch): the runtime
# tests pass and the sample clips get the codes recorded in the dev venv (scripts/reference_codes.sh).
# PYTHON310 picks the interpreter (default: python3.10 on PATH, else pyenv's). Last line: pytest's summary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CHAIN_SDK_PY310_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chain-sdk/py310}
PY=${PYTHON310:-}
if [ -z "$PY" ]; then  # a pyenv shim on PATH may exist and still refuse to run: try each candidate
  for c in $(command -v python3.10) "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "no Python 3.10 found; set PYTHON310" >&2; exit 1; }
start=$(date +%s)

"$ROOT/scripts/reference_codes.sh" "$CACHE/reference"
rm -rf "$CACHE/venv" && "$PY" -m venv "$CACHE/venv"
V=$CACHE/venv/bin
"$V/pip" install -q --upgrade pip
# The oldest declared versions of the runtime. Test tools: onnx 1.16 is the newest whose graphs
# (IR version 10) onnxruntime 1.18 loads (tests/test_backends.py builds graphs with it).
"$V/pip" install -q "$ROOT[cpu]" pytest hypothesis onnx==1.16.2 imageio-ffmpeg==0.8.1 \
  -c "$ROOT/scripts/oldest-constraints.txt"
"$V/python" -I - <<'PY'  # -I: the installed package, never the checkout
import importlib.util, sys, numpy, cv2, onnxruntime, tqdm, chain_sdk
print("Python", sys.version.split()[0], "numpy", numpy.__version__, "OpenCV", cv2.__version__,
      "onnxruntime", onnxruntime.__version__, "tqdm", tqdm.__version__, "from", chain_sdk.__file__)
assert importlib.util.find_spec("torch") is None, "a runtime-only install must not need torch"
PY
echo "set-up: $(( $(date +%s) - start )) s"
cd "$ROOT"
CHAIN_SDK_CACHE=$CACHE/reference/cache CHAIN_SDK_TEST_MODEL_DIR=$CACHE/reference/model \
CHAIN_SDK_TEST_REFERENCE_CODES=$CACHE/reference/codes.jsonl \
  "$V/pytest" -q -p no:cacheprovider $(grep -v '^#' scripts/runtime_tests.txt)

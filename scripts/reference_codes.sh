#!/usr/bin/env bash
# The reference for the platform checks (py310_check.sh, aarch64_check.sh): in the x86-64 dev venv
# (`make install`, Python 3.11, the latest dependencies), export the default model to ONNX into
# OUT/model and record the codes of the sample clips (chain_sdk.cli.demo.DEMO_CLIPS) in OUT/codes.jsonl;
# the clips themselves go to OUT/cache/data, a CHAIN_SDK_CACHE the checked platform can use offline.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: reference_codes.sh OUT_DIR}
make -C "$ROOT" install
BIN=$ROOT/.venv/bin
mapfile -t CLIPS < <("$BIN/python" -c "from chain_sdk.cli.demo import DEMO_CLIPS; print(*DEMO_CLIPS, sep='\n')")
rm -rf "$OUT" && mkdir -p "$OUT/cache/data"
"$BIN/chain-export" onnx --checkpoint "$ROOT/chain_sdk/models/default-64" --out "$OUT/model"
"$BIN/chain-sdk" data fetch "${CLIPS[@]}"
DATA=$("$BIN/python" -c "from chain_sdk import data; print(data.data_dir())")
cp "${CLIPS[@]/#/$DATA/}" "$OUT/cache/data/"
"$BIN/chain-sdk" encode "${CLIPS[@]/#/$OUT/cache/data/}" --model "$OUT/model" -o "$OUT/codes.jsonl" --no-progress
echo "reference: $OUT/model, $OUT/codes.jsonl"

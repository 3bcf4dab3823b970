#!/usr/bin/env bash
# Retrain the embedded default checkpoints (chain_sdk/models/default-{64,32,16}) exactly as shipped.
# Data: Big Buck Bunny film time 0-240 s + the small sample clips (`chain-sdk data fetch`);
# film time >= 300 s is held out and never trained or tuned on. Seeded; deterministic on CPU.
# About 3 minutes of feature extraction (cached) + ~5 minutes per model on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs}
mkdir -p "$OUT"
data=$($PY -c "from chain_sdk import data; print(data.data_dir())")
$PY -m chain_sdk.cli data fetch

# The frozen frame CNN as ONNX (same weights and preprocessing as the torch module, ~3x faster on CPU).
if [ ! -f "$OUT/backbone.onnx" ]; then
  $PY -c "import sys; from chain_sdk.export.onnx_export import export_backbone; export_backbone(sys.argv[1])" "$OUT/backbone.onnx"
fi

common=(--videos "$data/bbb.mp4" "$data/bigbuckbunny.mp4" "$data/bikes.mp4" "$data/carphone.mp4" "$data/cityCC0.mpg"
        --time-range 0 240 --segment 10 --hop 5 --backbone "$OUT/backbone.onnx"
        --augment-draws 6 --blur-p 0.3 --letterbox-p 0.2
        --dim 192 --depth 2 --heads 4 --temperature 0.2
        --epochs 600 --batch-size 64 --seed 0)
for bits in 64 32 16; do
  $PY -m chain_sdk.train.cli fit "${common[@]}" --bits "$bits" --out "$OUT/chain$bits"
done
# Ablations for the report: each task switched off in turn (64 bits).
for task in contrastive order scene; do
  $PY -m chain_sdk.train.cli fit "${common[@]}" --bits 64 "--no-$task" --out "$OUT/abl_no$task"
done

#!/usr/bin/env bash
# Regenerate the near-duplicate reports (docs/near_duplicate_report*.md) in one command:
# the re-upload benchmark's dev split (and, with SPLITS="dev heldout", the held-out one), the
# re-upload recipe's seeds (scripts/train_robust_seeds.sh) against the shipped default, the
# feature hashes on the same features at every code size, and the four peers.
#   DRAWS=1 RUNS=runs_robust bash scripts/near_duplicate_reports.sh
# (the committed report: DRAWS=1 LIMIT=<segments> PEERS="tmkpy ..." TIMING=2, see its command line)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs_robust}
SPLITS=${SPLITS:-dev}
DRAWS=${DRAWS:-1}  # queries per edit family and segment (the benchmark's own default is 3 on dev)
PEERS=${PEERS:-videohash vpdq tmkpy perception}
extra=()
[ -n "${LIMIT:-}" ] && extra+=(--limit-segments "$LIMIT")  # a subset that keeps every source
models=()
for run in "$RUNS"/reupload64_s*/; do
  [ -f "$run/model.safetensors" ] && models+=("reupload64#$(basename "$run" | sed 's/.*_s//')=${run%/}")
done
models+=("shipped default-64=chain_sdk/models/default-64")
for split in $SPLITS; do
  out=docs/near_duplicate_report.md; [ "$split" = heldout ] && out=docs/near_duplicate_report_heldout.md
  nice -n 10 $PY -m benchmarks.retrieval.report --split "$split" --draws "$DRAWS" --models "${models[@]}" \
    --bits 64 16 32 128 256 --peers $PEERS --timing-videos "${TIMING:-4}" "${extra[@]}" --no-progress --out "$out"
done

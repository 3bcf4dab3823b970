"""Checkpoints: `model.safetensors` + `config.json` in a directory (see docs/architecture.md).

Loading validates the format, its version and every tensor's shape, and raises
`CheckpointError` saying what is wrong instead of running a model that does not match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from chain_sdk.version import __version__
from chain_sdk.errors import CheckpointError
from chain_sdk.files import atomic_path, sha256_of, write_text

from .chain import ChainConfig, ChainModel

FORMAT = "chain-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER_STATE = "trainer_state.pt"

DEFAULT_BACKBONE = {"name": "efficientnet_lite0", "feature_dim": 1280, "input_size": [224, 224]}


def save_checkpoint(
    directory: str | os.PathLike,
    model: ChainModel,
    *,
    backbone: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write weights, then config (each atomically). The config records the weights' sha256 and
    loading checks it, so a crash between the two renames is detected, never a mixed pair."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    backbone_info = dict(backbone or DEFAULT_BACKBONE)
    if backbone_info.get("feature_dim", model.config.feature_dim) != model.config.feature_dim:
        raise CheckpointError("backbone feature_dim differs from the model's feature_dim")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "backbone": backbone_info,
        "training": dict(training or {}),
        "sdk_version": __version__,
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    config["weights_sha256"] = sha256_of(out / WEIGHTS)
    write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    return out


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate config.json of a checkpoint directory."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG} (not a chain-sdk checkpoint directory)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from exc
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {config.get('format_version')!r} is not supported "
            f"(this chain-sdk reads version {FORMAT_VERSION})"
        )
    try:
        ChainConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config ({exc})") from exc
    return config


def load_checkpoint(directory: str | os.PathLike) -> tuple[ChainModel, dict[str, Any]]:
    """Build the model from config.json and load its weights; eval mode, CPU."""
    config = read_config(directory)
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS}")
    recorded = config.get("weights_sha256")  # absent in checkpoints written before it existed
    if recorded is not None and sha256_of(weights) != recorded:
        raise CheckpointError(f"{weights}: sha256 differs from the one {CONFIG} records "
                              "(a write was interrupted, or the files come from two checkpoints)")
    model = ChainModel(ChainConfig.from_dict(config["model"]))
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{weights}: unreadable ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights}: missing tensors {missing}, unexpected tensors {unexpected}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{weights}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"the config implies {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state)
    model.eval()
    return model, config


def save_trainer_state(directory: str | os.PathLike, state: dict[str, Any]) -> None:
    with atomic_path(Path(directory) / TRAINER_STATE) as tmp:
        torch.save(state, tmp)


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(directory) / TRAINER_STATE
    if not path.is_file():
        return None
    try:  # weights_only: tensors and plain containers only, so a crafted file cannot run code
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError for refused or corrupt files
        raise CheckpointError(f"{path}: not a plain trainer state ({type(exc).__name__}: {exc})") from exc

"""Model resolution: what `Encoder(model=...)` loads.

- `None` or a registered name ("default-64"): the checkpoint that ships inside the package
  (`chain_sdk/models/<name>/`: config.json + model.safetensors), exported to ONNX once, on first
  use, into `chain_sdk.data.cache_dir()/models/<name>-<hash>/` and reused afterwards. The
  environment variable `CHAIN_SDK_DEFAULT_CHECKPOINT` points the default at another checkpoint
  directory (development, or a site's own model).
- a model directory (model.json or engine.json): used as is.
- a checkpoint directory (config.json + model.safetensors): exported into the cache like the
  default.

Exporting needs torch and onnx (`pip install chain-sdk[export]`); a runtime-only install passes
an exported model directory instead. Never random weights: a missing checkpoint is an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from chain_sdk.version import __version__
from chain_sdk.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default-64"
ENV_DEFAULT_CHECKPOINT = "CHAIN_SDK_DEFAULT_CHECKPOINT"
PACKAGED_DIR = Path(__file__).parent / "models"
CHECKPOINT_FILES = ("config.json", "model.safetensors")
MODEL_FILES = ("model.json", "engine.json")


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in MODEL_FILES)


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in CHECKPOINT_FILES)


def packaged_models() -> list[str]:
    """Names of the checkpoints shipped inside the package."""
    if not PACKAGED_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKAGED_DIR.iterdir() if is_checkpoint_dir(p))


def default_checkpoint() -> Path:
    """The default checkpoint: $CHAIN_SDK_DEFAULT_CHECKPOINT, else the packaged default-64."""
    if env := os.environ.get(ENV_DEFAULT_CHECKPOINT):
        path = Path(env)
        if not is_checkpoint_dir(path):
            raise ModelError(f"${ENV_DEFAULT_CHECKPOINT}={env} is not a checkpoint directory "
                             f"(needs {', '.join(CHECKPOINT_FILES)})")
        return path
    path = PACKAGED_DIR / DEFAULT_MODEL
    if not is_checkpoint_dir(path):
        raise ModelError(f"the default model is not installed ({path} lacks {', '.join(CHECKPOINT_FILES)}); "
                         "pass model=DIR of an exported model or a checkpoint")
    return path


def checkpoint_key(checkpoint: Path) -> str:
    """Cache key: the checkpoint's bytes and the chain-sdk version (the exporter may change)."""
    digest = hashlib.sha256(__version__.encode())
    for name in CHECKPOINT_FILES:
        with open(checkpoint / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def models_cache_dir() -> Path:
    from chain_sdk.data import cache_dir

    return cache_dir() / "models"


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """The model directory to load for `model` (see the module docstring)."""
    if model is None:
        return export_cached(default_checkpoint(), DEFAULT_MODEL)
    text = os.fspath(model)
    path = Path(text)
    if is_model_dir(path):
        return path
    if is_checkpoint_dir(path):
        return export_cached(path, path.name or "model")
    if text in packaged_models():
        return export_cached(PACKAGED_DIR / text, text)
    if text == DEFAULT_MODEL:
        return export_cached(default_checkpoint(), DEFAULT_MODEL)
    if path.exists():
        raise ModelError(f"{path}: neither a model directory (model.json) nor a checkpoint "
                         "(config.json + model.safetensors)")
    known = packaged_models() or ["(none installed)"]
    raise ModelError(f"{text}: no such model directory or packaged model; packaged: {known}")


def export_cached(checkpoint: Path, name: str) -> Path:
    """Export `checkpoint` into the cache once; concurrent processes wait for one export."""
    key = checkpoint_key(checkpoint)
    target = models_cache_dir() / f"{name}-{key}"
    if is_model_dir(target):
        return target
    for existing in sorted(models_cache_dir().glob(f"*-{key}")):  # same weights, other name
        if is_model_dir(existing):
            return existing
    try:
        from chain_sdk.export.onnx_export import export_model
    except ImportError as exc:
        raise ModelError(
            f"the model {name} must be exported to ONNX once, which needs torch and onnx ({exc}): "
            "pip install chain-sdk[export], or pass model=DIR of an already exported model") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_suffix(".lock")):
        if is_model_dir(target):  # another process finished while we waited
            return target
        log.warning("exporting model %s to %s (once; takes about a minute)", name, target)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            export_model(checkpoint, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.warning("model %s ready", name)
    return target


@contextmanager
def _file_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic rename still keeps the cache whole
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""TensorRT builder and backend. Without TensorRT + a GPU (CI, this project's machines) only the
static checks and the clear-error paths run; the engine tests skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chain_sdk.errors import BackendUnavailableError, EngineError

ROOT = Path(__file__).resolve().parents[1]


def tensorrt_available() -> bool:
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")  # tensorrt-stubs alone import as a namespace package


def test_mypy_passes_on_tensorrt_code():
    files = ["export/tensorrt_build.py", "chain_sdk/backends/tensorrt.py"]
    result = subprocess.run([sys.executable, "-m", "mypy", *files], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_import_without_tensorrt():
    code = "import chain_sdk.backends.tensorrt, chain_sdk.export.tensorrt_build"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_profile_is_validated():
    from chain_sdk.export.tensorrt_build import Profile

    assert Profile(1, 8, 32).max_batch == 32
    with pytest.raises(EngineError):
        Profile(4, 2, 8)
    with pytest.raises(EngineError):
        Profile(0, 1, 1)


def test_cache_key_changes_with_everything_that_makes_an_engine_stale():
    from chain_sdk.backends.engine_dir import Profile, cache_key

    base = ("10.13.0", "8.7", "fp16", Profile(), "chain", "sha256:1", None)
    keys = {cache_key(*base)}
    for i, value in enumerate(["11.4.1", "9.0", "int8", Profile(1, 8, 64), "temporal", "sha256:2", 0]):
        variant = list(base)
        variant[i] = value
        keys.add(cache_key(*variant))
    assert len(keys) == 8


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_clear_error_without_tensorrt(tmp_path):
    from chain_sdk.backends.tensorrt import TensorRTBackend
    from chain_sdk.backends.engine_dir import require_tensorrt

    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        TensorRTBackend(tmp_path)
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        require_tensorrt()


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="TensorRT is not installed")
def test_engine_bits_match_onnxruntime(tmp_path_factory):
    import numpy as np

    from chain_sdk.backends.tensorrt import TensorRTBackend
    from chain_sdk.export.tensorrt_build import Profile, build_engine
    from chain_sdk.export.verify import compare_codes, encode_clips
    from test_export import exported_model_dir, real_frames

    model = exported_model_dir(tmp_path_factory)
    engine = build_engine(model, tmp_path_factory.mktemp("engine"), Profile(1, 2, 4))
    clips = real_frames(50).reshape(2, 25, 224, 224, 3)
    with TensorRTBackend(engine) as backend:
        got = backend.run({"frames": clips})["code"]
    ref = encode_clips(model, clips, backend="onnxruntime")
    assert compare_codes(ref, got).bit_agreement >= 0.99
    assert np.asarray(got).dtype == np.uint8

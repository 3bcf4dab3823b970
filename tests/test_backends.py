"""Backends on real ONNX graphs (built with onnx.helper) run by the real onnxruntime, and the
probing rules of create_backend."""

from __future__ import annotations

import numpy as np
import pytest

from chain_sdk.backends import create_backend, cuda_device_count
from chain_sdk.backends.base import available_cores, parse_device
from chain_sdk.backends.onnxruntime import OnnxRuntimeBackend
from chain_sdk.errors import BackendUnavailableError, ModelError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


def sign_pack_graph(path, bits: int = 16, dim: int = 8, seed: int = 0):
    """features [B, dim] -> logits = features @ W, code = packbits(logits >= 0) MSB-first,
    written with the same multiply-and-sum packing the exported graphs use."""
    w = np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)
    weights = (2 ** np.arange(7, -1, -1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["logits"]),
        helper.make_node("GreaterOrEqual", ["logits", "zero"], ["bits_bool"]),
        helper.make_node("Cast", ["bits_bool"], ["bits"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["bits", "shape"], ["groups"]),
        helper.make_node("Mul", ["groups", "weights"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axis"], ["bytes_f"], keepdims=0),
        helper.make_node("Cast", ["bytes_f"], ["code"], to=TensorProto.UINT8),
    ]
    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [0, bits // 8, 8]),
        helper.make_tensor("weights", TensorProto.FLOAT, [8], weights),
        helper.make_tensor("axis", TensorProto.INT64, [1], [2]),
    ]
    graph = helper.make_graph(
        nodes, "sign_pack", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", dim])],
        [helper.make_tensor_value_info("code", TensorProto.UINT8, ["B", bits // 8]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", bits])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return w


def test_onnxruntime_runs_a_real_graph_against_numpy(tmp_path):
    w = sign_pack_graph(tmp_path / "g.onnx")
    backend = create_backend("onnxruntime", tmp_path / "g.onnx", threads=1)
    assert backend.input_names == ["features"] and backend.output_names == ["code", "logits"]
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    out = backend.run({"features": x})
    logits = x @ w
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-5)
    clear = np.abs(logits) > 1e-4  # bits of logits at float noise level may legitimately differ
    bits = np.unpackbits(out["code"], axis=1)
    assert np.array_equal(bits[clear], (logits >= 0)[clear])
    assert out["code"].dtype == np.uint8 and out["code"].shape == (5, 2)


def test_threads_default_to_available_cores(tmp_path):
    sign_pack_graph(tmp_path / "g.onnx")
    assert OnnxRuntimeBackend(tmp_path / "g.onnx").threads == available_cores()
    assert OnnxRuntimeBackend(tmp_path / "g.onnx", threads=1).threads == 1


def test_auto_picks_a_working_backend(tmp_path):
    sign_pack_graph(tmp_path / "g.onnx")
    with create_backend("auto", tmp_path / "g.onnx") as backend:
        expected = "cuda:0" if cuda_device_count() else "cpu"
        assert backend.name == "onnxruntime" and backend.device == expected


@pytest.mark.skipif(cuda_device_count() > 0, reason="checks the no-GPU refusal")
def test_cuda_without_a_gpu_is_refused_not_silently_cpu(tmp_path):
    sign_pack_graph(tmp_path / "g.onnx")
    with pytest.raises(BackendUnavailableError):
        create_backend("onnxruntime", tmp_path / "g.onnx", device="cuda")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        create_backend("auto", tmp_path / "g.onnx", device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(cuda_device_count() == 0, reason="needs a CUDA GPU")
def test_cuda_matches_cpu(tmp_path):
    sign_pack_graph(tmp_path / "g.onnx")
    x = np.random.default_rng(2).standard_normal((64, 8)).astype(np.float32)
    cpu = create_backend("onnxruntime", tmp_path / "g.onnx", device="cpu").run({"features": x})
    gpu = create_backend("onnxruntime", tmp_path / "g.onnx", device="cuda").run({"features": x})
    np.testing.assert_allclose(gpu["logits"], cpu["logits"], rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(cuda_device_count() > 0, reason="checks the no-GPU refusal")
def test_engine_file_without_a_gpu_is_unavailable_with_a_reason(tmp_path):
    """Here `import tensorrt` even succeeds (tensorrt-stubs makes it a namespace package), which
    is why selection must probe by creating the engine, not by checking imports."""
    plan = tmp_path / "chain.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailableError):
        create_backend("auto", plan)


def test_bad_graph_file_and_bad_arguments(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError):
        create_backend("onnxruntime", junk)
    with pytest.raises(ModelError):
        create_backend("onnxruntime", tmp_path / "missing.onnx")
    with pytest.raises(ValueError):
        create_backend("tflite", junk)
    with pytest.raises(ValueError):
        parse_device("gpu0")
    assert parse_device("cuda:1") == ("cuda", 1) and parse_device(None) == ("cpu", 0)


def test_missing_and_unexpected_inputs_are_named(tmp_path):
    """The same mistake raises the same error in every backend (Backend.check_inputs)."""
    from chain_sdk.errors import ModelMismatchError

    sign_pack_graph(tmp_path / "g.onnx")
    backend = create_backend("onnxruntime", tmp_path / "g.onnx")
    with pytest.raises(ModelMismatchError, match="missing \\['features'\\]"):
        backend.run({})
    with pytest.raises(ModelMismatchError, match="unexpected \\['frames'\\]"):
        backend.run({"features": np.zeros((1, 4, 8), np.float32), "frames": np.zeros(1)})


def test_onnxruntime_binds_torch_tensors_by_pointer_and_gives_the_numpy_result(tmp_path):
    """The IOBinding path the GPU decoder feeds (device tensors bound in place), here with CPU
    tensors: same outputs as a plain run; a strided view is refused, not read as its base."""
    torch = pytest.importorskip("torch")
    from chain_sdk.backends.base import device_array
    from chain_sdk.errors import ModelMismatchError

    sign_pack_graph(tmp_path / "g.onnx")
    backend = create_backend("onnxruntime", tmp_path / "g.onnx", threads=1)
    x = np.random.default_rng(3).standard_normal((7, 8)).astype(np.float32)
    t = torch.from_numpy(x.copy())
    where = device_array(t)
    assert where is not None and where.device_type == "cpu" and where.pointer == t.data_ptr()
    assert device_array(x) is None  # numpy takes the plain path
    want, got = backend.run({"features": x}), backend.run({"features": t})
    for name in ("code", "logits"):
        np.testing.assert_array_equal(got[name], want[name])
    with pytest.raises(ModelMismatchError, match="contiguous"):
        backend.run({"features": torch.from_numpy(np.ascontiguousarray(x.T)).T})

"""fp16 / int8 variants: valid, TensorRT-parsable, and close in bits to fp32 on real video."""

from __future__ import annotations

import numpy as np
import pytest

from chain_sdk.contract import check_onnx_metadata, read_model_dir
from chain_sdk.errors import ModelError
from test_export import TENSORRT_SUPPORTED_OPS, exported_model_dir, real_frames, session

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return exported_model_dir(tmp_path_factory)


def test_fp16_model_dir_is_valid_and_agrees_with_fp32_on_real_video(model_dir, tmp_path):
    from chain_sdk.export.quantize import quantize_model
    from chain_sdk.export.verify import compare_codes, onnx_encoder, video_clips
    from chain_sdk import data

    out = quantize_model(model_dir, tmp_path / "fp16", "fp16")
    contract = read_model_dir(out)
    assert contract.precision == "fp16"
    for role in contract.graphs:
        check_onnx_metadata(contract.graph_path(role), contract)
        model = onnx.load(str(contract.graph_path(role)))
        assert {n.op_type for n in model.graph.node} <= TENSORRT_SUPPORTED_OPS
        inits = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
        assert inits, "weights should be fp16"
        assert model.graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT16  # keep_io_types
    clips = video_clips([data.path("bikes.mp4"), data.path("bigbuckbunny.mp4")], 25, (224, 224), clips_per_video=2)
    ref = onnx_encoder(read_model_dir(model_dir), threads=1)(clips)
    report = compare_codes(ref, onnx_encoder(contract, threads=1)(clips))
    assert report.bit_agreement >= 0.98, report


def test_int8_temporal_graph_is_qdq_symmetric_and_close_to_fp32(model_dir, tmp_path):
    from chain_sdk.export.quantize import ArrayReader, quantize_int8
    from chain_sdk.export.verify import compare_codes

    (features,) = session(model_dir / "backbone.onnx").run(None, {"frames": real_frames(50)})
    clips = np.stack([np.roll(features, -i, axis=0)[:25] for i in range(0, 25, 3)])
    quantize_int8(model_dir / "temporal.onnx", tmp_path / "t8.onnx", ArrayReader("features", [clips]))
    model = onnx.load(str(tmp_path / "t8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert set(ops) <= TENSORRT_SUPPORTED_OPS
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) == 3:
            assert not inits[node.input[2]].any(), "TensorRT needs zero points of 0 (symmetric)"
            assert inits[node.input[2]].dtype == np.int8
    assert {p.key: p.value for p in model.metadata_props}["precision"] == "int8"
    ref, _ = session(model_dir / "temporal.onnx").run(None, {"features": clips})
    got, _ = session(tmp_path / "t8.onnx").run(None, {"features": clips})
    assert compare_codes(ref, got).bit_agreement >= 0.85


def test_quantize_refuses_bad_requests(model_dir, tmp_path):
    from chain_sdk.export.quantize import quantize_model

    with pytest.raises(ModelError, match="precision"):
        quantize_model(model_dir, tmp_path / "x", "int4")
    with pytest.raises(ModelError, match="not found"):
        quantize_model(tmp_path / "absent", tmp_path / "x", "fp16")


def test_compare_codes_matches_a_bit_by_bit_reference():
    from chain_sdk.export.verify import compare_codes

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    b = a.copy()
    b[rng.random(a.shape) < 0.1] ^= np.uint8(1 << 3)
    bits_a, bits_b = np.unpackbits(a, axis=1), np.unpackbits(b, axis=1)
    report = compare_codes(a, b)
    assert report.bit_agreement == pytest.approx((bits_a == bits_b).mean())
    assert report.mean_hamming == pytest.approx((bits_a != bits_b).sum(1).mean())
    assert compare_codes(a, a).bit_agreement == 1.0


def test_cli_verify_exit_codes_and_errors(model_dir, tmp_path, capsys):
    from chain_sdk import data
    from chain_sdk.export.cli import main

    video = str(data.path("bikes.mp4"))
    args = ["verify", "--reference", str(model_dir), "--candidate", str(model_dir), "--videos", video,
            "--clips-per-video", "1"]
    assert main(args) == 0
    assert "1.00000" in capsys.readouterr().out
    assert main(args + ["--min-agreement", "1.01"]) == 1
    assert main(["onnx", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert main(["trt", "--model", str(model_dir), "--precision", "int8", "--out", str(tmp_path / "e")]) == 2

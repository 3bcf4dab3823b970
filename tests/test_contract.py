"""The model contract: model.json validation and ONNX metadata checks (fast: tiny hand-made graphs)."""

from __future__ import annotations

import json

import pytest

from chain_sdk.contract import (
    ModelContract, check_onnx_metadata, read_model_dir, read_onnx_metadata, write_model_json,
)
from chain_sdk.errors import ModelError, ModelMismatchError

onnx = pytest.importorskip("onnx")


def contract(**overrides) -> ModelContract:
    values = dict(bits=64, frames=25, feature_dim=1280, input_height=224, input_width=224,
                  model_version="sha256:0123", graphs={"temporal": "temporal.onnx"})
    values.update(overrides)
    return ModelContract(**values)


def tiny_graph(path, metadata: dict[str, str]) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["features"], ["logits"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, metadata)
    onnx.save(model, str(path))


def test_round_trip(tmp_path):
    c = contract()
    tiny_graph(tmp_path / "temporal.onnx", c.metadata())
    write_model_json(tmp_path, c)
    back = read_model_dir(tmp_path)
    assert back.to_dict() == c.to_dict() and back.root == tmp_path
    assert back.graph_path("temporal") == tmp_path / "temporal.onnx"
    assert back.code_bytes == 8 and back.input_size == (224, 224)
    check_onnx_metadata(tmp_path / "temporal.onnx", back)
    assert read_onnx_metadata(tmp_path / "temporal.onnx")["chain_sdk.format_version"] == "1"


@pytest.mark.parametrize("field, value, message", [
    ("bits", 60, "bits"), ("bits", 512, "bits"), ("frames", 0, "frames"),
    ("color_order", "YUV", "color_order"), ("normalization", "x/255", "normalization"),
    ("precision", "int4", "precision"), ("format_version", 2, "format_version"),
])
def test_unsupported_values_are_refused(field, value, message):
    with pytest.raises(ModelMismatchError, match=message):
        contract(**{field: value})


def test_model_dir_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_model_dir(tmp_path / "absent")
    with pytest.raises(ModelError, match="model.json"):
        read_model_dir(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="invalid JSON"):
        read_model_dir(tmp_path)
    c = contract()
    write_model_json(tmp_path, c)
    with pytest.raises(ModelError, match="missing"):
        read_model_dir(tmp_path)  # temporal.onnx is not there
    data = c.to_dict()
    data["format_version"] = 7
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelMismatchError, match="format_version 7"):
        read_model_dir(tmp_path)
    data["format_version"], data["format"] = 1, "something-else"
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="format"):
        read_model_dir(tmp_path)


def test_graph_with_another_contract_is_refused(tmp_path):
    c = contract()
    tiny_graph(tmp_path / "a.onnx", contract(bits=32).metadata())
    with pytest.raises(ModelMismatchError, match="bits: graph says '32'"):
        check_onnx_metadata(tmp_path / "a.onnx", c)
    tiny_graph(tmp_path / "b.onnx", {})
    with pytest.raises(ModelMismatchError, match="lacks"):
        check_onnx_metadata(tmp_path / "b.onnx", c)
    (tmp_path / "c.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError):
        check_onnx_metadata(tmp_path / "c.onnx", c)


def test_import_chain_sdk_contract_stays_light():
    import subprocess
    import sys

    code = "import sys, chain_sdk.contract; print(any(m in sys.modules for m in ('torch', 'onnx', 'onnxruntime')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"

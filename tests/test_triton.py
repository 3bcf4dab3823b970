"""Triton repository: config.pbtxt parses into Triton's own ModelConfig message and matches the graph."""

from __future__ import annotations

import pytest

from test_export import exported_model_dir

onnx = pytest.importorskip("onnx")


def load_model_config_pb2():
    """Triton's ModelConfig message from tritonclient, without the grpc extra (protobuf only):
    `tritonclient.grpc/__init__` refuses to import without grpcio, its model_config_pb2.py does not."""
    import importlib.util

    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:  # called at import: skip the module
        pytest.skip("tritonclient is not installed", allow_module_level=True)
    path = f"{spec.submodule_search_locations[0]}/grpc/model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


model_config_pb2 = load_model_config_pb2()


@pytest.mark.slow
@pytest.mark.parametrize("role", ["chain", "temporal", "backbone"])
def test_onnx_repository_parses_and_matches_the_graph(tmp_path_factory, tmp_path, role):
    from google.protobuf import text_format

    from chain_sdk.export.triton import write_triton_repository

    model_dir = exported_model_dir(tmp_path_factory)
    folder = write_triton_repository(model_dir, tmp_path / "repo", name=f"chain_{role}", role=role, kind="KIND_CPU")
    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["chain_sdk.bits"].string_value == "64"
    graph = onnx.load(str(folder / "1" / "model.onnx"), load_external_data=False).graph
    for declared, actual in [(config.input, graph.input), (config.output, graph.output)]:
        assert [t.name for t in declared] == [t.name for t in actual]
        for t, a in zip(declared, actual):
            # Triton owns the batch dim; a dynamic graph dim (T) is pinned to the contract's frames.
            dims = [d.dim_value or 25 for d in a.type.tensor_type.shape.dim][1:]
            assert list(t.dims) == dims
            onnx_type = onnx.helper.tensor_dtype_to_np_dtype(a.type.tensor_type.elem_type).name
            assert model_config_pb2.DataType.Name(t.data_type) == {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32"}[onnx_type]

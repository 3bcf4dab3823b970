"""ONNX export: graphs run in onnxruntime with the same bits as torch, on random and real video.

Batch sizes: the temporal graph is checked at batch 1, 7 and 64; the backbone and fused graphs
at batch 1 and 7 frames / 1 and 2 clips only -- batch 64 of 25 frames through the CNN is 1600
frames (~60 s on a CI CPU), and the CNN part is batch-independent in ONNX (dynamic batch dim).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from chain_sdk.video import sample_clip
from chain_sdk.contract import check_onnx_metadata, read_model_dir
from chain_sdk.errors import CheckpointError, ModelError, ModelMismatchError
from chain_sdk.nn.checkpoint import save_checkpoint
from chain_sdk.nn.chain import ChainConfig, ChainModel

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# onnx-tensorrt docs/operators.md (ONNX-TensorRT 10.1 GA; TensorRT 10.x parses opsets 9..20):
# every operator marked "Y". BitShift / Bitwise* / MatMulInteger / ConvInteger / QLinear* are "N".
TENSORRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf
IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not
OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round
ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

SEED = 1234


def make_checkpoint(directory: Path, seed: int = SEED, backbone: dict | None = None, **config) -> Path:
    """A checkpoint with seeded random temporal weights (test only: shipped models are trained)."""
    torch.manual_seed(seed)
    return save_checkpoint(directory, ChainModel(ChainConfig(**config)).eval(), backbone=backbone)


def exported_model_dir(tmp_path_factory) -> Path:
    """Export once per test session (~12 s) and share the directory between test modules."""
    from chain_sdk.export.onnx_export import export_model

    root = tmp_path_factory.getbasetemp() / "exported_fp32"
    if not (root / "model" / "model.json").is_file():
        make_checkpoint(root / "ckpt")
        export_model(root / "ckpt", root / "model")
    return root / "model"


def real_frames(count: int, name: str = "bigbuckbunny.mp4", size: int = 224) -> np.ndarray:
    """`count` BGR uint8 frames of a real sample clip at size x size, sampled as the Encoder does."""
    from chain_sdk import data

    return sample_clip(data.path(name), count, resize=(size, size), crop_borders=True).frames


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return exported_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def torch_graphs(model_dir):
    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.nn.graphs import BackboneGraph, FusedChainGraph, TemporalGraph
    from chain_sdk.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(model_dir / "checkpoint")
    backbone = get_backbone("efficientnet_lite0")
    return {"backbone": BackboneGraph(backbone), "temporal": TemporalGraph(model),
            "chain": FusedChainGraph(backbone, model)}


def session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # CI CPUs are shared: oversubscribed thread pools crawl
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """torch's OpenMP pool degrades badly on a shared, oversubscribed CPU (docs/research/deploy.md §3.1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def frames50():
    return real_frames(50)


pytestmark = pytest.mark.slow


def test_model_dir_layout_and_contract(model_dir):
    contract = read_model_dir(model_dir)
    assert contract.graphs == {"backbone": "backbone.onnx", "temporal": "temporal.onnx", "chain": "chain.onnx"}
    assert (contract.bits, contract.frames, contract.feature_dim) == (64, 25, 1280)
    assert contract.input_size == (224, 224) and contract.color_order == "BGR"
    assert contract.precision == "fp32" and contract.model_version.startswith("sha256:")
    for role in contract.graphs:
        check_onnx_metadata(contract.graph_path(role), contract)
        assert not list(model_dir.glob("*.data")), "weights must be embedded"
    assert (model_dir / "checkpoint" / "model.safetensors").is_file()


@pytest.mark.parametrize("role", ["backbone", "temporal", "chain"])
def test_graph_is_valid_and_tensorrt_parsable(model_dir, role):
    path = model_dir / f"{role}.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert 17 <= opsets[""] <= 20 and set(opsets) == {""}
    ops = {n.op_type for n in model.graph.node}
    assert ops <= TENSORRT_SUPPORTED_OPS, f"not parsable by TensorRT: {ops - TENSORRT_SUPPORTED_OPS}"
    if role != "backbone":
        assert "LayerNormalization" in ops  # one op (opset >= 17), fp16-safe in TensorRT
    # TensorRT takes UINT8 only as a network input/output: only Casts may touch uint8 tensors.
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    for node in model.graph.node:
        touches_uint8 = any(types.get(t) == onnx.TensorProto.UINT8 for t in list(node.input) + list(node.output))
        assert not touches_uint8 or node.op_type == "Cast", f"{node.op_type} {node.name} handles uint8"


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_temporal_graph_bits_equal_torch_on_random_features(model_dir, torch_graphs, batch):
    features = np.random.default_rng(batch).standard_normal((batch, 25, 1280)).astype(np.float32)
    code, logits = session(model_dir / "temporal.onnx").run(None, {"features": features})
    with torch.no_grad():
        ref_code, ref_logits = torch_graphs["temporal"](torch.from_numpy(features))
    np.testing.assert_array_equal(code, ref_code.numpy())
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    np.testing.assert_array_equal(code, np.packbits(logits >= 0, axis=1))  # MSB-first, numpy order


@pytest.mark.parametrize("frames", [1, 5, 25])
def test_temporal_graph_takes_any_clip_length_up_to_frames(model_dir, torch_graphs, frames):
    features = np.random.default_rng(frames).standard_normal((3, frames, 1280)).astype(np.float32)
    code, _ = session(model_dir / "temporal.onnx").run(None, {"features": features})
    with torch.no_grad():
        np.testing.assert_array_equal(code, torch_graphs["temporal"](torch.from_numpy(features))[0].numpy())


@pytest.mark.parametrize("batch", [1, 7])
def test_backbone_graph_matches_torch_on_real_frames(model_dir, torch_graphs, frames50, batch):
    frames = frames50[:batch]
    (features,) = session(model_dir / "backbone.onnx").run(None, {"frames": frames})
    with torch.no_grad():
        ref = torch_graphs["backbone"](torch.from_numpy(frames)).numpy()
    assert features.shape == (batch, 1280) and features.dtype == np.float32
    np.testing.assert_allclose(features, ref, rtol=1e-3, atol=1e-4)


def test_real_video_bits_equal_torch_batch_64(model_dir, torch_graphs, frames50):
    """64 clips of real features (50 real frames, shifted windows) through the temporal graph."""
    (features,) = session(model_dir / "backbone.onnx").run(None, {"frames": frames50})
    clips = np.stack([np.roll(features, -i, axis=0)[:25] for i in range(64)])
    code, _ = session(model_dir / "temporal.onnx").run(None, {"features": clips})
    with torch.no_grad():
        ref_code, _ = torch_graphs["temporal"](torch.from_numpy(clips))
    np.testing.assert_array_equal(code, ref_code.numpy())


@pytest.mark.parametrize("clips", [1, 2])
def test_fused_graph_bits_equal_torch_and_the_two_stage_graphs(model_dir, torch_graphs, frames50, clips):
    frames = frames50[: clips * 25].reshape(clips, 25, 224, 224, 3)
    code, logits = session(model_dir / "chain.onnx").run(None, {"frames": frames})
    with torch.no_grad():
        ref_code, _ = torch_graphs["chain"](torch.from_numpy(frames))
    np.testing.assert_array_equal(code, ref_code.numpy())
    (features,) = session(model_dir / "backbone.onnx").run(None, {"frames": frames.reshape(-1, 224, 224, 3)})
    two_stage, _ = session(model_dir / "temporal.onnx").run(None, {"features": features.reshape(clips, 25, -1)})
    np.testing.assert_array_equal(code, two_stage)
    assert code.dtype == np.uint8 and code.shape == (clips, 8) and logits.shape == (clips, 64)


def test_export_errors_are_clear(tmp_path):
    from chain_sdk.export.onnx_export import export_model

    with pytest.raises(CheckpointError, match="config.json"):
        export_model(tmp_path / "nothing", tmp_path / "out")
    ckpt = make_checkpoint(tmp_path / "ckpt", bits=16, frames=4, dim=32, depth=1, heads=2)
    with pytest.raises(ModelError, match="opset 13"):
        export_model(ckpt, tmp_path / "out", opset=13)
    with pytest.raises(ModelError, match="opset 21"):
        export_model(ckpt, tmp_path / "out", opset=21)
    config = json.loads((ckpt / "config.json").read_text())
    config["model"]["bits"] = 32  # weights no longer fit the config
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        export_model(ckpt, tmp_path / "out")
    other = make_checkpoint(tmp_path / "ckpt512", backbone={"name": "resnet18", "feature_dim": 512},
                            feature_dim=512, bits=16, frames=4, dim=32, depth=1, heads=2)
    with pytest.raises(ModelMismatchError, match="512"):
        export_model(other, tmp_path / "out", backbone="efficientnet_lite0")
    with pytest.raises(ModelError, match="unknown backbone 'resnet18'"):
        export_model(other, tmp_path / "out")  # default: the checkpoint's own backbone


def test_user_onnx_backbone_with_the_contract_plugs_in(model_dir, tmp_path, frames50):
    """An ONNX backbone that declares the contract exports as backbone + temporal (no fused graph)."""
    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.export.onnx_export import export_model

    backbone = get_backbone(model_dir / "backbone.onnx")
    assert (backbone.name, backbone.feature_dim, backbone.input_size) == ("efficientnet_lite0", 1280, (224, 224))
    out = export_model(model_dir / "checkpoint", tmp_path / "m", backbone=model_dir / "backbone.onnx")
    contract = read_model_dir(out)
    assert sorted(contract.graphs) == ["backbone", "temporal"]
    (a,) = session(out / "backbone.onnx").run(None, {"frames": frames50[:2]})
    (b,) = session(model_dir / "backbone.onnx").run(None, {"frames": frames50[:2]})
    np.testing.assert_array_equal(a, b)
    # A foreign ONNX file without the contract is refused.
    bare = onnx.load(str(model_dir / "backbone.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelMismatchError, match="contract"):
        get_backbone(tmp_path / "bare.onnx")


def test_checkpoint_trained_on_another_backbone_variant_is_refused(tmp_path):
    """Issue 13 #12: the backbone config.json records (name, feature size, input size) must be
    the one exported; a checkpoint of the 224x224 CNN at another input size exported silently."""
    from chain_sdk.export.onnx_export import export_model

    small = {"bits": 16, "frames": 4, "dim": 32, "depth": 1, "heads": 2}
    other_size = make_checkpoint(tmp_path / "ckpt256", backbone={
        "name": "efficientnet_lite0", "feature_dim": 1280, "input_size": [256, 256]}, **small)
    with pytest.raises(ModelMismatchError, match="input size"):
        export_model(other_size, tmp_path / "out")
    luma = make_checkpoint(tmp_path / "ckptluma", backbone={
        "name": "efficientnet_lite0_luma", "feature_dim": 1280, "input_size": [224, 224]}, **small)
    with pytest.raises(ModelMismatchError, match="name 'efficientnet_lite0_luma'"):
        export_model(luma, tmp_path / "out", backbone="efficientnet_lite0")
    assert not (tmp_path / "out" / "model.json").exists()


def test_model_json_checksums_every_graph(model_dir, tmp_path):
    """Issue 13 #12: a graph modified after export (weights edited, file damaged) was loaded."""
    import shutil

    from chain_sdk.encoder import Encoder

    contract = read_model_dir(model_dir)
    assert set(contract.sha256) == set(contract.graphs.values())
    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    graph = damaged / contract.graphs["temporal"]
    raw = bytearray(graph.read_bytes())
    raw[-100] ^= 1  # one bit of a weight
    graph.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        read_model_dir(damaged)
    with pytest.raises(ModelError, match="sha256"):
        Encoder(damaged)

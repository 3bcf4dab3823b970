"""The torch-free backbone builder (chain_sdk.onnxbuild) against its torch reference, on real
weights and real frames; the restricted reader of the weights file; and a runtime-only process
(torch, chain_sdk.export, chain_sdk.train and chain_sdk.nn blocked) that builds the packaged
default on an empty cache and gives the development install's code."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from chain_sdk import data
from chain_sdk.errors import ModelError
from chain_sdk.onnxbuild import torch_pickle
from chain_sdk.onnxbuild.efficientnet_lite import build_backbone, weights_path

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone.mp4", "cityCC0.mpg")


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def frames():
    """Real decoded frames as the Encoder feeds them: 6 per sample clip, bars cropped, 224x224 BGR."""
    from chain_sdk.video import sample_clip

    return np.concatenate([sample_clip(data.path(n), 6, resize=(224, 224), crop_borders=True).frames
                           for n in CLIPS])


# ------------------------------------------------------------------ the weights reader

def test_reader_gives_the_tensors_torch_loads():
    torch = pytest.importorskip("torch")
    ours = torch_pickle.load_state_dict(weights_path())
    theirs = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.numpy().dtype, name
        np.testing.assert_array_equal(ours[name], tensor.numpy(), err_msg=name)


def _legacy_file(tmp_path, payload: bytes):
    """A legacy torch file whose object pickle is `payload`."""
    path = tmp_path / "crafted.pth"
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        torch_pickle.MAGIC_NUMBER, torch_pickle.PROTOCOL_VERSION,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}))
    path.write_bytes(head + payload + pickle.dumps([], protocol=2))
    return path


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_reader_refuses_a_file_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = _legacy_file(tmp_path, pickle.dumps({"w": _RunsCode(marker)}, protocol=2))
    with pytest.raises(ModelError, match="refusing to load posix.mkdir|refusing to load os.mkdir"):
        torch_pickle.load_state_dict(path)
    assert not marker.exists()


def test_reader_refuses_truncated_and_foreign_files(tmp_path):
    raw = open(weights_path(), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelError, match="truncated|not a legacy"):
        torch_pickle.load_state_dict(cut)
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"PK\x03\x04 a zip-format checkpoint")
    with pytest.raises(ModelError):
        torch_pickle.load_state_dict(foreign)
    not_tensors = _legacy_file(tmp_path, pickle.dumps({"w": 3}, protocol=2))
    with pytest.raises(ModelError, match="not a tensor"):
        torch_pickle.load_state_dict(not_tensors)


def test_reader_checks_the_pinned_sha256(tmp_path):
    from chain_sdk.onnxbuild.efficientnet_lite import verified_state_dict

    raw = bytearray(open(weights_path(), "rb").read())
    raw[-1] ^= 1  # one flipped bit in the last weight
    changed = tmp_path / "changed.pth"
    changed.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        verified_state_dict(changed)


# ------------------------------------------------------------------ the graph vs torch

@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite0_luma"])
@pytest.mark.parametrize("color_order", ["BGR", "RGB"])
def test_built_graph_matches_the_torch_backbone_on_real_frames(frames, name, color_order):
    torch = pytest.importorskip("torch")
    from chain_sdk.nn.backbones import get_backbone

    reference = get_backbone(name, color_order=color_order)
    with torch.no_grad():
        expected = reference(torch.from_numpy(frames)).numpy()
    (got,) = session(build_backbone(name, color_order=color_order)).run(["features"], {"frames": frames})
    assert got.shape == expected.shape == (len(frames), 1280)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    if color_order == "RGB" and name == "efficientnet_lite0":  # channel order really is honoured
        (swapped,) = session(build_backbone(name, color_order="BGR")).run(["features"], {"frames": frames})
        assert np.abs(swapped - got).max() > 0.1


@pytest.mark.slow
def test_built_graph_gives_the_codes_of_the_torch_exported_graph(frames):
    """The development path before this builder: torch's dynamo export of the same backbone.
    Same features (to float tolerance) and bit-identical default-64 codes on the sample clips."""
    torch = pytest.importorskip("torch")
    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.nn.graphs import BackboneGraph
    from chain_sdk.export.onnx_export import export_graph
    from chain_sdk.models import PACKAGED_DIR, PACKAGED_GRAPHS

    bb = get_backbone("efficientnet_lite0_luma")
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        exported = export_graph(BackboneGraph(bb), torch.zeros(2, 224, 224, 3, dtype=torch.uint8),
                                {0: batch}, 20, "frames", ["features"])
    (old,) = session(exported).run(["features"], {"frames": frames})
    (new,) = session(build_backbone("efficientnet_lite0_luma")).run(["features"], {"frames": frames})
    np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-4 * np.abs(old).max())
    for name in ("default-64", "default-32", "default-16"):
        temporal = ort.InferenceSession(str(PACKAGED_DIR / name / PACKAGED_GRAPHS / "temporal.onnx"),
                                        providers=["CPUExecutionProvider"])
        codes = [temporal.run(["code"], {"features": f.reshape(len(CLIPS), 6, -1)})[0] for f in (old, new)]
        np.testing.assert_array_equal(codes[0], codes[1], err_msg=name)


# ------------------------------------------------------------------ a runtime-only process

BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = ("torch", "torchvision", "onnxscript", "safetensors", "chain_sdk.export",
               "chain_sdk.train", "chain_sdk.nn")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{name} is blocked: this process plays a runtime-only install")
    sys.meta_path.insert(0, Block())
""")


def run_runtime_only(code: str, cache, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHAIN_SDK_CACHE": str(cache)}
    env.pop("CHAIN_SDK_DEFAULT_MODEL", None)
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_runtime_only_encoder_builds_the_default_and_gives_the_development_code(tmp_path):
    torch = pytest.importorskip("torch")
    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.models import PACKAGED_DIR, PACKAGED_GRAPHS
    from chain_sdk.video import sample_clip

    clips = [str(data.path(n)) for n in ("bikes.mp4", "carphone.mp4")]
    cache = tmp_path / "empty-cache"
    out = run_runtime_only(f"""
        import json, sys
        from chain_sdk import Encoder
        enc = Encoder()
        codes = [enc.encode(p).tobytes().hex() for p in {clips!r}]
        heavy = [m for m in ("torch", "chain_sdk.export", "chain_sdk.train", "chain_sdk.nn") if m in sys.modules]
        print(json.dumps({{"codes": codes, "heavy": heavy, "model": str(enc.model_dir)}}))
    """, cache)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["model"].startswith(str(cache))
    # The development path, independently: torch backbone on the same frames, then temporal.onnx.
    bb = get_backbone("efficientnet_lite0_luma")
    temporal = ort.InferenceSession(str(PACKAGED_DIR / "default-64" / PACKAGED_GRAPHS / "temporal.onnx"),
                                    providers=["CPUExecutionProvider"])
    for path, code in zip(clips, result["codes"]):
        clip = sample_clip(path, 25, resize=(224, 224), crop_borders=True).frames
        with torch.no_grad():
            features = bb(torch.from_numpy(clip)).numpy()
        (expected,) = temporal.run(["code"], {"features": features[None]})
        assert code == expected[0].tobytes().hex(), path


def test_runtime_refuses_a_checkpoint_with_the_export_command(tmp_path):
    from chain_sdk.models import PACKAGED_DIR

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in ("config.json", "model.safetensors"):
        (ckpt / f).write_bytes((PACKAGED_DIR / "default-16" / f).read_bytes())
    out = run_runtime_only(f"""
        from chain_sdk import Encoder, ModelError
        try:
            Encoder(model={str(ckpt)!r})
        except ModelError as exc:
            print("ModelError:", exc)
    """, tmp_path / "cache", timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ModelError:" in out.stdout and "chain-export onnx --checkpoint" in out.stdout

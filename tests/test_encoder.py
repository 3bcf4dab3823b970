"""Encoder on a real exported model (an untrained small CHAIN on the real EfficientNet-Lite0
backbone, exported by chain_sdk.export through the model cache), real video, real onnxruntime.
Untrained weights are enough to test that every path computes the same function; the quality
test at the end uses the packaged default model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from chain_sdk import data
from chain_sdk.codes import hamming_distance
from chain_sdk.errors import (
    ChainSDKError,
    EmptyVideoError,
    ModelError,
    ModelMismatchError,
    PartialVideoError,
    PartialVideoWarning,
    UnsupportedVideoError,
    VideoOpenError,
)
from chain_sdk.video import open_video, read_frames

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from chain_sdk.encoder import BatchResult, Encoder  # noqa: E402
from chain_sdk.export.onnx_export import export_cached  # noqa: E402
from chain_sdk.models import packaged_models, resolve_model  # noqa: E402

T = 8


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Exported once per machine: the checkpoint bytes are seeded, so the cache key repeats."""
    from chain_sdk.nn.checkpoint import save_checkpoint
    from chain_sdk.nn.chain import ChainConfig, ChainModel

    torch.manual_seed(1234)
    model = ChainModel(ChainConfig(bits=64, frames=T, dim=64, depth=1, heads=2))
    ckpt = tmp_path_factory.mktemp("ckpt") / "untrained-test-t8"
    save_checkpoint(ckpt, model, training={"note": "untrained, for plumbing tests only"})
    return export_cached(ckpt)


@pytest.fixture(scope="session")
def encoder(model_dir):
    return Encoder(model_dir, backend="onnxruntime", batch_size=3)


@pytest.fixture(scope="session")
def bikes():
    return read_frames(data.path("bikes.mp4"))


def test_export_cached_exports_into_the_cache_once(model_dir):
    again = export_cached(model_dir / "checkpoint", "untrained-test-t8")  # same bytes -> same entry
    assert again == model_dir and (model_dir / "model.json").is_file()
    assert resolve_model(model_dir) == model_dir  # a model directory is used as is
    with pytest.raises(ModelError, match="chain-export onnx --checkpoint"):
        resolve_model(model_dir / "checkpoint")  # the runtime never exports


def test_encode_path_equals_array_and_iterator(encoder, bikes):
    path = data.path("bikes.mp4")
    code = encoder.encode(path)
    assert code.dtype == np.uint8 and code.shape == (8,)
    np.testing.assert_array_equal(encoder.encode(str(path)), code)
    np.testing.assert_array_equal(encoder.encode(bikes.frames), code)
    np.testing.assert_array_equal(encoder.encode(iter(bikes.frames)), code)


def test_split_and_fused_graphs_agree(model_dir, encoder):
    fused = Encoder(model_dir, backend="onnxruntime", graphs="fused")
    for name in ("bikes.mp4", "carphone.mp4", "cityCC0.mpg"):
        clip = encoder.sample(data.path(name))[None]
        a, b = encoder.run_clips(clip), fused.run_clips(clip)
        np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4)
        clear = np.abs(a["logits"]) > 1e-3
        assert np.array_equal(np.unpackbits(a["code"])[clear[0]], np.unpackbits(b["code"])[clear[0]])


def test_cpu_backbone_chunks_give_the_features_of_one_large_batch(model_dir, encoder):
    from chain_sdk.encoder import CPU_FRAME_CHUNK, FRAME_CHUNK

    assert encoder.frame_chunk == CPU_FRAME_CHUNK < FRAME_CHUNK  # onnxruntime on the CPU
    clips = np.stack([encoder.sample(data.path(n)) for n in ("bikes.mp4", "carphone.mp4", "cityCC0.mpg")])
    large = Encoder(model_dir, backend="onnxruntime")
    large.frame_chunk = FRAME_CHUNK  # all 3 x T frames in one backbone call
    a, b = encoder.run_clips(clips), large.run_clips(clips)
    np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-5)
    np.testing.assert_array_equal(a["code"], b["code"])


@pytest.mark.slow
def test_onnxruntime_and_torch_give_the_same_codes(model_dir, encoder):
    eager = Encoder(model_dir, backend="torch", graphs="fused")
    assert all("TorchBackend" in v for v in eager.backend_names.values())
    clips = np.stack([encoder.sample(data.path(n)) for n in ("bikes.mp4", "carphone.mp4")])
    ort_out, torch_out = encoder.run_clips(clips), eager.run_clips(clips)
    np.testing.assert_allclose(ort_out["logits"], torch_out["logits"], atol=1e-3)
    clear = np.abs(torch_out["logits"]) > 1e-3
    ort_bits, torch_bits = np.unpackbits(ort_out["code"], axis=1), np.unpackbits(torch_out["code"], axis=1)
    assert np.array_equal(ort_bits[clear], torch_bits[clear])


def test_encode_batch_keeps_order_and_matches_encode(encoder):
    names = ["carphone.mp4", "bikes.mp4", "cityCC0.mpg", "carphone.mp4"]
    codes = encoder.encode_batch([data.path(n) for n in names], progress=False).codes  # batch_size 3: 2 flushes
    assert codes.shape == (4, 8)
    for name, code in zip(names, codes):
        np.testing.assert_array_equal(code, encoder.encode(data.path(name)))


@pytest.fixture()
def mixed_inputs(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    raw = data.path("bigbuckbunny.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(raw[: len(raw) // 3])
    return [data.path("carphone.mp4"), tmp_path / "missing.mp4", tmp_path / "empty.mp4",
            np.zeros((4, 8, 8), np.uint8), tmp_path / "cut.mp4", data.path("bikes.mp4")]


def test_on_error_collect_returns_codes_positions_and_failures(encoder, mixed_inputs):
    result = encoder.encode_batch(mixed_inputs, on_error="collect", progress=False)
    assert isinstance(result, BatchResult)
    assert result.indices.tolist() == [0, 5]
    np.testing.assert_array_equal(result.codes[1], encoder.encode(data.path("bikes.mp4")))
    kinds = {f.index: type(f.error) for f in result.failures}
    assert kinds[1] is VideoOpenError and kinds[2] is EmptyVideoError
    assert kinds[3] is UnsupportedVideoError and issubclass(kinds[4], ChainSDKError)
    assert "missing.mp4" in result.failures[0].source


def test_on_error_skip_and_raise(encoder, mixed_inputs):
    with pytest.warns(DeprecationWarning):
        skipped = encoder.encode_batch(mixed_inputs, on_error="skip", progress=False)
    assert skipped.codes.shape == (2, 8) and len(skipped.failures) == 4
    with pytest.raises(VideoOpenError, match="missing.mp4"):
        encoder.encode_batch(mixed_inputs, on_error="raise", progress=False)
    with pytest.raises(ValueError):
        encoder.encode_batch([], on_error="ignore")
    assert encoder.encode_batch([], progress=False).codes.shape == (0, 8)


def test_stream_windows_equal_encoding_each_window(encoder, bikes):
    """bikes.mp4: 10 s at 25 fps. Windows of 4 s every 2 s; each window's code must be the code
    of that window's frames given as an array (index centres == time centres at constant rate)."""
    segments = list(encoder.stream(data.path("bikes.mp4"), window=4.0, hop=2.0))
    assert [(s.start, s.end) for s in segments] == [(0, 4), (2, 6), (4, 8), (6, 10)]
    for seg in segments:
        frames = bikes.frames[int(seg.start * 25): int(seg.end * 25)]
        np.testing.assert_array_equal(seg.code, encoder.encode(frames))


def test_stream_crops_bars_like_encode(encoder, bikes):
    """Windows of a letterboxed stream get the codes `encode` gives the same frames: the stream
    path keeps work copies and crops each window's bars the same way."""
    frames = np.pad(bikes.frames[:100], ((0, 0), (40, 40), (0, 0), (0, 0)))
    segments = list(encoder.stream(iter(frames), window=2.0, hop=2.0))
    assert len(segments) == 2  # 100 frames at the array default of 25 fps
    for seg in segments:
        window = frames[int(seg.start * 25): int(seg.end * 25)]
        np.testing.assert_array_equal(seg.code, encoder.encode(window))


def test_crop_borders_off_hashes_whole_frames(model_dir, bikes):
    frames = np.pad(bikes.frames, ((0, 0), (60, 60), (0, 0), (0, 0)))
    on, off = Encoder(model_dir, backend="onnxruntime"), Encoder(model_dir, backend="onnxruntime", crop_borders=False)
    cropped = on.sample(frames).astype(np.int16) - on.sample(bikes.frames)  # resampled via the work copy
    assert np.abs(cropped).max() <= 2 and np.abs(cropped).mean() < 0.5
    assert np.abs(off.sample(frames).astype(np.int16) - off.sample(bikes.frames)).mean() > 10
    np.testing.assert_array_equal(off.sample(bikes.frames), on.sample(bikes.frames))  # no bars: same


def test_stream_shorter_than_a_window_yields_one_segment(encoder):
    segments = list(encoder.stream(data.path("carphone.mp4"), window=10.0, hop=5.0))
    assert len(segments) == 1 and segments[0].start == 0.0 and segments[0].end == pytest.approx(3.97, abs=0.01)


def test_contract_is_enforced(model_dir, tmp_path):
    with pytest.raises(ModelMismatchError, match="1..8"):
        Encoder(model_dir, frames=T + 1)
    fewer = Encoder(model_dir, frames=4)  # shorter clips are within the contract
    assert fewer.encode(data.path("carphone.mp4")).shape == (8,)
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    meta = json.loads((tampered / "model.json").read_text())
    meta["input_width"] = 160  # the graphs were exported for 224
    (tampered / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match="input_width"):
        Encoder(tampered)


def test_bad_model_arguments(tmp_path, monkeypatch):
    with pytest.raises(ModelError):
        Encoder(tmp_path / "nope")
    with pytest.raises(ModelError, match="neither"):
        Encoder(tmp_path)
    monkeypatch.setenv("CHAIN_SDK_DEFAULT_MODEL", str(tmp_path))
    with pytest.raises(ModelError, match="CHAIN_SDK_DEFAULT_MODEL"):
        Encoder()


def test_import_chain_sdk_stays_light():
    code = ("import sys, chain_sdk; chain_sdk.Encoder; chain_sdk.HashCode; "
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'onnxscript') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _default_available() -> bool:
    return "default-64" in packaged_models()


@pytest.mark.slow
@pytest.mark.skipif(not _default_available(), reason="the packaged default checkpoint is not present")
def test_default_model_puts_edited_copies_closer_than_other_videos(tmp_path):
    enc = Encoder()
    frames = read_frames(data.path("bigbuckbunny.mp4")).frames
    flipped = frames[:, :, ::-1]
    h, w = frames.shape[1:3]
    cropped = np.stack([cv2.resize(f[h // 10: -h // 10, w // 10: -w // 10], (w, h)) for f in frames])
    original = enc.encode(frames)
    others = [enc.encode(data.path(n)) for n in ("bikes.mp4", "carphone.mp4", "cityCC0.mpg")]
    for copy in (flipped, cropped):
        d_copy = hamming_distance(original, enc.encode(copy))
        assert all(d_copy < hamming_distance(original, o) for o in others)


@pytest.mark.slow
@pytest.mark.skipif(not _default_available(), reason="the packaged default checkpoint is not present")
def test_default_model_gives_letterboxed_and_pillarboxed_copies_their_code(ffmpeg_copy):
    """ffmpeg squeezes bigbuckbunny.mp4 into bars and re-encodes it (measured: 1 and 5 bits from
    the original with the bar crop, 18 and 17 without; the other sample clips are 30-34 away)."""
    crop, whole = Encoder(), Encoder(crop_borders=False)
    src = data.path("bigbuckbunny.mp4")
    for name, vf in (("letterbox", "scale=iw:trunc(ih*0.75/2)*2,pad=iw:ih/0.75:0:(oh-ih)/2"),
                     ("pillarbox", "scale=trunc(iw*0.75/2)*2:ih,pad=trunc(iw/0.75/2)*2:ih:(ow-iw)/2:0")):
        copy = ffmpeg_copy(src, vf, f"{name}.mp4")
        d_crop = hamming_distance(crop.encode(src), crop.encode(copy))
        d_whole = hamming_distance(whole.encode(src), whole.encode(copy))
        assert d_crop <= 6 and 2 * d_crop < d_whole, (name, d_crop, d_whole)


@pytest.mark.slow
@pytest.mark.skipif(not _default_available(), reason="the packaged default checkpoint is not present")
def test_default_model_hashes_luma_so_greyscale_copies_keep_their_code():
    """The default's backbone takes luma only (efficientnet_lite0_luma): a greyscale copy differs
    from its original only by cv2's uint8 rounding of the grey value."""
    enc = Encoder()
    assert enc.contract.backbone == "efficientnet_lite0_luma"
    frames = read_frames(data.path("carphone.mp4")).frames
    grey = np.stack([cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for f in frames])
    assert hamming_distance(enc.encode(frames), enc.encode(grey)) <= 1


# ---------------------------------------------------------------- decoders and partial videos

def test_pyav_and_opencv_decoders_give_the_same_codes(encoder):
    """PyAV's selective decoding (the default for files) must not change a single code."""
    for name in data.SMALL_CLIPS:
        path = data.path(name)
        reference = encoder.encode(open_video(path, decoder="opencv"))
        np.testing.assert_array_equal(encoder.encode(open_video(path, decoder="pyav")), reference,
                                      err_msg=name)
        np.testing.assert_array_equal(encoder.encode(path), reference, err_msg=name)


@pytest.fixture()
def cut_at_ten_percent(tmp_path):
    """bikes.mp4 with its index moved up front (faststart), cut at 10 % of its bytes: the
    header still claims all 250 frames."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    fast = tmp_path / "faststart.mp4"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(data.path("bikes.mp4")), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True)
    raw = fast.read_bytes()
    cut = tmp_path / "cut10.mp4"
    cut.write_bytes(raw[: len(raw) // 10])
    return cut


def test_clips_as_torch_tensors_give_the_numpy_codes(encoder, bikes):
    """The GPU decode path hands clips over as tensors (bound by pointer in onnxruntime): on
    CPU tensors the codes are those of the numpy clips, also in a batch mixing both."""
    from chain_sdk.encoder import _stack

    clip = encoder.sample(bikes.frames)
    want = encoder.run_clips(np.stack([clip, clip[::-1]]))
    got = encoder.run_clips(torch.from_numpy(np.stack([clip, clip[::-1]])))
    np.testing.assert_array_equal(got["code"], want["code"])
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=0, atol=0)
    mixed = _stack([torch.from_numpy(clip), np.ascontiguousarray(clip[::-1])])
    assert isinstance(mixed, torch.Tensor)
    np.testing.assert_array_equal(encoder.encode_clips(mixed), want["code"])
    with pytest.raises(ModelMismatchError):
        encoder.run_clips(torch.from_numpy(np.stack([clip])).float())


def test_decoder_choice_is_checked_and_nvdec_refused_without_a_gpu(model_dir):
    from chain_sdk.errors import DecoderUnavailableError
    from chain_sdk.video import nvdec

    with pytest.raises(ValueError, match="decoder"):
        Encoder(model_dir, decoder="ffmpeg")
    with pytest.raises(DecoderUnavailableError):
        Encoder(model_dir, device="cpu", decoder="nvdec")
    if not nvdec.available():
        with pytest.raises(DecoderUnavailableError):
            Encoder(model_dir, decoder="nvdec")
    path = data.path("bikes.mp4")
    opencv = Encoder(model_dir, backend="onnxruntime", decoder="opencv")
    assert np.array_equal(opencv.encode(path), Encoder(model_dir, backend="onnxruntime").encode(path))


def test_partial_video_warns_in_encode_and_raises_when_strict(model_dir, encoder, cut_at_ten_percent):
    """Issue 13, item 7: a file cut at 10 % came back as a code, silently."""
    with pytest.warns(PartialVideoWarning, match="claims 250 frames but only"):
        code = encoder.encode(cut_at_ten_percent)
    assert code.shape == (8,)
    strict = Encoder(model_dir, backend="onnxruntime", strict=True)
    with pytest.raises(PartialVideoError, match="cut10.mp4"):
        strict.encode(cut_at_ten_percent)


def test_partial_video_is_reported_in_batch_results(model_dir, encoder, cut_at_ten_percent):
    videos = [data.path("carphone.mp4"), cut_at_ten_percent, -1]
    with pytest.warns(PartialVideoWarning):
        result = encoder.encode_batch(videos, on_error="collect", progress=False)
    assert result.indices.tolist() == [0, 1]
    assert [(w.index, type(w.warning)) for w in result.warnings] == [(1, PartialVideoWarning)]
    assert [(f.index, type(f.error)) for f in result.failures] == [(2, UnsupportedVideoError)]
    strict = Encoder(model_dir, backend="onnxruntime", strict=True)
    result = strict.encode_batch(videos, on_error="collect", progress=False)
    assert result.indices.tolist() == [0] and result.warnings == []
    assert {f.index: type(f.error) for f in result.failures} == {1: PartialVideoError, 2: UnsupportedVideoError}


def test_camera_index_minus_one_fails_one_item_not_the_batch(encoder):
    """Issue 13, item 4: encode(-1) segfaulted, killing a whole encode_batch."""
    result = encoder.encode_batch([-1, data.path("carphone.mp4")], on_error="collect", progress=False)
    assert result.indices.tolist() == [1]
    assert isinstance(result.failures[0].error, UnsupportedVideoError)



def test_stream_decodes_ahead_in_a_thread_and_stops_when_closed(encoder, tmp_path):
    import threading

    with pytest.raises(VideoOpenError, match="no such file"):  # raised in the decoder thread
        next(encoder.stream(tmp_path / "missing.mp4"))
    segments = encoder.stream(data.path("bikes.mp4"), window=2, hop=1)
    first = next(segments)
    assert first.start == 0.0 and first.code.shape == (8,)
    segments.close()
    for t in threading.enumerate():
        if t.name == "chain-stream-decode":
            t.join(timeout=10)
    assert not any(t.name == "chain-stream-decode" for t in threading.enumerate())


def test_the_progress_bar_moves_per_video(encoder, mixed_inputs, monkeypatch):
    """Each video moves the bar by one as it is decoded or fails, not a batch at a time."""
    import tqdm.auto

    steps: list[int] = []

    class Recording(tqdm.auto.tqdm):
        def update(self, n=1):
            steps.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    encoder.encode_batch(mixed_inputs, progress=True)
    assert steps == [1] * len(mixed_inputs)

"""Video sources and clip sampling on real decoders and real files (sample clips + files the
tests write with OpenCV's writer and the static ffmpeg of imageio-ffmpeg)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_sdk import data
from chain_sdk.errors import (
    EmptyVideoError,
    NoVideoStreamError,
    PartialVideoError,
    PartialVideoWarning,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoError,
    VideoOpenError,
)
from chain_sdk.video import (
    Frames,
    ShortVideoWarning,
    open_video,
    read_frames,
    sample_clip,
    segment_indices,
)
from chain_sdk.video import pyav, sampling, source

SMALL = ["bigbuckbunny.mp4", "bikes.mp4", "carphone.mp4", "cityCC0.mpg"]


def numbered_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose pixel value encodes their index (robust to lossy codecs: flat colour)."""
    values = (np.arange(n) * 7) % 256
    return np.broadcast_to(values[:, None, None, None], (n, h, w, 3)).astype(np.uint8).copy()


def frame_number(frame: np.ndarray) -> int:
    return int(round(float(frame.mean())))


def ffmpeg() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_x264(path: Path, frames: np.ndarray, fps: float, *extra: str) -> Path:
    n, h, w, _ = frames.shape
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-qp", "0", "-bf", "0",
           "-pix_fmt", "yuv420p", *extra, str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    return path


def decode_all(path) -> Frames:
    """The slow, obviously correct reference: OpenCV decodes every frame in order."""
    return read_frames(open_video(path, decoder="opencv"))


# ---------------------------------------------------------------- segment_indices

def reference_centres(n: int, t: int) -> list[int]:
    """The frame whose [k, k+1) interval holds each segment centre (i + 1/2) * n / t."""
    return [int(Fraction(2 * i + 1, 2) * n / t) for i in range(t)]


@given(st.integers(1, 5000), st.integers(1, 64))
def test_segment_centres_match_exact_reference(n, t):
    assert segment_indices(n, t).tolist() == reference_centres(n, t)


@given(st.integers(1, 5000), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_random_segment_indices_stay_in_their_segment(n, t, seed):
    idx = segment_indices(n, t, np.random.default_rng(seed))
    for i, k in enumerate(idx.tolist()):
        lo = (i * n) // t
        hi = max(((i + 1) * n) // t, lo + 1)
        assert lo <= k < hi <= n
    assert np.all(np.diff(idx) >= 0)


def test_segment_indices_rejects_empty():
    with pytest.raises(ValueError):
        segment_indices(0, 25)


# ---------------------------------------------------------------- input kinds

def test_path_and_pathlike_open_the_same_video():
    p = data.path("bikes.mp4")
    a, b = read_frames(str(p), max_frames=5), read_frames(p, max_frames=5)
    assert a.frames.shape == (5, 272, 640, 3) and a.frames.dtype == np.uint8
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_allclose(a.timestamps, np.arange(5) / 25.0)


def test_array_iterator_and_list_give_the_same_clip():
    frames = numbered_frames(60)
    expected = frames[segment_indices(60, 25)]
    for source in (frames, iter(frames), list(frames), (f for f in frames)):
        np.testing.assert_array_equal(sample_clip(source, 25).frames, expected)


def test_rgb_arrays_are_converted_to_bgr():
    rgb = np.zeros((3, 4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB
    with open_video(rgb, color="RGB") as src:
        assert src.read()[0, 0].tolist() == [0, 0, 200]
    with open_video(iter(rgb), color="RGB") as src:
        assert src.read()[0, 0].tolist() == [0, 0, 200]


def test_camera_index_without_camera_is_a_clear_error():
    with pytest.raises(VideoOpenError, match="camera"):
        open_video(57)


def test_negative_camera_index_is_an_error_not_a_crash():
    """OpenCV's VideoCapture(-1) segfaults here (issue 13, item 4): refuse it before OpenCV."""
    code = ("from chain_sdk.video import open_video\n"
            "try:\n    open_video(-1)\nexcept Exception as e:\n    print(type(e).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "UnsupportedVideoError"


def test_existing_path_with_an_exclamation_mark_is_a_file(tmp_path):
    """Issue 13, item 5: 'a!b.mp4' was taken for a GStreamer pipeline."""
    path = tmp_path / "take!2.mp4"
    shutil.copy(data.path("carphone.mp4"), path)
    for decoder in ("pyav", "opencv"):
        clip = sample_clip(open_video(str(path), decoder=decoder), 5)
        np.testing.assert_array_equal(clip.frames, sample_clip(data.path("carphone.mp4"), 5).frames)


def test_audio_only_file_has_no_video_stream(tmp_path):
    """Issue 13, item 10: an audio-only file was reported as corrupt."""
    audio = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", str(audio)], check=True)
    for decoder in ("auto", "pyav", "opencv"):
        with pytest.raises(NoVideoStreamError, match="no video stream .has audio"):
            sample_clip(open_video(audio, decoder=decoder))


def test_gstreamer_pipeline_without_gstreamer_is_a_clear_error():
    pipeline = "videotestsrc num-buffers=10 ! videoconvert ! appsink"
    if "GStreamer:                   YES" in cv2.getBuildInformation():
        src = open_video(pipeline)  # really parsed and started by GStreamer
        assert src.read() is not None
    else:
        with pytest.raises(UnsupportedVideoError, match="GStreamer"):
            open_video(pipeline)


def test_unreachable_url_is_an_open_error():
    with pytest.raises(VideoOpenError):
        open_video("http://127.0.0.1:9/clip.mp4")


def test_unknown_url_scheme_is_unsupported():
    with pytest.raises(UnsupportedVideoError, match="scheme"):
        open_video("gopher://example.org/clip.mp4")


@pytest.mark.parametrize("bad", [
    np.zeros((4, 8, 8), np.uint8),  # no channel axis
    np.zeros((4, 8, 8, 4), np.uint8),  # RGBA
    np.zeros((4, 8, 8, 3), np.float32),  # not uint8
    np.zeros((8, 8, 3), np.uint8),  # one frame, not a video
])
def test_bad_arrays_are_unsupported(bad):
    with pytest.raises(UnsupportedVideoError):
        open_video(bad)


@pytest.mark.parametrize("bad", [True, 3.5, b"\x00\x00", object()])
def test_unknown_input_kinds_are_unsupported(bad):
    with pytest.raises(UnsupportedVideoError):
        open_video(bad)


def test_bad_frame_inside_an_iterator_names_the_frame():
    frames = list(numbered_frames(5))
    frames[3] = frames[3].astype(np.float32)
    with pytest.raises(UnsupportedVideoError, match="frame 3"):
        read_frames(iter(frames))


def test_empty_array_and_iterator_are_empty_videos():
    with pytest.raises(EmptyVideoError):
        open_video(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(EmptyVideoError):
        sample_clip(iter([]), 25)
    with pytest.raises(EmptyVideoError):
        read_frames([])


# ---------------------------------------------------------------- file errors

def test_missing_file(tmp_path):
    with pytest.raises(VideoOpenError, match="no such file") as err:
        open_video(tmp_path / "nope.mp4")
    assert err.value.source.endswith("nope.mp4")


def test_directory_and_zero_byte_file(tmp_path):
    with pytest.raises(VideoOpenError, match="directory"):
        open_video(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="0 bytes"):
        sample_clip(tmp_path / "empty.mp4")


def test_random_bytes_are_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoOpenError, match="no decoder"):
        open_video(junk)


def test_mp4_truncated_before_its_index_is_a_decode_error(tmp_path):
    raw = data.path("bigbuckbunny.mp4").read_bytes()  # moov box at the end of this file
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VideoDecodeError, match="truncated") as err:
        sample_clip(cut)
    assert isinstance(err.value, VideoError) and "cut.mp4" in str(err.value)


def test_faststart_mp4_without_frame_data_is_a_decode_error(tmp_path):
    full = write_x264(tmp_path / "fast.mp4", numbered_frames(50), 25, "-movflags", "+faststart")
    raw = full.read_bytes()
    mdat = raw.find(b"mdat")
    cut = tmp_path / "nodata.mp4"
    cut.write_bytes(raw[: mdat + 64])
    with pytest.raises(VideoDecodeError, match="claims 50 frames"):
        sample_clip(cut, 8)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_faststart_mp4_truncated_midway_samples_what_decodes_and_warns(tmp_path, decoder):
    full = write_x264(tmp_path / "fast.mp4", numbered_frames(200), 25, "-movflags", "+faststart")
    raw = full.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(raw[: len(raw) // 2])
    decodable = read_frames(open_video(cut, decoder=decoder))
    n = len(decodable.frames)
    assert 0 < n < 200
    with pytest.warns(PartialVideoWarning, match=f"claims 200 frames but only {n} decoded"):
        clip = sample_clip(open_video(cut, decoder=decoder), 10)
    np.testing.assert_array_equal(clip.frames, decodable.frames[segment_indices(n, 10)])
    with pytest.raises(PartialVideoError, match="half.mp4"):
        sample_clip(open_video(cut, decoder=decoder), 10, strict=True)


def test_edit_list_hiding_frames_is_not_partial(tmp_path):
    """A stream copy cut mid-GOP keeps the GOP's first packets behind an edit list: the
    container counts them (109) but 102 are shown; that is a whole file, not a truncated one."""
    cut = tmp_path / "cut.mp4"
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-ss", "3.3", "-i", str(data.path("bikes.mp4")),
                    "-t", "4", "-c", "copy", str(cut)], check=True)
    reference = decode_all(cut)
    clips = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialVideoWarning)
        for decoder in ("pyav", "opencv"):
            with open_video(cut, decoder=decoder) as src:
                clips.append(sample_clip(src, 25, strict=True))
                assert src.frame_count == len(reference.frames) < 109
    np.testing.assert_array_equal(clips[0].frames, clips[1].frames)
    np.testing.assert_allclose(clips[0].timestamps, clips[1].timestamps)


def test_corrupt_bytes_inside_the_frames_are_partial(tmp_path):
    """Random bytes over the middle third of bikes.mp4: the decoder conceals the damage
    without an error, so the frames' corrupt flag has to tell (issue 13, item 7)."""
    raw = bytearray(data.path("bikes.mp4").read_bytes())
    rng = np.random.default_rng(0)
    for offset in rng.integers(len(raw) // 3, 2 * len(raw) // 3, 40).tolist():
        raw[offset:offset + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(raw))
    with pytest.warns(PartialVideoWarning, match="damaged"):
        sample_clip(bad, 25)
    with pytest.raises(PartialVideoError, match="damaged"):
        sample_clip(bad, 25, strict=True)


@pytest.mark.parametrize("name", SMALL)
def test_whole_files_are_not_partial(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialVideoWarning)
        for decoder in ("pyav", "opencv"):
            sample_clip(open_video(data.path(name), decoder=decoder), 25, strict=True)


def test_stalled_http_stream_is_partial_not_silent(tmp_path, monkeypatch):
    """A server that sends 40 % of a file and then stalls: after the read timeout the clip is
    sampled from what arrived, with a PartialVideoWarning (issue 13, item 7: it was silent)."""
    monkeypatch.setattr(source, "STREAM_TIMEOUT_S", 2.0)
    full = write_x264(tmp_path / "fast.mp4", numbered_frames(200), 25, "-movflags", "+faststart")
    body = full.read_bytes()
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: int(len(body) * 0.4)])
            self.wfile.flush()
            release.wait(30)  # stall; the client has to give up by itself

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fast.mp4"
        with pytest.warns(PartialVideoWarning, match="claims 200 frames"):
            clip = sample_clip(url, 8)
        assert len(clip.frames) == 8
    finally:
        release.set()
        server.shutdown()


# ---------------------------------------------------------------- sampling correctness

@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("decoder,seek", [("opencv", False), ("opencv", True), ("pyav", False)])
def test_sample_clip_equals_decode_all_then_index(name, decoder, seek, monkeypatch):
    """Every strategy (OpenCV's sequential grab and verified seeking, PyAV's selective
    decoding) gives the frames at the centres; cityCC0.mpg seeks inexactly, so its seek paths
    must fall back and still be right."""
    if seek:
        monkeypatch.setattr(sampling, "SEEK_MIN_STRIDE", 1)
    everything = decode_all(data.path(name))
    want = segment_indices(len(everything.frames), 25)
    clip = sample_clip(open_video(data.path(name), decoder=decoder), 25)
    np.testing.assert_array_equal(clip.frames, everything.frames[want])
    np.testing.assert_allclose(clip.timestamps, everything.timestamps[want])


# ---------------------------------------------------------------- selective decoding (PyAV)

@pytest.fixture(scope="module")
def selective_cases(tmp_path_factory):
    """name -> (path, every frame decoded by OpenCV in order): B-frames with 6 GOPs (bikes),
    MPEG-2 in a program stream whose seeks land elsewhere (cityCC0), and an open-GOP x264
    re-encode whose leading B-frames reference the previous GOP."""
    open_gop = tmp_path_factory.mktemp("gop") / "open_gop.mp4"
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-i", str(data.path("bikes.mp4")),
                    "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28",
                    "-x264-params", "keyint=40:min-keyint=40:open-gop=1:bframes=3:b-pyramid=normal",
                    "-an", str(open_gop)], check=True)
    paths = {"bikes": data.path("bikes.mp4"), "cityCC0": data.path("cityCC0.mpg"), "open_gop": open_gop}
    return {k: (p, decode_all(p)) for k, p in paths.items()}


@pytest.mark.parametrize("case", ["bikes", "cityCC0", "open_gop"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decode_at_equals_decoding_everything(selective_cases, case, data):
    path, everything = selective_cases[case]
    n = len(everything.frames)
    wanted = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=30), label="wanted")
    with open_video(path, decoder="pyav") as src:
        times = src.frame_times()
        np.testing.assert_allclose(times, everything.timestamps, atol=1e-9)
        got = dict(src.decode_at(wanted))
    assert sorted(got) == sorted(set(wanted))
    for i in set(wanted):
        np.testing.assert_array_equal(got[i], everything.frames[i], err_msg=f"frame {i}")


def test_selective_decoding_skips_frames_and_falls_back_when_a_seek_lies(selective_cases, caplog):
    with open_video(data.path("bikes.mp4"), decoder="pyav") as src:
        n = len(src.frame_times())
        ranges = src._ranges(segment_indices(n, 5).tolist())
        assert sum(r.stop - r.start + 1 for r in ranges) < n  # packets before a GOP's wanted frame only
    with open_video(data.path("cityCC0.mpg"), decoder="pyav") as src:  # MPEG-PS: decoded in order
        assert src._container.format.name in pyav.SEQUENTIAL_FORMATS
        src.frame_times()
        assert [i for i, _ in src.decode_at([180, 5, 100])] == [5, 100, 180]


def test_resize_uses_area_interpolation():
    clip = sample_clip(data.path("bikes.mp4"), 4, resize=(224, 112))
    everything = decode_all(data.path("bikes.mp4"))
    ref = [cv2.resize(f, (224, 112), interpolation=cv2.INTER_AREA)
           for f in everything.frames[segment_indices(250, 4)]]
    assert clip.frames.shape == (4, 112, 224, 3)
    np.testing.assert_array_equal(clip.frames, np.stack(ref))


def test_short_video_repeats_nearest_frames_and_warns(tmp_path):
    path = write_x264(tmp_path / "short.mp4", numbered_frames(7), 25)
    with pytest.warns(ShortVideoWarning, match="only 7 frames"):
        clip = sample_clip(path, 25)
    everything = decode_all(path)
    assert len(everything.frames) == 7
    np.testing.assert_array_equal(clip.frames, everything.frames[reference_centres(7, 25)])
    assert len({frame_number(f) for f in clip.frames}) == 7  # every frame used, none invented


def lying_avi(tmp_path: Path, n: int = 400, keep: float = 0.25) -> Path:
    """An MJPG AVI whose header claims `n` frames, cut to about `keep` of its bytes."""
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for frame in numbered_frames(n):
        writer.write(frame)
    writer.release()
    raw = full.read_bytes()
    cut = tmp_path / "lying.avi"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    return cut


@pytest.mark.parametrize("seek_min_stride", [1, sampling.SEEK_MIN_STRIDE])
def test_header_claiming_more_frames_than_the_file_holds(tmp_path, monkeypatch, seek_min_stride):
    monkeypatch.setattr(sampling, "SEEK_MIN_STRIDE", seek_min_stride)
    path = lying_avi(tmp_path)
    with open_video(path) as src:
        assert src.frame_count == 400  # the lie
    real = decode_all(path)
    n = len(real.frames)
    assert n < 400 / 2
    with pytest.warns(PartialVideoWarning, match=f"claims 400 frames but only {n} decoded"):
        clip = sample_clip(path, 16)
    np.testing.assert_array_equal(clip.frames, real.frames[segment_indices(n, 16)])


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    """First 60 frames at 10 fps (6 s), then 60 frames at 60 fps (1 s): the time centres fall
    mostly in the slow part, unlike frame-index centres."""
    vfr = write_x264(tmp_path / "vfr.mp4", numbered_frames(120), 60,
                     "-vf", "setpts='if(lt(N,60),N/10,6+(N-60)/60)/TB'", "-fps_mode", "passthrough",
                     "-video_track_timescale", "600")
    everything = decode_all(vfr)
    ts = everything.timestamps
    assert len(ts) == 120
    assert ts[59] == pytest.approx(5.9) and ts[-1] == pytest.approx(7 - 1 / 60)
    clip = sample_clip(vfr, 7)
    # 7 one-second segments: centres at 0.5 .. 6.5 s; six fall in the 10 fps part
    np.testing.assert_allclose(clip.timestamps, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5], atol=1e-6)
    expected = [int(np.argmin(np.abs(ts - t))) for t in np.arange(7) + 0.5]
    np.testing.assert_array_equal(clip.frames, everything.frames[expected])


def test_unknown_length_stream_keeps_memory_bounded(monkeypatch):
    """An iterator of 3000 frames with a 40-frame budget: at most 40 frames are held, and each
    sampled frame is within the final keep-stride of its segment centre."""
    frames = np.repeat(np.arange(3000, dtype=np.int64)[:, None], 1, axis=1)
    small = 24 * 24 * 3
    monkeypatch.setattr(sampling, "RESERVOIR_BYTES", 40 * small)
    held = []

    def stream():
        for k in frames[:, 0]:
            f = np.zeros((24, 24, 3), np.uint8)
            f[0, 0, 0], f[0, 0, 1] = k % 256, k // 256  # the index, exactly
            yield f

    original = sampling._resize

    def spy(frame, size):
        held.append(1)
        return original(frame, size)

    monkeypatch.setattr(sampling, "_resize", spy)
    clip = sample_clip(stream(), 10)  # capacity = max(4*10, 40) = 40 frames
    got = np.array([int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in clip.frames])
    want = segment_indices(3000, 10)
    assert np.all(np.abs(got - want) <= 128)  # stride ends at 128 = 3000 / 40 rounded up to 2^k
    assert len(held) < 3000  # frames skipped by the stride are never retrieved


def test_read_frames_subsamples_to_fps_and_bounds_memory():
    five = read_frames(data.path("bikes.mp4"), fps=5)
    assert len(five.frames) == 50
    np.testing.assert_allclose(np.diff(five.timestamps), 0.2, atol=1e-6)
    first = read_frames(data.path("bikes.mp4"), fps=5, max_frames=7)
    np.testing.assert_array_equal(first.frames, five.frames[:7])


@pytest.mark.slow
def test_long_film_is_sampled_by_verified_seeking():
    path = data.path("bbb.mp4")
    clip = sample_clip(path, 25, resize=(224, 224))
    assert clip.frames.shape == (25, 224, 224, 3)
    np.testing.assert_allclose(clip.timestamps, segment_indices(14315, 25) / 24.0, atol=1e-6)

"""The Jetson GStreamer pipelines of docs/jetson.md, as far as a machine without NVDEC can check them.

Everywhere: each documented pipeline is one that `open_video` takes for GStreamer and that hands
BGR frames to an appsink. Where the imported cv2 has GStreamer (a system OpenCV, such as Debian's
python3-opencv in a --system-site-packages venv) and libav's decoder is installed, the file pipeline
runs with the hardware elements swapped for software ones (nvv4l2decoder -> avdec_h264, nvvidconv
-> videoconvert): its frames must be FFmpeg's, and with CHAIN_SDK_TEST_MODEL_DIR set the encoder
must give the clip the same code through the pipeline as through the file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from chain_sdk import data
from chain_sdk.errors import UnsupportedVideoError
from chain_sdk.video import open_video

DOC = Path(__file__).resolve().parents[1] / "docs" / "jetson.md"
HARDWARE_TO_SOFTWARE = {"nvv4l2decoder": "avdec_h264", "nvvidconv": "videoconvert"}


def documented_pipelines() -> list[str]:
    """The indented pipeline lines of docs/jetson.md (those with Jetson elements)."""
    lines = [line.strip() for line in DOC.read_text().splitlines() if re.match(r"    [a-z]", line)]
    return [line for line in lines if " ! " in line and re.search(r"nvv4l2decoder|nvvidconv|nvarguscamerasrc", line)]


def has_gstreamer() -> bool:
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


def has_elements(*names: str) -> bool:
    inspect = shutil.which("gst-inspect-1.0")
    return inspect is not None and all(
        subprocess.run([inspect, "--exists", n], capture_output=True).returncode == 0 for n in names)


def test_documented_pipelines_hand_bgr_frames_to_appsink():
    pipelines = documented_pipelines()
    assert len(pipelines) >= 4  # file, decodebin, RTSP, CSI camera
    for p in pipelines:
        elements = [e.strip() for e in p.split(" ! ")]
        assert elements[-1].split()[0] == "appsink", p
        assert elements[-2] == "video/x-raw,format=BGR", p
        assert "nvvidconv" in elements, p  # NVMM -> system memory; OpenCV cannot read NVMM buffers
        if not has_gstreamer():
            with pytest.raises(UnsupportedVideoError, match="GStreamer"):
                open_video(p)


@pytest.mark.skipif(not has_gstreamer(), reason="this cv2 has no GStreamer (pip's wheels never do)")
@pytest.mark.skipif(not has_elements("qtdemux", "h264parse", "avdec_h264", "videoconvert"),
                    reason="needs GStreamer's qtdemux, h264parse (plugins-good/bad) and avdec_h264 (libav)")
def test_file_pipeline_with_software_decoder_gives_ffmpegs_frames():
    clip = data.path("bikes.mp4")  # H.264 in MP4
    documented = next(p for p in documented_pipelines() if p.startswith("filesrc") and "qtdemux" in p)
    pipeline = re.sub(r"location=\S+", f"location={clip}", documented)
    for hw, sw in HARDWARE_TO_SOFTWARE.items():
        pipeline = pipeline.replace(hw, sw)
    with open_video(pipeline) as src, open_video(str(clip)) as ref:
        n = 0
        while (frame := src.read()) is not None:
            expected = ref.read()
            assert expected is not None and frame.shape == expected.shape
            # Same libav decoder; the YUV->BGR conversion differs (videoconvert vs swscale).
            assert np.abs(frame.astype(int) - expected).mean() < 2.0
            n += 1
        assert n > 0 and ref.read() is None

    if model := os.environ.get("CHAIN_SDK_TEST_MODEL_DIR"):
        from chain_sdk.encoder import Encoder

        enc = Encoder(model, backend="onnxruntime")
        bits = np.unpackbits(enc.encode(pipeline) ^ enc.encode(str(clip))).sum()
        assert bits == 0, f"{bits} bits differ between the pipeline and the file"

"""Fixtures shared by several test modules."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def ffmpeg_copy(tmp_path):
    """copy(src, vf, name, crf=23): `src` re-encoded through the ffmpeg filter graph `vf` with the
    static ffmpeg of imageio-ffmpeg (libx264, yuv420p, no audio) into tmp_path / name."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()

    def copy(src, vf: str, name: str = "copy.mp4", crf: int = 23):
        dst = tmp_path / name
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-vf", vf, "-c:v", "libx264",
                        "-crf", str(crf), "-pix_fmt", "yuv420p", "-an", str(dst)], check=True)
        return dst

    return copy

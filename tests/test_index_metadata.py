"""HammingIndex files with a metadata section (format version 2, what VideoIndex saves)."""

from __future__ import annotations

import numpy as np
import pytest

from chain_sdk.errors import IndexFormatError
from chain_sdk.index import HammingIndex, fileformat


def filled(n: int = 50) -> HammingIndex:
    index = HammingIndex(64)
    index.add(np.random.default_rng(0).integers(0, 256, (n, 8), dtype=np.uint8))
    index.remove([3, 7])
    return index


def test_metadata_round_trip_and_version(tmp_path):
    path = tmp_path / "a.idx"
    filled().save(path, metadata=b"table bytes \x00\xff")
    assert fileformat.read_header(path).metadata_size == 14
    loaded = HammingIndex.load(path)
    assert loaded.metadata == b"table bytes \x00\xff" and len(loaded) == 48
    with open(path, "rb") as f:
        assert int.from_bytes(f.read(12)[8:12], "little") == fileformat.VERSION_METADATA


def test_without_metadata_the_file_is_version_1_as_before(tmp_path):
    a, b = tmp_path / "a.idx", tmp_path / "b.idx"
    filled().save(a)
    filled().save(b, metadata=b"")
    assert a.read_bytes() == b.read_bytes()
    with open(a, "rb") as f:
        assert int.from_bytes(f.read(12)[8:12], "little") == fileformat.VERSION
    assert HammingIndex.load(a).metadata == b""


@pytest.mark.parametrize("where", ["metadata", "record", "cut"])
def test_damaged_metadata_is_refused(tmp_path, where):
    path = tmp_path / "a.idx"
    filled().save(path, metadata=b"x" * 100)
    raw = bytearray(path.read_bytes())
    if where == "metadata":
        raw[-10] ^= 1
    elif where == "record":
        raw[fileformat._BODY.size + fileformat._CRC.size + 2] ^= 1  # the metadata record's offset
    else:
        raw = raw[:-1]
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError):
        HammingIndex.load(path)

"""Index files: round trips (mmap and copy), zero-copy mmap, atomic writes, and a clear
IndexFormatError for every truncated, corrupted or foreign file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from chain_sdk.errors import IndexFormatError
from chain_sdk.index import HammingIndex, fileformat


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (3001, 8), dtype=np.uint8)
    index = HammingIndex(64)
    index.add(codes, ids=np.arange(3001) * 3 + 11)
    index.remove([11, 14, 3000 * 3 + 11])
    path = tmp_path / "codes.chidx"
    index.save(path)
    return index, codes, path


@pytest.mark.parametrize("mmap", [True, False])
def test_roundtrip(saved, mmap):
    index, codes, path = saved
    loaded = HammingIndex.load(path, mmap=mmap)
    assert len(loaded) == len(index) == 2998 and loaded.bits == 64
    for a, b in zip(index.search(codes[:50], 17), loaded.search(codes[:50], 17)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(index.range_search(codes[:9], 20), loaded.range_search(codes[:9], 20)):
        np.testing.assert_array_equal(a, b)
    assert loaded.add(codes[:1]).tolist() == [3000 * 3 + 12]  # next id survives the round trip
    assert len(loaded) == 2999


def test_mmap_is_zero_copy_and_page_aligned(saved):
    _, _, path = saved
    loaded = HammingIndex.load(path, mmap=True)
    codes = loaded._snap.codes
    assert isinstance(codes, np.memmap) and codes.offset == fileformat.PAGE and not codes.flags.writeable
    assert fileformat.read_header(path).codes_offset % 4096 == 0


def test_empty_index_roundtrip(tmp_path):
    path = tmp_path / "empty.chidx"
    HammingIndex(128).save(path)
    loaded = HammingIndex.load(path)
    assert len(loaded) == 0 and loaded.bits == 128
    assert (loaded.search(np.zeros((1, 16), np.uint8), 2)[1] == -1).all()


def test_save_is_atomic_and_leaves_no_temp_files(saved, tmp_path):
    index, _, path = saved
    index.save(path)  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["codes.chidx"]


def corrupt(path, offset, data=None):
    """Overwrite bytes at offset with data, or flip bits of one byte when data is None."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        f.seek(offset)
        f.write(bytes([old[0] ^ 0x5A]) if data is None else data)


@pytest.mark.parametrize("where", ["magic", "version", "count", "codes", "ids", "tombstones"])
def test_corruption_is_detected(saved, where):
    _, _, path = saved
    h = fileformat.read_header(path)
    offset = {"magic": 0, "version": 8, "count": 16, "codes": h.codes_offset + 1234,
              "ids": h.ids_offset + 80, "tombstones": h.tomb_offset + 1}[where]
    corrupt(path, offset, None)
    for mmap in (True, False):
        with pytest.raises(IndexFormatError):
            HammingIndex.load(path, mmap=mmap)


@pytest.mark.parametrize("size", [0, 10, 4095, 4096, 5000, -1])
def test_truncated_file(saved, size):
    _, _, path = saved
    full = path.read_bytes()
    path.write_bytes(full[:size] if size >= 0 else full[:-1])
    with pytest.raises(IndexFormatError):
        HammingIndex.load(path)


def test_foreign_files(tmp_path):
    faiss = pytest.importorskip("faiss")
    fx = faiss.IndexBinaryFlat(64)
    fx.add(np.zeros((10, 8), np.uint8))
    faiss.write_index_binary(fx, str(tmp_path / "faiss.index"))
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(10000))
    np.save(tmp_path / "codes.npy", np.zeros((100, 8), np.uint8))
    for name in ["faiss.index", "random.bin", "codes.npy"]:
        with pytest.raises(IndexFormatError):
            HammingIndex.load(tmp_path / name)
    with pytest.raises(IndexFormatError):
        HammingIndex.load(tmp_path / "missing.chidx")


def test_future_version_is_refused(saved):
    _, _, path = saved
    corrupt(path, 8, (2).to_bytes(4, "little"))
    with pytest.raises(IndexFormatError, match="version"):
        HammingIndex.load(path)


def test_load_during_concurrent_saves_always_sees_a_whole_file(tmp_path):
    """Issue 13 #8: load stat-ed, read the header and mapped the sections through separate opens,
    so a save renaming a new file over the path in between made a valid file look corrupt."""
    import threading

    rng = np.random.default_rng(1)
    path = tmp_path / "busy.chidx"
    sizes = (1000, 5000)
    versions = []
    for n in sizes:
        index = HammingIndex(64)
        index.add(rng.integers(0, 256, (n, 8), dtype=np.uint8))
        versions.append(index)
    versions[0].save(path)
    done = threading.Event()

    def saver():
        i = 0
        while not done.is_set():
            versions[i % 2].save(path)
            i += 1

    thread = threading.Thread(target=saver)
    thread.start()
    try:
        for _ in range(300):
            for mmap in (True, False):
                assert len(HammingIndex.load(path, mmap=mmap)) in sizes
    finally:
        done.set()
        thread.join()


def test_a_killed_save_leaves_no_temp_file_behind_the_next_save(tmp_path):
    """Issue 13 #8: a save killed mid-write (SIGKILL: no cleanup runs) left `.NAME.*.tmp` forever.
    The next save of that file removes temporaries no live writer holds, and only those."""
    import subprocess
    import sys

    from chain_sdk.files import atomic_path, remove_stale_temps

    path = tmp_path / "codes.chidx"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from chain_sdk.files import atomic_path\n"
        f"with atomic_path({str(path)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half an index')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")])
    assert killed.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".codes.chidx.")
    with atomic_path(path) as live:  # the next writer removes the abandoned file on entry...
        assert not (tmp_path / leftovers[0]).exists()
        live.write_bytes(b"being written")
        assert remove_stale_temps(path) == [] and live.exists()  # ...and never a live writer's
    index = HammingIndex(64)
    index.add(np.zeros((3, 8), np.uint8))
    index.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.chidx"]


def test_a_library_that_locks_its_files_can_write_through_atomic_path(tmp_path):
    """HDF5 locks the files it writes: atomic_path must hold no lock of its own on the temp file."""
    h5py = pytest.importorskip("h5py")  # the [train] extra: a runtime-only install has none
    from chain_sdk.files import atomic_path

    with atomic_path(tmp_path / "f.h5") as tmp, h5py.File(tmp, "w") as f:
        f["x"] = [1, 2]
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert list(f["x"]) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_index_files_get_the_permissions_of_a_normal_file(tmp_path):
    """Issue 13 #8: index files were created 0600 (mkstemp) while other outputs were 0644."""
    HammingIndex(64).save(tmp_path / "a.chidx")
    (tmp_path / "plain").write_bytes(b"")  # what open() gives under this umask
    assert os.stat(tmp_path / "a.chidx").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777

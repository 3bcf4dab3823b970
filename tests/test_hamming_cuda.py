"""CUDA kernels: (1) the .cu source compiles with nvcc for every target GPU this nvcc supports
(runs wherever nvcc exists, GPU or not); (2) on a machine with a GPU and the optional
chain_sdk._hamming_cuda module, every operation equals the numpy reference."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hypothesis import given
from hypothesis import strategies as st
from test_hamming_kernels import FIXED_BITS, GENERIC_BITS, SETTINGS, databases

from chain_sdk.errors import BackendUnavailableError
from chain_sdk.index import HammingIndex, reference

SRC = Path(__file__).resolve().parents[1] / "cpp_ext" / "src" / "hamming_cuda.cu"
TARGETS = ["72", "87", "80", "89", "90"]  # Jetson Xavier/Orin, A100, L4/Ada, H100
NVCC = shutil.which("nvcc")


def nvcc_archs() -> set[str]:
    out = subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"compute_(\d+)", out))


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_cuda_source_compiles_for_targets(tmp_path):
    supported = [a for a in TARGETS if a in nvcc_archs()]
    assert supported, "this nvcc supports none of the target GPUs"
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in supported]
    cmd = [NVCC, "-std=c++17", "-O3", "--threads", "0", *gencode, "-c", str(SRC), "-o", str(tmp_path / "k.o")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-4000:]
    cuobjdump = shutil.which("cuobjdump")
    if cuobjdump:
        listing = subprocess.run([cuobjdump, "--list-elf", str(tmp_path / "k.o")], capture_output=True, text=True,
                                 check=False).stdout
        for a in supported:
            assert f"sm_{a}" in listing


def nvcc_release() -> tuple[int, int]:
    out = subprocess.run([NVCC, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"release (\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_only_the_known_dropped_target_is_missing():
    """Every target compiles with this nvcc except the one NVIDIA dropped on purpose: CUDA 13
    removed sm_72 (Jetson Xavier: CUDA <= 12.x, JetPack 5). Anything else missing is a regression."""
    missing = {a for a in TARGETS if a not in nvcc_archs()}
    assert missing == ({"72"} if nvcc_release() >= (13, 0) else set())


def cuda_module():
    try:
        from chain_sdk import _hamming_cuda
    except ImportError:
        pytest.skip("chain_sdk._hamming_cuda not built (pip install with CHAIN_SDK_CUDA=ON and nvcc)")
    if _hamming_cuda.device_count() < 1:
        pytest.skip("no CUDA device")
    return _hamming_cuda


@pytest.mark.skipif(NVCC is None or os.environ.get("CHAIN_SDK_CUDA") == "0",
                    reason="nvcc not found, or the CUDA module turned off with CHAIN_SDK_CUDA=0")
def test_cuda_module_is_built_and_says_no_device_cleanly():
    """`make test` builds chain_sdk._hamming_cuda wherever nvcc exists (GPU or not); on a machine
    without a GPU it imports, counts 0 devices and the index refuses device='cuda' with a typed error."""
    try:
        from chain_sdk import _hamming_cuda
    except ImportError as exc:
        pytest.fail(f"nvcc exists but chain_sdk._hamming_cuda was not built ({exc}); `make install` builds it "
                    "(CHAIN_SDK_CUDA=0 opts out)")
    count = _hamming_cuda.device_count()
    assert count >= 0
    if count:
        pytest.skip(f"{count} CUDA device(s) here: the gpu tests below cover the module")
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        HammingIndex(64, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [16, 32, 64, 128, 256, 24, 520])
def test_gpu_matches_reference(bits):
    cu = cuda_module()
    rng = np.random.default_rng(bits)
    cb = bits // 8
    pool = rng.integers(0, 256, (30, cb), dtype=np.uint8)
    codes = np.ascontiguousarray(pool[rng.integers(0, 30, 5000)])  # many ties
    queries = np.concatenate([pool[:3], rng.integers(0, 256, (2, cb), dtype=np.uint8)])
    deleted = np.packbits(rng.random(len(codes)) < 0.2, bitorder="little")
    db = cu.DeviceDatabase(codes)
    for k in (1, 7, 100, 3000, 6000):  # up to more than N, far past faiss's 2048
        for dl in (None, deleted):
            d, p = db.knn(queries, k, dl)
            rd, rp = reference.knn(codes, queries, k, dl)
            np.testing.assert_array_equal(d, rd)
            np.testing.assert_array_equal(p, rp)
    for r in (0, bits // 4, bits // 2, bits):
        got = db.range_search(queries, r, deleted)
        want = reference.range_search(codes, queries, r, deleted)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.gpu
def test_gpu_large_single_query_and_empty():
    cu = cuda_module()
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (2_000_000, 8), dtype=np.uint8)
    q = codes[:1].copy()
    d, p = cu.DeviceDatabase(codes).knn(q, 100)
    from chain_sdk import _hamming

    cd, cp = _hamming.knn(codes, q, 100)
    np.testing.assert_array_equal(d, cd)
    np.testing.assert_array_equal(p, cp)
    empty = cu.DeviceDatabase(np.zeros((0, 8), np.uint8))
    assert (empty.knn(q, 3)[0] == -1).all()


@pytest.mark.gpu
def test_gpu_index_and_dlpack():
    cuda_module()
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (10_000, 8), dtype=np.uint8)
    gpu = HammingIndex(64, device="cuda")
    cpu = HammingIndex(64)
    for ix in (gpu, cpu):
        ix.add(codes)
        ix.remove(np.arange(0, 10_000, 5))
    for a, b in zip(gpu.search(codes[:20], 50), cpu.search(codes[:20], 50)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(gpu.range_search(codes[:20], 20), cpu.range_search(codes[:20], 20)):
        np.testing.assert_array_equal(a, b)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA: device-array (DLPack) path not exercised")
    cu = cuda_module()
    db = cu.DeviceDatabase(torch.from_numpy(codes).cuda())
    d, p = db.knn(torch.from_numpy(codes[:4]).cuda(), 10)
    rd, rp = reference.knn(codes, codes[:4], 10)
    np.testing.assert_array_equal(torch.from_dlpack(d).cpu().numpy(), rd)
    np.testing.assert_array_equal(torch.from_dlpack(p).cpu().numpy(), rp)


# ------------------------------------------------------------------ property tests (GPU only)
# The CPU kernels' hypothesis suite (tests/test_hamming_kernels.py) run against the CUDA kernels:
# every code size, k from 1 to more than N, radius 0..bits, tombstones, few-distinct-code ties.

def check_gpu(cu, db, queries, deleted, k=None, radius=None):
    dev = cu.DeviceDatabase(db)
    if k is not None:
        d, p = dev.knn(queries, k, deleted)
        rd, rp = reference.knn(db, queries, k, deleted)
        np.testing.assert_array_equal(d, rd)
        np.testing.assert_array_equal(p, rp)
    if radius is not None:
        for got, want in zip(dev.range_search(queries, radius, deleted),
                             reference.range_search(db, queries, radius, deleted)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@SETTINGS
@given(data=databases(FIXED_BITS + GENERIC_BITS), kfrac=st.floats(0, 1.5))
def test_gpu_knn_property(data, kfrac):
    cu = cuda_module()
    _, db, queries, deleted = data
    check_gpu(cu, db, queries, deleted, k=max(1, int(kfrac * (len(db) + 2))))


@pytest.mark.gpu
@SETTINGS
@given(data=databases(FIXED_BITS + GENERIC_BITS), rfrac=st.floats(0, 1))
def test_gpu_range_property(data, rfrac):
    cu = cuda_module()
    bits, db, queries, deleted = data
    check_gpu(cu, db, queries, deleted, radius=int(round(rfrac * bits)))


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [64, 24])
def test_gpu_batches_over_the_query_batch_and_tile(bits):
    """More queries than one launch sequence takes (kQueryBatch = 8192 in hamming_cuda.cu) and than
    a block's query tile, with tombstones; results equal the CPU kernel (itself tested above)."""
    from chain_sdk import _hamming

    cu = cuda_module()
    rng = np.random.default_rng(bits)
    cb = bits // 8
    pool = rng.integers(0, 256, (50, cb), dtype=np.uint8)
    db = pool[rng.integers(0, 50, 3000)]
    queries = pool[rng.integers(0, 50, 8192 + 37)]
    deleted = np.packbits(rng.random(len(db)) < 0.25, bitorder="little")
    dev = cu.DeviceDatabase(db)
    for got, want in zip(dev.knn(queries, 9, deleted), _hamming.knn(db, queries, 9, deleted)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(dev.range_search(queries, bits // 8, deleted),
                         _hamming.range_search(db, queries, bits // 8, deleted)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("bits", FIXED_BITS + GENERIC_BITS)
def test_gpu_misaligned_buffers_and_empty_results(bits):
    """Host arrays that start one byte past an allocation (C-contiguous, unaligned rows), radius-0
    searches with no hit, and k past N on a fully tombstoned database."""
    cu = cuda_module()
    rng = np.random.default_rng(bits + 1)
    cb = bits // 8
    raw_db, raw_q = np.zeros(200 * cb + 1, np.uint8), np.zeros(5 * cb + 1, np.uint8)
    db, queries = raw_db[1:].reshape(200, cb), raw_q[1:].reshape(5, cb)
    db[:] = rng.integers(0, 256, db.shape, dtype=np.uint8)
    queries[:] = rng.integers(0, 256, queries.shape, dtype=np.uint8)
    assert db.ctypes.data % 2 == 1 and db.flags.c_contiguous
    check_gpu(cu, db, queries, None, k=250, radius=bits // 3)
    absent = (~db[:3]).copy()  # every bit flipped: at distance `bits` from its own row
    assert reference.range_search(db, absent, 0)[0][-1] == 0 or bits <= 16  # (random rows: no hit)
    check_gpu(cu, db, absent, None, radius=0)  # empty results, lims all zero
    everything = np.packbits(np.ones(200, bool), bitorder="little")
    d, p = cu.DeviceDatabase(db).knn(queries, 250, everything)
    assert (d == -1).all() and (p == -1).all()
    lims, d, p = cu.DeviceDatabase(db).range_search(queries, bits, everything)
    assert lims.tolist() == [0] * 6 and d.size == 0

"""CUDA kernels: (1) the .cu source compiles with nvcc for every target GPU this nvcc supports
(runs wherever nvcc exists, GPU or not); (2) on a machine with a GPU and the optional
chain_sdk._hamming_cuda module, every operation equals the numpy reference."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

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


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.parametrize("arch", TARGETS)
def test_target_supported_by_this_nvcc(arch):
    if arch not in nvcc_archs():
        out = subprocess.run([NVCC, "--version"], capture_output=True, text=True, check=False).stdout
        version = next((line for line in out.splitlines() if "release" in line), out.strip())
        pytest.skip(f"sm_{arch} cannot be compiled by this nvcc ({version}); CUDA 13 dropped sm_72 "
                    "(Jetson Xavier needs CUDA <= 12.x, JetPack 5)")


def cuda_module():
    try:
        from chain_sdk import _hamming_cuda
    except ImportError:
        pytest.skip("chain_sdk._hamming_cuda not built (pip install with CHAIN_SDK_CUDA=ON and nvcc)")
    if _hamming_cuda.device_count() < 1:
        pytest.skip("no CUDA device")
    return _hamming_cuda


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

"""Every CPU kernel path (AVX-512 / AVX2 / NEON / scalar x fixed-size / generic kernels x threading
plans) against the numpy reference, with hypothesis-generated data."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_sdk import _hamming
from chain_sdk.index import reference

ISAS = _hamming.isa_available()
FIXED_BITS = [16, 32, 64, 128, 256]
GENERIC_BITS = [8, 24, 40, 72, 136, 520]  # 520 bits = 65 bytes: crosses a 64-byte vector
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_dispatch_reports_paths():
    assert ISAS[-1] == "scalar"
    assert _hamming.isa_default() == ISAS[0]
    for name in ("sse9", *(isa for isa in ("avx512", "avx2", "neon") if isa not in ISAS)):
        with pytest.raises(ValueError):
            _hamming.knn(np.zeros((1, 8), np.uint8), np.zeros((1, 8), np.uint8), 1, isa=name)


# Every path of each architecture: the x86-64 dev/CI machine has AVX-512 VPOPCNTDQ; AArch64 is
# run under qemu by scripts/aarch64_check.sh. Elsewhere this just documents what was covered.
EXPECTED_PATHS = {"x86_64": ["avx512", "avx2", "scalar"], "aarch64": ["neon", "scalar"]}


def test_this_machine_covers_every_path():
    expected = EXPECTED_PATHS.get(platform.machine())
    if expected is None or expected[0] not in ISAS:
        pytest.skip(f"{platform.machine()} CPU without the best path; covered paths: {ISAS}")
    assert ISAS == expected


def misaligned(a: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of `a` starting `offset` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start:start + a.nbytes].reshape(a.shape)
    out[...] = a
    return out


@st.composite
def databases(draw, bits_choices):
    bits = draw(st.sampled_from(bits_choices))
    cb = bits // 8
    n = draw(st.integers(0, 300))
    nq = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct codes -> many exact ties and duplicates; otherwise uniform.
    if draw(st.booleans()):
        pool = rng.integers(0, 256, (draw(st.integers(1, 5)), cb), dtype=np.uint8)
        db = pool[rng.integers(0, len(pool), n)]
        queries = pool[rng.integers(0, len(pool), nq)] if n else rng.integers(0, 256, (nq, cb), dtype=np.uint8)
    else:
        db = rng.integers(0, 256, (n, cb), dtype=np.uint8)
        queries = rng.integers(0, 256, (nq, cb), dtype=np.uint8)
        if n and draw(st.booleans()):
            queries[0] = db[rng.integers(0, n)]
    deleted = None
    if n and draw(st.booleans()):
        deleted = np.packbits(rng.random(n) < 0.3, bitorder="little")
    # Vector loads must not assume alignment: place both arrays at drawn byte offsets.
    db, queries = misaligned(db, draw(st.integers(0, 63))), misaligned(queries, draw(st.integers(0, 63)))
    return bits, db, queries, deleted


def check_knn(db, queries, k, deleted, **kw):
    d, p = _hamming.knn(db, queries, k, deleted, **kw)
    rd, rp = reference.knn(db, queries, k, deleted)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(p, rp)


def check_range(db, queries, radius, deleted, **kw):
    got = _hamming.range_search(db, queries, radius, deleted, **kw)
    want = reference.range_search(db, queries, radius, deleted)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("generic", [False, True])
@SETTINGS
@given(data=databases(FIXED_BITS), kfrac=st.floats(0, 1.5), threads=st.integers(1, 3))
def test_knn_fixed_sizes(isa, generic, data, kfrac, threads):
    _, db, queries, deleted = data
    k = max(1, int(kfrac * (len(db) + 2)))  # from 1 to more than N
    check_knn(db, queries, k, deleted, isa=isa, threads=threads, generic=generic)


@pytest.mark.parametrize("isa", ISAS)
@SETTINGS
@given(data=databases(GENERIC_BITS), kfrac=st.floats(0, 1.5))
def test_knn_generic_sizes(isa, data, kfrac):
    _, db, queries, deleted = data
    check_knn(db, queries, max(1, int(kfrac * (len(db) + 2))), deleted, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("generic", [False, True])
@SETTINGS
@given(data=databases(FIXED_BITS + GENERIC_BITS), rfrac=st.floats(0, 1))
def test_range_all_sizes(isa, generic, data, rfrac):
    bits, db, queries, deleted = data
    check_range(db, queries, int(round(rfrac * bits)), deleted, isa=isa, generic=generic)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", FIXED_BITS)
def test_empty_database_and_zero_k(isa, bits):
    cb = bits // 8
    empty = np.zeros((0, cb), np.uint8)
    q = np.ones((2, cb), np.uint8)
    d, p = _hamming.knn(empty, q, 3, isa=isa)
    assert (d == -1).all() and (p == -1).all() and d.shape == (2, 3)
    lims, d, p = _hamming.range_search(empty, q, bits, isa=isa)
    assert lims.tolist() == [0, 0, 0] and d.size == 0 and p.size == 0
    d, p = _hamming.knn(np.ones((5, cb), np.uint8), q, 0, isa=isa)
    assert d.shape == (2, 0)
    d, p = _hamming.knn(np.ones((5, cb), np.uint8), np.zeros((0, cb), np.uint8), 4, isa=isa)
    assert d.shape == (0, 4)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", [16, 64, 128])
@pytest.mark.parametrize("nq", [1, 3, 9])
def test_threading_plans_large(isa, bits, nq):
    """Databases big enough to be split across threads (nq < threads) or query tiles (nq >= threads),
    with heavy ties so that merging per-thread results must respect insertion order."""
    rng = np.random.default_rng(bits * 100 + nq)
    cb = bits // 8
    pool = rng.integers(0, 256, (40, cb), dtype=np.uint8)
    db = pool[rng.integers(0, 40, 60_000)]
    queries = np.concatenate([pool[:nq - 1], rng.integers(0, 256, (1, cb), dtype=np.uint8)])
    deleted = np.packbits(rng.random(len(db)) < 0.1, bitorder="little")
    for threads in (1, 4):
        for k in (1, 100, 5000):
            check_knn(db, queries, k, deleted, isa=isa, threads=threads)
        check_range(db, queries, bits // 4, deleted, isa=isa, threads=threads)


def test_shape_errors():
    with pytest.raises(ValueError):
        _hamming.knn(np.zeros((3, 8), np.uint8), np.zeros((1, 4), np.uint8), 1)
    with pytest.raises(ValueError):
        _hamming.knn(np.zeros((30, 8), np.uint8), np.zeros((1, 8), np.uint8), 1, np.zeros(1, np.uint8))
    with pytest.raises(TypeError):
        _hamming.knn(np.zeros((3, 8), np.float32), np.zeros((1, 8), np.uint8), 1)


def test_threads_setting():
    before = _hamming.get_num_threads()
    try:
        _hamming.set_num_threads(3)
        assert _hamming.get_num_threads() == 3
    finally:
        _hamming.set_num_threads(0)
    assert _hamming.get_num_threads() == before

"""HammingIndex behaviour against the numpy reference: ids, tombstones, compaction, padding,
concurrency, device selection and the faiss escape hatch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_sdk.errors import BackendUnavailableError
from chain_sdk.index import HammingIndex, available_isas, reference


def ref_search(codes, ids, live, queries, k):
    d, p = reference.knn(codes[live], queries, k)
    live_ids = np.append(ids[live], -1)  # position -1 (padding) maps to id -1
    return d, live_ids[p]


@pytest.mark.parametrize("isa", available_isas())  # every kernel path this CPU has, not only "auto"
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=st.sampled_from([16, 32, 64, 128, 256, 24]), seed=st.integers(0, 2**31),
       n=st.integers(0, 200), k=st.integers(1, 250), nremove=st.integers(0, 150))
def test_search_add_remove_matches_reference(isa, bits, seed, n, k, nremove):
    rng = np.random.default_rng(seed)
    cb = bits // 8
    codes = rng.integers(0, 4, (n, cb), dtype=np.uint8)  # small alphabet: many ties
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64) - 5 * n  # negative ids too
    ids[ids == -1] = 10 * n + 1  # -1 is search's "no result" id, refused by add
    index = HammingIndex(bits, isa=isa)
    for chunk in np.array_split(np.arange(n), 3):
        index.add(codes[chunk], ids[chunk])
    gone = rng.choice(ids, size=min(nremove, n), replace=False) if n else np.zeros(0, np.int64)
    assert index.remove(gone) == len(gone)
    live = ~np.isin(ids, gone)
    assert len(index) == live.sum()
    queries = rng.integers(0, 4, (3, cb), dtype=np.uint8)
    d, i = index.search(queries, k)
    rd, ri = ref_search(codes, ids, live, queries, k)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(i, ri)
    radius = int(rng.integers(0, bits + 1))
    lims, rdist, rids = index.range_search(queries, radius)
    wl, wd, wp = reference.range_search(codes[live], queries, radius)
    np.testing.assert_array_equal(lims, wl)
    np.testing.assert_array_equal(rdist, wd)
    np.testing.assert_array_equal(rids, ids[live][wp])


def test_padding_and_default_ids():
    index = HammingIndex(32)
    assert index.search(np.zeros((2, 4), np.uint8), 3)[0].tolist() == [[-1] * 3] * 2
    first = index.add(np.arange(8, dtype=np.uint8).reshape(2, 4))
    second = index.add(np.zeros((1, 4), np.uint8))
    assert first.tolist() == [0, 1] and second.tolist() == [2]
    index.add(np.zeros((1, 4), np.uint8), ids=[100])
    assert index.add(np.zeros((1, 4), np.uint8)).tolist() == [101]
    d, i = index.search(np.zeros(4, np.uint8), 7)  # a 1-D query is one query
    assert d.shape == (1, 7)
    assert i[0, :3].tolist() == [2, 100, 101]  # ties in insertion order
    assert (i[0, 5:] == -1).all() and (d[0, 5:] == -1).all()


def test_remove_compact_keeps_ids_and_order():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (1000, 8), dtype=np.uint8)
    index = HammingIndex(64)
    index.add(codes, ids=np.arange(1000) * 7)
    assert index.remove(np.arange(0, 1000, 3) * 7) == 334
    assert index.remove([0, 7 * 999999]) == 0  # already gone / never there
    before = index.search(codes[:5], 20)
    index.compact()
    assert index.ntotal == len(index) == 666
    after = index.search(codes[:5], 20)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    # removing most rows compacts by itself
    index.remove(np.arange(1000) * 7)
    assert len(index) == 0 and index.ntotal == 0


def test_input_validation():
    index = HammingIndex(64)
    with pytest.raises(ValueError):
        index.add(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError):
        index.add(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError):
        index.add(np.zeros((2, 8), np.uint8), ids=[1])
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 8), np.uint8), -1)
    with pytest.raises(ValueError):
        index.range_search(np.zeros((1, 8), np.uint8), -2)
    for bad in (0, 12, -8):
        with pytest.raises(ValueError):
            HammingIndex(bad)
    with pytest.raises(ValueError):
        HammingIndex(64, device="tpu")


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_forced_isa(isa):
    from chain_sdk import _hamming

    if isa not in _hamming.isa_available():
        pytest.skip(f"{isa} not available")
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    index = HammingIndex(128, isa=isa, threads=2)
    index.add(codes)
    d, i = index.search(codes[:4], 10)
    rd, rp = reference.knn(codes, codes[:4], 10)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(i, rp)


def test_concurrent_searches_with_add_in_flight():
    """Readers see whole adds only: every result equals the reference on some prefix of adds."""
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (2000, 8), dtype=np.uint8) for _ in range(20)]
    queries = batches[0][:4]
    index = HammingIndex(64, threads=2)
    index.add(batches[0])
    expected = {}
    for j in range(1, 21):
        expected[j] = reference.knn(np.concatenate(batches[:j]), queries, 5)
    errors = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            n = len(index)
            d, i = index.search(queries, 5)
            m = len(index)
            ok = any(np.array_equal(d, expected[j][0]) and np.array_equal(i, expected[j][1])
                     for j in range(n // 2000, m // 2000 + 1))
            if not ok:
                errors.append((n, m))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for b in batches[1:]:
        index.add(b)
    stop.set()
    for t in threads:
        t.join()
    assert not errors


def test_cuda_device_unavailable_is_typed():
    try:
        from chain_sdk import _hamming_cuda
        has_gpu = _hamming_cuda.device_count() > 0
    except ImportError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present: see test_hamming_cuda.py")
    with pytest.raises(BackendUnavailableError):
        HammingIndex(64, device="cuda")


def test_export_and_faiss_roundtrip():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (3000, 8), dtype=np.uint8)
    ids = rng.permutation(10**6)[:3000].astype(np.int64)
    index = HammingIndex(64)
    index.add(codes, ids)
    index.remove(ids[:100])
    c, i = index.export()
    assert len(c) == 2900 and (i == ids[100:]).all()
    fx = index.to_faiss()
    assert isinstance(fx, faiss.IndexBinaryIDMap) and fx.ntotal == 2900
    q = codes[100:110]
    fd, fi = fx.search(q, 10)
    d, i = index.search(q, 10)
    np.testing.assert_array_equal(fd, d)  # distances agree exactly; tie order may differ
    np.testing.assert_array_equal(i[:, 0], fi[:, 0])
    lims, _, ri = index.range_search(q, 12)
    flims, _, fri = fx.range_search(q, 13)  # faiss is strict: d < 13 == d <= 12
    np.testing.assert_array_equal(lims, flims)
    assert sorted(ri.tolist()) == sorted(fri.tolist())


# ------------------------------------------------------------------ fuzzing regressions (issue 13)

@pytest.mark.parametrize("k", [2**62, 2**63 - 1, 2**40])
def test_huge_k_is_a_clear_error_not_a_heap_overflow(k):
    """Issue 13 #2: nq * k overflowed size_t and the kernel wrote past its buffers (exit 139)."""
    index = HammingIndex(64)
    index.add(np.zeros((10, 8), np.uint8))
    with pytest.raises(ValueError, match="result slots"):
        index.search(np.zeros((3, 8), np.uint8), k)
    d, i = index.search(np.zeros((3, 8), np.uint8), 12)  # k > n still pads
    assert d.shape == (3, 12) and (i[:, 10:] == -1).all()


def test_kernel_refuses_an_overflowing_result_size():
    """The compiled kernel checks nq * k itself (callers of chain_sdk._hamming skip the Python check)."""
    from chain_sdk import _hamming

    with pytest.raises(OverflowError, match="overflow"):
        _hamming.knn(np.zeros((10, 8), np.uint8), np.zeros((4, 8), np.uint8), 2**62)


def test_largest_id_keeps_add_and_save_working(tmp_path):
    """Issue 13 #9: id 2**63-1 made the next id 2**63, which broke the next add and save."""
    from chain_sdk.index.hamming_index import MAX_ID

    index = HammingIndex(32)
    index.add(np.zeros((1, 4), np.uint8), ids=[MAX_ID])
    with pytest.raises(ValueError, match="pass ids explicitly"):
        index.add(np.zeros((1, 4), np.uint8))  # no id left to assign
    index.add(np.ones((1, 4), np.uint8), ids=[5])
    index.save(tmp_path / "max.chidx")
    loaded = HammingIndex.load(tmp_path / "max.chidx")
    assert sorted(loaded.export()[1].tolist()) == [5, MAX_ID]
    with pytest.raises(ValueError, match="not a valid id"):
        index.add(np.zeros((1, 4), np.uint8), ids=[2**63 - 1])


@pytest.mark.parametrize("bad", [np.array([2**64 - 1], np.uint64), np.array([2**63], np.uint64), [-1]])
def test_ids_never_wrap_to_the_no_result_id(bad):
    """Issue 13 #9: uint64 ids were cast to int64 and wrapped (2**64-1 became -1, "no result")."""
    index = HammingIndex(32)
    with pytest.raises(ValueError, match="not a valid id"):
        index.add(np.zeros((1, 4), np.uint8), ids=bad)
    assert len(index) == 0
    ok = index.add(np.zeros((1, 4), np.uint8), ids=np.array([2**62], np.uint64))
    assert ok.dtype == np.int64 and ok.tolist() == [2**62]


@pytest.mark.parametrize("bad", [[1.9], [1.0], np.array([True]), "1"])
def test_remove_refuses_non_integer_ids(bad):
    """Issue 13 #9: remove([1.9]) truncated to 1 and removed the code with id 1."""
    index = HammingIndex(32)
    index.add(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="integers"):
        index.remove(bad)
    assert len(index) == 3
    assert index.remove(np.array([2**64 - 1, 2**63], np.uint64)) == 0  # never added: nothing removed
    assert index.remove([]) == 0 and index.remove([1]) == 1

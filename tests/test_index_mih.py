"""Multi-index hashing: exact radius search equal to the flat scan / reference, on every code
size, radii 0..bits, tombstones, rows added after the tables were built, and the auto choice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_sdk import _hamming
from chain_sdk.index import HammingIndex, mih, reference


def near_duplicates(rng, base, n, max_flips):
    """Copies of random base codes with up to max_flips bits flipped (clustered like real hashes)."""
    bits = base.shape[1] * 8
    out = np.unpackbits(base[rng.integers(0, len(base), n)], axis=1)
    for row in out:
        flips = rng.choice(bits, size=rng.integers(0, max_flips + 1), replace=False)
        row[flips] ^= 1
    return np.packbits(out, axis=1)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=st.sampled_from([16, 24, 32, 64, 128, 256]), seed=st.integers(0, 2**31),
       n=st.integers(1, 400), rfrac=st.floats(0, 1), sub=st.integers(1, 24))
def test_mih_equals_reference(bits, seed, n, rfrac, sub):
    rng = np.random.default_rng(seed)
    cb = bits // 8
    base = rng.integers(0, 256, (5, cb), dtype=np.uint8)
    codes = near_duplicates(rng, base, n, 6)
    queries = near_duplicates(rng, base, 3, 3)
    m = max(1, min(bits // sub, 12))
    sub_bits = [min(sub, 24)] * m
    if sum(sub_bits) > bits:
        sub_bits = mih.layout(bits, n)
    deleted = np.packbits(rng.random(n) < 0.2, bitorder="little")
    tables = _hamming.MultiIndexHash(codes, sub_bits)
    radius = int(round(rfrac * bits))
    while sum(mih.probes_per_table(b, radius // len(sub_bits)) for b in sub_bits) > 200_000:
        radius //= 2  # keep the enumeration small; correctness at every sub-radius is the point
    got = tables.range_search(codes, queries, radius, deleted)
    want = reference.range_search(codes, queries, radius, deleted)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_index_mih_with_tail_and_tombstones():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    codes = near_duplicates(rng, base, 30_000, 4)
    index = HammingIndex(64, mih=True)
    index.add(codes[:25_000])
    queries = near_duplicates(rng, base, 20, 2)
    for r in (0, 2, 5):
        a = index.range_search(queries, r, method="mih")
        b = index.range_search(queries, r, method="flat")
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    index.add(codes[25_000:])          # tail past the tables (1/6 of rows: no rebuild)
    index.remove(np.arange(0, 30_000, 7))
    for r in (1, 3, 64):
        a = index.range_search(queries, r, method="mih")
        b = index.range_search(queries, r, method="flat")
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_layout_and_auto_choice():
    assert mih.layout(64, 10**7) == [22, 21, 21]
    assert mih.layout(16, 10**6) == [16]
    assert all(b <= 24 for b in mih.layout(256, 10**9))
    assert mih.worth_building(64, 10**7, 3)
    assert not mih.worth_building(64, 10**7, 12)
    assert not mih.worth_building(64, 1000, 0)  # tiny database: always flat


def test_cost_counts_candidates_exactly():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (5000, 4), dtype=np.uint8)
    tables = _hamming.MultiIndexHash(codes, [16, 16])
    probes, cands = tables.cost(codes[:3], 1)  # sub-radius 0: one probe per table
    assert probes.tolist() == [2, 2, 2]
    keys = codes.view(">u2")  # the two 16-bit substrings, MSB-first
    for q in range(3):
        want = (keys[:, 0] == keys[q, 0]).sum() + (keys[:, 1] == keys[q, 1]).sum()
        assert cands[q] == want


def test_bad_layouts():
    codes = np.zeros((10, 8), np.uint8)
    for bad in ([], [25], [40, 40], [0, 8]):
        with pytest.raises(ValueError):
            _hamming.MultiIndexHash(codes, bad)


def test_range_search_after_add_when_the_last_queries_miss_the_tail():
    """Issue 13 #3: once the tables existed, rows added after them were scanned separately, and a
    last query without a hit among those rows made the merge index past the end (IndexError)."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (mih.MIN_CODES + 1000, 8), dtype=np.uint8)
    index = HammingIndex(64, mih=True)
    index.add(codes)
    queries = codes[[5, 17]].copy()
    index.range_search(queries, 0, method="mih")  # builds the tables
    index.add(queries[:1])  # the tail holds a hit for the first query only
    for method in ("mih", "auto", "flat"):
        lims, d, ids = index.range_search(queries, 0, method=method)
        assert lims.tolist() == [0, 2, 3], method
        assert ids.tolist() == [5, len(codes), 17] and (d == 0).all()


def test_reader_with_an_older_snapshot_than_the_tables():
    """Issue 13 #3: a search that started before an add could meet tables built (by another
    thread) on the rows of that add, and the kernel refused the smaller database (ValueError)."""
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, (mih.MIN_CODES + 8000, 8), dtype=np.uint8)
    index = HammingIndex(64, mih=True)
    index.add(codes[:mih.MIN_CODES])
    old = index._snap  # what a search that started now works on
    index.add(codes[mih.MIN_CODES:])
    index.range_search(codes[:2], 3, method="mih")  # tables now cover the newer, larger snapshot
    lims, d, pos = index._range_mih(old, codes[:4], 3, force=True)
    want = reference.range_search(codes[:mih.MIN_CODES], codes[:4], 3)
    for got, exp in zip((lims, d, pos), want):
        np.testing.assert_array_equal(got, exp)


def test_range_search_concurrent_with_add_raises_nothing():
    """Issue 13 #3 under real threads: the documented guarantee (searches while one thread adds)."""
    import threading

    rng = np.random.default_rng(6)
    codes = rng.integers(0, 256, (mih.MIN_CODES + 30_000, 8), dtype=np.uint8)
    index = HammingIndex(64, mih=True)
    index.add(codes[:mih.MIN_CODES])
    errors: list[BaseException] = []
    done = threading.Event()

    def search():
        while not done.is_set():
            try:
                lims, _, ids = index.range_search(codes[:3], 0, method="mih")
                assert ids[lims[0]:lims[1]].tolist()[:1] == [0]
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                errors.append(exc)
                return

    readers = [threading.Thread(target=search) for _ in range(2)]
    for t in readers:
        t.start()
    for chunk in np.array_split(np.arange(mih.MIN_CODES, len(codes)), 30):
        index.add(codes[chunk])
    done.set()
    for t in readers:
        t.join()
    assert errors == []


@pytest.mark.parametrize("isa", _hamming.isa_available())
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=st.sampled_from([32, 64, 128]), seed=st.integers(0, 2**31), extra=st.integers(0, 4000),
       radius=st.integers(0, 6), tail=st.integers(0, 2000), remove_every=st.integers(0, 9))
def test_auto_range_search_above_the_mih_size_equals_reference(isa, bits, seed, extra, radius, tail,
                                                               remove_every):
    """HammingIndex itself where MIH switches on by its own choice (n >= MIN_CODES, small radius),
    on every kernel path, with rows added after the tables and tombstones, against numpy."""
    rng = np.random.default_rng(seed)
    cb = bits // 8
    base = rng.integers(0, 256, (40, cb), dtype=np.uint8)
    n = mih.MIN_CODES + extra
    codes = near_duplicates(rng, base, n + tail, 5)
    queries = np.concatenate([near_duplicates(rng, base, 3, 2), rng.integers(0, 256, (1, cb), dtype=np.uint8)])
    index = HammingIndex(bits, isa=isa)
    index.add(codes[:n])
    got = index.range_search(queries, radius)
    uses_mih = mih.worth_building(bits, n, radius)
    assert (index._mih is not None) == uses_mih  # the auto rule really took the MIH path
    live = np.ones(n + tail, bool)
    if tail:
        index.add(codes[n:])
    if remove_every:
        gone = np.arange(0, n + tail, remove_every + 7)
        index.remove(gone)
        live[gone] = False
    if tail or remove_every:
        got = index.range_search(queries, radius)
    lims, d, pos = reference.range_search(codes[live], queries, radius)
    np.testing.assert_array_equal(got[0], lims)
    np.testing.assert_array_equal(got[1], d)
    np.testing.assert_array_equal(got[2], np.flatnonzero(live)[pos])  # ids are row numbers here

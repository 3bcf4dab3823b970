"""MilvusIndex on real Milvus engines against HammingIndex on the same codes: embedded milvus-lite
(BIN_FLAT) always, and a standalone Milvus server (BIN_FLAT, and BIN_IVF_FLAT with every list
probed, which is exhaustive and so must be exact too) where the `milvus` wheel installs and starts.

Milvus 2.3 listens on every interface whatever its `ip` settings, so the server tests run only in a
network namespace that has nothing but loopback: test_standalone_server re-runs this module's
server tests there (`unshare -rn`), where the milvus_server fixture starts and stops the server."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_sdk.errors import IndexFormatError
from chain_sdk.index import HammingIndex

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from chain_sdk.index.milvus import MilvusIndex  # noqa: E402

_names = itertools.count()


IN_NETNS = "CHAIN_SDK_TEST_LOOPBACK_NETNS"  # set by test_standalone_server for the inner run


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """A standalone Milvus 2.3.5 server (the `milvus` wheel), only inside the loopback namespace."""
    if os.environ.get(IN_NETNS) != "1":
        pytest.skip("the Milvus server runs only inside a loopback-only namespace (test_standalone_server)")
    milvus = pytest.importorskip("milvus")
    server = milvus.MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    for component in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
                      "dataCoord", "dataNode"):
        server.config.set(f"{component}.ip", "127.0.0.1")
    try:
        server.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        server.stop()
        pytest.skip(f"the Milvus server did not start: {exc}")
    yield f"http://127.0.0.1:{server.config.get('proxy_port')}"
    server.stop()


def test_standalone_server():
    """This module's server tests, run in a new user + network namespace with only loopback up."""
    pytest.importorskip("milvus")
    if os.environ.get(IN_NETNS) == "1":
        pytest.skip("already inside the namespace")
    if not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a loopback-only namespace")
    inner = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__, "-k", "server and not standalone"]
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no network namespace here: {probe.stderr.strip()}")
    run = subprocess.run(["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner],
                         env={**os.environ, IN_NETNS: "1"}, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    if "skipped" in summary:
        pytest.skip(f"inner run: {summary}: {run.stdout[-1500:]}")
    assert " passed" in summary, summary


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory):
    return str(tmp_path_factory.mktemp("milvus") / "codes.db")


@pytest.fixture(params=["lite", "server-flat", "server-ivf"])
def make_index(request, lite_uri):
    """make_index(bits, **kw) -> a new MilvusIndex in a fresh collection of this engine."""
    if request.param == "lite":
        uri, options = lite_uri, {}
    else:
        uri = request.getfixturevalue("milvus_server")
        options = {"index": "BIN_IVF_FLAT", "nlist": 4, "nprobe": 4} if request.param == "server-ivf" else {}
    made = []

    def make(bits, **kw):
        index = MilvusIndex(uri, f"t{next(_names)}", bits, **{**options, **kw})
        made.append(index)
        return index

    yield make
    for index in made:
        index.drop()
        index.close()


def assert_same(mi, hi, queries, k, radius, filter=""):
    d, i = mi.search(queries, k, filter=filter) if filter else mi.search(queries, k)
    hd, hid = hi.search(queries, k)
    np.testing.assert_array_equal(d, hd)
    np.testing.assert_array_equal(i, hid)
    got = mi.range_search(queries, radius, filter=filter) if filter else mi.range_search(queries, radius)
    for a, b in zip(got, hi.range_search(queries, radius)):
        np.testing.assert_array_equal(a, b)


def add_remove_scenario(make, bits, seed, n, k, nremove, page_size):
    """Codes from a 4-letter alphabet (many ties, many duplicates), ids with duplicates and
    negatives, three adds, a remove: both indexes see the same operations."""
    rng = np.random.default_rng(seed)
    cb = bits // 8
    codes = rng.integers(0, 4, (n, cb), dtype=np.uint8)
    ids = rng.integers(-n, n + 1, n).astype(np.int64)
    ids[ids == -1] = -n - 1  # -1 is the "no result" id, refused by both indexes
    mi, hi = make(bits, page_size=page_size), HammingIndex(bits)
    for chunk in np.array_split(np.arange(n), 3):
        np.testing.assert_array_equal(mi.add(codes[chunk], ids[chunk]), hi.add(codes[chunk], ids[chunk]))
    gone = rng.choice(ids, size=min(nremove, n), replace=False) if n else np.zeros(0, np.int64)
    assert mi.remove(gone) == hi.remove(gone)
    assert len(mi) == len(hi)
    queries = np.concatenate([rng.integers(0, 4, (3, cb), dtype=np.uint8), codes[:1]])
    assert_same(mi, hi, queries, k, int(rng.integers(0, bits + 1)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(bits=st.sampled_from([8, 16, 64, 128]), seed=st.integers(0, 2**31), n=st.integers(0, 120),
       k=st.integers(1, 40), nremove=st.integers(0, 60), page_size=st.sampled_from([2, 5, 16384]))
def test_lite_matches_hamming_index(lite_uri, bits, seed, n, k, nremove, page_size):
    made = []
    try:
        add_remove_scenario(lambda b, **kw: made.append(MilvusIndex(lite_uri, f"h{next(_names)}", b, **kw))
                            or made[-1], bits, seed, n, k, nremove, page_size)
    finally:
        for index in made:
            index.drop()


def test_every_engine_matches_hamming_index(make_index):
    add_remove_scenario(make_index, 64, 0, n=150, k=12, nremove=40, page_size=3)


def test_range_search_is_inclusive_at_every_radius(make_index):
    """A code at each distance 0..bits from the query: radius r must return exactly d <= r
    (Milvus's own range is range_filter <= d < radius, and threshold bugs drop hits there)."""
    bits = 64
    query = np.zeros(bits, np.uint8)
    codes = np.packbits(np.tril(np.ones((bits + 1, bits), np.uint8), -1), axis=1)  # row d: d ones
    mi, hi = make_index(bits), HammingIndex(bits)
    mi.add(codes[::-1])  # reverse insertion so that order by distance differs from insertion
    hi.add(codes[::-1])
    q = np.packbits(query)[None]
    for radius in range(bits + 1):
        lims, d, ids = mi.range_search(q, radius)
        assert d.tolist() == list(range(radius + 1))
        np.testing.assert_array_equal(ids, hi.range_search(q, radius)[2])


def test_ties_go_to_the_earliest_insert_across_pages(make_index):
    """30 identical codes, k = 7 with a page of 4: the 7 earliest inserted, in order."""
    mi, hi = make_index(16, page_size=4), HammingIndex(16)
    same = np.full((30, 2), 7, np.uint8)
    ids = np.arange(30)[::-1] * 3
    mi.add(same, ids)
    hi.add(same, ids)
    assert_same(mi, hi, same[:2], k=7, radius=0)
    assert mi.search(same[:1], 7)[1].tolist() == [ids[:7].tolist()]


def test_metadata_filters(make_index):
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (60, 8), dtype=np.uint8)
    sources = [f"cam{i % 3}.mp4" for i in range(60)]
    mi = make_index(64)
    mi.add(codes, metadata=[{"source": s, "start": float(i)} for i, s in enumerate(sources)])
    keep = np.array([s == "cam1.mp4" for s in sources])
    hi = HammingIndex(64)
    hi.add(codes[keep], np.flatnonzero(keep))
    queries = rng.integers(0, 256, (3, 8), dtype=np.uint8)
    assert_same(mi, hi, queries, k=5, radius=30, filter="source == 'cam1.mp4'")
    late = mi.search(queries, 60, filter="start >= 50")[1]
    assert set(late[late >= 0].ravel()) == set(range(50, 60))
    with pytest.raises(ValueError, match="reserved"):
        mi.add(codes[:1], metadata=[{"id": 3}])


def test_reopen_keeps_codes_ids_and_order(lite_uri):
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 2, (50, 4), dtype=np.uint8)  # many ties
    first = MilvusIndex(lite_uri, "reopen", 32)
    try:
        first.add(codes[:30], ids=np.arange(30) + 100)
        first.remove([105, 106])
        first.close()
        again = MilvusIndex(lite_uri, "reopen", 32)
        assert len(again) == 28
        assert again.add(codes[30:]).tolist() == list(range(130, 150))  # after the largest id seen
        hi = HammingIndex(32)
        hi.add(codes[:30], np.arange(30) + 100)
        hi.remove([105, 106])
        hi.add(codes[30:])
        assert_same(again, hi, codes[:4], k=20, radius=3)
        exported = again.export()
        for a, b in zip(exported, hi.export()):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(IndexFormatError):
            MilvusIndex(lite_uri, "reopen", 64)
    finally:
        MilvusIndex(lite_uri, "reopen", 32).drop()


def test_large_add_goes_in_batches(lite_uri):
    """21 000 rows in one add: three inserts of at most 10 000 (one big insert made milvus-lite's
    client grow without bound); everything lands, and the last rows are found."""
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, (21_000, 8), dtype=np.uint8)
    mi = MilvusIndex(lite_uri, "large", 64)
    try:
        ids = mi.add(codes)
        assert len(mi) == 21_000 and ids[-1] == 20_999
        d, i = mi.search(codes[-3:], 1)
        assert d.ravel().tolist() == [0, 0, 0] and i.ravel().tolist() == [20_997, 20_998, 20_999]
    finally:
        mi.drop()


def test_bad_arguments(lite_uri):
    with pytest.raises(ValueError):
        MilvusIndex(lite_uri, "bad", 12)
    with pytest.raises(ValueError):
        MilvusIndex(lite_uri, "bad", 64, index="HNSW")
    with pytest.raises(ValueError):
        MilvusIndex(lite_uri, "bad", 64, insert_batch=20_000)
    mi = MilvusIndex(lite_uri, "bad", 64)
    try:
        with pytest.raises(ValueError):
            mi.add(np.zeros((2, 4), np.uint8))
        with pytest.raises(ValueError):
            mi.search(np.zeros((1, 8), np.uint8), -1)
        with pytest.raises(ValueError):
            mi.range_search(np.zeros((1, 8), np.float32), 3)
        assert mi.search(np.zeros((2, 8), np.uint8), 3)[1].tolist() == [[-1] * 3] * 2
    finally:
        mi.drop()

"""Query-side multi-probe: probe clips (chain_sdk.video.probes), their codes
(Encoder.encode_probes) and the search over them (chain_sdk.index.search_probes) against the
brute-force reference (chain_sdk.index.reference.probe_knn)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from chain_sdk import data
from chain_sdk.codes import hamming_distance
from chain_sdk.index import HammingIndex, search_probes
from chain_sdk.index.reference import probe_knn
from chain_sdk.video import CORNERS5, GRID9, Region, read_frames, sample_clip, sample_probes
from chain_sdk.video.probes import check_regions

SIZE = (224, 224)


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone.mp4", "cityCC0.mpg", "bigbuckbunny.mp4"])
@pytest.mark.parametrize("crop", [False, True])
def test_first_probe_clip_is_the_ordinary_clip(name, crop):
    path = str(data.path(name))
    probes = sample_probes(path, 25, SIZE, GRID9, crop_borders=crop).clip.frames
    assert probes.shape == (1 + len(GRID9), 25, 224, 224, 3)
    np.testing.assert_array_equal(probes[0], sample_clip(path, 25, SIZE, crop_borders=crop).frames)


def test_probe_clips_are_the_regions_of_the_picture_inside_the_bars():
    rng = np.random.default_rng(0)
    picture = rng.integers(30, 256, (6, 300, 400, 3), dtype=np.uint8)  # lit: no edge counts as a bar
    framed = np.zeros((6, 300 + 2 * 40, 400, 3), np.uint8)  # letterboxed by 40-row black bars
    framed[:, 40:-40] = picture
    regions = (Region(0.0, 0.0, 0.5, 0.5), Region(0.25, 0.5, 1.0, 1.0))
    got = sample_probes(framed, 6, SIZE, regions, crop_borders=True).clip.frames
    for r, region in enumerate(regions, start=1):
        rows, cols = region.pixels(300, 400)  # the work copy is the frame itself (under 2 x 224)
        want = np.stack([cv2.resize(np.ascontiguousarray(f[rows, cols]), SIZE, interpolation=cv2.INTER_AREA)
                         for f in picture])
        np.testing.assert_array_equal(got[r], want)


def test_probe_sets_are_half_size_crops_inside_the_picture():
    assert len(GRID9) == 9 and len(CORNERS5) == 5 and set(CORNERS5) <= set(GRID9)
    for r in GRID9:
        assert (r.x1 - r.x0, r.y1 - r.y0) == (0.5, 0.5) and 0 <= r.x0 and r.x1 <= 1 and 0 <= r.y0 and r.y1 <= 1


@pytest.mark.parametrize("bad", [[(0.5, 0, 0.5, 1)], [(0, 0, 1.2, 1)], [(-0.1, 0, 1, 1)], [(0, 0, 1)]])
def test_bad_regions_are_refused(bad):
    with pytest.raises(ValueError, match="probe region"):
        check_regions(bad)


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("onnxruntime")
    from chain_sdk.encoder import Encoder

    return Encoder()


def test_encode_probes_row_zero_is_encode(encoder):
    path = str(data.path("bikes.mp4"))
    codes = encoder.encode_probes(path)
    assert codes.shape == (1 + len(CORNERS5), encoder.bits // 8) and codes.dtype == np.uint8
    np.testing.assert_array_equal(codes[0], encoder.encode(path))


def test_the_probe_over_a_picture_in_picture_inset_finds_the_original(encoder):
    """The original shrunk into the top-left quadrant of another video: the top-left probe's code
    is nearer the original's code than the query's own code is (the reason for probing)."""
    original = read_frames(str(data.path("bikes.mp4"))).frames
    background = read_frames(str(data.path("carphone.mp4"))).frames
    n = min(len(original), len(background))
    original = original[:n]
    h, w = original.shape[1:3]
    composite = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in background[:n]])
    composite[:, : h // 2, : w // 2] = [cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in original]
    target = encoder.encode(original)
    codes = encoder.encode_probes(composite, regions=(Region(0, 0, 0.5, 0.5),))
    assert hamming_distance(codes[1], target) < hamming_distance(codes[0], target)


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from([16, 64, 128, 256]), n=st.integers(0, 200), nq=st.integers(1, 4),
       p=st.integers(1, 6), k=st.integers(0, 40), removed=st.integers(0, 30), seed=st.integers(0, 2**31 - 1),
       narrow=st.booleans())
def test_search_probes_equals_the_reference(bits, n, nq, p, k, removed, seed, narrow):
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    values = 4 if narrow else 256  # few distinct bytes: many ties
    codes = rng.integers(0, values, (n, nbytes), dtype=np.uint8)
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64)  # not in insertion order
    probes = rng.integers(0, values, (nq, p, nbytes), dtype=np.uint8)
    index = HammingIndex(bits)
    index.add(codes, ids)
    gone = rng.choice(n, size=min(removed, n), replace=False)
    index.remove(ids[gone])
    deleted = np.zeros((n + 7) // 8, np.uint8)
    for i in gone:
        deleted[i // 8] |= 1 << (i % 8)
    want = probe_knn(codes, probes, k, deleted, ids)
    got = search_probes(index, probes, k)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_search_probes_takes_one_query_and_refuses_bad_shapes():
    index = HammingIndex(64)
    index.add(np.arange(80, dtype=np.uint8).reshape(10, 8))
    d, i = search_probes(index, np.arange(16, dtype=np.uint8).reshape(2, 8), 3)
    assert d.shape == i.shape == (1, 3)
    with pytest.raises(ValueError, match="probes"):
        search_probes(index, np.zeros((1, 0, 8), np.uint8), 3)
    with pytest.raises(ValueError, match="k must"):
        search_probes(index, np.zeros((2, 8), np.uint8), -1)

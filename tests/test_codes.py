"""Packed-code helpers against slow, obviously correct references (Python ints and strings)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chain_sdk.codes import (
    HashCode,
    from_bitstring,
    from_hex,
    hamming_distance,
    pack_bits,
    pairwise_hamming,
    to_bitstring,
    to_hex,
    unpack_bits,
)

code_bytes = st.sampled_from([2, 4, 8, 16, 32])


def codes(n_bytes: int):
    return st.binary(min_size=n_bytes, max_size=n_bytes).map(lambda b: np.frombuffer(b, np.uint8).copy())


@settings(deadline=None)  # no per-example deadline: emulated aarch64 (qemu) runs tens of times slower
@given(code_bytes.flatmap(lambda n: st.tuples(codes(n), codes(n))))
def test_hamming_matches_python_int_popcount(pair):
    a, b = pair
    ref = bin(int.from_bytes(a.tobytes(), "big") ^ int.from_bytes(b.tobytes(), "big")).count("1")
    assert hamming_distance(a, b) == ref
    assert HashCode.from_array(a).distance(HashCode.from_array(b)) == ref


@given(code_bytes.flatmap(lambda n: codes(n)))
def test_bitstring_is_msb_first_and_round_trips(code):
    bits = to_bitstring(code)
    assert bits == "".join(format(byte, "08b") for byte in code.tobytes())
    np.testing.assert_array_equal(from_bitstring(bits), code)
    assert to_hex(code) == code.tobytes().hex()
    np.testing.assert_array_equal(from_hex(to_hex(code)), code)
    h = HashCode.from_hex(to_hex(code))
    assert h.bits == 8 * len(code) and h.bitstring() == bits and str(h) == to_hex(code)


@settings(deadline=None)
@given(st.integers(1, 32).flatmap(lambda n: st.lists(st.integers(0, 1), min_size=8 * n, max_size=8 * n)))
def test_pack_matches_numpy_packbits_and_unpacks(bits):
    packed = pack_bits(bits)
    assert packed.tolist() == np.packbits(np.array(bits, np.uint8)).tolist()
    assert unpack_bits(packed).tolist() == bits


def test_hamming_broadcasts_to_a_matrix():
    rng = np.random.default_rng(0)
    q, db = rng.integers(0, 256, (3, 8), np.uint8), rng.integers(0, 256, (5, 8), np.uint8)
    matrix = hamming_distance(q[:, None, :], db)
    assert matrix.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            assert matrix[i, j] == hamming_distance(q[i], db[j])


@pytest.mark.parametrize("call", [
    lambda: hamming_distance(np.zeros(8, np.uint8), np.zeros(4, np.uint8)),
    lambda: hamming_distance(np.zeros(8, np.int32), np.zeros(8, np.int32)),
    lambda: from_hex("xyz"),
    lambda: from_bitstring("0102"),
    lambda: from_bitstring("0101"),
    lambda: pack_bits([0, 1, 2, 0, 0, 0, 0, 0]),
    lambda: to_hex(np.zeros((2, 8), np.uint8)),
    lambda: HashCode(b""),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


@settings(max_examples=100, deadline=None)
@given(data=st.data(), nbytes=st.integers(1, 8))
def test_pairwise_hamming_matches_bit_loop(data, nbytes: int) -> None:
    codes = hnp.arrays(np.uint8, st.tuples(st.integers(0, 5), st.just(nbytes)))
    a, b = data.draw(codes), data.draw(codes)
    expected = [[sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(ra, rb)) for rb in b] for ra in a]
    assert pairwise_hamming(a, b, chunk_bytes=data.draw(st.integers(1, 64))).tolist() == expected


def test_pairwise_hamming_refuses_mixed_lengths() -> None:
    with pytest.raises(ValueError):
        pairwise_hamming(np.zeros((1, 8), np.uint8), np.zeros((1, 4), np.uint8))

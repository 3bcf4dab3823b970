"""Packed binary codes: bits/8 uint8 bytes per code, MSB-first (the order of `numpy.packbits`).

Bit i of a code is bit (7 - i % 8) of byte i // 8, so `to_bitstring` reads left to right in bit
order and `to_hex` is the byte string in hex. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: popcount of every byte value (np.bitwise_count exists only from numpy 2.0)
POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _as_codes(codes: object) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("packed codes need at least one axis (bytes)")
    return arr


def pack_bits(bits: object) -> np.ndarray:
    """0/1 (or bool) bits [..., nbits] -> packed uint8 [..., nbits/8]. nbits must be a multiple of 8."""
    arr = np.asarray(bits)
    if arr.shape[-1] % 8:
        raise ValueError(f"number of bits {arr.shape[-1]} is not a multiple of 8")
    if arr.dtype != bool and np.any((arr != 0) & (arr != 1)):
        raise ValueError("bits must be 0 or 1")
    return np.packbits(arr.astype(bool), axis=-1)


def unpack_bits(codes: object) -> np.ndarray:
    """packed uint8 [..., nbytes] -> uint8 bits [..., nbytes*8], MSB-first."""
    return np.unpackbits(_as_codes(codes), axis=-1)


def to_hex(code: object) -> str:
    """One code -> lowercase hex (2 characters per byte)."""
    arr = _as_codes(code)
    if arr.ndim != 1:
        raise ValueError(f"to_hex takes one code (1-D), got shape {arr.shape}")
    return arr.tobytes().hex()


def from_hex(text: str) -> np.ndarray:
    """Hex string -> one packed code (uint8)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ValueError(f"not a hex code: {text!r}") from exc
    if not raw:
        raise ValueError("empty hex code")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def to_bitstring(code: object) -> str:
    """One code -> '0101...' in bit order (MSB of byte 0 first)."""
    arr = _as_codes(code)
    if arr.ndim != 1:
        raise ValueError(f"to_bitstring takes one code (1-D), got shape {arr.shape}")
    return "".join("1" if b else "0" for b in np.unpackbits(arr))


def from_bitstring(text: str) -> np.ndarray:
    """'0101...' (length a multiple of 8) -> one packed code."""
    text = text.strip()
    if not text or set(text) - {"0", "1"}:
        raise ValueError(f"not a bit string: {text[:40]!r}")
    return pack_bits(np.frombuffer(text.encode(), dtype=np.uint8) - ord("0"))


def hamming_distance(a: object, b: object) -> np.ndarray | int:
    """Number of differing bits between packed codes; broadcasts over leading axes.

    Two single codes give an int; (N, nbytes) against (nbytes,) gives (N,) distances, and
    (N, 1, nbytes) against (M, nbytes) an (N, M) matrix.
    """
    x, y = _as_codes(a), _as_codes(b)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"codes of different lengths: {x.shape[-1]} vs {y.shape[-1]} bytes")
    dist = POPCOUNT8[np.bitwise_xor(x, y)].sum(axis=-1, dtype=np.int64)
    return int(dist) if np.ndim(dist) == 0 else dist


def pairwise_hamming(queries: object, codes: object, chunk_bytes: int = 1 << 26) -> np.ndarray:
    """All distances int32 [nq, n] between two sets of packed codes [nq, B] and [n, B].

    The one Hamming distance of the SDK (popcount of the XOR, a byte table): the numpy reference
    of every kernel and the distance of every metric. Works in query chunks of at most
    `chunk_bytes` of XOR, so memory stays bounded for large sets.
    """
    q, db = _as_codes(queries), _as_codes(codes)
    if q.ndim != 2 or db.ndim != 2 or q.shape[1] != db.shape[1]:
        raise ValueError(f"code sets must be [nq, B] and [n, B] of one B, got {q.shape} and {db.shape}")
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.int32)
    step = max(1, chunk_bytes // max(1, db.size))
    for i in range(0, q.shape[0], step):
        out[i:i + step] = POPCOUNT8[q[i:i + step, None, :] ^ db[None, :, :]].sum(axis=-1, dtype=np.int32)
    return out


@dataclass(frozen=True)
class HashCode:
    """One immutable packed code with its conversions: `HashCode.from_hex("a1b2...")`."""

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes) or not self.data:
            raise ValueError("HashCode needs non-empty bytes")

    @classmethod
    def from_array(cls, code: object) -> "HashCode":
        arr = _as_codes(code)
        if arr.ndim != 1:
            raise ValueError(f"one code (1-D) expected, got shape {arr.shape}")
        return cls(arr.tobytes())

    @classmethod
    def from_hex(cls, text: str) -> "HashCode":
        return cls(from_hex(text).tobytes())

    @classmethod
    def from_bitstring(cls, text: str) -> "HashCode":
        return cls(from_bitstring(text).tobytes())

    @property
    def bits(self) -> int:
        return 8 * len(self.data)

    @property
    def array(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.uint8)

    def hex(self) -> str:
        return self.data.hex()

    def bitstring(self) -> str:
        return to_bitstring(self.array)

    def distance(self, other: "HashCode | object") -> int:
        other_arr = other.array if isinstance(other, HashCode) else other
        return int(hamming_distance(self.array, other_arr))

    def __str__(self) -> str:
        return self.hex()

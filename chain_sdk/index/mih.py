"""Multi-index hashing planner: substring layout and the MIH-versus-flat-scan cost model.

The tables themselves live in C++ (chain_sdk._hamming.MultiIndexHash). Here we decide
* the layout: m substrings of about log2(N) bits (Norouzi et al.), each at most 24 bits, so that a
  bucket holds O(1) codes on uniform data;
* per query, whether probing the tables beats the flat scan. The MIH side is costed from the exact
  number of probes and candidate entries of that query (``MultiIndexHash.cost``), the flat side from
  the bytes it would scan. The constants are per-operation times measured on the development
  machine by ``benchmarks/bench_hamming.py --mih-calibrate`` (see the module constants).
"""

from __future__ import annotations

import math

import numpy as np

#: Measured costs (ns, 1 thread) on the 2-vCPU AVX-512 development VM by
#: ``benchmarks/bench_hamming.py --mih-calibrate`` (non-negative least squares over a uniform and a
#: heavily duplicated 1e6 x 64-bit database: 19.9 ns per probe, 7.4 ns per candidate; the flat scan
#: took 0.038 ns/byte for one query and 0.030 for a batch of 32).
NS_PER_PROBE = 20.0
NS_PER_CANDIDATE = 7.5
NS_PER_SCANNED_BYTE = 0.035
#: Don't build tables for databases this small: the flat scan takes microseconds there.
MIN_CODES = 20_000
#: Build only when the model predicts at least this speed-up on a uniform database.
BUILD_GAIN = 4.0


def layout(bits: int, n: int) -> list[int]:
    """Substring lengths (MSB-first, consecutive) for n codes of `bits` bits."""
    target = min(24, max(8, round(math.log2(max(n, 2)))))
    m = max(1, round(bits / target), math.ceil(bits / 24))
    base, extra = divmod(bits, m)
    return [base + (1 if j < extra else 0) for j in range(m)]


def probes_per_table(length: int, sub_radius: int) -> int:
    return sum(math.comb(length, i) for i in range(min(sub_radius, length) + 1))


def predicted_ns(bits: int, n: int, radius: int, sub_bits: list[int]) -> tuple[float, float]:
    """(MIH, flat) predicted time per query on uniformly random codes."""
    sub = radius // len(sub_bits)
    probes = sum(probes_per_table(b, sub) for b in sub_bits)
    cands = sum(probes_per_table(b, sub) * n / 2.0**b for b in sub_bits)
    mih = probes * NS_PER_PROBE + cands * NS_PER_CANDIDATE
    flat = n * (bits // 8) * NS_PER_SCANNED_BYTE
    return mih, flat


def worth_building(bits: int, n: int, radius: int) -> bool:
    if n < MIN_CODES:
        return False
    mih, flat = predicted_ns(bits, n, radius, layout(bits, n))
    return mih * BUILD_GAIN < flat


def choose_mih(probes: np.ndarray, candidates: np.ndarray, n: int, code_bytes: int) -> np.ndarray:
    """Boolean per query: True where the tables are predicted to beat the flat scan."""
    mih = probes * NS_PER_PROBE + candidates * NS_PER_CANDIDATE
    return mih < n * code_bytes * NS_PER_SCANNED_BYTE

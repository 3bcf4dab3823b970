"""Hamming search over packed binary codes: HammingIndex, the numpy reference (reference), the
file format (fileformat), the multi-index-hashing planner (mih) and MilvusIndex (the same verbs
over a Milvus collection; pymilvus is imported when one is created), and `search_probes`
(a query given as several probe codes, matched by its nearest probe).

Imports only numpy and the compiled kernels (chain_sdk._hamming). Kernel paths: AVX-512
VPOPCNTDQ, AVX2 or scalar, picked from the CPU's flags at run time; force one with
``HammingIndex(..., isa="avx2")`` or the environment variable CHAIN_SDK_HAMMING_ISA."""

from __future__ import annotations

from .hamming_index import HammingIndex, _hamming
from .milvus import MilvusIndex
from .probes import search_probes

#: Kernel paths this CPU can run, best first (e.g. ["avx512", "avx2", "scalar"]; AArch64: ["neon", "scalar"]).
available_isas = _hamming.isa_available
#: Default thread count of every search (0 = every CPU this process may use).
set_num_threads = _hamming.set_num_threads
get_num_threads = _hamming.get_num_threads

__all__ = ["HammingIndex", "MilvusIndex", "available_isas", "search_probes", "get_num_threads", "set_num_threads"]

"""Hamming search over packed binary codes: HammingIndex, the numpy reference, the file format.

Imports only numpy and the compiled kernels (chain_sdk._hamming)."""

from __future__ import annotations

from .hamming_index import HammingIndex

__all__ = ["HammingIndex"]

"""Deprecated alias of `chain_sdk.nn.chain` (moved there with the model family, issue 12)."""

import warnings

from chain_sdk.nn.chain import *  # noqa: F401,F403
from chain_sdk.nn.chain import pack_bits_torch as pack_bits  # noqa: F401  (its old name)

warnings.warn("chain_sdk.train.model moved to chain_sdk.nn.chain", DeprecationWarning, stacklevel=2)

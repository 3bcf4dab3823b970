"""Deprecated alias of `chain_sdk.nn.checkpoint` (moved there with the model family, issue 12)."""

import warnings

from chain_sdk.nn.checkpoint import *  # noqa: F401,F403

warnings.warn("chain_sdk.train.checkpoint moved to chain_sdk.nn.checkpoint", DeprecationWarning, stacklevel=2)

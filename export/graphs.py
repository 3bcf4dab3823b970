"""Deprecated alias of `chain_sdk.nn.graphs` (moved there with the model family, issue 12)."""

import warnings

from chain_sdk.nn.graphs import *  # noqa: F401,F403

warnings.warn("chain_sdk.export.graphs moved to chain_sdk.nn.graphs", DeprecationWarning, stacklevel=2)

"""Deprecated alias of `chain_sdk.nn.backbones` (moved there with the model family, issue 12)."""

import warnings

from chain_sdk.nn.backbones import *  # noqa: F401,F403

warnings.warn("chain_sdk.export.backbones moved to chain_sdk.nn.backbones", DeprecationWarning, stacklevel=2)

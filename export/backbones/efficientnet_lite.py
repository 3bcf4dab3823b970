"""Deprecated alias of `chain_sdk.nn.backbones.efficientnet_lite` (moved with the model family, issue 12)."""

import warnings

from chain_sdk.nn.backbones.efficientnet_lite import *  # noqa: F401,F403

warnings.warn("chain_sdk.export.backbones.efficientnet_lite moved to chain_sdk.nn.backbones.efficientnet_lite",
              DeprecationWarning, stacklevel=2)

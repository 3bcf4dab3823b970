"""The modules issue 12 moved into chain_sdk.nn still import from their old paths, with a
DeprecationWarning, and give the very same objects."""

from __future__ import annotations

import importlib
import sys

import pytest

pytest.importorskip("torch")

MOVED = {
    "chain_sdk.train.model": ("chain_sdk.nn.chain", "ChainModel"),
    "chain_sdk.train.checkpoint": ("chain_sdk.nn.checkpoint", "load_checkpoint"),
    "chain_sdk.export.graphs": ("chain_sdk.nn.graphs", "FusedChainGraph"),
    "chain_sdk.export.backbones": ("chain_sdk.nn.backbones", "get_backbone"),
    "chain_sdk.export.backbones.efficientnet_lite": ("chain_sdk.nn.backbones.efficientnet_lite", "EfficientNetLite"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_aliases(old):
    new, name = MOVED[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_the_old_torch_pack_bits_name():
    from chain_sdk.nn.chain import pack_bits_torch

    with pytest.warns(DeprecationWarning):
        sys.modules.pop("chain_sdk.train.model", None)
        old = importlib.import_module("chain_sdk.train.model")
    assert old.pack_bits is pack_bits_torch

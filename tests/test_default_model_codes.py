"""The packaged default models give the codes recorded before the restructure of issue 12.

`fixtures/default_model_codes.json` was written by the tree at commit 0996a7a (a fresh export of
each packaged default, onnxruntime CPU, one thread) on the four sample clips, plus the stream
windows of bikes.mp4. Any change to sampling, the bar crop, the exported graphs or the backends
that moves a bit fails here; a deliberate change of the default model re-records the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chain_sdk import data
from chain_sdk.codes import from_hex, to_hex

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "default_model_codes.json").read_text())
pytestmark = pytest.mark.slow


def differing_bits(got: dict[str, str], want: dict[str, str]) -> dict[str, int]:
    return {k: int(np.unpackbits(from_hex(got[k]) ^ from_hex(want[k])).sum()) for k in want}


@pytest.fixture(scope="module", params=["default-64", "default-32", "default-16"])
def model(request):
    from chain_sdk.encoder import Encoder

    name = request.param
    with Encoder(None if name == "default-64" else name, backend="onnxruntime", threads=1) as encoder:
        yield name, encoder


def test_sample_clips_keep_their_codes(model):
    name, encoder = model
    want = RECORDED[name]
    got = {clip: to_hex(encoder.encode(data.path(clip))) for clip in want}
    assert got == want, f"bits moved per clip: {differing_bits(got, want)}"


def test_stream_windows_keep_their_codes(model):
    name, encoder = model
    if name != "default-64":
        pytest.skip("streams are recorded for the default only")
    got = [[s.start, s.end, to_hex(s.code)] for s in encoder.stream(data.path("bikes.mp4"), window=4.0, hop=2.0)]
    assert got == RECORDED["stream-bikes-4s-2s"]

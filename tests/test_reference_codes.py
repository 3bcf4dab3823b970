"""Another platform gives the sample clips the reference platform's codes.

scripts/py310_check.sh (Python 3.10 with the oldest numpy, OpenCV and onnxruntime pyproject.toml
accepts) and scripts/aarch64_check.sh (AArch64 under qemu) export the default model and record the
codes of the sample clips with `chain-sdk encode` in the x86-64 dev venv (Python 3.11), then run
this module on the other platform, runtime-only (no torch), with

    CHAIN_SDK_TEST_MODEL_DIR=<exported model dir>  CHAIN_SDK_TEST_REFERENCE_CODES=<codes.jsonl>

Without them it is skipped: comparing a platform with itself proves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from chain_sdk import cli, data
from chain_sdk.codes import from_hex, to_hex

MODEL_DIR = os.environ.get("CHAIN_SDK_TEST_MODEL_DIR")
REFERENCE = os.environ.get("CHAIN_SDK_TEST_REFERENCE_CODES")
pytestmark = pytest.mark.skipif(
    not (MODEL_DIR and REFERENCE),
    reason="set CHAIN_SDK_TEST_MODEL_DIR and CHAIN_SDK_TEST_REFERENCE_CODES (scripts/*_check.sh)")


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    """Clip name -> hex code recorded on the reference platform."""
    rows = [json.loads(line) for line in Path(REFERENCE or "").read_text().splitlines()]
    assert rows and all("code" in r for r in rows), f"{REFERENCE}: every clip must have a code"
    return {Path(r["path"]).name: r["code"] for r in rows}


def assert_same_codes(got: dict[str, str], want: dict[str, str]) -> None:
    bits = {n: int(np.unpackbits(from_hex(got[n]) ^ from_hex(want[n])).sum()) for n in want}
    assert got == want, f"bits that differ from the reference, per clip: {bits}"


def test_encoder_gives_the_reference_codes(reference):
    from chain_sdk.encoder import Encoder

    enc = Encoder(MODEL_DIR, backend="onnxruntime")
    got = {name: to_hex(enc.encode(data.path(name))) for name in reference}
    assert_same_codes(got, reference)


def test_cli_encode_index_and_search(reference, tmp_path, capsys):
    videos = [str(data.path(name)) for name in reference]
    codes = tmp_path / "codes.jsonl"
    assert cli.main(["encode", *videos, "--model", str(MODEL_DIR), "-o", str(codes), "--no-progress"]) == 0
    rows = [json.loads(line) for line in codes.read_text().splitlines()]
    assert_same_codes({Path(r["path"]).name: r["code"] for r in rows}, reference)

    index = tmp_path / "clips.idx"
    assert cli.main(["index", "build", "--codes", str(codes), "--out", str(index)]) == 0
    capsys.readouterr()
    assert cli.main(["search", videos[-1], "--index", str(index), "-k", "1", "--model", str(MODEL_DIR)]) == 0
    best = capsys.readouterr().out.splitlines()[1]
    assert best.split()[1:3] == ["distance", "0"] and best.endswith(Path(videos[-1]).name)

"""`chain-export all`: one checkpoint -> fp32/fp16/int8 model directories, a parity report, a Triton repository.

    OUT/fp32/     chain-export onnx            (backbone.onnx, temporal.onnx, chain.onnx, model.json)
    OUT/fp16/     chain-export quantize fp16
    OUT/int8/     chain-export quantize int8   (calibrated on real frames)
    OUT/parity.json, OUT/parity.md   bit agreement / mean Hamming drift vs fp32 ONNX on real clips
    OUT/triton/chain_fp32|chain_fp16|chain_int8/   one Triton model per precision (the fused graph)

Every step is the existing function (export_model, quantize_model, verify's encoders and
compare_codes, write_triton_repository); this module only sequences them and applies the gates.
The clips are decoded once and encoded by every variant, torch eager included (the export's
own reference: an ONNX graph that disagrees with torch is an export bug, not a precision cost).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


from chain_sdk.contract import read_model_dir
from chain_sdk.files import write_text

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Gates:
    """Minimum bit agreement with the fp32 ONNX codes (see tests/test_export_quantize.py for int8's)."""

    torch: float = 0.99
    fp16: float = 0.99
    int8: float = 0.98


def default_parity_videos() -> list[Path]:
    """The short sample clips (never the film: its time >= 300 s is held out for evaluation)."""
    from chain_sdk import data

    return [data.path(name) for name in data.SMALL_CLIPS]


def measure_parity(out: Path, videos: Sequence[str | os.PathLike], gates: Gates, *, clips_per_video: int,
                   threads: int, batch: int = 4) -> dict:
    """Codes of torch, fp16 and int8 vs fp32 ONNX on the same real clips, with each gate's verdict."""
    from .verify import compare_codes, encode_clips, parity_clips

    fp32 = read_model_dir(out / "fp32")
    clips = parity_clips(videos, fp32.frames, fp32.input_size, clips_per_video=clips_per_video)
    reference = encode_clips(out / "fp32", clips, backend="onnxruntime", threads=threads, batch=batch)
    candidates: dict[str, tuple[Path, str]] = {"fp16": (out / "fp16", "onnxruntime"),
                                               "int8": (out / "int8", "onnxruntime")}
    if "chain" in fp32.graphs:  # a user-supplied ONNX backbone has no torch twin
        candidates = {"torch": (out / "fp32", "torch"), **candidates}
    comparisons = {}
    for name, (model_dir, backend) in candidates.items():
        report = compare_codes(reference, encode_clips(model_dir, clips, backend=backend, threads=threads,
                                                       batch=batch))
        gate = getattr(gates, name)
        comparisons[f"{name}_vs_fp32"] = {**asdict(report), "min_agreement": gate,
                                          "passed": report.bit_agreement >= gate}
        log.info("%s vs fp32: %s", name, report)
    return {"videos": [Path(v).name for v in videos], "clips_per_video": clips_per_video, "clips": len(clips),
            "bits": fp32.bits, "frames": fp32.frames, "model_version": fp32.model_version,
            "comparisons": comparisons, "passed": all(c["passed"] for c in comparisons.values())}


def parity_markdown(parity: dict) -> str:
    rows = "".join(f"| {name.replace('_', ' ')} | {c['bit_agreement']:.5f} | {c['mean_hamming']:.3f} | "
                   f"{c['max_hamming']} | {c['identical_codes']:.3f} | {c['min_agreement']} | "
                   f"{'pass' if c['passed'] else 'FAIL'} |\n" for name, c in parity["comparisons"].items())
    return (f"# Parity of {parity['model_version']} ({parity['bits']} bits, T={parity['frames']})\n\n"
            f"{parity['clips']} clips ({parity['clips_per_video']} per video) of {', '.join(parity['videos'])}.\n"
            "Mean drift = mean number of differing bits per code.\n\n"
            "| comparison | bit agreement | mean drift | max drift | identical codes | gate | verdict |\n"
            "|---|---|---|---|---|---|---|\n" + rows)


def export_all(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *,
               calibration: Sequence[str | os.PathLike] | None = None,
               videos: Sequence[str | os.PathLike] | None = None, gates: Gates = Gates(),
               clips_per_video: int = 4, frames_per_video: int = 25, threads: int = 0,
               triton_kind: str = "KIND_GPU", **onnx_options) -> dict:
    """Run the whole export of `checkpoint` into `out_dir`; returns the parity dict (see `passed`).

    `onnx_options` go to `export_model` (backbone, opset, color_order); `threads` bounds
    onnxruntime's and torch's thread pools for the parity runs (0: their defaults).
    """
    from tqdm.auto import tqdm

    from .onnx_export import export_model
    from .quantize import quantize_model
    from .triton import write_triton_repository

    out = Path(out_dir)
    steps = tqdm(total=5, desc="chain-export all", unit="step")
    log.info("exporting %s to %s", checkpoint, out / "fp32")
    export_model(checkpoint, out / "fp32", **onnx_options)
    steps.update()
    for precision in ("fp16", "int8"):
        log.info("quantizing to %s", out / precision)
        quantize_model(out / "fp32", out / precision, precision, calibration=calibration,
                       frames_per_video=frames_per_video)
        steps.update()
    log.info("measuring parity on real video")
    parity = measure_parity(out, videos or default_parity_videos(), gates, clips_per_video=clips_per_video,
                            threads=threads)
    write_text(out / "parity.json", json.dumps(parity, indent=2) + "\n")
    write_text(out / "parity.md", parity_markdown(parity))
    steps.update()
    for precision in PRECISIONS:
        role = "chain" if "chain" in read_model_dir(out / precision).graphs else "temporal"
        write_triton_repository(out / precision, out / "triton", name=f"chain_{precision}", role=role,
                                kind=triton_kind)
    log.info("wrote %s", out / "triton")
    steps.update()
    steps.close()
    return parity

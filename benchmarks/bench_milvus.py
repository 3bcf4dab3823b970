"""MilvusIndex against HammingIndex on the same codes: QPS, recall@k and recall at the operating
radius, on random 64-bit codes with planted near-duplicates.

    python benchmarks/bench_milvus.py                         # milvus-lite BIN_FLAT, 1e6 codes
    python benchmarks/bench_milvus.py --server                # + a standalone Milvus 2.3.5 server
                                                              #   (BIN_FLAT and BIN_IVF_FLAT), run
                                                              #   in a loopback-only namespace

Database: n uniform random codes (the worst case for approximate indexes: real video codes
cluster). Queries: for each of several seeds, q database codes with 0..radius random bits
flipped (a planted near-duplicate per query, drawn by other code than the database). Ground
truth is HammingIndex (exact, itself tested against the numpy reference). Reported per engine,
as the spread over seeds: recall@k (share of returned codes within the exact k-th distance),
range recall at the radius (share of exact hits returned), planted found (share of queries whose
planted code is in the range result) and QPS of batched calls, next to HammingIndex's own QPS in
the same run. What this does not show: real-code recall (clustered codes favour IVF), a
multi-node cluster, or concurrency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from chain_sdk.index import HammingIndex, MilvusIndex


def planted_queries(db: np.ndarray, q: int, radius: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)
    rows = rng.choice(len(db), q, replace=False)
    bits = np.unpackbits(db[rows], axis=1)
    for i in range(q):
        flip = rng.choice(bits.shape[1], int(rng.integers(0, radius + 1)), replace=False)
        bits[i, flip] ^= 1
    return np.packbits(bits, axis=1), rows.astype(np.int64)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def measure(index, queries, planted, truth, k, radius) -> dict:
    (d, ids), t_knn = timed(index.search, queries, k)
    (lims, _, rids), t_range = timed(index.range_search, queries, radius)
    td, (tl, _, tids) = truth
    kth = td[:, -1:]
    recall_k = float(((d >= 0) & (d <= kth)).sum() / d.size)
    found = sum(int(planted[i] in rids[lims[i]:lims[i + 1]]) for i in range(len(queries)))
    exact = sum(len(set(tids[tl[i]:tl[i + 1]])) for i in range(len(queries)))
    got = sum(len(set(rids[lims[i]:lims[i + 1]]) & set(tids[tl[i]:tl[i + 1]])) for i in range(len(queries)))
    return {"recall@k": recall_k, "range recall": got / max(exact, 1), "planted found": found / len(queries),
            "knn QPS": len(queries) / t_knn, "range QPS": len(queries) / t_range}


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def run(engines: dict, db: np.ndarray, args) -> None:
    exact = HammingIndex(64)
    exact.add(db)
    results: dict[str, list[dict]] = {name: [] for name in ["HammingIndex", *engines]}
    for seed in range(args.seeds):
        queries, planted = planted_queries(db, args.queries, args.radius, seed)
        truth = (exact.search(queries, args.k)[0], exact.range_search(queries, args.radius))
        for name, index in [("HammingIndex", exact), *engines.items()]:  # interleaved per seed
            if isinstance(index, tuple):  # one IVF collection probed with several nprobe
                index, index.nprobe = index[0], index[1]
            results[name].append(measure(index, queries, planted, truth, args.k, args.radius))
    keys = ["recall@k", "range recall", "planted found", "knn QPS", "range QPS"]
    print(f"\n{len(db):,} random 64-bit codes, {args.queries} planted queries (0..{args.radius} bits "
          f"flipped) x {args.seeds} seeds, k={args.k}, radius={args.radius} (inclusive); median [min, max]")
    print("| engine | " + " | ".join(keys) + " | knn QPS / HammingIndex |")
    print("|---" * (len(keys) + 2) + "|")
    base = [r["knn QPS"] for r in results["HammingIndex"]]
    for name, rows in results.items():
        ratio = [r["knn QPS"] / b for r, b in zip(rows, base)]
        print(f"| {name} | " + " | ".join(spread([r[key] for r in rows]) for key in keys) + f" | {spread(ratio)} |")


def fill(index, db: np.ndarray) -> float:
    t = time.perf_counter()
    index.add(db)
    if hasattr(index, "flush"):
        index.flush()
    return time.perf_counter() - t


def start_server(workdir: str):
    from milvus import MilvusServer

    server = MilvusServer()
    server.set_base_dir(workdir)
    for component in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
                      "dataCoord", "dataNode"):
        server.config.set(f"{component}.ip", "127.0.0.1")
    server.start()
    return server, f"http://127.0.0.1:{server.config.get('proxy_port')}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--radius", type=int, default=8)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--nprobe", type=int, nargs="+", default=[32, 128])
    p.add_argument("--server", action="store_true", help="also a standalone server (BIN_FLAT, BIN_IVF_FLAT)")
    p.add_argument("--no-lite", action="store_true")
    args = p.parse_args()
    if args.server and os.environ.get("CHAIN_SDK_BENCH_NETNS") != "1":  # re-run inside the namespace
        cmd = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
        sys.exit(subprocess.call(cmd, env={**os.environ, "CHAIN_SDK_BENCH_NETNS": "1"}))
    db = np.random.default_rng(0).integers(0, 256, (args.n, 8), dtype=np.uint8)
    engines, servers = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_lite:
            lite = MilvusIndex(os.path.join(tmp, "bench.db"), "bench", 64)
            print(f"milvus-lite BIN_FLAT: {args.n:,} inserts in {fill(lite, db):.1f} s", flush=True)
            engines["milvus-lite BIN_FLAT"] = lite
        if args.server:
            server, uri = start_server(os.path.join(tmp, "server"))
            servers.append(server)
            flat = MilvusIndex(uri, "flat", 64)
            print(f"server BIN_FLAT: {args.n:,} inserts + flush in {fill(flat, db):.1f} s", flush=True)
            engines["server BIN_FLAT"] = flat
            ivf = MilvusIndex(uri, "ivf", 64, index="BIN_IVF_FLAT", nlist=args.nlist)
            print(f"server BIN_IVF_FLAT: {args.n:,} inserts + flush in {fill(ivf, db):.1f} s", flush=True)
            for nprobe in args.nprobe:
                engines[f"server BIN_IVF_FLAT {args.nlist}/{nprobe}"] = (ivf, nprobe)
        try:
            run(engines, db, args)
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()

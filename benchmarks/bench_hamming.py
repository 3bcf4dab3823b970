"""Side-by-side Hamming search benchmark: chain_sdk HammingIndex kernels vs faiss IndexBinaryFlat
(and numpy), all in one process on the same arrays, with the ratios printed per cell.

    python benchmarks/bench_hamming.py --quick          # ~1-2 minutes
    python benchmarks/bench_hamming.py                  # full grid (N up to 1e7; long)
    python benchmarks/bench_hamming.py --goals          # the issue's goal cells only (N = 1e7)
    python benchmarks/bench_hamming.py --mih-calibrate  # fit the MIH cost-model constants

Every cell checks that our distances equal faiss's before timing. Timings are medians of
interleaved repetitions; "GB/s" = nq * N * bytes per code / time (logical bytes compared), and
"read GB/s" is a streaming read of the same database with the same thread count, measured in the
same run, so "of read" says how close a scan is to this machine's bandwidth.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from chain_sdk import _hamming
from chain_sdk.codes import POPCOUNT8
from chain_sdk.index import HammingIndex, mih, reference

log = logging.getLogger("bench_hamming")


@dataclass
class Cell:
    op: str
    bits: int
    n: int
    nq: int
    k: int
    threads: int
    ms: dict = field(default_factory=dict)    # method -> median ms per call
    best: dict = field(default_factory=dict)  # method -> fastest ms per call

    def gbs(self, method: str) -> float:
        return self.nq * self.n * self.bits / 8 / (self.ms[method] * 1e-3) / 1e9

    def qps(self, method: str) -> float:
        return self.nq / (self.ms[method] * 1e-3)


def timeit(fns: dict, budget_s: float, max_reps: int) -> dict:
    """Interleaved repetitions of every fn (one warm-up each) until the budget is spent."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    start = time.perf_counter()
    for rep in range(max_reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and rep >= 1:
            break
    timeit.last_best = {name: min(ts) * 1e3 for name, ts in times.items()}
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def numpy_knn(codes: np.ndarray, queries: np.ndarray, k: int):
    """The numpy peer: XOR + popcount + argpartition, one query at a time."""
    count = np.bitwise_count if hasattr(np, "bitwise_count") else (lambda x: POPCOUNT8[x])
    out = []
    for q in queries:
        d = count(codes ^ q).sum(axis=1, dtype=np.int32)
        kk = min(k, len(d))
        idx = np.argpartition(d, kk - 1)[:kk]
        out.append(idx[np.argsort(d[idx], kind="stable")])
    return out


def make_data(bits: int, n: int, nq: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, bits // 8), dtype=np.uint8),
            rng.integers(0, 256, (nq, bits // 8), dtype=np.uint8))


class Runner:
    def __init__(self, budget_s: float, max_reps: int, numpy_pairs: float):
        import faiss  # the peer; imported here so that --help works without it

        self.faiss = faiss
        self.budget_s = budget_s
        self.max_reps = max_reps
        self.numpy_pairs = numpy_pairs
        self.cells: list[Cell] = []
        self.read_ms: dict = {}

    def read_bandwidth(self, codes: np.ndarray, threads: int) -> float:
        key = (codes.nbytes, threads)
        if key not in self.read_ms:
            self.read_ms[key] = timeit({"read": lambda: _hamming.stream_read(codes, threads)},
                                       self.budget_s, self.max_reps)["read"]
        return codes.nbytes / (self.read_ms[key] * 1e-3) / 1e9

    def knn(self, bits: int, n: int, nqs, ks, threads_list, codes=None, queries=None):
        if codes is None:
            codes, queries = make_data(bits, n, max(nqs))
        fx = self.faiss.IndexBinaryFlat(bits)
        fx.add(codes)
        index = HammingIndex(bits)
        index.add(codes)
        for nq in nqs:
            q = queries[:nq]
            for k in ks:
                for t in threads_list:
                    self.faiss.omp_set_num_threads(t)
                    index.threads = t
                    ours_d, _ = index.search(q, k)
                    fd, _ = fx.search(q, k)
                    assert np.array_equal(ours_d, fd), f"distances differ from faiss ({bits}b N={n} k={k})"
                    fns = {"ours": lambda q=q, k=k: index.search(q, k), "faiss": lambda q=q, k=k: fx.search(q, k)}
                    if t == 1 and nq * n <= self.numpy_pairs:
                        fns["numpy"] = lambda q=q, k=k: numpy_knn(codes, q, k)
                    cell = Cell("knn", bits, n, nq, k, t, timeit(fns, self.budget_s, self.max_reps), timeit.last_best)
                    self.report(cell, codes)

    def radius(self, bits: int, n: int, nqs, radius: int, threads_list, codes=None, queries=None):
        if codes is None:
            codes, queries = make_data(bits, n, max(nqs))
        fx = self.faiss.IndexBinaryFlat(bits)
        fx.add(codes)
        index = HammingIndex(bits, mih=False)
        index.add(codes)
        for nq in nqs:
            q = queries[:nq]
            for t in threads_list:
                self.faiss.omp_set_num_threads(t)
                index.threads = t
                lims = index.range_search(q, radius)[0]
                flims = fx.range_search(q, radius + 1)[0]  # faiss is strict (<)
                assert np.array_equal(lims, flims), "range counts differ from faiss"
                fns = {"ours": lambda q=q: index.range_search(q, radius),
                       "faiss": lambda q=q: fx.range_search(q, radius + 1)}
                cell = Cell(f"range<={radius}", bits, n, nq, 0, t, timeit(fns, self.budget_s, self.max_reps),
                            timeit.last_best)
                self.report(cell, codes)

    def mih(self, n: int, radii, nq: int, threads: int = 1):
        """MIH vs our own flat scan (and faiss flat) on near-duplicate queries, 64-bit."""
        bits = 64
        codes, _ = make_data(bits, n, 1)
        rng = np.random.default_rng(1)
        q = np.unpackbits(codes[rng.integers(0, n, nq)], axis=1)
        for row in q:
            row[rng.choice(bits, size=3, replace=False)] ^= 1
        q = np.packbits(q, axis=1)
        index = HammingIndex(bits, threads=threads, mih=True)
        index.add(codes)
        t0 = time.perf_counter()
        index.range_search(q[:1], 0, method="mih")  # builds the tables
        log.info("MIH tables for N=%g built in %.2f s (%s)", n, time.perf_counter() - t0, mih.layout(bits, n))
        flat_q = q[: max(1, nq // 10)]  # the flat scan is slow: time it on fewer queries, per query
        for r in radii:
            a = index.range_search(flat_q, r, method="mih")
            b = index.range_search(flat_q, r, method="flat")
            assert all(np.array_equal(x, y) for x, y in zip(a, b)), "MIH differs from the flat scan"
            m_ms = timeit({"mih": lambda r=r: index.range_search(q, r, method="mih")}, self.budget_s, self.max_reps)
            f_ms = timeit({"flat": lambda r=r: index.range_search(flat_q, r, method="flat")}, self.budget_s, 3)
            cell = Cell(f"mih r<={r}", bits, n, nq, 0, threads,
                        {"ours_mih": m_ms["mih"], "ours_flat": f_ms["flat"] * nq / len(flat_q)})
            self.cells.append(cell)
            print(f"| mih r<={r} | {bits} | {n:.0e} | {nq} | {threads} | MIH {cell.ms['ours_mih']:.3f} ms | "
                  f"flat {cell.ms['ours_flat']:.1f} ms | MIH/flat speed-up {cell.ms['ours_flat'] / cell.ms['ours_mih']:.0f}x |",
                  flush=True)

    def report(self, cell: Cell, codes: np.ndarray):
        self.cells.append(cell)
        read = self.read_bandwidth(codes, cell.threads)
        extra = ""
        if "numpy" in cell.ms:
            extra = f" numpy {cell.ms['numpy']:.3g} ms (ours {cell.ms['numpy'] / cell.ms['ours']:.1f}x) |"
        frac = cell.gbs("ours") / read if cell.nq == 1 else float("nan")
        print(f"| {cell.op} | {cell.bits} | {cell.n:.0e} | {cell.nq} | {cell.k or '-'} | {cell.threads} | "
              f"{cell.ms['ours']:.3g} | {cell.ms['faiss']:.3g} | **{cell.ms['faiss'] / cell.ms['ours']:.1f}x** "
              f"({cell.best['faiss'] / cell.best['ours']:.1f}x) | "
              f"{cell.qps('ours'):,.0f} | {cell.qps('faiss'):,.0f} | {cell.gbs('ours'):.1f} | {cell.gbs('faiss'):.1f} | "
              f"{read:.1f} | {frac:.2f} |{extra}", flush=True)


HEADER = ("| op | bits | N | nq | k | thr | ours ms | faiss ms | speed-up vs faiss: median (best) | ours q/s | faiss q/s | "
          "ours GB/s | faiss GB/s | read GB/s | of read (nq=1) | numpy |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def mih_calibrate(runner: Runner) -> None:
    """Fit NS_PER_PROBE / NS_PER_CANDIDATE (1 thread, non-negative least squares) on a uniform
    database (probe-bound) and a heavily duplicated one (candidate-bound), and the flat scan's ns
    per byte for one query and for a batch."""
    from scipy.optimize import nnls

    bits, n = 64, 1_000_000
    rng = np.random.default_rng(3)
    uniform, queries = make_data(bits, n, 200, seed=3)
    dup = uniform[rng.integers(0, 2000, n)]  # 2000 distinct codes, 500 copies each
    rows, ys = [], []
    for codes, radii in ((uniform, range(0, 9)), (dup, range(0, 4))):
        tables = _hamming.MultiIndexHash(codes, mih.layout(bits, n), 1)
        q = queries if codes is uniform else codes[rng.integers(0, n, 50)]
        for r in radii:
            probes, cands = tables.cost(q, r)
            ms = timeit({"m": lambda r=r, t=tables, c=codes, q=q: t.range_search(c, q, r, None, "auto", 1)},
                        1.0, 5)["m"]
            rows.append([probes.sum(), cands.sum()])
            ys.append(ms * 1e6)
    (ns_probe, ns_cand), _ = nnls(np.array(rows, float), np.array(ys))
    one = timeit({"f": lambda: _hamming.range_search(uniform, queries[:1], 3, None, "auto", 1)}, 1.0, 9)["f"]
    batch = timeit({"f": lambda: _hamming.range_search(uniform, queries[:32], 3, None, "auto", 1)}, 1.0, 5)["f"]
    print(f"NS_PER_PROBE ~ {ns_probe:.1f}, NS_PER_CANDIDATE ~ {ns_cand:.1f}, flat ns/byte: one query "
          f"{one * 1e6 / uniform.nbytes:.3f}, batch of 32 {batch * 1e6 / (32 * uniform.nbytes):.3f} "
          f"(module: {mih.NS_PER_PROBE}, {mih.NS_PER_CANDIDATE}, {mih.NS_PER_SCANNED_BYTE})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N <= 1e6, fewer cells (minutes)")
    ap.add_argument("--goals", action="store_true", help="only the goal cells at N = 1e7")
    ap.add_argument("--mih-calibrate", action="store_true")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timing per cell")
    ap.add_argument("--json", help="write all cells to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 1.5)
    runner = Runner(budget, max_reps=15, numpy_pairs=1e6 if args.quick else 1e7)
    log.info("kernels: %s (default %s), threads available: %d", _hamming.isa_available(),
             _hamming.isa_default(), _hamming.get_num_threads())
    if args.mih_calibrate:
        mih_calibrate(runner)
        return
    print(HEADER)
    if args.goals:
        codes64, q64 = make_data(64, 10**7, 1000)
        runner.knn(64, 10**7, [1], [100], [1, 2], codes64, q64)
        codes16, q16 = make_data(16, 10**7, 1)
        runner.knn(16, 10**7, [1], [100], [1, 2], codes16, q16)
        del codes16
        runner.knn(64, 10**7, [1000], [100], [2], codes64, q64)
        runner.radius(64, 10**7, [1], 10, [2], codes64, q64)
        del codes64
        runner.mih(10**7, [0, 1, 2, 3, 5], 1000)
    elif args.quick:
        for bits in (16, 32, 64, 128):
            runner.knn(bits, 10**5, [1, 100], [1, 100, 1000], [1, 2])
        for bits in (16, 64):
            runner.knn(bits, 10**6, [1, 100], [100], [1, 2])
        runner.radius(64, 10**6, [1, 100], 10, [1, 2])
        runner.mih(10**6, [0, 2, 3, 5], 200)
    else:
        for n in (10**5, 10**6, 10**7):
            for bits in (16, 32, 64, 128):
                big = n >= 10**7
                runner.knn(bits, n, [1, 1000] if not big or bits == 64 else [1],
                           [100] if big else [1, 100, 1000], [1, 2])
            runner.radius(64, n, [1, 1000] if n < 10**7 else [1], 10, [1, 2])
        runner.mih(10**7, [0, 1, 2, 3, 5], 1000)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(c) for c in runner.cells], f, indent=1)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------
# pytest-benchmark suite (small enough for CI): `pytest benchmarks --benchmark-only`.
# Collected through benchmarks/conftest.py; the side-by-side script above is the real benchmark.

def _bench_pair(bits: int, n: int = 100_000, nq: int = 1):
    import faiss

    codes, queries = make_data(bits, n, nq)
    index = HammingIndex(bits, threads=1)
    index.add(codes)
    fx = faiss.IndexBinaryFlat(bits)
    fx.add(codes)
    faiss.omp_set_num_threads(1)
    return index, fx, queries


def _make_bench_tests():
    import pytest

    @pytest.mark.parametrize("impl", ["ours", "faiss"])
    @pytest.mark.parametrize("bits", [16, 64, 128])
    def test_bench_knn(benchmark, bits, impl):
        index, fx, q = _bench_pair(bits)
        benchmark.group = f"knn {bits}-bit N=1e5 nq=1 k=100 1 thread"
        fn = (lambda: index.search(q, 100)) if impl == "ours" else (lambda: fx.search(q, 100))
        d = benchmark(fn)[0]
        assert np.array_equal(d, fx.search(q, 100)[0])

    @pytest.mark.parametrize("impl", ["ours", "faiss"])
    def test_bench_range(benchmark, impl):
        index, fx, q = _bench_pair(64, nq=10)
        benchmark.group = "range d<=10 64-bit N=1e5 nq=10 1 thread"
        fn = (lambda: index.range_search(q, 10)) if impl == "ours" else (lambda: fx.range_search(q, 11))
        lims = benchmark(fn)[0]
        assert np.array_equal(lims, fx.range_search(q, 11)[0])

    return test_bench_knn, test_bench_range


try:  # only meaningful under pytest (with pytest-benchmark); the script does not need it
    test_bench_knn, test_bench_range = _make_bench_tests()
except ImportError:  # pragma: no cover
    pass

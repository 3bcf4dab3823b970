"""Encoder benchmarks: backend latency, decode throughput, end-to-end videos/s, peak memory.

    python -m pytest benchmarks/bench_encoder.py --benchmark-only    # pytest-benchmark suite
    python benchmarks/bench_encoder.py                               # side-by-side, prints ratios

The model is a default-sized CHAIN (ChainConfig defaults: 64 bits, T=25, 4 blocks of width 256)
on the real EfficientNet-Lite0 backbone, with seeded untrained weights (speed does not depend
on training), exported once through the model cache. Clips: ten-second 720p H.264 cuts of the
Big Buck Bunny film (bbb.mp4, re-encoded by the static ffmpeg of imageio-ffmpeg).
Every comparison runs its peers interleaved in one process and reports ratios: absolute
numbers on a shared 2-core machine drift, ratios much less.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from chain_sdk import data

CLIP_STARTS = (20, 45, 70, 95, 120, 145, 170, 195)  # seconds into the film (training half)


def bench_model() -> Path:
    import torch

    from chain_sdk.export.onnx_export import export_cached
    from chain_sdk.nn.checkpoint import save_checkpoint
    from chain_sdk.nn.chain import ChainConfig, ChainModel

    torch.manual_seed(0)
    ckpt = Path(tempfile.mkdtemp()) / "bench-default-size"
    save_checkpoint(ckpt, ChainModel(ChainConfig()), training={"note": "untrained, speed only"})
    return export_cached(ckpt)


def ten_second_clips(n: int = len(CLIP_STARTS)) -> list[Path]:
    import imageio_ffmpeg

    out = data.cache_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    film = data.path("bbb.mp4")
    clips = []
    for start in CLIP_STARTS[:n]:
        clip = out / f"bbb_{start:03d}s_10s_720p.mp4"
        if not clip.is_file():  # re-encoded: a stream copy would start mid-GOP behind an edit list
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-ss", str(start),
                            "-i", str(film), "-t", "10", "-an", "-c:v", "libx264", "-preset", "veryfast",
                            "-crf", "23", str(clip)], check=True)
        clips.append(clip)
    return clips


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------- pytest-benchmark

def _fixtures():
    import pytest

    @pytest.fixture(scope="module")
    def model():
        return bench_model()

    @pytest.fixture(scope="module")
    def clips():
        return ten_second_clips(4)

    return model, clips


try:
    import pytest

    model, clips = _fixtures()

    @pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
    @pytest.mark.parametrize("batch", [1, 16])
    def test_temporal_latency(benchmark, model, backend, batch):
        from chain_sdk.backends import create_backend

        b = create_backend(backend, model / "temporal.onnx")
        x = np.random.default_rng(0).standard_normal((batch, 25, 1280)).astype(np.float32)
        benchmark(b.run, {"features": x})

    @pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
    def test_backbone_latency_16_frames(benchmark, model, backend):
        from chain_sdk.backends import create_backend

        b = create_backend(backend, model / "backbone.onnx")
        x = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)
        benchmark.pedantic(b.run, args=({"frames": x},), rounds=3, iterations=1)

    @pytest.mark.parametrize("crop_borders", [False, True])
    def test_decode_sample_clip(benchmark, clips, crop_borders):
        from chain_sdk.video import sample_clip

        benchmark.pedantic(lambda: [sample_clip(c, 25, resize=(224, 224), crop_borders=crop_borders)
                                    for c in clips], rounds=3)

    def test_encode_batch_end_to_end(benchmark, model, clips):
        from chain_sdk.encoder import Encoder

        enc = Encoder(model, backend="onnxruntime")
        benchmark.pedantic(enc.encode_batch, args=(clips,), kwargs={"progress": False}, rounds=1)
except ImportError:  # running as a script without pytest
    pass


# ---------------------------------------------------------------------- side by side

def backend_latency(model: Path, repeat: int) -> None:
    from chain_sdk.backends import create_backend

    print("\n== backend latency, median seconds per call (same inputs, interleaved) ==")
    print(f"{'graph':10s} {'batch':>5s} {'onnxruntime':>12s} {'torch':>10s} {'torch/ort':>10s}")
    rng = np.random.default_rng(0)
    cases = [("temporal", b, {"features": rng.standard_normal((b, 25, 1280)).astype(np.float32)}) for b in (1, 16)]
    cases += [("backbone", b, {"frames": rng.integers(0, 256, (b, 224, 224, 3), dtype=np.uint8)}) for b in (1, 16)]
    for role, batch, inputs in cases:
        backends = {k: create_backend(k, model / f"{role}.onnx") for k in ("onnxruntime", "torch")}
        for b in backends.values():
            b.run(inputs)  # warm-up
        times = {k: [] for k in backends}
        reps = repeat if role == "temporal" else max(2, repeat // 10)
        for _ in range(reps):
            for k, b in backends.items():
                t = time.perf_counter()
                b.run(inputs)
                times[k].append(time.perf_counter() - t)
        ort, tor = (statistics.median(times[k]) for k in ("onnxruntime", "torch"))
        print(f"{role:10s} {batch:5d} {ort:12.4f} {tor:10.4f} {tor / ort:10.2f}")
    try:
        create_backend("tensorrt", model / "chain.onnx")
    except Exception as exc:
        print(f"tensorrt: not measured ({type(exc).__name__}: {str(exc)[:100]})")


def throughput(model: Path, clips: list[Path], rounds: int = 2) -> None:
    from chain_sdk.encoder import Encoder

    enc = Encoder(model, backend="onnxruntime", graphs="split")
    fused = Encoder(model, backend="onnxruntime", graphs="fused")
    enc.encode(clips[0])  # warm-up both
    fused.encode(clips[0])
    n = len(clips)
    with ThreadPoolExecutor(enc.decode_workers) as pool:
        t = time.perf_counter()
        sampled = list(pool.map(enc.sample, clips))
        decode = time.perf_counter() - t
    stacked = np.stack(sampled)
    t = time.perf_counter()
    for i in range(0, n, enc.batch_size):
        enc.encode_clips(stacked[i:i + enc.batch_size])
    infer_split = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, n, fused.batch_size):
        fused.encode_clips(stacked[i:i + fused.batch_size])
    infer_fused = time.perf_counter() - t
    # encode_batch decodes up to 2 batches ahead in its pool while the main thread runs inference:
    # with batches of 2, inference of batch k overlaps decoding of batches k + 1 and k + 2.
    small = Encoder(model, backend="onnxruntime", graphs="split", batch_size=2)
    small.encode(clips[0])
    serial, e2e = [], []
    for _ in range(rounds):  # interleaved: decode all, then infer (no overlap) / encode_batch
        t = time.perf_counter()
        with ThreadPoolExecutor(small.decode_workers) as pool:
            again = np.stack(list(pool.map(small.sample, clips)))
        for i in range(0, n, small.batch_size):
            small.encode_clips(again[i:i + small.batch_size])
        serial.append(time.perf_counter() - t)
        t = time.perf_counter()
        small.encode_batch(clips, progress=False)
        e2e.append(time.perf_counter() - t)
    print(f"\n== {n} ten-second 720p clips, T=25, onnxruntime CPU ({enc.decode_workers} decode threads) ==")
    print(f"decode+sample only      {n / decode:8.2f} videos/s")
    print(f"inference only (split) {n / infer_split:8.2f} videos/s")
    print(f"inference only (fused) {n / infer_fused:8.2f} videos/s   fused/split time {infer_fused / infer_split:.2f}")
    print(f"end to end (split)     {n / statistics.median(e2e):8.2f} videos/s")
    print("encode_batch(batch_size=2) / (decode all, then infer), interleaved rounds: "
          + ", ".join(f"{e:.1f}/{s:.1f} s = {e / s:.2f}" for e, s in zip(e2e, serial))
          + f" (1.0 = no overlap; {infer_split / (decode + infer_split):.2f} = perfect overlap)")
    print(f"end-to-end time / decode-only time     = {statistics.median(e2e) / decode:.1f}")


def stream_overlap(model: Path, clips: list[Path], window: float = 4.0, hop: float = 2.0) -> None:
    """`Encoder.stream` (windows decoded in a thread ahead of inference) against the same work
    done one window after the other in one thread (decode a window, then its backbone on the
    frames not seen before and the temporal graph), interleaved clip by clip."""
    from collections import OrderedDict

    from chain_sdk.encoder import Encoder
    from chain_sdk.video import sample_windows

    enc = Encoder(model, backend="onnxruntime")
    enc.encode(clips[0])  # warm-up

    def windows(clip):
        return sample_windows(clip, enc.frames, window, hop, resize=enc.input_size,
                              crop_borders=enc.crop_borders)

    t = {"decode": 0.0, "serial": 0.0, "stream": 0.0, "windows": 0}
    for clip in clips:
        start = time.perf_counter()
        t["windows"] += sum(1 for _ in windows(clip))
        t["decode"] += time.perf_counter() - start
        start = time.perf_counter()
        shared: OrderedDict = OrderedDict()
        serial = [enc._temporal_code(enc._shared_features(w.frames, shared)) for w in windows(clip)]
        t["serial"] += time.perf_counter() - start
        start = time.perf_counter()
        streamed = [seg.code for seg in enc.stream(clip, window, hop)]
        t["stream"] += time.perf_counter() - start
        assert np.array_equal(np.stack(serial), np.stack(streamed))  # the same work
    infer = t["serial"] - t["decode"]
    print(f"\n== stream(window={window}, hop={hop}) over {len(clips)} clips, {t['windows']} windows ==")
    print(f"decode only {t['decode']:.2f} s, serial decode+infer {t['serial']:.2f} s "
          f"(inference {infer:.2f} s), stream (decode ahead) {t['stream']:.2f} s: "
          f"stream/serial {t['stream'] / t['serial']:.2f} "
          f"({max(t['decode'], infer) / t['serial']:.2f} = perfect overlap)")


def letterboxed(clips: list[Path]) -> list[Path]:
    """The clips squeezed to 75 % height between black bars (the demo's letterbox copy)."""
    from chain_sdk.cli import make_copy

    return [make_copy(c, c.with_name(c.stem + "_letterbox.mp4"), "letterbox") for c in clips]


def bar_crop_cost(clips: list[Path], rounds: int = 3) -> None:
    """Sampling with and without the black-bar crop, interleaved clip by clip: on clips without
    bars (every frame proves it, no work copy) and on letterboxed copies (work copies + crop)."""
    from chain_sdk.video import sample_clip

    print(f"\n== sample_clip, 25 frames of {len(clips)} ten-second 720p clips, median of {rounds} rounds ==")
    for label, videos in (("no bars", clips), ("letterboxed", letterboxed(clips))):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for clip in videos:
                for crop in (False, True):
                    t = time.perf_counter()
                    sample_clip(clip, 25, resize=(224, 224), crop_borders=crop)
                    times[crop].append(time.perf_counter() - t)
        off, on = (statistics.median(times[k]) for k in (False, True))
        print(f"{label:12s} crop_borders off {off:.3f} s   on {on:.3f} s   on/off {on / off:.2f}")


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: Linux carries it across
    exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_child(model: str, what: str) -> None:
    from chain_sdk.encoder import Encoder
    from chain_sdk.video import open_video, sampling

    enc = Encoder(model, backend="onnxruntime")
    enc.encode(data.path("carphone.mp4"))  # warm: sessions and arenas allocated
    base = _rss_mb("VmHWM")
    t = time.perf_counter()
    if what == "opencv-seq":
        sampling.SEEK_MIN_STRIDE = 10**9  # force the grab() pass over all 14,315 frames
    enc.encode(open_video(data.path("bbb.mp4"), decoder="pyav" if what == "pyav" else "opencv"))
    peak = _rss_mb("VmHWM")
    print(f"{what} {base:.0f} {peak:.0f} {time.perf_counter() - t:.1f}")


def peak_memory(model: Path) -> None:
    print("\n== encode(bbb.mp4): the 10-minute 720p film (14,315 frames), fresh process each ==")
    print(f"{'sampling':12s} {'peak MB before':>14s} {'peak MB':>8s} {'seconds':>8s}")
    for what in ("pyav", "opencv-seek", "opencv-seq"):  # PyAV's selective decoding, OpenCV's two paths
        out = subprocess.run([sys.executable, __file__, "--child", str(model), what],
                             capture_output=True, text=True, check=True).stdout.split()
        print(f"{out[0]:12s} {out[1]:>14s} {out[2]:>8s} {out[3]:>8s}")
    print("(the film decoded whole would be 14,315 x 2.76 MB = 39.5 GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=[], choices=["latency", "throughput", "stream", "crop", "memory"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _peak_rss_child(*args.child)
    model = bench_model()
    print(f"model: {model}")
    if "latency" not in args.skip:
        backend_latency(model, args.repeat)
    if "throughput" not in args.skip:
        throughput(model, ten_second_clips(args.clips))
    if "stream" not in args.skip:
        stream_overlap(model, ten_second_clips(args.clips)[:4])
    if "crop" not in args.skip:
        bar_crop_cost(ten_second_clips(args.clips))
    if "memory" not in args.skip:
        peak_memory(model)


if __name__ == "__main__":
    main()

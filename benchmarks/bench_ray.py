"""ray_encode throughput against the in-process Encoder.encode_batch on the same videos.

    python benchmarks/bench_ray.py [--repeats 3] [--copies 4] [--frames 25]

Local Ray on this machine (ray.init(num_cpus=2)), the packaged default model (onnxruntime CPU),
the sample clips (bikes 640x272, carphone QCIF, cityCC0 MPEG-1), each listed `copies` times. Peers,
interleaved in every repeat: encode_batch in this process (2 backend threads), ray_encode with 1
actor (2 threads) and with 2 actors (1 thread each), both with num_cpus=0.5 per actor so the
tasks feeding them are not starved. Ray times are end to end (actor start and model load
included), as a job sees them. This shows the shape of the scaling on one 2-core box (the
overhead of Ray and whether two actors split the cores usefully), not cluster throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time

from chain_sdk import data
from chain_sdk.distributed import ray_encode
from chain_sdk.encoder import Encoder
from chain_sdk.models import resolve_model

CLIPS = ("bikes.mp4", "carphone.mp4", "cityCC0.mpg")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--frames", type=int, help="frames per clip (default: the model's)")
    args = p.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    model = resolve_model(None)
    videos = [str(data.path(name)) for name in CLIPS] * args.copies
    options = {"backend": "onnxruntime"} | ({"frames": args.frames} if args.frames else {})
    encoder = Encoder(model, threads=2, **options)
    reference = {v: c.tobytes() for v, c in zip(videos, encoder.encode_batch(videos, progress=False).codes)}

    def in_process():
        encoder.encode_batch(videos, progress=False)

    def on_ray(actors: int, threads: int):
        def go():
            rows = ray_encode(videos, model, actors=actors, batch_size=2, threads=threads, **options).take_all()
            assert all(r["code"] == reference[r["video"]] for r in rows) and len(rows) == len(videos)
        return go

    peers = {"encode_batch (in process)": in_process, "ray_encode, 1 actor": on_ray(1, 2),
             "ray_encode, 2 actors": on_ray(2, 1)}
    times: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(args.repeats):
        for name, fn in peers.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    print(f"\n{len(videos)} videos, {encoder.frames} frames each, {args.repeats} repeats; "
          "videos/s median [min, max], ratio to encode_batch per repeat")
    print("| peer | videos/s | ratio |\n|---|---|---|")
    base = times["encode_batch (in process)"]
    for name, ts in times.items():
        vps = [len(videos) / t for t in ts]
        ratio = [b / t for b, t in zip(base, ts)]
        print(f"| {name} | {statistics.median(vps):.2f} [{min(vps):.2f}, {max(vps):.2f}] | "
              f"{statistics.median(ratio):.2f} [{min(ratio):.2f}, {max(ratio):.2f}] |")
    ray.shutdown()


if __name__ == "__main__":
    main()

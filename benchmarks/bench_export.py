"""onnxruntime-CPU vs torch-eager latency of the fused chain graph (frames -> code), side by side.

One process, same weights, interleaved calls (so machine load hits both alike), medians.
Both run with the same thread count (default 1: shared CI CPUs; torch's pool degrades badly when
oversubscribed). Prints a table with the ORT/torch ratio. Uses a seeded random temporal model;
the CNN (which dominates the cost) has the real ImageNet weights.

    python benchmarks/bench_export.py [--batches 1 16] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import onnxruntime as ort

    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.nn.graphs import FusedChainGraph
    from chain_sdk.export.onnx_export import export_model
    from chain_sdk.nn.checkpoint import load_checkpoint, save_checkpoint
    from chain_sdk.nn.chain import ChainConfig, ChainModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp) / "ckpt", ChainModel(ChainConfig()).eval())
        model_dir = export_model(Path(tmp) / "ckpt", Path(tmp) / "model", graphs=("chain",))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(model_dir / "chain.onnx"), options, providers=["CPUExecutionProvider"])
        model, _ = load_checkpoint(Path(tmp) / "ckpt")
        fused = FusedChainGraph(get_backbone(), model).eval()
        print(f"{'batch':>5} {'torch ms':>10} {'ORT ms':>10} {'ORT/torch':>10}   (threads={args.threads}, "
              f"{args.repeats} interleaved runs, median)")
        for batch in args.batches:
            frames = np.random.default_rng(batch).integers(0, 256, (batch, 25, 224, 224, 3), dtype=np.uint8)
            x = torch.from_numpy(frames)
            with torch.inference_mode():
                ref = fused(x)[0].numpy()
            assert (sess.run(["code"], {"frames": frames})[0] == ref).all(), "ORT and torch disagree"
            t_torch, t_ort = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                with torch.inference_mode():
                    fused(x)
                t_torch.append(time.perf_counter() - start)
                start = time.perf_counter()
                sess.run(["code"], {"frames": frames})
                t_ort.append(time.perf_counter() - start)
            a, b = statistics.median(t_torch) * 1e3, statistics.median(t_ort) * 1e3
            print(f"{batch:>5} {a:>10.1f} {b:>10.1f} {b / a:>10.2f}")


if __name__ == "__main__":
    main()

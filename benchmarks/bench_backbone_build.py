"""The numpy-built backbone.onnx (chain_sdk.onnxbuild) against torch's dynamo export of the same
EfficientNet-Lite0 (luma): time to make the graph, and onnxruntime time per frame batch.

    python benchmarks/bench_backbone_build.py [--repeats 5]

Both graphs run interleaved in one process on the same 48 real frames (12 per sample clip,
bars cropped, 224x224), one onnxruntime session each with the same options as the Encoder's;
the ratios are what to read (absolute numbers on a shared 2-core VM drift).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from chain_sdk import data
    from chain_sdk.backends.onnxruntime import OnnxRuntimeBackend
    from chain_sdk.export.onnx_export import export_graph
    from chain_sdk.nn.backbones import get_backbone
    from chain_sdk.nn.graphs import BackboneGraph
    from chain_sdk.onnxbuild import build_backbone, save_model
    from chain_sdk.video import sample_clip

    name = "efficientnet_lite0_luma"
    t = time.perf_counter()
    built = build_backbone(name)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        exported = export_graph(BackboneGraph(get_backbone(name)), torch.zeros(2, 224, 224, 3, dtype=torch.uint8),
                                {0: torch.export.Dim("batch", min=1, max=4096)}, 20, "frames", ["features"])
    export_s = time.perf_counter() - t
    print(f"make the graph: numpy+onnx {build_s:.2f} s, torch dynamo export {export_s:.2f} s "
          f"(export/build {export_s / build_s:.1f}x)")

    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    sessions = {k: OnnxRuntimeBackend(save_model(p, tmp / f"{k}.onnx")) for k, p in
                (("numpy-built", built), ("torch-exported", exported))}
    frames = np.concatenate([sample_clip(data.path(n), 12, resize=(224, 224), crop_borders=True).frames
                             for n in data.SMALL_CLIPS])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    outputs = {}
    for _ in range(args.repeats):
        for key, backend in sessions.items():  # interleaved: drift hits both
            t = time.perf_counter()
            outputs[key] = backend.run({"frames": frames})["features"]
            times[key].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: (min(v), max(v)) for k, v in times.items()}
    for key in sessions:
        print(f"{key:15s} {len(frames)} frames: median {med[key] * 1e3:7.1f} ms "
              f"(min {spread[key][0] * 1e3:.1f}, max {spread[key][1] * 1e3:.1f}, {args.repeats} runs)")
    print(f"numpy-built / torch-exported time: {med['numpy-built'] / med['torch-exported']:.2f}x; "
          f"max |feature difference| {np.abs(outputs['numpy-built'] - outputs['torch-exported']).max():.2e} "
          f"(features up to {np.abs(outputs['torch-exported']).max():.2f})")


if __name__ == "__main__":
    main()

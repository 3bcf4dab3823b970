"""torch eager backend: runs the same graph modules that were exported (chain_sdk.export.graphs),
built from the checkpoint a model directory keeps under `checkpoint/`. For parity checks against
the exported graphs and for debugging; needs the `export` extra (torch + the backbone weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from chain_sdk.backends.base import Backend, parse_device
from chain_sdk.errors import BackendUnavailableError, ModelError


class TorchBackend(Backend):
    """The torch module of one graph of a model directory, rebuilt from its `checkpoint/`:
    `graph_path` names the graph (`MODEL/chain.onnx`; its stem is the role: backbone, temporal
    or chain) whether or not the ONNX file itself exists."""

    name = "torch"

    def __init__(self, graph_path: str | os.PathLike, *, device: str | None = None,
                 threads: int | None = None) -> None:
        model_dir, role = Path(graph_path).parent, Path(graph_path).stem
        if role not in ("backbone", "temporal", "chain"):
            raise ModelError(f"{graph_path}: not a graph of a model directory (backbone, temporal or chain)")
        kind, index = parse_device(device)
        try:
            import torch

            from chain_sdk.nn import graphs
            from chain_sdk.nn.backbones import get_backbone
            from chain_sdk.nn.checkpoint import load_checkpoint
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the torch backend needs torch and the export code ({exc}); "
                "pip install 'chain-video-hash[export]'") from exc
        from chain_sdk.contract import read_model_dir

        contract = read_model_dir(model_dir)
        checkpoint = Path(model_dir) / "checkpoint"
        if not checkpoint.is_dir():
            raise ModelError(f"{model_dir}: no checkpoint/ directory, so torch cannot rebuild the model")
        dev = torch.device(f"cuda:{index}" if kind == "cuda" else "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch has no usable CUDA device here")
        if threads:
            torch.set_num_threads(threads)  # process-wide in torch, unlike ORT's per-session threads
        model, _ = load_checkpoint(checkpoint)
        if role == "temporal":
            module = graphs.TemporalGraph(model)
        else:
            backbone = get_backbone(contract.backbone, color_order=contract.color_order)
            if role == "backbone":
                module = graphs.BackboneGraph(backbone)
            else:
                module = graphs.FusedChainGraph(backbone, model)
        self._torch = torch
        self._module = module.to(dev).eval()
        self._device = dev
        self.device = "cpu" if dev.type == "cpu" else f"cuda:{index}"
        self.role = role
        self._inputs = list(module.input_names)
        self._outputs = list(module.output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_inputs(inputs)
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self._device) for n in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        out = out if isinstance(out, tuple) else (out,)
        return {n: t.cpu().numpy() for n, t in zip(self._outputs, out)}

    def close(self) -> None:
        self._module = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TorchBackend(role={self.role!r}, device={str(self._device)!r})"

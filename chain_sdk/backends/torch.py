"""torch eager backend: runs the same graph modules that were exported (chain_sdk.export.graphs),
built from the checkpoint a model directory keeps under `checkpoint/`. For parity checks against
the exported graphs and for debugging; needs the `export` extra (torch + the backbone weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from chain_sdk.backends.base import Backend
from chain_sdk.errors import BackendUnavailableError, ModelError


class TorchBackend(Backend):
    """The torch module of one graph role ("backbone", "temporal" or "chain") of a model dir."""

    name = "torch"

    def __init__(self, model_dir: str | os.PathLike, role: str, *, device: str | None = None,
                 threads: int | None = None) -> None:
        try:
            import torch

            from chain_sdk.export import graphs
            from chain_sdk.export.backbones import get_backbone
            from chain_sdk.train.checkpoint import load_checkpoint
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the torch backend needs torch and the export code ({exc}); "
                "pip install 'chain-video-hash[export]'") from exc
        from chain_sdk.contract import read_model_dir

        contract = read_model_dir(model_dir)
        checkpoint = Path(model_dir) / "checkpoint"
        if not checkpoint.is_dir():
            raise ModelError(f"{model_dir}: no checkpoint/ directory, so torch cannot rebuild the model")
        dev = torch.device(device or "cpu")
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
            elif role == "chain":
                module = graphs.FusedChainGraph(backbone, model)
            else:
                raise ValueError(f"unknown graph role {role!r}")
        self._torch = torch
        self._module = module.to(dev).eval()
        self._device = dev
        self.role = role
        self._inputs = list(module.input_names)
        self._outputs = list(module.output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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

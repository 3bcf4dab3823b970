"""`Encoder`: video in, packed binary code out.

    enc = Encoder()                                  # the packaged default model, best backend
    code = enc.encode("clip.mp4")                    # uint8 [bits/8], MSB-first
    result = enc.encode_batch(paths)                 # BatchResult: .codes uint8 [M, bits/8], .indices, .failures
    for seg in enc.stream("rtsp://cam/1", window=10, hop=5):
        print(seg.start, seg.end, seg.code)

Pipeline: T frames per video at segment centres (chain_sdk.video.sample_clip), cropped to the
picture inside any black bars the clip has (letterbox, pillarbox; chain_sdk.video.borders) and
resized on the host to the model's input size with INTER_AREA, as uint8 NHWC; colour conversion
and normalisation are inside the graphs. Decoding runs in a thread pool (OpenCV releases the GIL)
ahead of inference, so the backend is fed while the next videos decode.

Graphs: "split" runs backbone.onnx on frame chunks then temporal.onnx on [B, T, D] (frames of
several videos share one backbone batch, chunk size independent of T); "fused" runs chain.onnx
on [B, T, H, W, 3]. Both give the same codes. On the 2-core development CPU fused took 0.99x
and 1.33x the time of split in two runs of benchmarks/bench_encoder.py (8 ten-second 720p clips),
so "auto" takes "split" where both exist; a one-engine TensorRT deployment may prefer "fused".
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.contract import ModelContract, check_onnx_metadata, read_model_dir
from chain_sdk.errors import ChainSDKError, ModelMismatchError
from chain_sdk.models import resolve_model
from chain_sdk.video import sample_clip, sample_windows

log = logging.getLogger(__name__)

ON_ERROR = ("collect", "raise")
FRAME_CHUNK = 64  # backbone batch in split mode: bounds activation memory whatever B * T is


class Segment(NamedTuple):
    """One window of a stream: [start, end) in seconds of the source and its code."""

    start: float
    end: float
    code: np.ndarray


class Failure(NamedTuple):
    index: int  # type: ignore[assignment]  # position in the input sequence (shadows tuple.index)
    source: str
    error: BaseException


class BatchResult(NamedTuple):
    """What `encode_batch` returns: codes of the videos that worked, their input positions, and
    what failed (empty when everything worked)."""

    codes: np.ndarray  # uint8 [M, bits/8]
    indices: np.ndarray  # int64 [M]
    failures: list[Failure]


def describe(video: Any) -> str:
    if isinstance(video, np.ndarray):
        return f"<array {video.shape} {video.dtype}>"
    if isinstance(video, (str, os.PathLike, int)):
        return str(video)
    return f"<{type(video).__name__}>"


class Encoder:
    """Turns videos into packed codes with one model directory and one backend.

    model: None (packaged default), a model directory, or a checkpoint directory.
    backend: "auto" | "onnxruntime" | "tensorrt" | "torch"; device: None (auto), "cpu", "cuda[:N]".
    frames: clip length T (default: the model's); any 1..model frames works.
    threads: intra-op threads of the backend (default: the available cores).
    graphs: "auto" | "split" | "fused" (see the module docstring).
    decode_workers: decoder threads for encode_batch (default: min(4, cores)).
    crop_borders: crop black bars shared by all frames of a clip before resizing, so a
        letterboxed or pillarboxed copy hashes like its original (off: the whole frame).
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto",
                 device: str | None = None, batch_size: int = 16, frames: int | None = None,
                 threads: int | None = None, graphs: str = "auto",
                 decode_workers: int | None = None, crop_borders: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_dir = resolve_model(model)
        self.contract: ModelContract = read_model_dir(self.model_dir)
        c = self.contract
        self.frames = c.frames if frames is None else frames  # frames=0 is an error, not the default
        if not 1 <= self.frames <= c.frames:
            raise ModelMismatchError(f"frames={self.frames}: this model takes 1..{c.frames} frames per clip")
        self.bits, self.batch_size = c.bits, batch_size
        self.input_size = (c.input_width, c.input_height)  # (W, H), cv2.resize order
        self.crop_borders = crop_borders
        self.mode = self._choose_graphs(graphs)
        from chain_sdk.backends import create_backend

        self._backends = {}
        for role in (("backbone", "temporal") if self.mode == "split" else ("chain",)):
            path = c.graph_path(role)
            if path.suffix == ".onnx":
                check_onnx_metadata(path, c)  # refuses a graph whose contract disagrees
            self._backends[role] = create_backend(backend, path, device=device, threads=threads)
        self._check_io()
        from chain_sdk.backends.base import available_cores

        self.decode_workers = decode_workers or min(4, available_cores())
        log.debug("Encoder(%s): %d bits, T=%d, %s graphs on %s", self.model_dir, self.bits,
                 self.frames, self.mode, self.backend_names)

    # ------------------------------------------------------------------ setup

    def _choose_graphs(self, graphs: str) -> str:
        have = set(self.contract.graphs)
        split_ok, fused_ok = {"backbone", "temporal"} <= have, "chain" in have
        if graphs == "auto":
            graphs = "split" if split_ok else "fused"
        if graphs not in ("split", "fused"):
            raise ValueError(f"graphs must be 'auto', 'split' or 'fused', got {graphs!r}")
        if (graphs == "split" and not split_ok) or (graphs == "fused" and not fused_ok):
            raise ModelMismatchError(f"{self.model_dir}: no {graphs} graphs (has {sorted(have)})")
        return graphs

    def _check_io(self) -> None:
        expected = ({"backbone": (["frames"], "features"), "temporal": (["features"], "code")}
                    if self.mode == "split" else {"chain": (["frames"], "code")})
        for role, (inputs, output) in expected.items():
            b = self._backends[role]
            if b.input_names != inputs or output not in b.output_names:
                raise ModelMismatchError(
                    f"{role} graph has inputs {b.input_names} and outputs {b.output_names}; "
                    f"expected inputs {inputs} and an output {output!r}")

    @property
    def backend_names(self) -> dict[str, str]:
        return {role: repr(b) for role, b in self._backends.items()}

    def close(self) -> None:
        for b in self._backends.values():
            b.close()

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ core

    def sample(self, video: Any) -> np.ndarray:
        """The clip the model sees: uint8 [T, H, W, 3] BGR at the model's input size."""
        return sample_clip(video, self.frames, resize=self.input_size,
                           crop_borders=self.crop_borders).frames

    def encode_clips(self, clips: np.ndarray) -> np.ndarray:
        """Codes of prepared clips uint8 [B, T, H, W, 3] (already at the input size)."""
        return self.run_clips(clips)["code"]

    def run_clips(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs ("code" uint8 [B, bits/8], "logits" float32 [B, bits]) for prepared clips."""
        clips = np.ascontiguousarray(clips)
        w, h = self.input_size
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[2:] != (h, w, 3):
            raise ModelMismatchError(f"clips must be uint8 [B, T, {h}, {w}, 3], got {clips.dtype} {clips.shape}")
        if self.mode == "fused":
            return self._backends["chain"].run({"frames": clips})
        b, t = clips.shape[:2]
        flat = clips.reshape(b * t, h, w, 3)
        features = np.concatenate([
            self._backends["backbone"].run({"frames": flat[i:i + FRAME_CHUNK]})["features"]
            for i in range(0, len(flat), FRAME_CHUNK)])
        return self._backends["temporal"].run({"features": features.reshape(b, t, -1)})

    def encode(self, video: Any) -> np.ndarray:
        """Code of one video (anything `chain_sdk.video.open_video` takes): uint8 [bits/8]."""
        return self.encode_clips(self.sample(video)[None])[0]

    # ------------------------------------------------------------------ batches

    def encode_batch(self, videos: Iterable[Any], on_error: str = "collect",
                     progress: bool = True) -> BatchResult:
        """Codes of many videos, in input order, decoding ahead of inference.

        Always returns a BatchResult: the codes uint8 [M, bits/8] of the videos that worked,
        their input positions, and the failures (index, source, typed error), so a bad file
        never sinks the batch. on_error="raise" raises the first failure instead (pending
        decodes are cancelled). ("skip", the old name of "collect", still works.)
        """
        if on_error == "skip":
            warnings.warn('on_error="skip" is deprecated; "collect" does the same', DeprecationWarning,
                          stacklevel=2)
            on_error = "collect"
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        from tqdm.auto import tqdm

        items = list(videos)
        codes: list[np.ndarray] = []
        indices: list[int] = []
        failures: list[Failure] = []
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="chain-decode") as pool, \
                tqdm(total=len(items), unit="video", disable=not progress, desc="encode") as bar:
            batch: list[tuple[int, np.ndarray]] = []
            for index, video, result in self._decoded(pool, items):
                if isinstance(result, BaseException):
                    if on_error == "raise":
                        raise result
                    log.warning("skipping %s: %s", describe(video), result)
                    failures.append(Failure(index, describe(video), result))
                    bar.update(1)
                else:
                    batch.append((index, result))
                if len(batch) == self.batch_size:
                    self._flush(batch, codes, indices, bar)
            self._flush(batch, codes, indices, bar)
        stacked = np.stack(codes) if codes else np.zeros((0, self.bits // 8), np.uint8)
        return BatchResult(stacked, np.asarray(indices, dtype=np.int64), failures)

    def _decoded(self, pool: ThreadPoolExecutor, items: list[Any]) -> Iterator[tuple[int, Any, Any]]:
        """(index, video, clip or exception) in input order, keeping 2 batches decoding ahead."""
        ahead = max(2 * self.batch_size, self.decode_workers)
        pending: deque[tuple[int, Any, Future]] = deque()
        todo = iter(enumerate(items))
        try:
            while True:
                while len(pending) < ahead and (nxt := next(todo, None)) is not None:
                    pending.append((nxt[0], nxt[1], pool.submit(self.sample, nxt[1])))
                if not pending:
                    return
                index, video, future = pending.popleft()
                try:
                    yield index, video, future.result()
                except ChainSDKError as exc:
                    yield index, video, exc
                except Exception as exc:  # a decoder crash on one file must not lose the rest
                    yield index, video, ChainSDKError(f"{describe(video)}: {type(exc).__name__}: {exc}")
        finally:
            for _, _, future in pending:
                future.cancel()

    def _flush(self, batch: list[tuple[int, np.ndarray]], codes: list, indices: list, bar: Any) -> None:
        if not batch:
            return
        out = self.encode_clips(np.stack([clip for _, clip in batch]))
        codes.extend(out)
        indices.extend(i for i, _ in batch)
        bar.update(len(batch))
        batch.clear()

    # ------------------------------------------------------------------ streams

    def stream(self, source: Any, window: float = 10.0, hop: float = 5.0) -> Iterator[Segment]:
        """Codes of sliding windows [start, start + window) every `hop` seconds of a stream.

        Each window's T frames are the frames shown at its T segment centres (in time), the same
        rule (and the same bar crop) as `encode` on a clip of that window
        (`chain_sdk.video.sample_windows`: memory holds only the open windows' sampled frames).
        A stream shorter than one window yields one segment over what there was.
        """
        for clip in sample_windows(source, self.frames, window, hop, resize=self.input_size,
                                   crop_borders=self.crop_borders):
            yield Segment(clip.start, clip.end, self.encode_clips(clip.frames[None])[0])

    def __repr__(self) -> str:
        return f"Encoder({str(self.model_dir)!r}, bits={self.bits}, frames={self.frames}, {self.mode})"

"""`Encoder`: video in, packed binary code out.

    enc = Encoder()                                  # the packaged default model, best backend
    code = enc.encode("clip.mp4")                    # uint8 [bits/8], MSB-first
    result = enc.encode_batch(paths)                 # BatchResult: .codes uint8 [M, bits/8], .indices, .failures
    for seg in enc.stream("rtsp://cam/1", window=10, hop=5):
        print(seg.start, seg.end, seg.code)

Pipeline: T frames per video at segment centres (chain_sdk.video.sample_clip), cropped to the
picture inside any black bars the clip has (letterbox, pillarbox; chain_sdk.video.borders) and
resized on the host to the model's input size with INTER_AREA, as uint8 NHWC; colour conversion
and normalisation are inside the graphs. Files are decoded by PyAV, which decodes only the
packets the sampled frames depend on (chain_sdk/video/pyav.py; same frames, same codes as
decoding everything with OpenCV). Decoding runs in a thread pool (PyAV and OpenCV release the
GIL) ahead of inference in `encode_batch`, and in a thread ahead of inference in `stream`.

GPU path: `Encoder(device="cuda", decoder="nvdec")` decodes files with NVDEC
(chain_sdk/video/nvdec.py: the same frame indices, chosen from PyAV's packet index), resizes and
crops them with torch ops on the GPU (chain_sdk/video/tensor_fit.py) and hands the clip to
onnxruntime-CUDA (IOBinding) or TensorRT as a device tensor: no frame crosses to the host.
Streams (`stream`) and in-memory inputs still decode on the CPU.

Partly decodable videos (truncated, corrupt, a network stream that stalled past
`chain_sdk.video.source.STREAM_TIMEOUT_S`) are hashed from the frames that decode, with a
`PartialVideoWarning` from `encode` and `encode_batch` and an entry in `BatchResult.warnings`;
`Encoder(strict=True)` makes them errors (`PartialVideoError`, a failure in batch results).

Graphs: "split" runs backbone.onnx on frame chunks then temporal.onnx on [B, T, D] (frames of
several videos share one backbone batch, chunk size independent of T); "fused" runs chain.onnx
on [B, T, H, W, 3]. Both give the same codes. On the 2-core development CPU fused took 0.99x
and 1.33x the time of split in two runs of benchmarks/bench_encoder.py (8 ten-second 720p clips),
so "auto" takes "split" where both exist; a one-engine TensorRT deployment may prefer "fused".
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Full, Queue
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.contract import ModelContract, check_onnx_metadata, read_model_dir
from chain_sdk.errors import ChainSDKError, ModelMismatchError, PartialVideoError, PartialVideoWarning
from chain_sdk.models import resolve_model
from chain_sdk.video import sample_video, sample_windows
from chain_sdk.video.probes import CORNERS5, sample_probes

log = logging.getLogger(__name__)

ON_ERROR = ("collect", "raise")
FRAME_CHUNK = 64  # backbone batch in split mode on a GPU: bounds activation memory whatever B * T is
# On a CPU small batches keep the activations in cache: chunks of 4 frames took 0.91x the
# inference CPU time of 64 and 0.96x of the whole encode on the 2-core development VM, with the
# same codes (docs/decode_benchmark.md, run 4).
CPU_FRAME_CHUNK = 4
STREAM_AHEAD = 2  # windows `stream` decodes ahead of inference


class Segment(NamedTuple):
    """One window of a stream: [start, end) in seconds of the source and its code."""

    start: float
    end: float
    code: np.ndarray


class Failure(NamedTuple):
    index: int  # type: ignore[assignment]  # position in the input sequence (shadows tuple.index)
    source: str
    error: BaseException


class Warned(NamedTuple):
    index: int  # type: ignore[assignment]  # position in the input sequence
    source: str
    warning: PartialVideoWarning


class _Batch(NamedTuple):
    codes: np.ndarray  # uint8 [M, bits/8]
    indices: np.ndarray  # int64 [M]
    failures: list[Failure]


class BatchResult(_Batch):
    """What `encode_batch` returns: codes of the videos that worked, their input positions and
    what failed (`codes, indices, failures = result`), and as an attribute `warnings`, the partly
    decodable videos among those that worked (their input positions are also in `indices`)."""

    warnings: list[Warned]

    def __new__(cls, codes: np.ndarray, indices: np.ndarray, failures: list[Failure],
                warnings: list[Warned] | None = None) -> "BatchResult":
        self = super().__new__(cls, codes, indices, failures)
        self.warnings = list(warnings or [])
        return self


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
    decoder: "auto" | "pyav" | "opencv" for files (see `chain_sdk.video.open_video`), or "nvdec":
        decode files on the GPU of `device` and keep the clip there (needs the `nvdec` extra;
        `DecoderUnavailableError` at construction where it cannot run).
    crop_borders: crop black bars shared by all frames of a clip before resizing, so a
        letterboxed or pillarboxed copy hashes like its original (off: the whole frame).
    strict: a video that decodes only partly (truncated or corrupt file, a stream that stalled
        until the decoder's read timeout) raises `PartialVideoError` instead of being hashed
        from the frames that did decode with a `PartialVideoWarning` (see `encode`).
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto",
                 device: str | None = None, batch_size: int = 16, frames: int | None = None,
                 threads: int | None = None, graphs: str = "auto",
                 decode_workers: int | None = None, crop_borders: bool = True,
                 strict: bool = False, decoder: str = "auto") -> None:
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
        self.strict = strict
        self.decoder, self.decode_device = self._choose_decoder(decoder, device)
        self.mode = self._choose_graphs(graphs)
        from chain_sdk.backends import create_backend

        self._backends = {}
        for role in (("backbone", "temporal") if self.mode == "split" else ("chain",)):
            path = c.graph_path(role)
            if path.suffix == ".onnx":
                check_onnx_metadata(path, c)  # refuses a graph whose contract disagrees
            self._backends[role] = create_backend(backend, path, device=device, threads=threads)
        self._check_io()
        backbone = self._backends.get("backbone")
        self.frame_chunk = CPU_FRAME_CHUNK if backbone is not None and backbone.device == "cpu" else FRAME_CHUNK
        from chain_sdk.backends.base import available_cores

        self.decode_workers = decode_workers or min(4, available_cores())
        log.debug("Encoder(%s): %d bits, T=%d, %s graphs on %s", self.model_dir, self.bits,
                 self.frames, self.mode, self.backend_names)

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _choose_decoder(decoder: str, device: str | None) -> tuple[str, str | None]:
        """(decoder, device the clip is prepared on: None for the host)."""
        from chain_sdk.video.source import DECODERS

        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if decoder != "nvdec":
            return decoder, None
        from chain_sdk.backends.base import parse_device
        from chain_sdk.errors import DecoderUnavailableError
        from chain_sdk.video import nvdec

        kind, index = parse_device(device or "cuda")
        if kind != "cuda":
            raise DecoderUnavailableError(f"decoder='nvdec' decodes on a CUDA device; device={device!r}")
        nvdec.require()
        return decoder, f"cuda:{index}"

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
        clip, partial = self._sample(video)
        if partial:
            warnings.warn(partial, stacklevel=2)
        return clip

    def _sample(self, video: Any, regions: Any = None) -> tuple[np.ndarray, PartialVideoWarning | None]:
        """The clip (with `regions`: the probe clips of `sample_probes`, always decoded on the CPU),
        and the warning for a partly decodable video (raised when strict)."""
        if regions is not None:
            found = sample_probes(video, self.frames, self.input_size, regions, self.crop_borders)
        elif self.decoder != "auto" and isinstance(video, (str, os.PathLike)):
            from chain_sdk.video import open_video

            with open_video(video, decoder=self.decoder, device=self.decode_device or "cuda") as src:
                found = sample_video(src, self.frames, resize=self.input_size,
                                     crop_borders=self.crop_borders, device=self.decode_device)
        else:
            found = sample_video(video, self.frames, resize=self.input_size,
                                 crop_borders=self.crop_borders)
        if found.partial is None:
            return found.clip.frames, None
        if self.strict:
            raise PartialVideoError(describe(video), found.partial)
        return found.clip.frames, PartialVideoWarning(describe(video), found.partial)

    def encode_clips(self, clips: np.ndarray) -> np.ndarray:
        """Codes of prepared clips uint8 [B, T, H, W, 3] (already at the input size): a numpy
        array, or a torch tensor (on the backend's GPU: read there, no host copy)."""
        return self.run_clips(clips)["code"]

    def run_clips(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs ("code" uint8 [B, bits/8], "logits" float32 [B, bits]) for prepared clips."""
        clips = clips.contiguous() if _is_tensor(clips) else np.ascontiguousarray(clips)
        w, h = self.input_size
        if str(clips.dtype) not in ("uint8", "torch.uint8") or clips.ndim != 5 or tuple(clips.shape[2:]) != (h, w, 3):
            raise ModelMismatchError(f"clips must be uint8 [B, T, {h}, {w}, 3], got {clips.dtype} {clips.shape}")
        if self.mode == "fused":
            return self._backends["chain"].run({"frames": clips})
        b, t = clips.shape[:2]
        flat = clips.reshape(b * t, h, w, 3)
        features = self._backbone_features(flat)
        return self._backends["temporal"].run({"features": features.reshape(b, t, -1)})

    def _backbone_features(self, frames: np.ndarray) -> np.ndarray:
        """Backbone features [N, D] of frames [N, H, W, 3], `frame_chunk` frames per call."""
        run = self._backends["backbone"].run
        return np.concatenate([run({"frames": frames[i:i + self.frame_chunk]})["features"]
                               for i in range(0, len(frames), self.frame_chunk)])

    def encode(self, video: Any) -> np.ndarray:
        """Code of one video (anything `chain_sdk.video.open_video` takes): uint8 [bits/8].

        A video that decodes only partly is hashed from the frames that did decode, with a
        `PartialVideoWarning` (catch it with `warnings.catch_warnings(record=True)`, or turn it
        into an error with `warnings.simplefilter("error", PartialVideoWarning)`), unless the
        encoder is `strict`: then `PartialVideoError` is raised."""
        clip, partial = self._sample(video)
        if partial:
            warnings.warn(partial, stacklevel=2)
        return self.encode_clips(clip[None])[0]

    def encode_probes(self, video: Any, regions: Any = CORNERS5) -> np.ndarray:
        """Codes of a query and of crops of its picture, for query-side multi-probe
        (`chain_sdk.video.probes`): uint8 [1 + P, bits/8], row 0 exactly `encode(video)`, then one
        code per region (default the four quadrants and the centre half, `CORNERS5`). Search them together with
        `chain_sdk.index.search_probes`; the database keeps one `encode` code per video."""
        clips, partial = self._sample(video, regions)
        if partial:
            warnings.warn(partial, stacklevel=2)
        return self.encode_clips(clips)

    # ------------------------------------------------------------------ batches

    def encode_batch(self, videos: Iterable[Any], on_error: str = "collect",
                     progress: bool = True) -> BatchResult:
        """Codes of many videos, in input order, decoding ahead of inference.

        Always returns a BatchResult: the codes uint8 [M, bits/8] of the videos that worked,
        their input positions, the failures (index, source, typed error), so a bad file never
        sinks the batch, and as `warnings` the partly decodable videos among those that worked
        (index, source, PartialVideoWarning; each also issues its warning, and with `strict` it
        is a failure instead). on_error="raise" raises the first failure instead (pending
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
        warned: list[Warned] = []
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="chain-decode") as pool, \
                tqdm(total=len(items), unit="video", disable=not progress, desc="encode") as bar:
            # The bar moves per video as each one is decoded (or fails); the postfix counts the
            # videos whose codes are done, which arrive a batch at a time.
            batch: list[tuple[int, np.ndarray]] = []
            for index, video, result in self._decoded(pool, items):
                if isinstance(result, BaseException):
                    if on_error == "raise":
                        raise result
                    log.warning("skipping %s: %s", describe(video), result)
                    failures.append(Failure(index, describe(video), result))
                    bar.update(1)
                else:
                    clip, partial = result
                    if partial:
                        warnings.warn(partial, stacklevel=2)
                        warned.append(Warned(index, describe(video), partial))
                    batch.append((index, clip))
                    bar.update(1)
                if len(batch) == self.batch_size:
                    self._flush(batch, codes, indices, bar)
            self._flush(batch, codes, indices, bar)
        stacked = np.stack(codes) if codes else np.zeros((0, self.bits // 8), np.uint8)
        return BatchResult(stacked, np.asarray(indices, dtype=np.int64), failures, warned)

    def _decoded(self, pool: ThreadPoolExecutor, items: list[Any]) -> Iterator[tuple[int, Any, Any]]:
        """(index, video, clip or exception) in input order, keeping 2 batches decoding ahead."""
        ahead = max(2 * self.batch_size, self.decode_workers)
        pending: deque[tuple[int, Any, Future]] = deque()
        todo = iter(enumerate(items))
        try:
            while True:
                while len(pending) < ahead and (nxt := next(todo, None)) is not None:
                    pending.append((nxt[0], nxt[1], pool.submit(self._sample, nxt[1])))
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
        out = self.encode_clips(_stack([clip for _, clip in batch]))
        codes.extend(out)
        indices.extend(i for i, _ in batch)
        bar.set_postfix(hashed=len(codes), refresh=False)
        batch.clear()

    # ------------------------------------------------------------------ streams

    def stream(self, source: Any, window: float = 10.0, hop: float = 5.0) -> Iterator[Segment]:
        """Codes of sliding windows [start, start + window) every `hop` seconds of a stream.

        Each window's T frames are the frames shown at its T segment centres (in time), the same
        rule (and the same bar crop) as `encode` on a clip of that window
        (`chain_sdk.video.sample_windows`: memory holds only the open windows' sampled frames).
        A stream shorter than one window yields one segment over what there was.

        With split graphs a frame that overlapping windows share goes through the backbone once
        (frames are recognised by content, so a bar crop that differs between windows is
        honoured): with hop a multiple of window / T, every frame is shared and the backbone runs
        at T / window frames per second of stream instead of T / hop.
        Decoding runs in a thread ahead of inference (up to `STREAM_AHEAD` finished windows), so
        the backend works while the next window decodes.
        """
        shared: OrderedDict[bytes, np.ndarray] | None = OrderedDict() if self.mode == "split" else None
        windows = sample_windows(source, self.frames, window, hop, resize=self.input_size,
                                 crop_borders=self.crop_borders)
        for clip in _prefetch(windows, STREAM_AHEAD):
            if shared is None:
                code = self.encode_clips(clip.frames[None])[0]
            else:
                code = self._temporal_code(self._shared_features(clip.frames, shared))
            yield Segment(clip.start, clip.end, code)

    def _shared_features(self, frames: np.ndarray, shared: OrderedDict) -> np.ndarray:
        """Backbone features [T, D] of a window's frames, reusing those of identical frames of
        recent windows (`shared`: frame digest -> feature, the last 4 T frames)."""
        keys = [hashlib.blake2b(np.ascontiguousarray(f).data, digest_size=16).digest() for f in frames]
        todo = list(dict.fromkeys(k for k in keys if k not in shared))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            batch = frames[[first[k] for k in todo]]
            out = self._backbone_features(batch)
            shared.update(zip(todo, out))
            while len(shared) > 4 * self.frames:
                shared.popitem(last=False)
        return np.stack([shared[k] for k in keys])

    def _temporal_code(self, features: np.ndarray) -> np.ndarray:
        return self._backends["temporal"].run({"features": features[None]})["code"][0]

    def __repr__(self) -> str:
        return f"Encoder({str(self.model_dir)!r}, bits={self.bits}, frames={self.frames}, {self.mode})"


def _is_tensor(array: Any) -> bool:
    return type(array).__module__.startswith("torch")


def _stack(clips: list[Any]) -> Any:
    """np.stack of host clips; torch.stack (on the first tensor's device) when some clips are
    tensors (GPU-decoded), host clips uploaded to it."""
    tensors = [c for c in clips if _is_tensor(c)]
    if not tensors:
        return np.stack(clips)
    import torch

    device = tensors[0].device
    return torch.stack([torch.as_tensor(c).to(device) for c in clips])


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """`items` produced in a daemon thread up to `depth` ahead, exceptions re-raised here in
    order. Closing this generator makes the producer stop (and close `items`) at its next item."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 -- handed to the consumer
            put((end, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, name="chain-stream-decode", daemon=True).start()
    try:
        while True:
            item, exc = queue.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()

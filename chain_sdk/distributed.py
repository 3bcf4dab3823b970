"""Encoding past one machine: the Encoder inside Ray Data actors.

    import ray
    from chain_sdk.distributed import ray_encode
    ray.init()                                        # or ray.init("ray://head:10001")
    ds = ray_encode(paths, num_gpus=1, backend="tensorrt")
    ds.write_parquet("s3://bucket/codes/")            # video, code, error (+ start, end)

Each actor loads one Encoder once and encodes batches of videos (decoding ahead in threads as
`Encoder.encode_batch` does). The model directory is resolved on the driver (the packaged
default is exported there once) and shipped to the workers through the object store, so workers
need the package but neither the model files nor torch.

Rows: `video` (the input as given), `code` (bytes, bits/8, MSB-first; None on failure), `error`
(None, or "ErrorClass: message"). With `window`/`hop`: one row per window of `Encoder.stream`,
with `start`/`end` in seconds of the source (a failed video is one row with start/end None).
A video that fails is an error row and never fails the dataset; a crashed actor is restarted and
its batch retried (MAX_RESTARTS, MAX_TASK_RETRIES).

Ray is imported only here, on first call (`pip install chain-sdk[ray]`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# A crashed actor (OOM, a segfault in a decoder) is started again and its batch retried on the
# new one; bounded, where Ray Data's default (-1, forever) loops on a file that always crashes.
MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
SHIPPED_DIR = "shipped"  # under chain_sdk.models.models_cache_dir() on each worker


def ray_encode(videos: Any, model: str | os.PathLike | None = None, *, window: float | None = None,
               hop: float | None = None, num_gpus: float = 0.0, num_cpus: float = 0.5,
               actors: int | None = None, batch_size: int = 16, **encoder_options: Any):
    """A lazy `ray.data.Dataset` of the codes of `videos` (see the module docstring).

    videos: paths/URLs, or a `ray.data.Dataset` with a `video` column. model: as `Encoder(model)`.
    window/hop: seconds; give both (or window alone: hop = window) for one row per window.
    num_gpus/num_cpus: resources per actor. Keep num_cpus fractional on small nodes: actors that
    hold every CPU starve the tasks feeding them. actors: pool size (default: as many as the
    cluster's resources fit, leaving one CPU for reading). batch_size: videos per actor call,
    which is also the actor's Encoder batch (one inference batch per call).
    encoder_options: passed to `Encoder` (backend, device, frames, threads, ...); `threads`
    defaults to ceil(num_cpus) so that actors sharing a node do not oversubscribe it.
    """
    import ray
    import ray.data

    from chain_sdk.contract import read_model_dir
    from chain_sdk.models import resolve_model

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if hop is not None and window is None:
        raise ValueError("hop needs window")
    if window is not None and (window <= 0 or (hop is not None and hop <= 0)):
        raise ValueError(f"window and hop must be positive, got {window}, {hop}")
    if not ray.is_initialized():
        ray.init()
    model_dir = resolve_model(model)
    read_model_dir(model_dir)  # a malformed model fails here, typed, not in every actor's restart
    options = {"threads": max(1, math.ceil(num_cpus)), **encoder_options, "batch_size": batch_size}
    if isinstance(videos, ray.data.Dataset):
        ds = videos
        schema = ds.schema(fetch_if_missing=False)  # known without running anything, or None
        if schema is not None and "video" not in schema.names:
            raise ValueError(f"ray_encode needs a 'video' column, got {schema.names}")
    else:
        ds = ray.data.from_items([{"video": os.fspath(v)} for v in _as_list(videos)])
    size = actors if actors is not None else _pool_size(ray.cluster_resources(), num_cpus, num_gpus)
    with warnings.catch_warnings():  # Ray 2.60 has no named parameter for actor restarts yet
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        return ds.map_batches(
            _EncodeActor,
            fn_constructor_kwargs={"bundle": [ray.put(pack_model_dir(model_dir))], "window": window,
                                   "hop": hop if hop is not None else window, "options": options},
            batch_size=batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=num_cpus, num_gpus=num_gpus,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)


def _as_list(videos: Any) -> list:
    if isinstance(videos, (str, os.PathLike)):
        return [videos]
    if not isinstance(videos, Iterable):
        raise TypeError(f"videos must be paths/URLs or a ray.data.Dataset, got {type(videos).__name__}")
    return list(videos)


def _pool_size(resources: dict, num_cpus: float, num_gpus: float) -> int:
    """Actors the cluster fits: by GPUs when actors take GPUs, else by CPUs less one for reads."""
    if num_gpus > 0:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    if num_cpus <= 0:
        return 1
    return max(1, int((resources.get("CPU", 1) - 1) // num_cpus))


# ---------------------------------------------------------------------- the model travels

def pack_model_dir(model_dir: Path) -> dict[str, bytes]:
    """Every file of a model directory, by relative path (what a worker needs to rebuild it)."""
    root = Path(model_dir)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def unpack_model_dir(bundle: dict[str, bytes], name: str = "model") -> Path:
    """The bundle as a directory in this machine's model cache, written once per content (atomic
    rename, so actors on one node share it and a killed write leaves nothing half-made)."""
    from chain_sdk.models import models_cache_dir

    digest = hashlib.sha256()
    for rel in sorted(bundle):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(bundle[rel]).digest())
    target = models_cache_dir() / SHIPPED_DIR / f"{name}-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        for rel, data in bundle.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        try:
            os.replace(tmp, target)
        except OSError:  # another actor on this node renamed its copy first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------- the actor

def _schema(windowed: bool):
    import pyarrow as pa

    fields = [("video", pa.string()), ("code", pa.binary()), ("error", pa.string())]
    if windowed:
        fields += [("start", pa.float64()), ("end", pa.float64())]
    return pa.schema(fields)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _EncodeActor:
    """One Encoder per actor; called on pyarrow batches with a `video` column."""

    def __init__(self, bundle: list, window: float | None, hop: float | None, options: dict) -> None:
        import ray

        from chain_sdk.encoder import Encoder

        (ref,) = bundle  # wrapped in a list so that Ray hands over the reference, not the bytes
        self.encoder = Encoder(unpack_model_dir(ray.get(ref)), **options)
        self.window, self.hop = window, hop
        self.schema = _schema(window is not None)

    def __call__(self, batch):
        import pyarrow as pa

        if "video" not in batch.column_names:
            raise ValueError(f"ray_encode needs a 'video' column, got {batch.column_names}")
        videos = batch.column("video").to_pylist()
        rows = self._windows(videos) if self.window is not None else self._whole(videos)
        return pa.Table.from_pylist(rows, schema=self.schema)

    def _whole(self, videos: list) -> list[dict]:
        result = self.encoder.encode_batch(videos, on_error="collect", progress=False)
        rows: list[dict] = [{"video": v, "code": None, "error": None} for v in videos]
        for index, code in zip(result.indices, result.codes):
            rows[index]["code"] = code.tobytes()
        for failure in result.failures:
            rows[failure.index]["error"] = _error_text(failure.error)
        return rows

    def _windows(self, videos: list) -> list[dict]:
        from chain_sdk.errors import ChainSDKError

        rows: list[dict] = []
        for video in videos:
            try:
                segments = list(self.encoder.stream(video, window=self.window, hop=self.hop))
            except ChainSDKError as exc:
                rows.append({"video": video, "code": None, "error": _error_text(exc)})
                continue
            except Exception as exc:  # a decoder crash on one file must not lose the batch
                rows.append({"video": video, "code": None, "error": _error_text(ChainSDKError(
                    f"{video}: {type(exc).__name__}: {exc}"))})
                continue
            rows.extend({"video": video, "code": s.code.tobytes(), "error": None,
                         "start": s.start, "end": s.end} for s in segments)
        return rows

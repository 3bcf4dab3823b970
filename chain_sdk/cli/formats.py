"""Code files: what `chain-sdk encode` writes and `chain-sdk index build` reads.

.npy: uint8 [N, bits/8] of the videos that worked, in input order, with OUT.sources.txt naming
each row. .jsonl: one object per input video (index, path and hex code, or path and error).
.parquet: the same columns (needs pyarrow). Every write is atomic (chain_sdk.files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from chain_sdk.codes import from_hex, to_hex
from chain_sdk.errors import ChainSDKError, DataError
from chain_sdk.files import atomic_path, atomic_write, write_text

OUT_FORMATS = (".npy", ".jsonl", ".parquet")


def rows_of(videos: list[str], codes: np.ndarray, indices: np.ndarray, failures: list) -> list[dict]:
    rows: list[dict[str, Any]] = [{} for _ in videos]
    for code, i in zip(codes, indices.tolist()):
        rows[i] = {"index": i, "path": videos[i], "code": to_hex(code)}
    for f in failures:
        rows[f.index] = {"index": f.index, "path": videos[f.index], "error": str(f.error),
                         "error_type": type(f.error).__name__}
    return rows


def write_codes(out: Path, rows: list[dict], bits: int) -> None:
    """Write `rows` (see `rows_of`) as .npy (+ .sources.txt), .jsonl or .parquet, atomically:
    a full disk or a kill leaves the previous file, never a truncated one."""
    ok = [r for r in rows if "code" in r]
    if out.suffix == ".npy":
        codes = np.stack([from_hex(r["code"]) for r in ok]) if ok else np.zeros((0, bits // 8), np.uint8)
        with atomic_write(out) as f:
            np.save(f, codes)
        write_text(out.with_suffix(".sources.txt"), "".join(r["path"] + "\n" for r in ok))
    elif out.suffix == ".jsonl":
        write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ChainSDKError(f"writing .parquet needs pyarrow ({exc}): pip install pyarrow") from exc
        table = pa.table({
            "index": [r["index"] for r in rows],
            "path": [r["path"] for r in rows],
            "code": [bytes(from_hex(r["code"])) if "code" in r else None for r in rows],
            "error": [r.get("error") for r in rows],
        })
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)


def read_codes(path: Path) -> tuple[np.ndarray, list[str]]:
    """(codes [N, bytes], sources) of the rows that have a code, from any `encode` output;
    DataError naming the file and the reason when it is missing or not an `encode` output."""
    if path.suffix not in OUT_FORMATS:
        raise DataError(f"{path}: codes must be .npy, .jsonl or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such codes file")
    try:
        codes, sources = _read_codes(path)
    except DataError:
        raise
    except Exception as exc:  # numpy, json and pyarrow each raise their own types
        raise DataError(f"{path}: not a readable `chain-sdk encode` output ({type(exc).__name__}: {exc})") from exc
    if codes.ndim != 2 or codes.dtype != np.uint8 or len(sources) != len(codes):
        raise DataError(f"{path}: expected uint8 codes [N, bytes] with one source per row, got "
                        f"{codes.dtype} {codes.shape} and {len(sources)} sources")
    return codes, sources


def _read_codes(path: Path) -> tuple[np.ndarray, list[str]]:
    if path.suffix == ".npy":
        codes = np.load(path)
        sources_file = path.with_suffix(".sources.txt")
        sources = sources_file.read_text().splitlines() if sources_file.is_file() else [str(i) for i in range(len(codes))]
        return codes, sources
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        ok = [r for r in rows if "code" in r]
        return _stack([from_hex(r["code"]) for r in ok]), [r["path"] for r in ok]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pylist()
        ok = [r for r in table if r["code"] is not None]
        return _stack([np.frombuffer(r["code"], np.uint8) for r in ok]), [r["path"] for r in ok]
    raise DataError(f"{path}: codes must be .npy, .jsonl or .parquet")


def _stack(codes: list[np.ndarray]) -> np.ndarray:
    return np.stack(codes) if codes else np.zeros((0, 0), np.uint8)  # all failed: no code width known

"""The window table of a VideoIndex: which video and which seconds every stored window code is.

Window ids are row numbers, handed out consecutively and never reused, so a store (HammingIndex,
or a vector database in its place) only ever holds int64 ids. Serialised as an .npz in memory
(numpy arrays + one JSON document), which `VideoIndex.save` puts in the store's file.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from chain_sdk.errors import IndexFormatError

TABLE_FORMAT = "chain-video-index"
TABLE_VERSION = 1


class WindowTable:
    def __init__(self) -> None:
        self.names: list[str | None] = []  # video number -> id (None once removed)
        self.by_name: dict[str, int] = {}
        self._video = np.zeros(0, np.int32)
        self._start = np.zeros(0, np.float64)
        self._end = np.zeros(0, np.float64)
        self.count = 0  # window rows used (removed ones included)

    # -------------------------------------------------------------- rows
    @property
    def video(self) -> np.ndarray:
        return self._video[: self.count]

    @property
    def start(self) -> np.ndarray:
        return self._start[: self.count]

    @property
    def end(self) -> np.ndarray:
        return self._end[: self.count]

    def append(self, name: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Rows for one new video's windows; returns their window ids."""
        number = len(self.names)
        m = len(starts)
        if self.count + m > len(self._video):
            cap = max(self.count + m, 2 * len(self._video), 1024)
            self._video, self._start, self._end = (np.resize(a, cap) for a in (self._video, self._start, self._end))
        ids = np.arange(self.count, self.count + m, dtype=np.int64)
        self._video[ids], self._start[ids], self._end[ids] = number, starts, ends
        self.count += m
        self.names.append(name)
        self.by_name[name] = number
        return ids

    def remove(self, name: str) -> np.ndarray:
        """Forget a video; returns the window ids it had (for the store to remove)."""
        number = self.by_name.pop(name)
        self.names[number] = None
        return np.flatnonzero(self.video == number).astype(np.int64)

    def windows_of(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.video == self.by_name[name]).astype(np.int64)

    # -------------------------------------------------------------- bytes
    def to_bytes(self, settings: dict[str, Any]) -> bytes:
        doc = {"format": TABLE_FORMAT, "version": TABLE_VERSION, "settings": settings, "names": self.names}
        buf = io.BytesIO()
        np.savez(buf, doc=np.frombuffer(json.dumps(doc).encode(), np.uint8), video=self.video,
                 start=self.start, end=self.end)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> tuple["WindowTable", dict[str, Any]]:
        if not raw:
            raise IndexFormatError(f"{where}: a Hamming index without a window table, not a VideoIndex")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                doc = json.loads(z["doc"].tobytes())
                video, start, end = z["video"], z["start"], z["end"]
        except (ValueError, KeyError, OSError) as e:
            raise IndexFormatError(f"{where}: unreadable window table ({e})") from e
        if doc.get("format") != TABLE_FORMAT:
            raise IndexFormatError(f"{where}: metadata is {doc.get('format')!r}, not a VideoIndex table")
        if doc.get("version") != TABLE_VERSION:
            raise IndexFormatError(f"{where}: window table version {doc.get('version')} (this reads {TABLE_VERSION})")
        table = cls()
        table.names = doc["names"]
        table.by_name = {n: i for i, n in enumerate(table.names) if n is not None}
        if not (len(video) == len(start) == len(end)) or (len(video) and video.max() >= len(table.names)):
            raise IndexFormatError(f"{where}: inconsistent window table")
        table._video, table._start, table._end = video.astype(np.int32), start.astype(np.float64), end.astype(np.float64)
        table.count = len(video)
        return table, doc["settings"]

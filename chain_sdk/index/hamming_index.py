"""HammingIndex: exact k-NN and radius search over packed binary codes.

Storage is ``bits/8`` bytes per code plus an int64 user id, in insertion order. Removal sets a
tombstone bit (ids are never renumbered); ``compact()`` drops tombstoned rows (it runs by itself
when more than half of the rows are dead) and keeps the insertion order, so ties — always broken
by insertion order — stay stable.

Thread safety (what is guaranteed): any number of threads may call ``search``/``range_search``/
``len``/``save`` while one other thread mutates (``add``/``remove``/``compact``); mutations are
serialised by an internal lock. Every read works on an immutable snapshot taken when it starts, so
it sees each mutation either entirely or not at all (an add that is in flight is invisible; a
remove never shows half-applied). New rows are written past the snapshot's end, or into a new
buffer, and tombstones are copy-on-write, so no reader's memory is modified under it. The kernels
release the GIL, so concurrent searches run in parallel.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from chain_sdk.errors import BackendUnavailableError

from . import fileformat, mih

# The compiled kernels (typed Any: nanobind modules carry no stubs in the source tree).
_hamming: Any = importlib.import_module("chain_sdk._hamming")
_ISA_ENV = "CHAIN_SDK_HAMMING_ISA"  # force "scalar" / "avx2" / "avx512" / "neon" for every index
#: Largest user id: the next id after it (stored in the file header as int64) must still fit.
MAX_ID = 2**63 - 2
#: Most result slots (nq * k) one search may ask for (1.6e10 slots = 200 GB of results).
MAX_RESULTS = 2**34


@dataclass(frozen=True)
class _Snapshot:
    codes: np.ndarray            # [n, bits/8] (n rows, dead ones included)
    ids: np.ndarray              # [n] int64
    deleted: np.ndarray | None   # tombstone bitmap, None when nothing is deleted
    dead: int
    generation: int              # changes whenever positions change (compact, load)

    @property
    def n(self) -> int:
        return self.codes.shape[0]


class HammingIndex:
    """Exact Hamming-distance index of packed ``uint8`` codes (MSB-first, numpy.packbits order).

    ``device="cuda"`` runs searches with chain_sdk._hamming_cuda (the database is uploaded once
    per snapshot); ``mih`` = "auto" | True | False controls multi-index hashing for range search.
    ``threads`` = 0 uses every CPU this process may run on; ``isa`` forces a kernel path.
    """

    def __init__(self, bits: int, device: str = "cpu", *, threads: int = 0, isa: str | None = None,
                 mih: bool | str = "auto") -> None:
        if not isinstance(bits, (int, np.integer)) or bits <= 0 or bits % 8 or bits > 65528:
            raise ValueError(f"bits must be a positive multiple of 8 (<= 65528), got {bits!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if mih not in ("auto", True, False):
            raise ValueError("mih must be 'auto', True or False")
        self.bits = int(bits)
        self.code_bytes = self.bits // 8
        self.device = device
        self.threads = int(threads)
        self.isa = isa or os.environ.get(_ISA_ENV, "auto")
        if self.isa not in _hamming.isa_available() + ["auto"]:
            raise ValueError(f"isa {self.isa!r} is not available here: {_hamming.isa_available()}")
        self.mih_mode = mih
        self._cuda: Any = _load_cuda() if device == "cuda" else None
        self._lock = threading.Lock()
        self._mih_lock = threading.Lock()
        self._codes_buf = np.zeros((0, self.code_bytes), dtype=np.uint8)
        self._ids_buf = np.zeros(0, dtype=np.int64)
        self._next_id = 0
        self._mih: tuple[int, Any] | None = None       # (generation, MultiIndexHash)
        self._device_db: tuple[Any, Any] | None = None  # (snapshot, device database)
        self._snap = _Snapshot(self._codes_buf, self._ids_buf, None, 0, 0)
        self.metadata = b""  # what `load` found in the file's metadata section

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        s = self._snap
        return s.n - s.dead

    def len(self) -> int:
        """Deprecated: use `len(index)` (the number of live, not removed, codes)."""
        warnings.warn("HammingIndex.len() is deprecated; use len(index)", DeprecationWarning, stacklevel=2)
        return len(self)

    @property
    def ntotal(self) -> int:
        """Rows stored, tombstoned ones included (compact() brings this down to len())."""
        return self._snap.n

    def __repr__(self) -> str:
        return f"HammingIndex(bits={self.bits}, len={len(self)}, device={self.device!r})"

    # ------------------------------------------------------------------ mutation
    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Append codes (uint8 [m, bits/8]); returns their int64 ids (given or assigned
        consecutively after the largest id seen). Ids are int64 values other than -1 (search's
        "no result") up to MAX_ID = 2**63 - 2, and need not be unique; floats and values outside
        that range raise ValueError."""
        codes = self._as_codes(codes, "codes")
        m = codes.shape[0]
        with self._lock:
            if ids is None:
                if self._next_id + m - 1 > MAX_ID:
                    raise ValueError(f"cannot assign {m} more ids after {self._next_id - 1}: ids stop at "
                                     f"{MAX_ID}; pass ids explicitly")
                new_ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
            else:
                new_ids = _as_ids(ids, "ids")
                if new_ids.shape[0] != m:
                    raise ValueError(f"ids must be {m} integers (one per code), got {new_ids.shape[0]}")
            s = self._snap
            n = s.n
            if n + m > self._codes_buf.shape[0] or not self._codes_buf.flags.writeable:
                cap = max(n + m, 2 * self._codes_buf.shape[0], 1024)
                codes_buf = np.empty((cap, self.code_bytes), dtype=np.uint8)
                ids_buf = np.empty(cap, dtype=np.int64)
                codes_buf[:n] = s.codes
                ids_buf[:n] = s.ids
                self._codes_buf, self._ids_buf = codes_buf, ids_buf
            # Rows past n are invisible to every existing snapshot, so writing them is safe.
            self._codes_buf[n:n + m] = codes
            self._ids_buf[n:n + m] = new_ids
            deleted = s.deleted
            if deleted is not None and deleted.size < (n + m + 7) // 8:
                deleted = np.concatenate([deleted, np.zeros((n + m + 7) // 8 - deleted.size, np.uint8)])
            if m:
                self._next_id = max(self._next_id, int(new_ids.max()) + 1)
            self._snap = _Snapshot(self._codes_buf[:n + m], self._ids_buf[:n + m], deleted, s.dead,
                                   s.generation)
        return new_ids

    def remove(self, ids) -> int:
        """Tombstone every live code whose id is in `ids`; returns how many were removed."""
        ids = _as_ids(ids, "ids to remove", lookup=True)
        with self._lock:
            s = self._snap
            hit = np.isin(s.ids, ids)
            if s.deleted is not None:
                hit &= _live(s)
            count = int(hit.sum())
            if count == 0:
                return 0
            deleted = np.zeros((s.n + 7) // 8, np.uint8) if s.deleted is None else s.deleted.copy()
            deleted |= np.packbits(hit, bitorder="little")
            self._snap = _Snapshot(s.codes, s.ids, deleted, s.dead + count, s.generation)
            if 2 * (s.dead + count) > s.n:
                self._compact_locked()
        return count

    def compact(self) -> None:
        """Drop tombstoned rows (keeps insertion order; ids are unchanged)."""
        with self._lock:
            self._compact_locked()

    def _compact_locked(self) -> None:
        s = self._snap
        if s.deleted is None:
            return
        keep = _live(s)
        self._codes_buf = np.ascontiguousarray(s.codes[keep])
        self._ids_buf = np.ascontiguousarray(s.ids[keep])
        self._snap = _Snapshot(self._codes_buf, self._ids_buf, None, 0, s.generation + 1)

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest codes per query: (distances int32 [nq, k], ids int64 [nq, k]), sorted by
        (distance, insertion order). Rows with fewer than k live codes are padded with -1/-1."""
        queries = self._as_codes(queries, "queries")
        if not isinstance(k, (int, np.integer)) or isinstance(k, (bool, np.bool_)) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        if len(queries) * int(k) > MAX_RESULTS:
            raise ValueError(f"k={k} for {len(queries)} queries asks for {len(queries) * int(k)} result "
                             f"slots (more than {MAX_RESULTS}); rows past len(index)={len(self)} are padding")
        s = self._snap
        if self._cuda is not None:
            dist, pos = self._device(s).knn(queries, int(k), s.deleted)
        else:
            dist, pos = _hamming.knn(s.codes, queries, int(k), s.deleted, self.isa, self.threads)
        return dist, _ids_of(s, pos)

    def range_search(self, queries: np.ndarray, radius: int, method: str = "auto"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code with distance <= radius (inclusive; faiss's is strict): (lims int64 [nq+1],
        distances int32, ids int64), query i's results at [lims[i], lims[i+1]), sorted by
        (distance, insertion order). method: "auto" (MIH where it is predicted faster), "flat", "mih"."""
        queries = self._as_codes(queries, "queries")
        if not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        if method not in ("auto", "flat", "mih"):
            raise ValueError(f"method must be 'auto', 'flat' or 'mih', got {method!r}")
        s = self._snap
        radius = min(int(radius), self.bits)
        use_mih = method == "mih" or (
            method == "auto" and self.mih_mode is not False and self._cuda is None
            and (self.mih_mode is True or mih.worth_building(self.bits, s.n, radius)))
        if use_mih and s.n > 0:
            lims, dist, pos = self._range_mih(s, queries, radius, force=method == "mih")
        elif self._cuda is not None:
            lims, dist, pos = self._device(s).range_search(queries, radius, s.deleted)
        else:
            lims, dist, pos = _hamming.range_search(s.codes, queries, radius, s.deleted, self.isa, self.threads)
        return lims, dist, _ids_of(s, pos)

    def _range_mih(self, s: _Snapshot, queries: np.ndarray, radius: int, force: bool):
        tables = self._tables(s)
        if tables is None:  # the tables cover rows a concurrent add made after this snapshot
            return _hamming.range_search(s.codes, queries, radius, s.deleted, self.isa, self.threads)
        built = tables.size
        probes, cands = tables.cost(queries, radius)
        by_mih = np.ones(len(queries), bool) if force else mih.choose_mih(probes, cands, s.n, self.code_bytes)
        parts = []
        if by_mih.any():
            q = np.flatnonzero(by_mih)
            parts.append((q, tables.range_search(s.codes, queries[q], radius, s.deleted, self.isa, self.threads)))
            if built < s.n:  # rows added after the tables were built: scan that tail
                tail = _hamming.range_search(s.codes[built:], queries[q], radius, None, self.isa, self.threads)
                lims, d, p = tail
                p = p + built
                keep = _live(s)[p] if s.deleted is not None else np.ones(p.size, bool)
                parts.append((q, _filter_ranges(lims, d, p, keep)))
        if not by_mih.all():
            q = np.flatnonzero(~by_mih)
            parts.append((q, _hamming.range_search(s.codes, queries[q], radius, s.deleted, self.isa, self.threads)))
        return _merge_ranges(len(queries), parts)

    def _tables(self, s: _Snapshot):
        """The MIH tables of this snapshot's generation, (re)built when missing or too stale; None
        when the current tables were built on a newer snapshot than `s` (more rows than it has)."""
        with self._mih_lock:
            cur = self._mih
            if cur is not None and cur[0] == s.generation and cur[1].size > s.n:
                return None
            if cur is None or cur[0] != s.generation or 8 * (s.n - cur[1].size) > s.n:
                tables = _hamming.MultiIndexHash(s.codes, mih.layout(self.bits, s.n), self.threads)
                self._mih = cur = (s.generation, tables)
            return cur[1]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, metadata: bytes = b"") -> None:
        """Write the index atomically (temp file, fsync, rename); see chain_sdk.index.fileformat.
        `metadata`: the caller's bytes, stored checksummed in the same file (a VideoIndex keeps its
        window table there, so codes and table can never disagree); `load` puts them back in
        ``index.metadata``."""
        s = self._snap
        deleted = s.deleted if s.deleted is not None else np.zeros((s.n + 7) // 8, np.uint8)
        fileformat.write(path, self.bits, s.codes, s.ids, deleted, s.n - s.dead, self._next_id,
                         bytes(metadata))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, *, verify: bool = True,
             device: str = "cpu", **kwargs) -> HammingIndex:
        """Open a saved index. mmap=True maps the codes and ids read-only (zero-copy; the first add
        copies them). verify=False skips the CRC of the codes (header, ids and tombstones are always
        checked) for an instant open of a trusted file. Raises IndexFormatError on a bad file."""
        h, codes, ids, tomb = fileformat.read(path, mmap=mmap, verify=verify)
        metadata = fileformat.read_metadata(path, h)
        index = cls(h.bits, device=device, **kwargs)
        index.metadata = metadata
        dead = h.count - h.live
        index._codes_buf, index._ids_buf = codes, ids
        index._next_id = h.next_id
        index._snap = _Snapshot(codes, ids, tomb if dead else None, dead, 1)
        return index

    # ------------------------------------------------------------------ interop
    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Live (codes uint8 [n, bits/8], ids int64 [n]) in insertion order: load them into faiss
        (see to_faiss) or into a vector database with a binary Hamming index."""
        s = self._snap
        if s.deleted is None:
            return np.array(s.codes), np.array(s.ids)
        keep = _live(s)
        return s.codes[keep], s.ids[keep]

    def to_faiss(self):
        """A faiss ``IndexBinaryIDMap(IndexBinaryFlat(bits))`` holding the live codes and ids
        (needs faiss-cpu). faiss range search is strict: pass radius + 1 for our inclusive radius."""
        import faiss  # optional dependency, imported only here

        codes, ids = self.export()
        index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(self.bits))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(codes), np.ascontiguousarray(ids))
        return index

    # ------------------------------------------------------------------ helpers
    def _as_codes(self, codes, what: str) -> np.ndarray:
        return as_codes(codes, self.bits, what)

    def _device(self, s: _Snapshot):
        cached = self._device_db
        if cached is None or cached[0] is not s:
            cached = (s, self._cuda.DeviceDatabase(s.codes))
            self._device_db = cached
        return cached[1]


def _load_cuda() -> Any:
    try:
        _hamming_cuda: Any = importlib.import_module("chain_sdk._hamming_cuda")
    except ImportError as e:
        raise BackendUnavailableError(
            "device='cuda' needs chain_sdk._hamming_cuda (build with CHAIN_SDK_CUDA=ON and nvcc)") from e
    if _hamming_cuda.device_count() < 1:
        raise BackendUnavailableError("device='cuda': no CUDA device is visible")
    return _hamming_cuda


def as_codes(codes, bits: int, what: str) -> np.ndarray:
    """Packed uint8 codes [n, bits/8] (one code may come as [bits/8]), contiguous; the one check
    of every store's inputs (HammingIndex, MilvusIndex)."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.dtype != np.uint8:
        raise ValueError(f"{what} must be packed uint8 codes, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != bits // 8:
        raise ValueError(f"{what} must have shape [n, {bits // 8}] for {bits}-bit codes, got {arr.shape}")
    return np.ascontiguousarray(arr)


def _as_ids(ids, what: str, *, lookup: bool = False) -> np.ndarray:
    """User ids as int64 [n]. Integers only (floats are refused, not truncated); -1 is search's
    "no result" id and MAX_ID + 1 would make the next id overflow, so adding refuses both, and
    unsigned values above MAX_ID are refused instead of wrapping to negative ids. With `lookup`
    (remove), values that can never have been added are dropped instead."""
    arr = np.atleast_1d(np.asarray(ids))
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise ValueError(f"{what} must be a 1-d sequence of integers, got {arr.dtype} {arr.shape}")
    bad = (arr > MAX_ID) if np.issubdtype(arr.dtype, np.unsignedinteger) else (arr > MAX_ID) | (arr == -1)
    if bad.any():
        if not lookup:
            raise ValueError(f"{what}: {arr[bad][0]} is not a valid id (int64 other than -1, which "
                             f"marks 'no result', and at most {MAX_ID})")
        arr = arr[~bad]
    return arr.astype(np.int64)


def _live(s: _Snapshot) -> np.ndarray:
    if s.deleted is None:
        return np.ones(s.n, bool)
    return np.unpackbits(s.deleted, bitorder="little", count=s.n) == 0


def _ids_of(s: _Snapshot, pos: np.ndarray) -> np.ndarray:
    if pos.size == 0 or s.n == 0:
        return np.full(pos.shape, -1, np.int64)
    return np.where(pos >= 0, s.ids[np.maximum(pos, 0)], -1).astype(np.int64)


def _filter_ranges(lims, d, p, keep):
    """Keep the results where `keep`; lims re-counted from the prefix sum of `keep`."""
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return kept_before[lims].astype(np.int64), d[keep], p[keep]


def _merge_ranges(nq: int, parts):
    """Merge (query indices, (lims, d, pos)) parts into one result sorted by (query, d, pos)."""
    if len(parts) == 1 and len(parts[0][0]) == nq:  # one part holding every query: already sorted
        return parts[0][1]
    qs, ds, ps = [], [], []
    for q_idx, (lims, d, p) in parts:
        qs.append(np.repeat(q_idx, np.diff(lims)))
        ds.append(d)
        ps.append(p)
    q = np.concatenate(qs) if qs else np.zeros(0, np.int64)
    d = np.concatenate(ds).astype(np.int32) if ds else np.zeros(0, np.int32)
    p = np.concatenate(ps).astype(np.int64) if ps else np.zeros(0, np.int64)
    order = np.lexsort((p, d, q))
    lims = np.zeros(nq + 1, np.int64)
    np.cumsum(np.bincount(q, minlength=nq), out=lims[1:])
    return lims, d[order], p[order]

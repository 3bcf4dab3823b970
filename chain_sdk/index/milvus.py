"""MilvusIndex: HammingIndex's verbs over a Milvus collection (embedded milvus-lite or a server).

    index = MilvusIndex("codes.db", "videos", bits=64)                 # embedded file (BIN_FLAT)
    index = MilvusIndex("http://milvus:19530", "videos", 64, index="BIN_IVF_FLAT")
    index.add(codes, ids, metadata=[{"source": "a.mp4", "start": 0.0}, ...])
    d, ids = index.search(queries, k=10, filter="source like 'cam%'")
    lims, d, ids = index.range_search(queries, radius=8)

Same meanings as HammingIndex: ids are int64 and need not be unique (``remove(id)`` drops every
code with it); ``range_search`` is inclusive (d <= radius); results are sorted by (distance,
insertion order) and ``search`` pads with -1/-1. With BIN_FLAT both answers equal HammingIndex's
exactly, ties included: each row carries an insertion counter (``seq``, the primary key), codes
tied at the k-th distance are fetched in full and the earliest inserted kept, and a query whose
hits pass Milvus's per-call cap (16384) is split by ``seq`` ranges until every call is under it,
so no hit is dropped. BIN_IVF_FLAT is approximate (nprobe of nlist lists): measure its recall
(benchmarks/bench_milvus.py), never assume it.

Milvus's Hamming range is ``range_filter <= d < radius``; this module passes radius + 1 for the
inclusive radius, and the tests check the boundary on every engine they run.

Metadata: per-row dicts stored as Milvus dynamic fields; ``filter`` is a Milvus boolean
expression over them (and over ``id``). Inserts go in batches of at most 10 000 rows (larger
calls made milvus-lite's client grow without bound). One process writes a collection at a time:
the insertion counter is read from the collection when it is opened (so, unlike a loaded
HammingIndex, ids assigned after reopening continue after the largest live id, not the largest
ever added).

Needs ``pip install chain-sdk[milvus]`` (pymilvus 2.5 with milvus-lite 2.5: the 3.x pair refuses
binary vectors; milvus-lite runs BIN_FLAT only).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from chain_sdk.index.hamming_index import _as_ids as as_ids
from chain_sdk.index.hamming_index import as_codes

from chain_sdk.errors import BackendUnavailableError, IndexFormatError

log = logging.getLogger(__name__)

INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
RESERVED = ("seq", "id", "code")
MAX_INSERT = 10_000     # rows per insert call
MAX_HITS = 16_384       # Milvus's largest limit (topk) per query
QUERY_CHUNK = 1_024     # queries per search call
ID_CHUNK = 10_000       # ids per delete / count expression


class MilvusIndex:
    """Packed ``uint8 [n, bits/8]`` codes (MSB-first) in a Milvus collection with HAMMING metric.

    uri: a local file (``*.db``: embedded milvus-lite) or a server address (``http://host:19530``).
    collection: created when missing (schema seq INT64 primary key, id INT64, code BINARY_VECTOR,
    dynamic fields for metadata), opened when present (its dimension must equal ``bits``).
    index: "BIN_FLAT" (exact) or "BIN_IVF_FLAT" with ``nlist`` lists, ``nprobe`` probed per query.
    page_size: hits per search call (Milvus's cap; smaller only to exercise the paging in tests).
    consistency: Milvus level of reads ("Session": this client reads its own writes; the first
    read after a write is Strong). Other clients see writes within Milvus's staleness bound.
    """

    def __init__(self, uri: str, collection: str, bits: int, index: str = "BIN_FLAT", *,
                 nlist: int = 1024, nprobe: int = 32, token: str = "", insert_batch: int = MAX_INSERT,
                 page_size: int = MAX_HITS, consistency: str = "Session") -> None:
        if not isinstance(bits, (int, np.integer)) or bits <= 0 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits!r}")
        if index not in INDEX_TYPES:
            raise ValueError(f"index must be one of {INDEX_TYPES}, got {index!r}")
        if not 1 <= insert_batch <= MAX_INSERT:
            raise ValueError(f"insert_batch must be 1..{MAX_INSERT}, got {insert_batch}")
        if not 1 <= page_size <= MAX_HITS:
            raise ValueError(f"page_size must be 1..{MAX_HITS}, got {page_size}")
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise BackendUnavailableError(f"MilvusIndex needs pymilvus: pip install chain-sdk[milvus] ({exc})") from exc
        self.uri, self.collection = str(uri), collection
        self.bits, self.code_bytes = int(bits), int(bits) // 8
        self.index_type, self.nlist, self.nprobe = index, nlist, nprobe
        self.insert_batch, self.page_size = insert_batch, page_size
        self.consistency, self._dirty = consistency, False
        self._client = MilvusClient(uri=self.uri, token=token)
        if self._client.has_collection(collection):
            self._open()
        else:
            self._create()
            self._next_seq, self._next_id = 0, 0

    # ------------------------------------------------------------------ collection
    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("seq", DataType.INT64, is_primary=True)
        schema.add_field("id", DataType.INT64)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=self.bits)
        params = self._client.prepare_index_params()
        params.add_index(field_name="code", index_type=self.index_type, metric_type="HAMMING",
                         params={"nlist": self.nlist} if self.index_type == "BIN_IVF_FLAT" else {})
        self._client.create_collection(self.collection, schema=schema, index_params=params,
                                       consistency_level=self.consistency)

    def _open(self) -> None:
        info = self._client.describe_collection(self.collection)
        fields = {f["name"]: f for f in info["fields"]}
        code = fields.get("code", {})
        dim = code.get("params", {}).get("dim")
        if set(RESERVED) - set(fields) or int(dim or -1) != self.bits:
            raise IndexFormatError(f"{self.uri}/{self.collection}: not a {self.bits}-bit MilvusIndex "
                                   f"collection (fields {sorted(fields)}, code dim {dim})")
        self._client.load_collection(self.collection)
        self._next_seq, self._next_id = 0, 0
        it = self._client.query_iterator(self.collection, batch_size=MAX_INSERT, filter="",
                                         output_fields=["seq", "id"])
        try:  # one pass over (seq, id) columns only: bounded memory whatever the size
            while rows := it.next():
                self._next_seq = max(self._next_seq, max(r["seq"] for r in rows) + 1)
                self._next_id = max(self._next_id, max(r["id"] for r in rows) + 1)
        finally:
            it.close()

    def close(self) -> None:
        self._client.close()

    def drop(self) -> None:
        """Delete the collection and everything in it."""
        self._client.drop_collection(self.collection)

    def flush(self, timeout: float = 600.0) -> None:
        """Seal what was inserted and wait until the index covers it (a server builds
        BIN_IVF_FLAT lists on sealed segments only; until then it scans them)."""
        self._client.flush(self.collection)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._client.describe_index(self.collection, "code") or {}
            if not info.get("pending_index_rows") and info.get("state", "Finished") == "Finished":
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self}: index not built after {timeout} s: {info}")

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MilvusIndex({self.uri!r}, {self.collection!r}, bits={self.bits}, {self.index_type})"

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._count("")

    def len(self) -> int:
        """Number of live (not removed) codes."""
        return len(self)

    def _count(self, expr: str) -> int:
        rows = self._client.query(self.collection, filter=expr, output_fields=["count(*)"],
                                  consistency_level=self._read_level())
        return int(rows[0]["count(*)"])

    def _read_level(self) -> str:
        """Strong for the first read after this client's own writes (the Session level missed
        deletes on a Milvus 2.3 server), the collection's level afterwards (Strong waits for a
        time tick, about 200 ms a call on a server)."""
        level = "Strong" if self._dirty else self.consistency
        self._dirty = False
        return level

    # ------------------------------------------------------------------ mutation
    def add(self, codes: np.ndarray, ids: np.ndarray | None = None,
            metadata: list[dict[str, Any]] | None = None) -> np.ndarray:
        """Append codes (uint8 [m, bits/8]) with optional per-row metadata dicts; returns their
        int64 ids (given, or assigned consecutively after the largest id seen)."""
        codes = self._as_codes(codes, "codes")
        m = codes.shape[0]
        if ids is None:
            new_ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
        else:
            new_ids = as_ids(ids, "ids")  # HammingIndex's rules: integers, not -1, no wrap
            if new_ids.shape[0] != m:
                raise ValueError(f"ids must be {m} integers, got {new_ids.shape[0]}")
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != m:
                raise ValueError(f"metadata must have one dict per code ({m}), got {len(metadata)}")
            for row in metadata:
                if clash := set(row) & set(RESERVED):
                    raise ValueError(f"metadata keys {sorted(clash)} are reserved by MilvusIndex")
        for lo in range(0, m, self.insert_batch):
            hi = min(lo + self.insert_batch, m)
            rows = [{**(metadata[i] if metadata is not None else {}), "seq": self._next_seq + i,
                     "id": int(new_ids[i]), "code": codes[i].tobytes()} for i in range(lo, hi)]
            self._client.insert(self.collection, rows)
        self._next_seq += m
        self._dirty = True
        if m:
            self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        return new_ids

    def remove(self, ids) -> int:
        """Delete every code whose id is in `ids`; returns how many were removed."""
        ids = np.unique(as_ids(ids, "ids", lookup=True))
        removed = 0
        for lo in range(0, ids.size, ID_CHUNK):
            expr = f"id in {ids[lo:lo + ID_CHUNK].tolist()}"
            count = self._count(expr)
            if count:
                self._client.delete(self.collection, filter=expr)
                removed += count
                self._dirty = True
        return removed

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int, filter: str = "") -> tuple[np.ndarray, np.ndarray]:
        """k nearest codes per query: (distances int32 [nq, k], ids int64 [nq, k]), sorted by
        (distance, insertion order), padded with -1/-1. filter: a Milvus expression."""
        queries = self._as_codes(queries, "queries")
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        if k >= MAX_HITS:
            raise ValueError(f"k must be < {MAX_HITS} (Milvus's largest limit), got {k}")
        nq, k = queries.shape[0], int(k)
        out_d = np.full((nq, k), -1, np.int32)
        out_i = np.full((nq, k), -1, np.int64)
        if k == 0 or nq == 0:
            return out_d, out_i
        for q0 in range(0, nq, QUERY_CHUNK):
            chunk = queries[q0:q0 + QUERY_CHUNK]
            # k + 1: when the (k+1)-th is farther than the k-th, no tie straddles the cut
            for j, hits in enumerate(self._search(chunk, k + 1, {}, filter)):
                row = self._exact_top(chunk[j], hits, k, filter)
                out_d[q0 + j, :len(row)] = [h[0] for h in row]
                out_i[q0 + j, :len(row)] = [h[2] for h in row]
        return out_d, out_i

    def _exact_top(self, query: np.ndarray, hits: list[tuple], k: int, expr: str) -> list[tuple]:
        hits = sorted(hits)  # (distance, seq, id)
        if len(hits) <= k or hits[k][0] > hits[k - 1][0]:
            return hits[:k]
        cut = hits[k - 1][0]  # codes at the k-th distance straddle the cut: keep the earliest
        closer = [h for h in hits if h[0] < cut]
        ties = self._band(query, cut, cut + 1, expr, need=k - len(closer))
        return closer + ties[:k - len(closer)]

    def range_search(self, queries: np.ndarray, radius: int, filter: str = ""
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code with distance <= radius (inclusive): (lims int64 [nq+1], distances int32,
        ids int64), query i's results at [lims[i], lims[i+1]), sorted by (distance, insertion order)."""
        queries = self._as_codes(queries, "queries")
        if not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        radius = min(int(radius), self.bits)
        per_query: list[list[tuple]] = []
        for q0 in range(0, queries.shape[0], QUERY_CHUNK):
            chunk = queries[q0:q0 + QUERY_CHUNK]
            for j, hits in enumerate(self._search(chunk, self.page_size, _band_params(0, radius + 1), filter)):
                if len(hits) >= self.page_size:  # capped: page through it by insertion ranges
                    hits = self._band(chunk[j], 0, radius + 1, filter)
                per_query.append(sorted(hits))
        lims = np.zeros(len(per_query) + 1, np.int64)
        np.cumsum([len(h) for h in per_query], out=lims[1:])
        flat = [h for hits in per_query for h in hits]
        return (lims, np.array([h[0] for h in flat], np.int32).reshape(-1),
                np.array([h[2] for h in flat], np.int64).reshape(-1))

    def _band(self, query: np.ndarray, lo: int, hi: int, expr: str, need: int | None = None,
              seq_lo: int = 0, seq_hi: int | None = None) -> list[tuple]:
        """Every hit with lo <= d < hi and seq in [seq_lo, seq_hi), sorted by (d, seq); halves the
        seq range until a call returns fewer than page_size hits. need: stop once that many
        hits are known in ascending seq (only meaningful for a one-distance band)."""
        seq_hi = self._next_seq if seq_hi is None else seq_hi
        where = f"seq >= {seq_lo} and seq < {seq_hi}" + (f" and ({expr})" if expr else "")
        (hits,) = self._search(query[None], self.page_size, _band_params(lo, hi), where)
        if len(hits) < self.page_size or seq_hi - seq_lo <= self.page_size:
            return sorted(hits)
        mid = (seq_lo + seq_hi) // 2
        left = self._band(query, lo, hi, expr, need, seq_lo, mid)
        if need is not None and len(left) >= need:
            return left
        return left + self._band(query, lo, hi, expr, None if need is None else need - len(left), mid, seq_hi)

    def _search(self, queries: np.ndarray, limit: int, params: dict, expr: str) -> list[list[tuple]]:
        """Raw Milvus search: per query, hits (distance, seq, id) in Milvus's order."""
        if self.index_type == "BIN_IVF_FLAT":
            params = {**params, "nprobe": self.nprobe}
        result = self._client.search(
            self.collection, data=[q.tobytes() for q in queries], anns_field="code", limit=limit,
            filter=expr, output_fields=["id"], consistency_level=self._read_level(), search_params={"metric_type": "HAMMING", "params": params})
        # pymilvus names the primary key (our seq) "id" in a hit; the user id is an output field
        return [[(int(round(h["distance"])), int(h["id"]), int(h["entity"]["id"])) for h in hits]
                for hits in result]

    # ------------------------------------------------------------------ interop
    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Live (codes uint8 [n, bits/8], ids int64 [n]) in insertion order (e.g. into a
        HammingIndex for an exact in-process copy). Holds the whole collection in memory."""
        it = self._client.query_iterator(self.collection, batch_size=MAX_INSERT, filter="",
                                         output_fields=["seq", "id", "code"])
        seqs, ids, codes = [], [], []
        try:
            while rows := it.next():
                seqs.extend(r["seq"] for r in rows)
                ids.extend(r["id"] for r in rows)
                codes.extend(_code_bytes(r["code"]) for r in rows)
        finally:
            it.close()
        order = np.argsort(np.asarray(seqs, np.int64), kind="stable")
        packed = np.frombuffer(b"".join(codes), np.uint8).reshape(-1, self.code_bytes)
        return packed[order], np.asarray(ids, np.int64)[order]

    # ------------------------------------------------------------------ helpers
    def _as_codes(self, codes, what: str) -> np.ndarray:
        return as_codes(codes, self.bits, what)


def _band_params(lo: int, hi: int) -> dict:
    """Milvus range search over HAMMING: range_filter <= d < radius."""
    return {"radius": hi, "range_filter": lo}


def _code_bytes(value: Any) -> bytes:
    """pymilvus returns a binary vector as bytes or as a one-element list of bytes."""
    return value[0] if isinstance(value, list) else bytes(value)

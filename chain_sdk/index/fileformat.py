"""The HammingIndex file format (versions 1 and 2).

Layout (little-endian)::

    [0, 4096)        header: see HEADER below, then zero padding to one page
    [4096, ...)      codes: count x bits/8 bytes, contiguous (page-aligned: mmap is zero-copy)
    ids_offset       ids: count x int64 (8-byte aligned, 64 in practice)
    tomb_offset      tombstone bitmap: ceil(count/8) bytes, bit i = byte i//8, bit i%8 (LSB first)
    meta_offset      version 2 only: the caller's metadata bytes (e.g. VideoIndex's window table)

Version 2 is version 1 plus the metadata section, described by a second header record (offset,
size, CRC, and a CRC of that record) right after the first; a file without metadata is written
as version 1, byte for byte what it always was.

The header carries a CRC-32 of itself, of the codes and of the ids + tombstones. A file is written
to a temporary sibling, fsynced and renamed over the target (and the directory fsynced), so a crash
leaves either the old or the new index, never a torn one. Anything that does not check out raises
chain_sdk.errors.IndexFormatError with the reason.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chain_sdk.errors import IndexFormatError
from chain_sdk.files import atomic_write

MAGIC = b"CHAINIDX"
VERSION = 1
VERSION_METADATA = 2  # version 1 + a metadata section
PAGE = 4096
# magic, version, bits, count, live, flags, next_id, codes_off, ids_off, tomb_off, file_size,
# codes_crc, meta_crc; then header_crc over everything before it.
_BODY = struct.Struct("<8sIIQQQqQQQQII")
_CRC = struct.Struct("<I")
# meta_offset, meta_size, meta_crc; then a CRC over these (version 2 only).
_META = struct.Struct("<QQI")
FLAG_TOMBSTONES = 1
FLAG_METADATA = 2


@dataclass(frozen=True)
class Header:
    bits: int
    count: int
    live: int
    flags: int
    next_id: int
    codes_offset: int
    ids_offset: int
    tomb_offset: int
    file_size: int
    codes_crc: int
    meta_crc: int
    metadata_offset: int = 0
    metadata_size: int = 0
    metadata_crc: int = 0


def _flat(arr: np.ndarray) -> np.ndarray:
    """1-D uint8 view of a contiguous array (works for empty arrays, unlike memoryview.cast)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def _crc(buf, crc: int = 0) -> int:
    data = _flat(buf).data if isinstance(buf, np.ndarray) else buf
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def _layout(bits: int, count: int, metadata_size: int = 0) -> tuple[int, int, int, int]:
    codes_off = PAGE
    ids_off = codes_off + -(-count * (bits // 8) // 64) * 64
    tomb_off = ids_off + 8 * count
    size = tomb_off + (count + 7) // 8 + metadata_size
    return codes_off, ids_off, tomb_off, size


def write(path: str | os.PathLike, bits: int, codes: np.ndarray, ids: np.ndarray,
          tombstones: np.ndarray, live: int, next_id: int, metadata: bytes = b"") -> None:
    """Atomically write an index file (chain_sdk.files.atomic_write); non-empty `metadata` is
    stored (checksummed) after the tombstones and makes the file version 2."""
    path = Path(path)
    count = codes.shape[0]
    codes_off, ids_off, tomb_off, size = _layout(bits, count, len(metadata))
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    ids = np.ascontiguousarray(ids, dtype="<i8")
    tomb = np.ascontiguousarray(tombstones[: (count + 7) // 8], dtype=np.uint8)
    flags = (FLAG_TOMBSTONES if live < count else 0) | (FLAG_METADATA if metadata else 0)
    version = VERSION_METADATA if metadata else VERSION
    body = _BODY.pack(MAGIC, version, bits, count, live, flags, next_id, codes_off, ids_off,
                      tomb_off, size, _crc(codes), _crc(tomb, _crc(ids)))
    header = body + _CRC.pack(_crc(body))
    if metadata:
        record = _META.pack(size - len(metadata), len(metadata), _crc(metadata))
        header += record + _CRC.pack(_crc(record))
    with atomic_write(path) as f:
        f.write(header.ljust(PAGE, b"\0"))
        f.write(_flat(codes).data)
        f.write(b"\0" * (ids_off - codes_off - codes.nbytes))
        f.write(_flat(ids).data)
        f.write(_flat(tomb).data)
        f.write(metadata)


def read_header(path: str | os.PathLike) -> Header:
    """Parse and validate the header (magic, version, CRC, offsets against the file size)."""
    path = Path(path)
    with _open(path) as f:
        return _header(f, path)


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise IndexFormatError(f"{path}: cannot read index file ({e})") from e


def _header(f, path: Path) -> Header:
    """The header of the open file `f`. Size and sections all come from this one open file, so
    a save that renames a new file over `path` meanwhile cannot mix two files."""
    try:
        actual = os.fstat(f.fileno()).st_size
        f.seek(0)
        raw = f.read(_BODY.size + _CRC.size + _META.size + _CRC.size)
    except OSError as e:
        raise IndexFormatError(f"{path}: cannot read index file ({e})") from e
    if len(raw) < _BODY.size + _CRC.size or actual < PAGE:
        raise IndexFormatError(f"{path}: truncated (only {actual} bytes, no complete header)")
    fields = _BODY.unpack(raw[: _BODY.size])
    if fields[0] != MAGIC:
        raise IndexFormatError(f"{path}: not a chain-sdk index (magic {fields[0]!r})")
    if fields[1] not in (VERSION, VERSION_METADATA):
        raise IndexFormatError(f"{path}: unsupported index format version {fields[1]} "
                               f"(this reads {VERSION} and {VERSION_METADATA})")
    end = _BODY.size + _CRC.size
    (stored_crc,) = _CRC.unpack(raw[_BODY.size:end])
    if _crc(raw[: _BODY.size]) != stored_crc:
        raise IndexFormatError(f"{path}: header checksum mismatch (corrupted header)")
    meta = (0, 0, 0)
    if fields[1] == VERSION_METADATA:
        record = raw[end:end + _META.size]
        (record_crc,) = _CRC.unpack(raw[end + _META.size:])
        if _crc(record) != record_crc or not fields[5] & FLAG_METADATA:
            raise IndexFormatError(f"{path}: metadata record checksum mismatch (corrupted header)")
        meta = _META.unpack(record)
    h = Header(*fields[2:], *meta)
    if h.bits <= 0 or h.bits % 8 or h.live > h.count:
        raise IndexFormatError(f"{path}: inconsistent header (bits={h.bits}, count={h.count}, live={h.live})")
    if (h.codes_offset, h.ids_offset, h.tomb_offset, h.file_size) != _layout(h.bits, h.count, h.metadata_size) \
            or (h.metadata_size and h.metadata_offset + h.metadata_size != h.file_size):
        raise IndexFormatError(f"{path}: inconsistent section offsets in header")
    if actual != h.file_size:
        raise IndexFormatError(f"{path}: truncated or padded: {actual} bytes, header says {h.file_size}")
    return h


def read(path: str | os.PathLike, mmap: bool = True, verify: bool = True):
    """Return (header, codes, ids, tombstones). With mmap, codes and ids are read-only memory maps
    of the file (zero-copy); the small tombstone bitmap is always copied. The metadata section
    (version 2) is read by `read_metadata`."""
    path = Path(path)
    with _open(path) as f:
        h = _header(f, path)
        cb = h.bits // 8
        if mmap and h.count > 0:  # maps of this open file: its inode stays valid after a rename
            codes = np.memmap(f, dtype=np.uint8, mode="r", offset=h.codes_offset, shape=(h.count, cb))
            ids = np.memmap(f, dtype="<i8", mode="r", offset=h.ids_offset, shape=(h.count,))
        else:
            f.seek(h.codes_offset)
            codes = np.frombuffer(f.read(h.count * cb), dtype=np.uint8).reshape(h.count, cb).copy()
            f.seek(h.ids_offset)
            ids = np.frombuffer(f.read(8 * h.count), dtype="<i8").copy()
        f.seek(h.tomb_offset)
        tomb = np.frombuffer(f.read((h.count + 7) // 8), dtype=np.uint8).copy()
    if tomb.size != (h.count + 7) // 8:
        raise IndexFormatError(f"{path}: truncated tombstone section")
    if _crc(tomb, _crc(ids)) != h.meta_crc:
        raise IndexFormatError(f"{path}: ids/tombstones checksum mismatch (corrupted file)")
    if verify and _crc(codes) != h.codes_crc:
        raise IndexFormatError(f"{path}: codes checksum mismatch (corrupted file)")
    dead = int(np.unpackbits(tomb, bitorder="little")[: h.count].sum())
    if h.count - dead != h.live:
        raise IndexFormatError(f"{path}: live count {h.live} does not match the tombstones")
    return h, codes, ids, tomb


def read_metadata(path: str | os.PathLike, h: Header | None = None) -> bytes:
    """The metadata bytes of a version-2 file (b"" for version 1), checksum verified."""
    path = Path(path)
    with _open(path) as f:
        h = h or _header(f, path)
        if not h.metadata_size:
            return b""
        f.seek(h.metadata_offset)
        raw = f.read(h.metadata_size)
    if len(raw) != h.metadata_size or _crc(raw) != h.metadata_crc:
        raise IndexFormatError(f"{path}: metadata checksum mismatch (corrupted file)")
    return raw

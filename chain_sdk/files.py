"""How chain-sdk puts files on disk: the cache directory and atomic writes.

Every output the SDK writes (index files, code files, model contracts, checkpoints, caches)
goes through `atomic_write` or `atomic_path`: the bytes go to a temporary sibling, are
fsynced, get the permissions of a normal new file (0666 minus the umask, as `open` gives),
and are renamed over the target, then the directory is fsynced. A crash, a full disk or a
kill therefore leaves either the old file or the new one, never a truncated one; a failed
write removes its temporary file. Readers opening the target during a write see the old
file (rename is atomic on POSIX; on Windows os.replace is atomic for files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Callable

TMP_SUFFIX = ".tmp"


def cache_dir() -> Path:
    """`$CHAIN_SDK_CACHE`, else `$XDG_CACHE_HOME/chain-sdk`, else `~/.cache/chain-sdk`."""
    if env := os.environ.get("CHAIN_SDK_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "chain-sdk"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` for a library that writes by file name
    (safetensors, numpy, pyarrow, ffmpeg); on success it is fsynced and renamed to `path`."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    # The writer's host and pid are in the name (remove_stale_temps); the target's own suffix
    # last: writers that pick a format by extension (OpenCV) still can.
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{_host()}-{os.getpid()}.", suffix=TMP_SUFFIX + target.suffix,
                                dir=parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are normal files
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(parent)


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings of `target` that killed writers left behind (SIGKILL, power
    loss: no `except` ran): those written on this host by a process that no longer exists.
    (No file lock marks a live writer: HDF5 locks the files it writes itself.) Returns them."""
    import glob

    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    host = _host()
    removed = []
    for tmp in parent.glob(f".{glob.escape(target.name)}.{glob.escape(host)}-*{TMP_SUFFIX}{glob.escape(target.suffix)}"):
        pid = tmp.name[len(f".{target.name}.{host}-"):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """`open(path, mode)` that replaces `path` only once the block finished without error."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes a new file; mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **open_args) as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform lets a directory be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def build_dir_once(target: str | os.PathLike, build: Callable[[Path], None],
                   is_complete: Callable[[Path], bool]) -> Path:
    """`target`, a directory `build(tmp)` fills, made once: `build` writes into a temporary
    sibling that is renamed into place, under a file lock so that concurrent processes wait for
    one build instead of racing (model caches)."""
    target = Path(target)
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if is_complete(target):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", suffix=TMP_SUFFIX, dir=target.parent))
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic rename still keeps the cache whole
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

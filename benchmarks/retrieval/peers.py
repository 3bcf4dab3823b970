"""Run the PyPI peers (videohash, vpdq, tmkpy, perception) through `peer_worker.py`.

Each peer runs with the Python of its own virtual environment when one exists
(`$CHAIN_PEER_VENVS/NAME`, default `cache_dir()/peer-venvs/NAME`;
`benchmarks/retrieval/install_peers.sh` creates them), else with this interpreter if the package
imports here. A peer that cannot be found or fails is reported with the exact reason instead of
a row.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chain_sdk import data
from benchmarks.retrieval.dataset import RetrievalSet, ffmpeg_exe
from benchmarks.retrieval.features import file_sha256
from benchmarks.retrieval.methods import MethodResult

log = logging.getLogger(__name__)

PEERS = ("videohash", "vpdq", "tmkpy", "perception")
PINS = {"videohash": "videohash==3.0.1", "vpdq": "vpdq==0.2.5", "tmkpy": "tmkpy==0.1.1",
        "perception": "perception==0.9.3"}
WORKER = Path(__file__).with_name("peer_worker.py")


@dataclass
class PeerOutcome:
    peer: str
    python: str | None
    results: list[MethodResult] = field(default_factory=list)
    version: str | None = None
    error: str | None = None


def venv_root() -> Path:
    if env := os.environ.get("CHAIN_PEER_VENVS"):
        return Path(env)
    return data.cache_dir() / "peer-venvs"


def display_python(python: str | None) -> str:
    """An interpreter path as the report shows it: relative to the venv root, no home dirs."""
    if not python:
        return "-"
    if python == sys.executable:
        return "project environment"
    root = str(venv_root())
    return "$CHAIN_PEER_VENVS" + python[len(root):] if python.startswith(root) else Path(python).name


def peer_python(peer: str, overrides: dict[str, str] | None = None) -> str | None:
    """The interpreter that can import `peer`, or None."""
    if overrides and peer in overrides:
        return overrides[peer]
    candidate = venv_root() / peer / "bin" / "python"
    for python in ([str(candidate)] if candidate.exists() else []) + [sys.executable]:
        check = subprocess.run([python, "-c", f"import {peer}"], capture_output=True, text=True)
        if check.returncode == 0:
            return python
    return None


def _import_error(peer: str) -> str:
    check = subprocess.run([sys.executable, "-c", f"import {peer}"], capture_output=True, text=True)
    last = (check.stderr.strip().splitlines() or ["?"])[-1]
    return (f"not installed: no {venv_root() / peer} virtual environment and `import {peer}` fails "
            f"in {sys.executable} ({last}); run benchmarks/retrieval/install_peers.sh")


def _entries(videos) -> list[list[str]]:
    return [[v.key, str(v.path), file_sha256(v.path)] for v in videos]


def time_peer(peer: str, videos: list, python: str, timeout_s: float = 1800) -> float:
    """Mean seconds to hash one of `videos` from scratch (empty hash cache), in the peer's venv."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = {"peer": peer, "database": _entries(videos[1:]), "queries": _entries(videos[:1]),
                    "cache_dir": str(Path(tmp) / "cache"), "ffmpeg": ffmpeg_exe()}
        mpath, opath = Path(tmp) / "manifest.json", Path(tmp) / "out.json"
        mpath.write_text(json.dumps(manifest))
        proc = subprocess.run([python, str(WORKER), str(mpath), str(opath)], capture_output=True, text=True,
                              timeout=timeout_s)
        if proc.returncode != 0 or not opath.is_file():
            return float("nan")
        return float(np.mean(list(json.loads(opath.read_text())["encode_s"].values())))


def run_peer(peer: str, rs: RetrievalSet, *, overrides: dict[str, str] | None = None,
             timeout_s: float = 3600) -> PeerOutcome:
    python = peer_python(peer, overrides)
    if python is None:
        return PeerOutcome(peer, None, error=_import_error(peer))
    manifest = {"peer": peer, "database": _entries(rs.database), "queries": _entries(rs.queries),
                "cache_dir": str(data.cache_dir() / "retrieval" / "peers" / peer), "ffmpeg": ffmpeg_exe()}
    with tempfile.TemporaryDirectory() as tmp:
        mpath, opath = Path(tmp) / "manifest.json", Path(tmp) / "out.json"
        mpath.write_text(json.dumps(manifest))
        log.info("running peer %s with %s", peer, python)
        try:
            proc = subprocess.run([python, str(WORKER), str(mpath), str(opath)], capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return PeerOutcome(peer, python, error=f"timed out after {timeout_s:.0f} s")
        if proc.returncode != 0 or not opath.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            return PeerOutcome(peer, python, error=f"worker exited with {proc.returncode}: {tail}")
        out = json.loads(opath.read_text())
    shas = [e[2] for e in manifest["database"] + manifest["queries"]]
    encode_s = float(np.mean([out["encode_s"][s] for s in shas if s in out["encode_s"]]))
    failed = out.get("failed", {})
    failed_queries = np.array([q.key in failed for q in rs.queries])
    notes = [f"{peer} {out['version']} (Python {out['python']})"]
    if failed:
        first_key = next(iter(failed))
        notes.append(f"crashed on {len(failed)} of {len(shas)} videos ({sum(failed_queries)} queries); "
                     f"e.g. {first_key}: {failed[first_key]}")
    results = [MethodResult(label, "peer", m["code_size"], np.asarray(m["distances"], dtype=np.float64),
                            encode_s, list(notes), failed_queries)
               for label, m in out["methods"].items()]
    return PeerOutcome(peer, python, results, out["version"])

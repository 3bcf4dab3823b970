"""The partial-copy set: edited excerpts of reference videos placed inside unrelated footage.

Development footage only (`chain_sdk.data`; film time >= 300 s of bbb.mp4 is never touched):

- references (indexed): the film 0-200 s as four 50 s videos, bikes.mp4 and carphone.mp4 (all at
  640x360, 24 fps, like the queries);
- unrelated footage (never indexed): film 200-300 s and cityCC0.mpg. It is the same cartoon as
  most references, so a no-copy query is a hard negative, not an easy one;
- left out: bigbuckbunny.mp4, which *is* film 48-53 s (it would be a second true reference).

A copy query is filler, an edited 5-30 s excerpt, filler (and, for half of them, a second excerpt
and more filler); a no-copy query is 2-4 filler pieces, 20-60 s in all. Every piece is scaled and
padded to 640x360 at 24 fps and the query is encoded once at CRF 23 with the static ffmpeg of
imageio-ffmpeg. The edits are ffmpeg filters (not the training code): the families CHAIN's
training augmentation has (seen) and families it never saw (unseen). Everything is drawn from one
seed and cached by recipe hash under cache_dir()/copydetect.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.retrieval.dataset import ffmpeg_exe, font_file
from chain_sdk import data
from chain_sdk.files import atomic_path, cache_dir

FILM = "bbb.mp4"
REFERENCE_PARTS = [(0.0, 50.0), (50.0, 100.0), (100.0, 150.0), (150.0, 200.0)]
REFERENCE_CLIPS = {"bikes.mp4": 10.0, "carphone.mp4": 4.0}
FILLER_PARTS = [(FILM, 200.0, 300.0), ("cityCC0.mpg", 0.0, 7.6)]
assert max(e for _, _, e in FILLER_PARTS) <= data.HELD_OUT_FROM_S  # development footage only
SIZE, FPS = (640, 360), 24
NORMALIZE = (f"scale={SIZE[0]}:{SIZE[1]}:force_original_aspect_ratio=decrease,"
             f"pad={SIZE[0]}:{SIZE[1]}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p")
ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")


@dataclass(frozen=True)
class Family:
    name: str
    seen: bool  # does CHAIN's training augmentation have this family?
    description: str
    vf: str = ""
    speed: float = 1.0       # query seconds = source seconds / speed
    pip: bool = False        # shrunk onto unrelated footage
    compress: bool = False   # pre-encoded alone at a low bit rate


def _families() -> list[Family]:
    font = font_file().replace(":", r"\:")
    return [
        Family("hflip", True, "mirrored", "hflip"),
        Family("crop", True, "70% crop off centre, scaled back", "crop=iw*0.7:ih*0.7:iw*0.2:ih*0.05"),
        Family("colour", True, "brightness -0.1, contrast 1.2, saturation 1.8",
               "eq=brightness=-0.1:contrast=1.2:saturation=1.8"),
        Family("grey", True, "greyscale", "hue=s=0"),
        Family("blur", True, "box blur radius 3", "boxblur=3:1"),
        Family("caption", True, "caption bar across the top",
               f"drawtext=fontfile={font}:text='breaking - watch till the end':fontsize=h/12:"
               "fontcolor=yellow:box=1:boxcolor=black@0.7:x=(w-text_w)/2:y=h/20"),
        Family("compress", False, "320 px wide at 90 kbit/s, alone, then upscaled", compress=True),
        Family("speed", False, "played 1.25x faster", "setpts=PTS/1.25", speed=1.25),
        Family("rotate", False, "rotated 7 degrees, black corners", "rotate=7*PI/180:fillcolor=black"),
        Family("pip", False, "shrunk to 55% over unrelated footage", pip=True),
        Family("fps", False, "dropped to 6 frames per second", "fps=6"),
    ]


FAMILIES = {f.name: f for f in _families()}


@dataclass(frozen=True)
class Piece:
    source: str      # asset name
    start: float     # seconds of the source
    duration: float  # seconds of the source


@dataclass(frozen=True)
class Copy:
    reference: str   # reference video id
    family: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


@dataclass
class Query:
    key: str
    family: str | None  # None: copies nothing
    pieces: list[tuple[Piece, str | None, Piece | None]]  # (piece, family or None, pip background)
    copies: list[Copy] = field(default_factory=list)
    duration: float = 0.0
    path: Path | None = None


@dataclass(frozen=True)
class Reference:
    key: str
    piece: Piece
    path: Path | None = None


def cache() -> Path:
    return cache_dir() / "copydetect"


def references() -> list[Reference]:
    refs = [Reference(f"film_{a:03.0f}-{b:03.0f}s", Piece(FILM, a, b - a)) for a, b in REFERENCE_PARTS]
    refs += [Reference(Path(n).stem, Piece(n, 0.0, d)) for n, d in REFERENCE_CLIPS.items()]
    return refs


def fillers() -> list[Reference]:
    """The unrelated footage, cut once into files like the references (never indexed)."""
    return [Reference(f"filler_{Path(n).stem}_{s:03.0f}-{e:03.0f}s", Piece(n, s, e - s)) for n, s, e in FILLER_PARTS]


def _filler(rng: np.random.Generator, seconds: float) -> Piece:
    parts = fillers()
    weights = np.array([f.piece.duration for f in parts])
    f = parts[rng.choice(len(parts), p=weights / weights.sum())]
    seconds = min(seconds, f.piece.duration - 0.3)
    return Piece(f.key, round(float(rng.uniform(0, f.piece.duration - seconds)), 2), round(seconds, 2))


def draw_queries(seed: int, per_family: int) -> list[Query]:
    """`per_family` copy queries for every family, and as many no-copy queries."""
    rng = np.random.default_rng(seed)
    refs = references()
    lengths = np.array([r.piece.duration for r in refs])
    queries = []
    for fam in FAMILIES.values():
        for i in range(per_family):
            q = Query(f"s{seed}_{fam.name}_{i}", fam.name, [])
            t = 0.0
            for k in range(int(rng.integers(1, 3))):
                filler = _filler(rng, float(rng.uniform(5, 20)))
                q.pieces.append((filler, None, None))
                t += filler.duration
                ref = refs[rng.choice(len(refs), p=lengths / lengths.sum())]
                seconds = float(min(rng.uniform(5, 30), ref.piece.duration - 0.5))
                off = float(rng.uniform(0, ref.piece.duration - seconds))
                piece = Piece(ref.key, round(off, 2), round(seconds, 2))
                background = _filler(rng, seconds) if fam.pip else None
                q.pieces.append((piece, fam.name, background))
                shown = piece.duration / fam.speed
                q.copies.append(Copy(ref.key, fam.name, round(t, 3), round(t + shown, 3),
                                     round(off, 3), round(off + piece.duration, 3)))
                t += shown
            tail = _filler(rng, float(rng.uniform(5, 20)))
            q.pieces.append((tail, None, None))
            q.duration = round(t + tail.duration, 3)
            queries.append(q)
    for i in range(per_family * len(FAMILIES)):
        q = Query(f"s{seed}_nocopy_{i}", None, [])
        for _ in range(int(rng.integers(2, 5))):
            q.pieces.append((_filler(rng, float(rng.uniform(6, 18))), None, None))
        q.duration = round(sum(p.duration for p, _, _ in q.pieces), 3)
        queries.append(q)
    return queries


# ---------------------------------------------------------------------------------- ffmpeg

def _run(cmd: list[str], out: Path) -> Path:
    """Run ffmpeg with OUT = `out` (atomically; an existing file is reused)."""
    if out.is_file():
        return out
    with atomic_path(out) as tmp:
        result = subprocess.run(cmd[:-1] + [str(tmp)], capture_output=True, text=True)
        if result.returncode != 0 or tmp.stat().st_size == 0:
            raise RuntimeError(f"ffmpeg failed for {out.name}: {result.stderr[-1500:]}")
    return out


def _named(kind: str, key: str, recipe: object) -> Path:
    digest = hashlib.sha1(json.dumps([recipe, Path(ffmpeg_exe()).name], sort_keys=True).encode()).hexdigest()[:10]
    return cache() / kind / f"{key}__{digest}.mp4"


def _base() -> list[str]:
    return [ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-threads", "2"]


def _input(piece: Piece) -> list[str]:
    """ffmpeg input options of a piece of a reference or filler file (made first when missing)."""
    files = {r.key: r for r in references() + fillers()}
    return ["-ss", f"{piece.start:.3f}", "-t", f"{piece.duration:.3f}", "-i", str(make_reference(files[piece.source]))]


def make_reference(ref: Reference) -> Path:
    """A reference (or filler) as its own file: a near-lossless cut of the asset at the queries' size,
    so that queries are cut from small files."""
    cmd = _base() + ["-ss", f"{ref.piece.start:.3f}", "-t", f"{ref.piece.duration:.3f}", "-i",
                     str(data.path(ref.piece.source)), "-an", "-vf", NORMALIZE, "-c:v", "libx264",
                     "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "OUT"]
    return _run(cmd, _named("references", ref.key, [asdict(ref.piece), cmd[13:]]))


def _compressed(piece: Piece) -> Path:
    cmd = _base() + _input(piece) + ["-an", "-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "veryfast",
                                     "-b:v", "90k", "-maxrate", "90k", "-bufsize", "180k", "OUT"]
    return _run(cmd, _named("compressed", f"{piece.source}_{piece.start}", [asdict(piece), cmd[13:]]))


def make_query(q: Query) -> Path:
    inputs: list[str] = []
    graph: list[str] = []
    labels: list[str] = []
    n = 0
    for i, (piece, family, background) in enumerate(q.pieces):
        fam = FAMILIES[family] if family else None
        if fam and fam.compress:
            inputs += ["-i", str(_compressed(piece))]
        else:
            inputs += _input(piece)
        src = n
        n += 1
        chain = f"[{src}:v]" + (f"{fam.vf}," if fam and fam.vf else "")
        if fam and fam.pip:
            inputs += _input(background)
            graph.append(f"[{n}:v]{NORMALIZE}[bg{i}]")
            graph.append(f"{chain}scale=352:198,setsar=1,fps={FPS}[fg{i}]")
            graph.append(f"[bg{i}][fg{i}]overlay=x=W*0.38:y=H*0.12:shortest=1,format=yuv420p[p{i}]")
            n += 1
        else:
            graph.append(f"{chain}{NORMALIZE},setpts=PTS-STARTPTS[p{i}]")
        labels.append(f"[p{i}]")
    graph.append("".join(labels) + f"concat=n={len(labels)}:v=1:a=0[out]")
    cmd = _base() + inputs + ["-filter_complex", ";".join(graph), "-map", "[out]", "-an", *ENCODE, "OUT"]
    recipe = [[asdict(p), f, asdict(b) if b else None] for p, f, b in q.pieces] + [graph, ENCODE]
    return _run(cmd, _named("queries", q.key, recipe))


@dataclass
class CopySet:
    seed: int
    references: list[Reference]
    queries: list[Query]

    @property
    def copies(self) -> list[tuple[str, Copy]]:
        return [(q.key, c) for q in self.queries for c in q.copies]


def build(seed: int = 0, per_family: int = 1, draw: int = 3, *, progress: bool = True) -> CopySet:
    """The first `per_family` of `draw` copy queries drawn per family, and as many no-copy queries
    (the recipes depend on `draw`, not on `per_family`, so a larger run extends a smaller one)."""
    data.fetch([FILM, *REFERENCE_CLIPS, *(s for s, _, _ in FILLER_PARTS if s != FILM)], progress=progress)
    refs = [Reference(r.key, r.piece, make_reference(r)) for r in references()]
    drawn = draw_queries(seed, draw)
    copies = [q for q in drawn if q.family and int(q.key.rsplit("_", 1)[1]) < per_family]
    queries = copies + [q for q in drawn if not q.family][: len(copies)]
    for q in tqdm(queries, desc="queries (ffmpeg)", unit="video", disable=not progress):
        q.path = make_query(q)
    return CopySet(seed, refs, queries)

"""The near-duplicate retrieval set: 10-second film segments, distractors and edited query copies.

Everything is cut from the real sample videos of `chain_sdk.data` with the static ffmpeg that
imageio-ffmpeg ships, deterministically, into `cache_dir()/retrieval/videos`. A file's name
carries a hash of its full recipe (source checksum, times, filter graph, encoder arguments,
ffmpeg build), so changing any of them makes a new file and re-runs reuse finished ones.

Splits (film = `bbb.mp4`, Big Buck Bunny, 596 s):

- train: film 0-240 s plus the small clips. Only used to fit PCA (and, by the lead, CHAIN).
- dev: evaluation segments are 10 s windows of film 240-300 s with a 5 s hop; the distractors
  are the 10 s windows of film 0-240 s and the small clips. The held-out part of the film is kept
  out of the dev database too, so nothing tuned on dev has seen it.
- heldout: evaluation segments are 10 s windows of film 300-590 s (no overlap); the distractors
  are the 10 s windows of film 0-300 s and the small clips.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from chain_sdk import data

log = logging.getLogger(__name__)

FILM = "bbb.mp4"
FILM_DURATION_S = 596.0
SEGMENT_S = 10.0
TRAIN_END_S = 240.0
DEV_RANGE_S = (240.0, 300.0)
HELDOUT_RANGE_S = (data.HELD_OUT_FROM_S, FILM_DURATION_S)
SPLITS = ("dev", "heldout")

# Encoder settings: originals near-lossless, edited copies at a typical upload quality.
ORIGINAL_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
QUERY_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
LOW_BITRATE_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-b:v", "150k", "-maxrate", "150k",
                      "-bufsize", "300k", "-pix_fmt", "yuv420p")


@dataclass(frozen=True)
class Clip:
    """A piece of a source asset: `duration` seconds from `start` (None: the whole asset)."""

    key: str
    source: str
    start: float = 0.0
    duration: float | None = SEGMENT_S


@dataclass(frozen=True)
class Edit:
    """One query transformation: an ffmpeg filter graph plus encoder arguments.

    `shift` moves the cut earlier in the source (the time-shift edit), `speed` plays faster.
    """

    name: str
    description: str
    vf: str | None = None
    encode: tuple[str, ...] = QUERY_ENCODE
    shift: bool = False


def font_file() -> str:
    """A TrueType font for drawtext that needs no fontconfig: matplotlib's bundled DejaVu Sans."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")


def _edits() -> dict[str, Edit]:
    even = "trunc({}/2)*2"  # libx264 with yuv420p needs even sizes
    font = font_file().replace(":", r"\:")
    edits = (
        Edit("reencode_half", "half size, 150 kbit/s H.264",
             f"scale={even.format('iw/2')}:{even.format('ih/2')}", LOW_BITRATE_ENCODE),
        Edit("crop80", "centre crop to 80% of width and height",
             f"crop={even.format('iw*0.8')}:{even.format('ih*0.8')}"),
        Edit("hflip", "horizontal flip", "hflip"),
        Edit("brightness_contrast", "brightness +0.15, contrast x1.3",
             "eq=brightness=0.15:contrast=1.3"),
        Edit("blur", "Gaussian blur, sigma 4 px", "gblur=sigma=4"),
        Edit("greyscale", "greyscale", "format=gray,format=yuv420p"),
        Edit("text_overlay", "caption text on a translucent box",
             f"drawtext=fontfile={font}:text='COPY 2026 - not original':fontsize=h/10:"
             "fontcolor=white:box=1:boxcolor=black@0.6:x=(w-text_w)/2:y=h-text_h-h/12"),
        Edit("letterbox", "squeezed to 75% height, black bars top and bottom",
             f"scale=iw:{even.format('ih*0.75')},pad=iw:{even.format('ih/0.75')}:0:(oh-ih)/2"),
        Edit("time_shift", "cut 1-2 s earlier (same length)", None, QUERY_ENCODE, shift=True),
        Edit("speed_1.25x", "played 1.25x faster (video only)", "setpts=PTS/1.25"),
    )
    return {e.name: e for e in edits}


EDITS: dict[str, Edit] = _edits()


@dataclass(frozen=True)
class Video:
    """One file of the benchmark. Queries name their single relevant database item."""

    key: str
    path: Path
    role: str  # "database" or "query"
    relevant: str | None = None  # queries: key of the source original
    edit: str | None = None


@dataclass
class RetrievalSet:
    split: str
    database: list[Video]
    queries: list[Video]
    eval_keys: list[str] = field(default_factory=list)

    def relevant_indices(self) -> np.ndarray:
        index = {v.key: i for i, v in enumerate(self.database)}
        return np.array([index[q.relevant] for q in self.queries], dtype=np.int64)


def film_windows(start: float, end: float, hop: float) -> list[Clip]:
    """All whole 10 s windows of the film inside [start, end) at the given hop."""
    starts = np.arange(start, end - SEGMENT_S + 1e-6, hop)
    return [Clip(f"film_{s:05.1f}s", FILM, float(s)) for s in starts]


def small_clips() -> list[Clip]:
    return [Clip(f"clip_{Path(n).stem}", n, 0.0, SEGMENT_S) for n in data.SMALL_CLIPS]


def split_clips(split: str) -> tuple[list[Clip], list[Clip]]:
    """(evaluation segments, distractors) of a split."""
    if split == "dev":
        return film_windows(*DEV_RANGE_S, hop=5.0), film_windows(0.0, TRAIN_END_S, 10.0) + small_clips()
    if split == "heldout":
        evaluation = film_windows(*HELDOUT_RANGE_S, hop=10.0)
        return evaluation, film_windows(0.0, HELDOUT_RANGE_S[0], 10.0) + small_clips()
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def shift_seconds(key: str) -> float:
    """Deterministic per-segment shift in [1, 2] s (seeded by the segment key)."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return round(float(rng.uniform(1.0, 2.0)), 2)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _recipe_cmd(clip: Clip, edit: Edit | None, out: Path) -> list[str]:
    src = data.path(clip.source)
    start = clip.start - (shift_seconds(clip.key) if edit is not None and edit.shift else 0.0)
    cmd = [ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-threads", "2"]
    if start > 0:
        cmd += ["-ss", f"{start:.3f}"]
    if clip.duration is not None:
        cmd += ["-t", f"{clip.duration:.3f}"]
    cmd += ["-i", str(src), "-an", "-sn"]
    if edit is not None and edit.vf:
        cmd += ["-vf", edit.vf]
    elif edit is None and clip.source != FILM:  # cityCC0 is 720x405; libx264 yuv420p needs even sizes
        cmd += ["-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]
    cmd += list(edit.encode if edit is not None else ORIGINAL_ENCODE)
    return cmd + [str(out)]


def videos_dir() -> Path:
    return data.cache_dir() / "retrieval" / "videos"


def _target(clip: Clip, edit: Edit | None) -> tuple[Path, list[str]]:
    placeholder = Path("OUT.mp4")
    cmd = _recipe_cmd(clip, edit, placeholder)
    recipe = {"cmd": cmd[1:], "ffmpeg": Path(cmd[0]).name, "source_sha256": data.ASSETS[clip.source].sha256}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{clip.key}__{edit.name if edit else 'orig'}__{digest}.mp4"
    out = videos_dir() / name
    return out, cmd[:-1] + [str(out)]


def materialize(jobs: list[tuple[Clip, Edit | None]], *, progress: bool = True) -> list[Path]:
    """Cut/edit every (clip, edit) into the cache (skipping finished files); returns the paths."""
    videos_dir().mkdir(parents=True, exist_ok=True)
    targets = [_target(clip, edit) for clip, edit in jobs]
    todo = [(out, cmd) for out, cmd in targets if not out.is_file()]
    for out, cmd in tqdm(todo, desc="ffmpeg cuts and edits", unit="video", disable=not progress or not todo):
        tmp = out.with_suffix(".part.mp4")
        cmd = cmd[:-1] + [str(tmp)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed for {out.name}: {result.stderr[-1500:]}")
        os.replace(tmp, out)
    return [out for out, _ in targets]


def build(split: str, *, edits: list[str] | None = None, limit_segments: int | None = None,
          limit_distractors: int | None = None, progress: bool = True) -> RetrievalSet:
    """Materialize a split's database (originals + distractors) and its edited queries.

    Database order (used to break ranking ties): film windows by start time, then the small
    clips. Film distractors come before the evaluation originals, so a tie with one of them
    counts against the relevant item, never for it.
    """
    evaluation, distractors = split_clips(split)
    if limit_segments is not None:
        evaluation = evaluation[:limit_segments]
    if limit_distractors is not None:
        distractors = distractors[:limit_distractors]
    edit_names = list(edits) if edits is not None else list(EDITS)
    unknown = sorted(set(edit_names) - set(EDITS))
    if unknown:
        raise ValueError(f"unknown edits {unknown}; known: {sorted(EDITS)}")
    db_clips = sorted(evaluation + distractors, key=lambda c: (c.source != FILM, c.source, c.start))
    query_jobs = [(clip, EDITS[name]) for clip in evaluation for name in edit_names]
    paths = materialize([(c, None) for c in db_clips] + query_jobs, progress=progress)
    db_paths, query_paths = paths[: len(db_clips)], paths[len(db_clips):]
    database = [Video(c.key, p, "database") for c, p in zip(db_clips, db_paths)]
    queries = [Video(f"{c.key}__{e.name}", p, "query", relevant=c.key, edit=e.name)
               for (c, e), p in zip(query_jobs, query_paths)]
    return RetrievalSet(split, database, queries, [c.key for c in evaluation])

"""The near-duplicate retrieval set: 10-second segments, distractors and edited query copies.

Everything is cut from the real sample videos of `chain_sdk.data` with the static ffmpeg that
imageio-ffmpeg ships, deterministically, into `cache_dir()/retrieval/videos`. A file's name
carries a hash of its full recipe (source checksum, times, filter graph, encoder arguments,
ffmpeg build), so changing any of them makes a new file and re-runs reuse finished ones.

Splits follow `chain_sdk.data.SOURCES` (by source and by time; cartoon, CG and live action):

- dev: evaluation segments are 10 s windows of the dev sources (film 240-300 s with a 5 s hop,
  so overlapping originals are hard negatives; Sintel 20-36 s; whole live-action clips that no
  training run sees), `DEV_DRAWS` queries per edit family each;
- heldout: 10 s windows of film 300-590 s (no overlap), Sintel 36-52 s and the held-out clips,
  `HELDOUT_DRAWS` queries per family;
- distractors: 10 s windows of every training source (film 0-240 s every 5 s), and for
  held-out also the dev sources. Other videos pasted into a query (picture-in-picture, logos,
  intros) are distractors of the same split, so they are in the database too.

The queries are ffmpeg filter graphs of `benchmarks.retrieval.edits` (other code and other
parameters than the training augmentation; `pip` and `rotate` are never used in training).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.retrieval import edits
from chain_sdk import data

log = logging.getLogger(__name__)

FILM = "bbb.mp4"
FILM_DURATION_S = 596.0
SEGMENT_S = 10.0
TRAIN_END_S = data.DEV_FROM_S
SPLITS = ("dev", "heldout")
DEV_DRAWS = 3  # queries per edit family and evaluation segment
HELDOUT_DRAWS = 2
EVAL_HOP_S = {"dev": 5.0, "heldout": 10.0}  # film and Sintel windows of the evaluation segments
DISTRACTOR_HOP_S = 5.0

# Encoder settings: originals near-lossless, at most 320 px wide like the queries.
ORIGINAL_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
ORIGINAL_GRAPH = "[0:v]scale='min(iw,320)':-2,setsar=1[out]"


@dataclass(frozen=True)
class Clip:
    """A piece of a source asset: `duration` seconds from `start` (None: the whole asset)."""

    key: str
    source: str
    start: float = 0.0
    duration: float | None = SEGMENT_S

    @property
    def group(self) -> str:
        return data.SOURCES[self.source].group


def font_file() -> str:
    """A TrueType font for drawtext that needs no fontconfig: matplotlib's bundled DejaVu Sans."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")


@dataclass(frozen=True)
class Video:
    """One file of the benchmark. Queries name their single relevant database item."""

    key: str
    path: Path
    role: str  # "database" or "query"
    relevant: str | None = None  # queries: key of the source original
    edit: str | None = None  # queries: the edit family
    group: str = ""  # source group: cartoon, cg, live
    description: str = ""  # queries: the drawn parameters
    pasted: str | None = None  # queries: key of the database video pasted into it (ignored when ranking)


@dataclass
class RetrievalSet:
    split: str
    database: list[Video]
    queries: list[Video]
    eval_keys: list[str] = field(default_factory=list)

    def relevant_indices(self) -> np.ndarray:
        index = {v.key: i for i, v in enumerate(self.database)}
        return np.array([index[q.relevant] for q in self.queries], dtype=np.int64)

    def ignored_mask(self) -> np.ndarray:
        """bool [Q, N]: each query's pasted video (a picture-in-picture's background, an overlaid
        patch, an intro), a true copy that is left out of its ranking instead of counting as a miss."""
        index = {v.key: i for i, v in enumerate(self.database)}
        mask = np.zeros((len(self.queries), len(self.database)), dtype=bool)
        for row, q in enumerate(self.queries):
            if q.pasted is not None:
                mask[row, index[q.pasted]] = True
        return mask


def source_windows(name: str, start: float, end: float, hop: float) -> list[Clip]:
    """10 s windows of one source inside [start, end) at `hop`; a source shorter than 1.5
    segments is one clip (the whole of it from `start`)."""
    end = min(end, duration_s(name))
    if end - start < 1.5 * SEGMENT_S:
        return [Clip(f"{Path(name).stem}_{start:05.1f}s", name, start, min(SEGMENT_S, end - start))]
    starts = np.arange(start, end - SEGMENT_S + 1e-6, hop)
    prefix = "film" if name == FILM else Path(name).stem
    return [Clip(f"{prefix}_{s:05.1f}s", name, float(s)) for s in starts]


def duration_s(name: str) -> float:
    """A source's duration in seconds (the film's is known; others from the container)."""
    if name == FILM:
        return FILM_DURATION_S
    import cv2

    cap = cv2.VideoCapture(str(data.path(name)))
    try:
        n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return float(n / fps) if n > 0 and fps > 0 else SEGMENT_S


def split_windows(split: str, hop: float) -> list[Clip]:
    return [c for s, (a, b) in data.split_sources(split) for c in source_windows(s.name, a, b, hop)]


def train_clips() -> list[Clip]:
    """10 s windows of every training source (the distractors; PCA is fitted on them)."""
    return split_windows("train", DISTRACTOR_HOP_S)


def split_clips(split: str) -> tuple[list[Clip], list[Clip]]:
    """(evaluation segments, distractors) of a split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    evaluation = split_windows(split, EVAL_HOP_S[split])
    distractors = train_clips() + (split_windows("dev", EVAL_HOP_S["dev"]) if split == "heldout" else [])
    return evaluation, distractors


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _recipe_cmd(clip: Clip, recipe: edits.Recipe | None, out: Path) -> list[str]:
    """ffmpeg command of an original (cut from the source) or a query. A query is made from the
    segment's published original (320 px wide, a generation of loss like any re-upload, and 4x
    cheaper to decode than the 720p source), except a time shift, which needs the source."""
    cmd = [ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-threads", "2"]
    if recipe is None or recipe.shift:
        start = max(0.0, clip.start - (recipe.shift if recipe is not None else 0.0))
        if start > 0:
            cmd += ["-ss", f"{start:.3f}"]
        if clip.duration is not None:
            cmd += ["-t", f"{clip.duration:.3f}"]
        cmd += ["-i", str(data.path(clip.source))]
    else:
        cmd += ["-i", str(_target(clip, None)[0])]
    if recipe is not None and recipe.other is not None:
        other_path, _ = recipe.other  # a distractor's original, in the database as well
        if recipe.other_duration is not None:
            cmd += ["-t", f"{recipe.other_duration:.3f}"]
        cmd += ["-i", other_path]
    graph = recipe.graph if recipe is not None else ORIGINAL_GRAPH
    cmd += ["-filter_complex", graph, "-map", "[out]", "-an", "-sn"]
    if recipe is not None and recipe.other is not None and recipe.other_duration is None:
        cmd += ["-t", f"{clip.duration or SEGMENT_S:.3f}"]
    cmd += list(recipe.encode if recipe is not None else ORIGINAL_ENCODE)
    return cmd + [str(out)]


def videos_dir() -> Path:
    return data.cache_dir() / "retrieval" / "videos"


def _target(clip: Clip, edit: edits.Recipe | None, tag: str = "orig") -> tuple[Path, list[str]]:
    placeholder = Path("OUT.mp4")
    cmd = _recipe_cmd(clip, edit, placeholder)
    recipe = {"cmd": [str(c).replace(str(videos_dir()), "VIDEOS").replace(str(data.data_dir()), "DATA")
                      for c in cmd[1:]],
              "ffmpeg": Path(cmd[0]).name, "source_sha256": data.ASSETS[clip.source].sha256}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{clip.key}__{tag}__{digest}.mp4"
    out = videos_dir() / name
    return out, cmd[:-1] + [str(out)]


def materialize(jobs: list[tuple[Clip, edits.Recipe | None, str]] | list[tuple[Clip, None]], *,
                progress: bool = True) -> list[Path]:
    """Cut/edit every (clip, recipe[, tag]) into the cache (skipping finished files); returns the paths."""
    videos_dir().mkdir(parents=True, exist_ok=True)
    targets = [_target(*job) for job in jobs]
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


def interleave(clips: list[Clip]) -> list[Clip]:
    """Clips round-robin over their sources (first of each source, then the second, ...)."""
    by_source: dict[str, list[Clip]] = {}
    for c in clips:
        by_source.setdefault(c.source, []).append(c)
    rounds = itertools.zip_longest(*by_source.values())
    return [c for r in rounds for c in r if c is not None]


def query_jobs(evaluation: list[Clip], distractors: list[Clip], families: list[str], draws: int
               ) -> list[tuple[Clip, edits.Recipe, str]]:
    """Every (segment, recipe, tag) of a split: `draws` recipes of each family per segment; the
    second video of a recipe is a distractor of another source, drawn with the recipe."""
    font = font_file().replace(":", r"\:")
    jobs = []
    for clip in evaluation:
        others = [d for d in distractors if d.source != clip.source] or distractors
        for family in families:
            for i in range(draws):
                pick = edits.rng_for(clip.key, family + "/other", i)
                other = others[int(pick.integers(len(others)))]
                recipe = edits.draw(clip.key, family, i, font=font, other=(str(_target(other, None)[0]), 0.0))
                jobs.append((clip, recipe, f"{family}{i}"))
    return jobs


def build(split: str, *, edits_: list[str] | None = None, limit_segments: int | None = None,
          limit_distractors: int | None = None, draws: int | None = None, progress: bool = True) -> RetrievalSet:
    """Materialize a split's database (originals + distractors) and its edited queries.

    Database order (used to break ranking ties): sources in `chain_sdk.data.SOURCES` order, each
    by start time; distractors of the film come before the evaluation originals, so a tie with
    one of them counts against the relevant item, never for it.
    """
    evaluation, distractors = split_clips(split)
    if limit_segments is not None:  # a subset that keeps every source: round-robin over sources
        evaluation = interleave(evaluation)[:limit_segments]
    if limit_distractors is not None:
        distractors = distractors[:limit_distractors]
    families = list(edits_) if edits_ is not None else list(edits.FAMILIES)
    unknown = sorted(set(families) - set(edits.FAMILIES))
    if unknown:
        raise ValueError(f"unknown edit families {unknown}; known: {list(edits.FAMILIES)}")
    order = {name: i for i, name in enumerate(data.SOURCES)}
    db_clips = sorted(evaluation + distractors, key=lambda c: (order[c.source], c.start))
    jobs = query_jobs(evaluation, distractors, families, draws or (DEV_DRAWS if split == "dev" else HELDOUT_DRAWS))
    paths = materialize([(c, None, "orig") for c in db_clips] + jobs, progress=progress)
    db_paths, query_paths = paths[: len(db_clips)], paths[len(db_clips):]
    database = [Video(c.key, p, "database", group=c.group) for c, p in zip(db_clips, db_paths)]
    key_of = {str(_target(d, None)[0]): d.key for d in distractors}
    queries = [Video(f"{c.key}__{tag}", p, "query", relevant=c.key, edit=r.family, group=c.group,
                     description=r.description, pasted=key_of[r.other[0]] if r.other else None)
               for (c, r, tag), p in zip(jobs, query_paths)]
    return RetrievalSet(split, database, queries, [c.key for c in evaluation])

"""`chain-sdk demo`: edited copies of the sample clips (flip, crop, half size, letterbox),
encoded with the default model, and a table of who matches whom."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from chain_sdk.codes import hamming_distance
from chain_sdk.errors import ChainSDKError
from chain_sdk.files import atomic_path, cache_dir

DEMO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "cityCC0.mpg", "carphone.mp4")
EDITS = {  # name -> ffmpeg video filter (_edit_frame does the same with OpenCV)
    "flip": "hflip",
    "crop80": "crop=trunc(iw*0.8/2)*2:trunc(ih*0.8/2)*2",
    "halfsize": "scale=trunc(iw/4)*2:trunc(ih/4)*2",
    "letterbox": "scale=iw:trunc(ih*3/8)*2,pad=iw:trunc(ih*2/3)*2:0:(oh-ih)/2",  # 75 % height, bars
}


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_copy(src: Path, dst: Path, edit: str) -> Path:
    """An edited, re-encoded copy: the static ffmpeg (libx264, CRF 28) when imageio-ffmpeg is
    installed, else OpenCV (mp4v, the only encoder the pip wheel has)."""
    if edit not in EDITS:
        raise ChainSDKError(f"unknown edit {edit!r}; known: {sorted(EDITS)}")
    if dst.is_file():
        return dst
    ffmpeg = _ffmpeg()
    with atomic_path(dst) as tmp:
        _write_copy(src, tmp, edit, ffmpeg)
    return dst


def _write_copy(src: Path, tmp: Path, edit: str, ffmpeg: str | None) -> None:
    import cv2

    vf = EDITS[edit]
    if ffmpeg:
        even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"  # libx264 with 4:2:0 needs even sizes
        done = subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-vf", f"{vf},{even}",
                               "-an", "-c:v", "libx264", "-crf", "28", "-preset", "veryfast",
                               "-pix_fmt", "yuv420p", str(tmp)], capture_output=True, text=True)
        if done.returncode:
            raise ChainSDKError(f"ffmpeg could not make the {edit} copy of {src}: {done.stderr[-500:]}")
    else:
        from chain_sdk.video import iter_frames

        writer = None
        for frame, _ in iter_frames(src):
            frame = _edit_frame(frame, edit)
            if writer is None:
                cap = cv2.VideoCapture(str(src))
                fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
                cap.release()
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        if writer is not None:
            writer.release()


def _edit_frame(frame: np.ndarray, edit: str) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    if edit == "flip":
        return np.ascontiguousarray(frame[:, ::-1])
    if edit == "crop80":
        dh, dw = h // 10, w // 10
        return np.ascontiguousarray(frame[dh:h - dh, dw:w - dw])
    if edit == "letterbox":
        squeezed = cv2.resize(frame, (w, round(h * 0.75)), interpolation=cv2.INTER_AREA)
        bar = (h - squeezed.shape[0]) // 2
        return cv2.copyMakeBorder(squeezed, bar, h - squeezed.shape[0] - bar, 0, 0, cv2.BORDER_CONSTANT)
    return cv2.resize(frame, (w // 2 // 2 * 2, h // 2 // 2 * 2), interpolation=cv2.INTER_AREA)


def run_demo(enc: Any, workdir: Path | None = None) -> None:
    """Fetch the sample clips, make the edited copies, encode all with `enc`, print the table."""
    from chain_sdk import data

    originals = [p for p in data.fetch(list(DEMO_CLIPS)).values()]
    work = workdir or cache_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    copies = []
    for src in originals[:3]:
        for edit in EDITS:
            copies.append((src, edit, make_copy(src, work / f"{Path(src).stem}.{edit}.mp4", edit)))
    print(f"model: {enc.model_dir}  ({enc.bits} bits, T={enc.frames}, {enc.mode} graphs)")
    orig_codes = enc.encode_batch(originals, on_error="raise", progress=False).codes
    copy_codes = enc.encode_batch([c for _, _, c in copies], on_error="raise", progress=False).codes
    names = [Path(p).name for p in originals]
    print_demo_table(names, orig_codes, copies, copy_codes)


def print_demo_table(names: list[str], orig_codes: np.ndarray, copies: list, copy_codes: np.ndarray) -> None:
    dist = np.asarray(hamming_distance(copy_codes[:, None, :], orig_codes))
    width = max(len(n) for n in names)
    header = f"{'copy':32s} " + " ".join(f"{n[:width]:>{width}s}" for n in names) + "   nearest"
    print("\nHamming distance from each edited copy to each original (lower = more similar)")
    print(header)
    print("-" * len(header))
    correct = 0
    for (src, edit, path), row in zip(copies, dist):
        nearest = int(np.argmin(row))
        ok = names[nearest] == Path(src).name
        correct += ok
        cells = " ".join(f"{d:>{width}d}" for d in row.tolist())
        print(f"{Path(path).name[:32]:32s} {cells}   {names[nearest]} {'ok' if ok else 'WRONG'}")
    between = np.asarray(hamming_distance(orig_codes[:, None, :], orig_codes))
    off = between[~np.eye(len(names), dtype=bool)]
    print(f"\n{correct}/{len(copies)} copies matched their original; distances between different "
          f"originals: min {off.min()}, median {int(np.median(off))}")
    print("(these sample clips are part of the default model's training data; "
          "docs/near_duplicate_report*.md measure sources and film time it never saw)")

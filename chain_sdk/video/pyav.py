"""PyAV decoding: read the container's packets first, then decode only what sampling needs.

OpenCV's `grab()` decodes every frame, so sampling 25 frames of a 10-second clip decodes 250.
Here `frame_times()` demuxes the video stream once without decoding (reading packets costs a
small fraction of decoding them), which gives every frame's presentation time exactly, also for
variable frame rate and truncated files. `decode_at(indices)` then decodes, for each wanted
frame, the packets from the last keyframe at or before it (in presentation time, so the leading
pictures of an open GOP keep their references) up to its own packet, and
- tells the decoder to drop non-reference frames that are not wanted (AVDISCARD_NONREF: no
  other frame is predicted from them), which is most B-frames;
- seeks over the packets between two such ranges, verifying that the seek landed on the
  keyframe asked for (same dts and pts) and reading forward from an earlier landing; a seek
  that lands later, or a wanted frame that does not come out of the decoder with its pts,
  raises `SeekMismatch`, and the sampler decodes sequentially instead;
- uses the decoder's own threads (frame and slice threads, `thread_count=0`: all cores).

Damage is counted, not hidden: packets the decoder rejects (`decode_errors`) and frames it
decoded with concealed errors (`damaged_frames`, FFmpeg's corrupt-frame flag; in selective
decoding, among the wanted frames and the frames they are predicted from) make the video
partial (`chain_sdk.video.sampling.partial_reason`).

Frames are converted to BGR by swscale exactly as OpenCV's FFmpeg backend does (BT.601
coefficients, limited range, bicubic flags), so both decoders give the same pixels and codes.

PyAV is imported lazily: `import chain_sdk` stays light.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.errors import NoVideoStreamError, VideoDecodeError, VideoError, VideoOpenError
from chain_sdk.video.base import DEFAULT_FPS, SeekMismatch, VideoSource

log = logging.getLogger(__name__)


@functools.cache
def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def stream_kinds(path: str) -> list[str] | None:
    """The stream types of a media file ("audio", "video", ...), or None when FFmpeg cannot
    open it at all."""
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            return sorted({s.type for s in container.streams})
    except av.error.FFmpegError:
        return None


class _Packet(NamedTuple):
    dts: int | None
    pts: int
    key: bool
    shown: bool  # False: decoded for reference only (before an edit list's start)


def count_frames(path: str) -> int | None:
    """The frames a whole file shows, from its packets (None: unknown, truncated, or not
    openable by FFmpeg)."""
    try:
        with PyAVSource(path, path) as src:
            times = src.frame_times()
    except VideoError:
        return None
    return len(times) if times is not None else None


# MPEG program and transport streams: seeks land elsewhere and packet timestamps do not map
# one to one onto frames, so keyframe ranges gave wrong frames there (cityCC0.mpg, frame 109 of a
# random set; test_decode_at_equals_decoding_everything). They are decoded in order instead.
SEQUENTIAL_FORMATS = {"mpeg", "mpegts", "mpegvideo"}


class _Range(NamedTuple):
    start: int  # decode-order position of the keyframe to start from
    stop: int  # position of the last wanted packet
    wanted: dict[int, int]  # pts -> frame index


class PyAVSource(VideoSource):
    """A video file decoded by FFmpeg through PyAV (first video stream)."""

    seekable = False  # sampling uses frame_times() / decode_at(), not cursor seeks
    reopenable = True

    def __init__(self, path: str, description: str, threads: int = 0) -> None:
        super().__init__()
        import av

        self.description = description
        self._path, self._threads = path, threads
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise VideoOpenError(description, f"FFmpeg could not open it: {exc}") from exc
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams})
            self.close()
            raise NoVideoStreamError(description, f"no video stream (has {', '.join(kinds) or 'no streams'})")
        self._stream = self._video_stream()
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 1000 else None
        self.frame_count = int(self._stream.frames) or None
        self._tb = float(self._stream.time_base)
        self._packets: list[_Packet] | None = None  # decode order
        self._order: np.ndarray | None = None  # presentation rank -> packet position
        self._origin: int | None = None  # pts of the first frame shown
        self._frames: Iterator[Any] | None = None
        self._frame: Any = None
        self._packets_read = False
        self._times: np.ndarray | None = None
        self.decode_errors = 0  # packets the decoder rejected
        self.damaged_frames = 0  # frames decoded with concealed errors (AV_FRAME_FLAG_CORRUPT)

    # ------------------------------------------------------------- sequential cursor

    def grab(self) -> bool:
        if self._frames is None:
            if self._packets_read:
                self._rewind()  # frame_times() read the packets to the end
            self._frames = self._decode_all()
        import av

        try:
            self._frame = next(self._frames, None)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(self.description, f"FFmpeg failed after frame {self.index}: {exc}") from exc
        if self._frame is None:
            return False
        self.index += 1
        self.timestamp = self._time(self._frame.pts)
        return True

    def _decode_all(self) -> Iterator[Any]:
        import av

        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:  # a corrupt packet: its frame is lost, go on
                self.decode_errors += 1
                continue
            self.damaged_frames += sum(f.is_corrupt for f in frames)
            yield from frames

    def retrieve(self) -> np.ndarray:
        if self._frame is None:
            raise VideoDecodeError(self.description, "retrieve() before grab()")
        return to_bgr(self._frame)

    def _time(self, pts: int | None) -> float:
        if pts is None:
            return self.index / (self.fps or DEFAULT_FPS)
        if self._origin is None:
            self._origin = pts
        return (pts - self._origin) * self._tb

    def reopen(self) -> "PyAVSource":
        self.close()
        return PyAVSource(self._path, self.description, self._threads)

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None  # type: ignore[assignment]

    # ------------------------------------------------------------- selective decoding

    def frame_times(self) -> np.ndarray | None:
        """Presentation time (s, from the first frame) of every frame, from the packets alone;
        None when packets lack timestamps, repeat them, are corrupt or fewer than the container
        claims (truncated): then only decoding can tell."""
        if not self._packets_read:
            self._packets_read = True
            self._times = self._index()
        return self._times

    def _index(self) -> np.ndarray | None:
        import av

        packets: list[_Packet] = []
        try:
            for p in self._demux():
                if p.pts is None or p.is_corrupt:
                    return None
                packets.append(_Packet(p.dts, p.pts, bool(p.is_keyframe), not p.is_discard))
        except av.error.FFmpegError:
            return None
        shown = np.array([i for i, p in enumerate(packets) if p.shown], dtype=np.int64)
        pts = np.array([packets[i].pts for i in shown], dtype=np.int64)
        if len(pts) == 0 or len(np.unique(pts)) != len(pts):
            return None
        if self.frame_count and len(packets) < self.frame_count:
            return None  # truncated: only decoding tells which frames survive
        self.frame_count = len(pts)  # exact; fewer than claimed when an edit list hides some
        self._packets = packets
        self._order = shown[np.argsort(pts, kind="stable")]
        self._origin = int(pts.min())
        return (np.sort(pts) - self._origin) * self._tb

    @property
    def in_order_only(self) -> bool:
        """MPEG program/transport streams: frames are found only by decoding in order."""
        return self._container.format.name in SEQUENTIAL_FORMATS

    @property
    def origin_seconds(self) -> float:
        """The stream time (pts x time base, s) of frame 0: `frame_times()` count from it."""
        assert self._origin is not None, "call frame_times() first"
        return self._origin * self._tb

    def decode_at(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR frame) for each wanted frame index (presentation order), range by range.
        Call `frame_times()` first. Seeks between ranges; when a seek lies, reads the packets
        from the start instead (still decoding only the ranges). Raises `SeekMismatch` when a
        wanted frame cannot be decoded exactly."""
        assert self._packets is not None and self._order is not None
        if self.in_order_only:
            yield from self._decode_in_order(indices)
            return
        ranges = self._ranges(sorted(set(int(i) for i in indices)))
        done: set[int] = set()
        try:
            for r in ranges:
                for idx, frame in self._decode_range(r, self._seek_to(r.start)):
                    done.add(idx)
                    yield idx, frame
            return
        except SeekMismatch as exc:
            log.info("%s: %s; reading the packets from the start instead of seeking",
                     self.description, exc)
        # Where seeks lie (MPEG program streams) keyframe ranges were not exact either
        # (test_decode_at_equals_decoding_everything[cityCC0]): decode from the first packet.
        self._rewind()
        whole = _Range(0, max(r.stop for r in ranges), {k: v for r in ranges for k, v in r.wanted.items()})
        for idx, frame in self._decode_range(whole, enumerate(self._demux())):
            if idx not in done:
                yield idx, frame

    def _decode_in_order(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame from the first packet, in presentation order, up to the last wanted one:
        frame i is the i-th frame out of the decoder, as in a plain sequential read."""
        wanted = set(int(i) for i in indices)
        self._rewind()
        for i, frame in enumerate(self._container.decode(self._stream)):
            if i in wanted:
                yield i, to_bgr(frame)
            if i >= max(wanted):
                return

    def _ranges(self, indices: list[int]) -> list[_Range]:
        """Packet ranges [keyframe, last wanted packet] in decode order, with the wanted
        packets' pts -> frame index; overlapping ranges are merged."""
        packets, order = self._packets, self._order
        assert packets is not None and order is not None
        keys = np.array([i for i, p in enumerate(packets) if p.key], dtype=np.int64)
        key_pts = np.array([packets[k].pts for k in keys], dtype=np.int64)
        ranges: list[_Range] = []
        for idx in indices:
            pos = int(order[idx])
            pts = packets[pos].pts
            # the last keyframe decoded before the wanted frame and shown at or before it
            before = keys[(keys <= pos) & (key_pts <= pts)]
            if len(before) == 0:
                raise SeekMismatch(f"no keyframe before frame {idx}")
            start = int(before[-1])
            if ranges and start <= ranges[-1].stop:
                last = ranges.pop()
                start, pos, wanted = last.start, max(last.stop, pos), {**last.wanted, pts: idx}
            else:
                wanted = {pts: idx}
            ranges.append(_Range(start, pos, wanted))
        return ranges

    def _demux(self) -> Iterator[Any]:
        for p in self._container.demux(self._stream):
            if p.size:  # not the demuxer's end-of-stream marker
                yield p

    def _seek_to(self, start: int) -> Iterator[tuple[int, Any]]:
        """(decode-order position, packet) from a seek to the keyframe at `start`: the landing
        packet must be that keyframe or an earlier one (then read forward to it)."""
        packets = self._packets
        assert packets is not None
        key = packets[start]
        self._container.seek(key.dts if key.dts is not None else key.pts, backward=True,
                             any_frame=False, stream=self._stream)
        stream = self._demux()
        first = next(stream, None)
        if first is None:
            raise SeekMismatch(f"seek to packet {start} found no packets")
        for pos in range(start, -1, -1):
            p = packets[pos]
            if p.key and p.pts == first.pts and p.dts == first.dts:
                yield pos, first
                yield from enumerate(stream, pos + 1)
                return
        raise SeekMismatch(f"seek to packet {start} landed at pts {first.pts}")

    def _decode_range(self, r: _Range, packets: Iterator[tuple[int, Any]]
                      ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode packets r.start..r.stop (skipping non-reference frames that are not wanted),
        then drain and reset the decoder; yield the wanted frames in index order."""
        import av

        expected = self._packets
        assert expected is not None
        ctx = self._stream.codec_context
        found: dict[int, np.ndarray] = {}

        def keep(frames: Iterable[Any]) -> None:
            for frame in frames:
                self.damaged_frames += frame.is_corrupt  # a wanted frame or one it refers to
                if frame.pts in r.wanted and frame.pts not in found:
                    found[frame.pts] = to_bgr(frame)

        try:
            for pos, p in packets:
                if pos < r.start:
                    continue
                if pos >= len(expected) or expected[pos].pts != p.pts:
                    raise SeekMismatch(f"packet {pos} has pts {p.pts}, not the indexed one")
                ctx.skip_frame = "DEFAULT" if p.pts in r.wanted else "NONREF"
                keep(ctx.decode(p))
                if pos >= r.stop:
                    break
            ctx.skip_frame = "DEFAULT"
            keep(ctx.decode(None))  # drain the frames the decoder still holds
        except av.error.InvalidDataError as exc:
            raise SeekMismatch(f"decoding failed: {exc}") from exc
        finally:
            ctx.skip_frame = "DEFAULT"
            ctx.flush_buffers()  # a fresh decoder state for the next range
        missing = [i for pts, i in r.wanted.items() if pts not in found]
        if missing:
            raise SeekMismatch(f"frames {missing[:5]} did not come out of the decoder")
        for pts, idx in sorted(r.wanted.items(), key=lambda kv: kv[1]):
            yield idx, found[pts]

    def _rewind(self) -> None:
        """Back to the first packet: a fresh container (a seek is what could not be trusted)."""
        import av

        self._container.close()
        self._container = av.open(self._path, metadata_errors="ignore")
        self._stream = self._video_stream()

    def _video_stream(self) -> Any:
        """The first video stream, set to decode with FFmpeg's frame and slice threads."""
        stream = self._container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
        return stream


def to_bgr(frame: Any) -> np.ndarray:
    """BGR24 as OpenCV's FFmpeg backend converts (swscale, BT.601 limited range, bicubic)."""
    return frame.to_ndarray(format="bgr24", interpolation="BICUBIC")

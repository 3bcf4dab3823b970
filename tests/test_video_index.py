"""VideoIndex on real videos with the packaged default model: a copy inside unrelated footage is
found and placed, persistence keeps HammingIndex's guarantees, bad input is refused cleanly; and
`chain-sdk index add` / `chain-sdk match` end to end, in-process through main(argv), in the exact
forms the documentation gives."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from chain_sdk import cli, data
from chain_sdk.errors import IndexFormatError, ModelMismatchError, VideoError
from chain_sdk.index import HammingIndex
from chain_sdk.matching import DuplicateVideoError, Match, VideoIndex
from chain_sdk.matching import video_index as vi

pytest.importorskip("onnxruntime")


def _default_available() -> bool:
    from chain_sdk.models import PACKAGED_DIR, DEFAULT_MODEL

    return (PACKAGED_DIR / DEFAULT_MODEL / "model.safetensors").is_file()


pytestmark = pytest.mark.skipif(not _default_available(), reason="the packaged default checkpoint is not present")


def make_query(path, copy_vf: str = "null"):
    """cityCC0 0-4 s, bikes.mp4 2-9 s (through copy_vf), cityCC0 4-7.5 s; 640x360, 24 fps."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    norm = "scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=24,format=yuv420p"
    city, bikes = str(data.path("cityCC0.mpg")), str(data.path("bikes.mp4"))
    graph = (f"[0:v]{norm},setpts=PTS-STARTPTS[a];[1:v]{copy_vf},{norm},setpts=PTS-STARTPTS[b];"
             f"[2:v]{norm},setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1:a=0[out]")
    subprocess.run([ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-t", "4", "-i", city, "-ss", "2", "-t", "7",
                    "-i", bikes, "-ss", "4", "-t", "3.5", "-i", city, "-filter_complex", graph, "-map", "[out]",
                    "-an", "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vidx")
    index = VideoIndex()
    index.add(data.path("bikes.mp4"), "bikes")
    index.add(data.path("carphone.mp4"), "carphone")  # 4 s: shorter than one window
    query = make_query(tmp / "query.mp4", "hflip")
    return index, query, tmp


def overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def test_a_mirrored_copy_inside_unrelated_footage_is_found_and_placed(built):
    index, query, _ = built
    matches = index.match(query, min_score=0)
    assert matches and isinstance(matches[0], Match)
    best = matches[0]
    assert best.video_id == "bikes"
    assert overlap(best.query_start, best.query_end, 4.0, 11.0) > 3.0   # the copy sits at 4-11 s
    assert overlap(best.ref_start, best.ref_end, 2.0, 9.0) > 3.0         # taken from bikes 2-9 s
    assert best.score > max([m.score for m in matches[1:]] + [0]) 
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_stream_matching_reports_what_match_reports(built):
    index, query, _ = built
    assert list(index.match_stream(query, min_score=0)) == index.match(query, min_score=0)


def test_save_load_round_trip_is_memory_mapped_and_matches_the_same(built, tmp_path):
    index, query, _ = built
    path = tmp_path / "refs.vidx"
    index.save(path)
    loaded = VideoIndex.load(path)
    assert len(loaded) == 2 and loaded.num_windows == index.num_windows
    assert (loaded.window, loaded.hop, loaded.frames, loaded.trim) == (index.window, index.hop, index.frames, index.trim)
    assert isinstance(loaded.store.export()[0], np.ndarray)
    assert isinstance(loaded.store._snap.codes, np.memmap)
    segments = index.windows(query)
    assert loaded.match_segments(segments, 0) == index.match_segments(segments, 0)


def test_remove_and_duplicates(built, tmp_path):
    index, query, _ = built
    path = tmp_path / "a.vidx"
    index.save(path)
    copy = VideoIndex.load(path, encoder=index.encoder)
    with pytest.raises(DuplicateVideoError):
        copy.add_segments(index.windows(data.path("carphone.mp4")), "carphone")
    assert copy.remove("bikes") > 0 and copy.remove("bikes") == 0
    assert len(copy) == 1 and "bikes" not in copy
    assert all(m.video_id != "bikes" for m in copy.match_segments(index.windows(query), 0))
    copy.save(path)
    assert VideoIndex.load(path).video_ids == ["carphone"]


def test_a_query_shorter_than_one_window_still_matches(built):
    index, _, _ = built
    matches = index.match(data.path("carphone.mp4"), min_score=0)  # 4 s < the 8 s window
    assert matches[0].video_id == "carphone"


def test_empty_index_matches_nothing(built):
    index, query, _ = built
    empty = VideoIndex(encoder=index.encoder)
    assert empty.match(query, min_score=0) == []
    assert list(empty.match_stream(query, min_score=0)) == []


def test_a_video_that_fails_to_decode_adds_nothing(built, tmp_path):
    index, _, _ = built
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data.path("bikes.mp4").read_bytes()[:20000])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    before = (len(index), index.num_windows)
    for video in (bad, empty, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError):
            index.add(video, str(video))
        assert (len(index), index.num_windows) == before and str(video) not in index


@pytest.mark.parametrize("damage", ["truncate", "flip_table", "flip_code", "foreign", "hamming_only", "empty"])
def test_damaged_or_foreign_files_are_refused(built, tmp_path, damage):
    index, _, _ = built
    path = tmp_path / "refs.vidx"
    index.save(path)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 100]
    elif damage == "flip_table":
        raw[-50] ^= 0xFF
    elif damage == "flip_code":
        raw[4096] ^= 0x01
    elif damage == "foreign":
        raw = bytearray(b"PK\x03\x04" + bytes(5000))
    elif damage == "empty":
        raw = bytearray()
    if damage == "hamming_only":
        HammingIndex(64).save(path)
    else:
        path.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError):
        VideoIndex.load(path)


def test_an_encoder_that_does_not_fit_the_index_is_refused(built, tmp_path):
    index, _, _ = built
    path = tmp_path / "refs.vidx"
    index.save(path)
    from chain_sdk.encoder import Encoder

    with pytest.raises(ModelMismatchError, match="frames"):
        VideoIndex.load(path, encoder=Encoder(frames=index.frames - 1))
    with pytest.raises(ModelMismatchError, match="bit codes"):
        VideoIndex(encoder=index.encoder, store=HammingIndex(32))


# ------------------------------------------------------------------------------ command line

KEYS = ["query", "video", "query_start", "query_end", "ref_start", "ref_end", "score"]


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_match")
    return tmp, make_query(tmp / "upload.mp4", "eq=brightness=0.1:saturation=1.5")


def test_index_add_creates_appends_and_skips_bad_videos(cli_files, capsys):
    tmp, _ = cli_files
    idx = tmp / "refs.vidx"
    bikes, carphone = str(data.path("bikes.mp4")), str(data.path("carphone.mp4"))
    broken = tmp / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    assert cli.main(["index", "add", bikes, str(broken), "--index", str(idx)]) == cli.EXIT_PARTIAL
    err = capsys.readouterr().err
    assert str(broken) in err and "skipped" in err
    assert cli.main(["index", "add", carphone, bikes, "--index", str(idx)]) == cli.EXIT_PARTIAL  # bikes again
    out, err = capsys.readouterr()
    assert "already in the index" in err and "2 videos" in out
    from chain_sdk.matching import VideoIndex

    assert sorted(VideoIndex.load(idx).video_ids) == sorted([bikes, carphone])
    assert cli.main(["index", "add", carphone, "--index", str(idx), "--window", "3"]) == cli.EXIT_ERROR
    assert "window" in capsys.readouterr().err


def test_match_json_lines_best_first(cli_files, capsys):
    tmp, upload = cli_files
    idx = tmp / "refs.vidx"
    assert cli.main(["match", str(upload), "--index", str(idx), "--min-score", "0", "--json"]) == cli.EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(list(r) == KEYS for r in rows)
    assert all(r["query"] == str(upload) for r in rows)
    assert rows[0]["video"] == str(data.path("bikes.mp4"))
    assert rows[0]["query_start"] < 11 and rows[0]["query_end"] > 4      # the copy is at 4-11 s
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert cli.main(["match", str(upload), str(tmp / "missing.mp4"), "--index", str(idx)]) == cli.EXIT_PARTIAL
    out, err = capsys.readouterr()
    assert f"{upload}:" in out and "missing.mp4: failed" in err


def test_match_refuses_a_damaged_index(cli_files, capsys, tmp_path):
    _, upload = cli_files
    bad = tmp_path / "bad.vidx"
    bad.write_bytes(b"CHAINIDX" + b"\x00" * 5000)
    assert cli.main(["match", str(upload), "--index", str(bad)]) == cli.EXIT_ERROR
    assert "chain-sdk: error" in capsys.readouterr().err


def test_help_states_the_default_threshold(capsys):
    with pytest.raises(SystemExit):
        cli.main(["match", "--help"])
    out = capsys.readouterr().out
    assert f"{vi.DEFAULT_THRESHOLD:g}" in out and "precision" in out

"""The chain-sdk command line, run in-process through main(argv) on real videos and a real
exported (untrained) model from the model cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chain_sdk import cli, data
from chain_sdk.codes import from_hex

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from chain_sdk.export.onnx_export import export_cached
    from chain_sdk.nn.checkpoint import save_checkpoint
    from chain_sdk.nn.chain import ChainConfig, ChainModel

    torch.manual_seed(1234)  # the same weights as tests/test_encoder.py: one cached export
    model = ChainModel(ChainConfig(bits=64, frames=8, dim=64, depth=1, heads=2))
    ckpt = tmp_path_factory.mktemp("ckpt") / "untrained-test-t8"
    save_checkpoint(ckpt, model, training={"note": "untrained, for plumbing tests only"})
    return str(export_cached(ckpt))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("encode", "data", "index", "search", "demo"):
        assert command in out


def test_encode_jsonl_reports_each_video_and_partial_failure(model_dir, tmp_path, capsys):
    out = tmp_path / "codes.jsonl"
    videos = [str(data.path("bikes.mp4")), str(tmp_path / "missing.mp4"), str(data.path("carphone.mp4"))]
    rc = cli.main(["encode", *videos, "--model", model_dir, "-o", str(out), "--no-progress"])
    assert rc == cli.EXIT_PARTIAL
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == videos
    assert rows[1]["error_type"] == "VideoOpenError" and "code" not in rows[1]
    from chain_sdk.encoder import Encoder

    np.testing.assert_array_equal(from_hex(rows[2]["code"]), Encoder(model_dir).encode(videos[2]))
    assert "missing.mp4" in capsys.readouterr().err


def test_npy_index_and_search_round_trip(model_dir, tmp_path, capsys):
    videos = [str(data.path(n)) for n in ("bikes.mp4", "carphone.mp4", "cityCC0.mpg")]
    codes = tmp_path / "codes.npy"
    assert cli.main(["encode", *videos, "--model", model_dir, "-o", str(codes), "--no-progress"]) == 0
    assert np.load(codes).shape == (3, 8)
    assert (tmp_path / "codes.sources.txt").read_text().splitlines() == videos
    index = tmp_path / "videos.idx"
    assert cli.main(["index", "build", "--codes", str(codes), "--out", str(index)]) == 0
    capsys.readouterr()
    assert cli.main(["search", videos[2], "--index", str(index), "-k", "2", "--model", model_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["1", "distance", "0"] and lines[1].endswith("cityCC0.mpg")


def test_parquet_round_trip(model_dir, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "codes.parquet"
    videos = [str(data.path("carphone.mp4")), str(tmp_path / "nope.mp4")]
    assert cli.main(["encode", *videos, "--model", model_dir, "-o", str(out), "--no-progress"]) == cli.EXIT_PARTIAL
    codes, sources = cli.read_codes(out)
    assert codes.shape == (1, 8) and sources == videos[:1]


def exit_status(main, argv) -> int:
    """What the console script would exit with (argparse raises SystemExit for usage errors)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture
def code_files(tmp_path):
    (tmp_path / "failed.jsonl").write_text('{"index": 0, "path": "a.mp4", "error": "no such file"}\n')
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    return tmp_path


USER_MISTAKES = [  # issue 13 #11: (argv, exit status, what stderr must say)
    (["encode", "a.mp4", "-o", "out.npy", "--batch-size", "0"], 2, "--batch-size: 0 is not positive"),
    (["encode", "a.mp4", "-o", "out.npy", "--frames", "0"], 2, "--frames: 0 is not positive"),
    (["encode", "a.mp4", "-o", "out.npy", "--device", "gpu0"], 2, "device must be 'cpu', 'cuda'"),
    (["search", "q.mp4", "--index", "x.idx", "-k", "-1"], 2, "-k: -1 is not positive"),
    (["encode", "a.mp4", "-o", "out.csv"], 2, "--out must end in one of"),
    (["data", "fetch", "nosuch.mp4"], 2, "unknown sample assets ['nosuch.mp4']"),
    (["index", "build", "--codes", "{tmp}/missing.npy", "--out", "{tmp}/i.idx"], 1, "no such codes file"),
    (["index", "build", "--codes", "{tmp}/failed.jsonl", "--out", "{tmp}/i.idx"], 1, "no codes to index"),
    (["index", "build", "--codes", "{tmp}/junk.npy", "--out", "{tmp}/i.idx"], 1, "not a readable"),
    (["encode", "a.mp4", "-o", "{tmp}/o.npy", "--model", "{tmp}/none"], 1, "no such model directory"),
]


@pytest.mark.parametrize("argv, status, message", USER_MISTAKES)
def test_user_mistakes_get_a_message_and_the_documented_status(argv, status, message, code_files, capsys):
    argv = [a.format(tmp=code_files) for a in argv]
    assert exit_status(cli.main, argv) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (code_files / "i.idx").exists()


def test_the_three_command_lines_share_and_document_exit_codes(tmp_path, capsys):
    from chain_sdk.cli.exits import EXIT_CODES_HELP
    from chain_sdk.export.cli import main as export_main
    from chain_sdk.train.cli import main as train_main

    for main in (cli.main, train_main, export_main):
        assert exit_status(main, ["--help"]) == 0
        assert EXIT_CODES_HELP in capsys.readouterr().out
    assert exit_status(train_main, ["fit", "--features", "x.h5", "--out", "o", "--batch-size", "0"]) == 2
    assert exit_status(export_main, ["onnx", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert exit_status(export_main, ["verify", "--reference", "a", "--candidate", "b", "--videos", "v.mp4",
                                     "--clips-per-video", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_api_refuses_what_the_cli_refuses(model_dir):
    from chain_sdk.backends import create_backend
    from chain_sdk.encoder import Encoder
    from chain_sdk.errors import ModelMismatchError

    with pytest.raises(ValueError, match="device must be"):
        create_backend("auto", f"{model_dir}/backbone.onnx", device="gpu0")  # was: silently the CPU
    with pytest.raises(ModelMismatchError, match="frames=0"):
        Encoder(model_dir, frames=0)  # was: silently the model's T


def test_opencv_fallback_makes_an_edited_copy(tmp_path, monkeypatch):
    """Without imageio-ffmpeg the demo edits and writes copies with OpenCV alone."""
    from chain_sdk.video import read_frames

    monkeypatch.setattr(cli.demo, "_ffmpeg", lambda: None)
    src = data.path("carphone.mp4")
    copy = cli.make_copy(src, tmp_path / "carphone.flip.mp4", "flip")
    a, b = read_frames(src), read_frames(copy)
    assert b.frames.shape == a.frames.shape
    # mp4v is lossy: compare the flipped original with the copy loosely
    assert np.abs(a.frames[10, :, ::-1].astype(int) - b.frames[10]).mean() < 12


def test_opencv_fallback_letterbox_keeps_the_size_and_adds_bars(tmp_path, monkeypatch):
    from chain_sdk.video import content_box, read_frames

    monkeypatch.setattr(cli.demo, "_ffmpeg", lambda: None)
    copy = read_frames(cli.make_copy(data.path("bikes.mp4"), tmp_path / "bikes.letterbox.mp4", "letterbox"))
    h, w = copy.frames.shape[1:3]
    assert (h, w) == read_frames(data.path("bikes.mp4"), max_frames=1).frames.shape[1:3]
    box = content_box(copy.frames)
    assert abs((box.bottom - box.top) - 0.75 * h) <= 3 and (box.left, box.right) == (0, w)


@pytest.mark.slow
def test_demo_prints_the_match_table(model_dir, tmp_path, capsys):
    assert cli.main(["demo", "--model", model_dir, "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "copies matched their original" in out and "bigbuckbunny.flip.mp4" in out


def test_decoder_option_reaches_the_encoder(model_dir, tmp_path, capsys):
    from chain_sdk.video import nvdec

    video = str(data.path("carphone.mp4"))
    out = tmp_path / "codes.jsonl"
    assert cli.main(["encode", video, "--model", model_dir, "-o", str(out), "--no-progress",
                     "--decoder", "opencv"]) == 0
    from chain_sdk.encoder import Encoder

    row = json.loads(out.read_text())
    np.testing.assert_array_equal(from_hex(row["code"]), Encoder(model_dir).encode(video))
    if not nvdec.available():  # the typed refusal, as a message and the error status
        assert cli.main(["encode", video, "--model", model_dir, "-o", str(out), "--no-progress",
                         "--decoder", "nvdec"]) == cli.EXIT_ERROR
        assert "GPU decoding needs" in capsys.readouterr().err

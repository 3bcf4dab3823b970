"""ray_encode on a real local Ray cluster (ray.init(num_cpus=2), once per session) with the
packaged default model and real clips: the same bytes as Encoder in process, error rows for broken
files, one row per window like Encoder.stream, parquet out, and the model shipped to the actors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from chain_sdk import data

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("onnxruntime")
pq = pytest.importorskip("pyarrow.parquet")

from chain_sdk.distributed import pack_model_dir, ray_encode, unpack_model_dir  # noqa: E402
from chain_sdk.encoder import Encoder  # noqa: E402
from chain_sdk.models import resolve_model  # noqa: E402

CLIPS = ("carphone.mp4", "bikes.mp4")
T = 8  # frames per clip: any 1..25 runs the same code path, at a third of the default's cost


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def model_dir():
    return resolve_model(None)  # the packaged default, exported once into the cache


@pytest.fixture(scope="session")
def encoder(model_dir):
    return Encoder(model_dir, backend="onnxruntime", frames=T, threads=1)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """Two real clips, a truncated copy, random bytes named .mp4 and a missing file."""
    tmp = tmp_path_factory.mktemp("videos")
    good = [str(data.path(name)) for name in CLIPS]
    raw = data.path("bikes.mp4").read_bytes()
    (tmp / "truncated.mp4").write_bytes(raw[:len(raw) // 20])
    (tmp / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    bad = [str(tmp / "truncated.mp4"), str(tmp / "noise.mp4"), str(tmp / "missing.mp4")]
    return good, bad


def test_codes_equal_encoder_errors_are_rows_parquet_and_the_model_travels(
        ray_cluster, model_dir, encoder, videos, tmp_path):
    """Two actors on a copy of the model directory that is deleted before the dataset runs (the
    actors load what went through the object store); written to parquet and read back."""
    good, bad = videos
    local = tmp_path / "model"
    shutil.copytree(model_dir, local)
    ds = ray_encode(good + bad, local, actors=2, batch_size=2, backend="onnxruntime", frames=T)
    shutil.rmtree(local)
    ds.write_parquet(str(tmp_path / "codes"))
    table = pq.read_table(tmp_path / "codes")
    assert table.schema.names == ["video", "code", "error"]
    rows = {r["video"]: r for r in table.to_pylist()}
    assert set(rows) == set(good + bad)
    for video in good:
        assert rows[video]["error"] is None
        assert rows[video]["code"] == encoder.encode(video).tobytes()
    for video in bad:
        assert rows[video]["code"] is None
        assert rows[video]["error"].split(":")[0] in ("VideoOpenError", "VideoDecodeError", "EmptyVideoError")
    assert "missing.mp4" in rows[bad[2]]["error"]


def test_windows_of_a_dataset_equal_encoder_stream(ray_cluster, model_dir, encoder, videos):
    good, bad = videos
    source = ray.data.from_items([{"video": good[0]}, {"video": bad[1]}])
    rows = ray_encode(source, model_dir, window=2.0, hop=1.0, actors=1, backend="onnxruntime",
                      frames=T).take_all()
    windows = sorted((r["start"], r["end"], r["code"]) for r in rows if r["video"] == good[0])
    expected = [(s.start, s.end, s.code.tobytes()) for s in encoder.stream(good[0], window=2.0, hop=1.0)]
    assert len(expected) > 1 and windows == expected
    (failed,) = [r for r in rows if r["video"] == bad[1]]
    assert failed["code"] is None and failed["start"] is None and failed["error"]


def test_pack_and_unpack_model_dir(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAIN_SDK_CACHE", str(tmp_path))
    bundle = pack_model_dir(model_dir)
    first = unpack_model_dir(bundle)
    assert unpack_model_dir(bundle) == first  # one copy per content
    assert pack_model_dir(first) == bundle
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary left behind


def test_bad_arguments(ray_cluster, model_dir):
    with pytest.raises(ValueError):
        ray_encode(["a.mp4"], model_dir, hop=1.0)
    with pytest.raises(ValueError):
        ray_encode(["a.mp4"], model_dir, batch_size=0)
    with pytest.raises(TypeError):
        ray_encode(3, model_dir)
    with pytest.raises(ValueError, match="'video' column"):
        ray_encode(ray.data.from_items([{"path": "a.mp4"}]), model_dir, actors=1)


def test_cli_encode_on_ray(ray_cluster, model_dir, encoder, videos, tmp_path):
    """`chain-sdk encode --ray VIDEO...`: the first video is not taken for an address; the same
    parquet as the in-process encode, which `index build` reads."""
    from chain_sdk import cli

    good, bad = videos
    out = tmp_path / "codes.parquet"
    argv = ["encode", "--ray", good[0], bad[0], "--model", str(model_dir), "--backend", "onnxruntime",
            "--frames", str(T), "--actors", "1", "--no-progress", "-o", str(out)]
    assert cli.main(argv) == cli.EXIT_PARTIAL  # one video failed
    codes, sources = cli.read_codes(out)
    assert sources == [good[0]] and codes[0].tobytes() == encoder.encode(good[0]).tobytes()


def test_importing_the_package_loads_neither_ray_nor_pymilvus():
    import subprocess
    import sys

    code = ("import sys, chain_sdk, chain_sdk.index, chain_sdk.distributed; "
            "print(','.join(m for m in ('ray', 'pymilvus', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

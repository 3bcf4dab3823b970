"""chain-train on generated HDF5 features: fit, resume (bit-identical), eval, checkpoint checks."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from chain_sdk.train import cli
from chain_sdk.nn.checkpoint import load_checkpoint
from chain_sdk.train.data import FeatureViews, load_labels, open_features
from chain_sdk.train.evaluate import encode_features
from chain_sdk.nn.chain import ChainConfig
from chain_sdk.train.trainer import TrainConfig, Trainer
from safetensors.torch import load_file

from chain_sdk import metrics
from chain_sdk.errors import CheckpointError

torch.set_num_threads(1)
SMALL = ["--dim", "32", "--depth", "1", "--heads", "2"]


def write_clusters(path, label_path, n, seed, classes=6, t=8, d=32, signal=8, noise=4.0, key="labels"):
    """Videos of `classes` clusters. The class lives in `signal` of the d dimensions; the others
    carry large noise that changes from frame to frame. A random projection (an untrained model)
    is dominated by that noise; a model trained to agree across temporal views learns to drop it.
    """
    centres = np.zeros((classes, d), np.float32)
    centres[:, :signal] = np.random.default_rng(1234).standard_normal((classes, signal))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    scale = np.full(d, 0.3, np.float32)
    scale[signal:] = noise
    feats = centres[y][:, None, :] + scale * rng.standard_normal((n, t, d)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("feats", data=feats.astype(np.float32))
    scipy.io.savemat(label_path, {key: np.eye(classes, dtype=np.float32)[y]})
    return feats, y


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("feats")
    write_clusters(root / "train.h5", root / "train.mat", 256, seed=1)
    write_clusters(root / "q.h5", root / "q.mat", 60, seed=2, key="q_label")
    write_clusters(root / "db.h5", root / "db.mat", 300, seed=3, key="re_label")
    return root


def fit(data, out, *extra):
    argv = ["fit", "--features", str(data / "train.h5"), "--bits", "16", "--batch-size", "32",
            "--out", str(out), "--seed", "3", *SMALL, *extra]
    assert cli.main(argv) == 0


def test_fit_resume_is_identical_to_one_run(data, tmp_path):
    fit(data, tmp_path / "full", "--epochs", "2")
    fit(data, tmp_path / "part", "--epochs", "2", "--max-steps", "5")  # "interrupted" mid-epoch
    fit(data, tmp_path / "part", "--epochs", "2", "--resume")
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with open(tmp_path / "part" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(16))  # 256/32 = 8 steps per epoch
    for r in rows:
        for key in ("loss", "contrastive", "order", "scene"):
            assert np.isfinite(float(r[key]))
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["model"]["bits"] == 16 and config["model"]["frames"] == 8
    assert config["model"]["feature_dim"] == 32 and config["training"]["step"] == 16
    assert config["training"]["data"]["spatial_augmentation"] is False


def test_fit_refuses_to_overwrite_and_resume_mismatch(data, tmp_path):
    fit(data, tmp_path / "ck", "--epochs", "1", "--max-steps", "1")
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(FeatureViews(open_features(data / "train.h5"), warn=False),
                ChainConfig(bits=16, frames=8, feature_dim=32, dim=32, depth=1, heads=2),
                TrainConfig(epochs=1, threads=1), tmp_path / "ck").fit()
    argv = ["fit", "--features", str(data / "train.h5"), "--bits", "32", "--out",
            str(tmp_path / "ck"), "--resume"]
    assert cli.main(argv) == 1  # bits differ from the checkpoint: a clear error, exit status 1


def test_ablation_flags_and_spatial_warning(data, tmp_path, caplog):
    fit(data, tmp_path / "ab", "--epochs", "1", "--max-steps", "2", "--no-order", "--no-scene",
        "--debiased", "--code", "tanh")
    assert "only temporal" in caplog.text and "spatial augmentation" in caplog.text
    with open(tmp_path / "ab" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["order"] == "" and rows[0]["scene"] == "" and rows[0]["contrastive"] != ""


def test_eval_cli_writes_metrics_and_plots(data, tmp_path, capsys):
    fit(data, tmp_path / "ck", "--epochs", "1", "--max-steps", "3")
    argv = ["eval", "--checkpoint", str(tmp_path / "ck"), "--query", str(data / "q.h5"),
            "--query-labels", str(data / "q.mat"), "--database", str(data / "db.h5"),
            "--database-labels", str(data / "db.mat"), "--out", str(tmp_path / "ev")]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "mAP@K" in printed and "100" in printed
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for k in (5, 10, 20, 40, 60, 80, 100):
        assert 0.0 <= result[f"map@{k}"] <= 1.0
    # metrics.json agrees with chain_sdk.metrics on the checkpoint's codes
    model, _ = load_checkpoint(tmp_path / "ck")
    q = encode_features(model, open_features(data / "q.h5"))
    db = encode_features(model, open_features(data / "db.h5"))
    expected = metrics.map_at_k(q, db, load_labels(data / "q.mat"), load_labels(data / "db.mat"), [20])
    assert result["map@20"] == pytest.approx(expected[20])
    for png in ("pr_curve.png", "tsne.png"):
        assert (tmp_path / "ev" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_training_beats_random_codes_by_a_wide_margin(data, tmp_path):
    fit(data, tmp_path / "ck", "--epochs", "40", "--max-steps", "200", "--lr", "1e-3")
    model, _ = load_checkpoint(tmp_path / "ck")
    ql, dbl = load_labels(data / "q.mat"), load_labels(data / "db.mat")

    def map20(m):
        q = encode_features(m, open_features(data / "q.h5"))
        db = encode_features(m, open_features(data / "db.h5"))
        return metrics.map_at_k(q, db, ql, dbl, [20])[20], q.shape, db.shape

    trained, q_shape, db_shape = map20(model)
    untrained, _, _ = map20(type(model)(model.config).eval())
    rng = np.random.default_rng(0)
    random = np.mean([metrics.map_at_k(rng.integers(0, 256, q_shape, dtype=np.uint8),
                                       rng.integers(0, 256, db_shape, dtype=np.uint8), ql, dbl, [20])[20]
                      for _ in range(5)])
    # Measured when written: trained ~0.85 (0.92 at 300 steps), untrained ~0.11, random ~0.06.
    assert trained > 0.6 and trained > 5 * random and trained > 3 * untrained, (trained, untrained, random)


def test_load_checkpoint_rejects_mismatches(data, tmp_path):
    fit(data, tmp_path / "ck", "--epochs", "1", "--max-steps", "1")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["model"]["bits"] = 32  # weights are 16-bit
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "ck")
    config["format_version"] = 99
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format_version"):
        load_checkpoint(tmp_path / "ck")


def test_order_head_is_stored_but_not_in_forward(data, tmp_path):
    fit(data, tmp_path / "ck", "--epochs", "1", "--max-steps", "1")
    model, _ = load_checkpoint(tmp_path / "ck")
    assert model.order_head.weight.shape == (8, 32)
    x = torch.randn(2, 8, 32)
    out = model(x)
    model.order_head.weight.data.zero_()
    assert torch.equal(model(x).video_logits, out.video_logits)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def test_resume_never_unpickles_code_from_the_checkpoint(data, tmp_path):
    """Issue 13 #1: --resume ran torch.load(weights_only=False) on trainer_state.pt, so a crafted
    checkpoint directory executed code. Now: tensors and plain containers only, else CheckpointError."""
    from chain_sdk.nn.checkpoint import TRAINER_STATE, load_trainer_state

    fit(data, tmp_path / "ck", "--epochs", "1", "--max-steps", "1")
    assert load_trainer_state(tmp_path / "ck")["step"] == 1  # the real state still loads
    marker = tmp_path / "code-ran"
    torch.save({"step": 1, "seed": 3, "payload": _RunsCode(marker)}, tmp_path / "ck" / TRAINER_STATE)
    with pytest.raises(CheckpointError, match="not a plain trainer state"):
        load_trainer_state(tmp_path / "ck")
    argv = ["fit", "--features", str(data / "train.h5"), "--bits", "16", "--batch-size", "32",
            "--out", str(tmp_path / "ck"), "--seed", "3", *SMALL, "--epochs", "1", "--resume"]
    assert cli.main(argv) == 1  # a clear error from the CLI, and nothing ran
    assert not marker.exists()

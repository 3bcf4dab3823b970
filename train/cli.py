"""`chain-train`: train CHAIN from features or raw video, resume, evaluate.

    chain-train fit --features TRAIN.h5 --bits 64 --epochs E --batch-size B --out CKPT_DIR
    chain-train fit --videos VIDEO_DIR_OR_FILES... --backbone efficientnet_lite0 --out CKPT_DIR \\
        [--time-range 0 240] [--segment 10] [--augment-draws 4]
    chain-train fit ... --out CKPT_DIR --resume
    chain-train eval --checkpoint CKPT_DIR --query Q.h5 --query-labels QL.mat \\
        --database D.h5 --database-labels DL.mat --out EVAL_DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from chain_sdk.cli.exits import EXIT_CODES_HELP, configure_logging, positive_int, run
from chain_sdk.errors import CheckpointError
from chain_sdk.files import cache_dir

from .augment import SpatialAugmentConfig
from .config import TrainConfig
from .data.windows import ExtractionConfig

log = logging.getLogger("chain_sdk.train")

ARCH_ARGS = ("bits", "frames", "dim", "depth", "heads", "dropout", "position")
AUGMENT_ARGS = ("augment_draws", "grey_p", "blur_p", "letterbox_p", "overlay_p", "temporal_crop")
# Defaults come from the settings classes, never written twice.
TRAIN, SPATIAL, WINDOWS = TrainConfig(), SpatialAugmentConfig(), ExtractionConfig()


def resolve_backbone(name: str) -> Any:
    """The frozen frame CNN by name or ONNX path (chain_sdk.nn.backbones)."""
    from chain_sdk.nn.backbones import get_backbone

    backbone = get_backbone(name)
    backbone.eval()
    return backbone


def split_videos(split: str | None) -> list[tuple[str, tuple[float, float]]]:
    """(path, time range) of every source of a data split; the long film last, so that its windows
    get donor footage from the other videos."""
    if split is None:
        return []
    from chain_sdk import data

    sources = sorted(data.split_sources(split), key=lambda sr: sr[0].name == "bbb.mp4")
    return [(str(data.path(s.name)), r) for s, r in sources]


def default_cache_dir() -> Path:
    return cache_dir() / "train-features"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chain-train", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fit(sub.add_parser("fit", help="train (or --resume) a model"))
    _add_eval(sub.add_parser("eval", help="mAP@K, P/R@K, PR curve and t-SNE on feature files"))
    return parser


def _add_fit(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", help="HDF5 file with dataset 'feats' (N, T, D)")
    src.add_argument("--videos", nargs="+", help="video files and/or directories of videos")
    src.add_argument("--data-split", choices=("train",),
                     help="the sample videos of this split of chain_sdk.data.SOURCES (`chain-sdk data fetch`), "
                     "each with its own time range")
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    g = p.add_argument_group("model (defaults: ChainConfig; taken from the checkpoint on --resume)")
    g.add_argument("--bits", type=positive_int)
    g.add_argument("--frames", type=positive_int, help="T, frames per clip (videos; features: the file's T)")
    g.add_argument("--dim", type=positive_int)
    g.add_argument("--depth", type=positive_int)
    g.add_argument("--heads", type=positive_int)
    g.add_argument("--dropout", type=float)
    g.add_argument("--position", choices=("sinusoidal", "learned"))
    t = p.add_argument_group("optimisation")
    t.add_argument("--epochs", type=positive_int, default=TRAIN.epochs)
    t.add_argument("--batch-size", type=positive_int, default=TRAIN.batch_size)
    t.add_argument("--lr", type=float, default=TRAIN.lr)
    t.add_argument("--min-lr", type=float, default=TRAIN.min_lr)
    t.add_argument("--weight-decay", type=float, default=TRAIN.weight_decay)
    t.add_argument("--warmup-steps", type=int, default=TRAIN.warmup_steps)
    t.add_argument("--max-steps", type=positive_int, help="stop after this many steps in total")
    t.add_argument("--seed", type=int, default=TRAIN.seed)
    t.add_argument("--init", choices=("random", "pca"), default=TRAIN.init,
                   help="start from random weights or from the PCA-sign hash of the training "
                   "features (train/init.py)")
    t.add_argument("--threads", type=int, default=TRAIN.threads,
                   help="torch.set_num_threads (default 1: on a busy 2-core machine 2 threads ran "
                   "40x slower per op; raise it on a dedicated many-core machine)")
    t.add_argument("--log-every", type=positive_int, default=TRAIN.log_every)
    k = p.add_argument_group("tasks (ablations: --no-*)")
    k.add_argument("--no-contrastive", action="store_true")
    k.add_argument("--no-order", action="store_true")
    k.add_argument("--no-scene", action="store_true")
    k.add_argument("--w-contrastive", type=float, default=TRAIN.w_contrastive)
    k.add_argument("--w-order", type=float, default=TRAIN.w_order)
    k.add_argument("--w-scene", type=float, default=TRAIN.w_scene)
    k.add_argument("--temperature", type=float, default=TRAIN.temperature, help="NT-Xent temperature")
    k.add_argument("--debiased", action="store_true", help="ConMH's debiased contrastive loss")
    k.add_argument("--tau-plus", type=float, default=TRAIN.tau_plus)
    k.add_argument("--code", choices=("ste", "tanh", "frame_mean"), default=TRAIN.code,
                   help="what the contrastive loss compares")
    k.add_argument("--order-fraction", type=float, default=TRAIN.order_fraction, help="fraction of slots shuffled")
    k.add_argument("--scene-temperature", type=float, default=TRAIN.scene_temperature)
    k.add_argument("--scene-damping", type=float, default=TRAIN.scene_damping)
    k.add_argument("--scene-batch-negatives", action="store_true")
    k.add_argument("--teacher", metavar="DIR",
                   help="a trained checkpoint whose codes of each training clip the student also learns "
                        "(raw video input; e.g. a T=25 model teaching a T=8 one; train/teacher.py)")
    k.add_argument("--w-distill", type=float, default=TRAIN.w_distill, help="weight of the teacher's codes")
    f = p.add_argument_group("features input")
    f.add_argument("--view-frames", type=positive_int,
                   help="frames per view (default ceil(T/2)); video input: views are T frames, see --temporal-crop")
    v = p.add_argument_group("raw video input")
    v.add_argument("--backbone", default="efficientnet_lite0",
                   help="frozen frame CNN (name or ONNX path); with --features only recorded")
    v.add_argument("--augment-draws", type=positive_int, default=WINDOWS.draws, help="A, augmentation draws per window")
    v.add_argument("--augment-policy", choices=("cvrl", "reupload"), default="cvrl",
                   help="cvrl: crop/flip/jitter/grey (+ the --*-p draws); reupload: the edits of re-uploads "
                   "(train/reupload.py: re-framing, albumentations photometric and quality, ffmpeg codec, "
                   "donor overlays, intros, dropped frames)")
    v.add_argument("--augment-seed", type=int,
                   help="seed of the cached augmentation draws (default: --seed); fix it to compare "
                   "training seeds on the same extracted features")
    v.add_argument("--grey-p", type=float, default=SPATIAL.grey_p,
                   help="probability of a greyscale draw (CVRL: 0.2)")
    v.add_argument("--blur-p", type=float, default=SPATIAL.blur_p,
                   help="probability of a Gaussian blur draw (near-duplicate edits; default off)")
    v.add_argument("--letterbox-p", type=float, default=SPATIAL.letterbox_p,
                   help="probability of a letterbox/pillarbox draw (near-duplicate edits; default off)")
    v.add_argument("--overlay-p", type=float, default=SPATIAL.overlay_p,
                   help="probability of a random-text overlay draw (near-duplicate edits; default off)")
    v.add_argument("--temporal-crop", type=float, default=1.0,
                   help="each view keeps a random contiguous fraction in [this, 1] of its window "
                   "(default 1: the whole window)")
    v.add_argument("--no-crop-borders", action="store_true",
                   help="keep black bars (default: crop each window's bars, as Encoder does; "
                   "chain_sdk.video.borders)")
    v.add_argument("--dense-frames", type=positive_int, help="candidate frames per window (default 2T)")
    v.add_argument("--fps", type=float, help="decode at most this many frames per second")
    v.add_argument("--hop", type=float, default=None,
                   help="start a window every HOP seconds (default: --segment, no overlap)")
    v.add_argument("--segment", type=float, default=WINDOWS.segment,
                   help="window length in seconds (<= 0: whole video is one window)")
    v.add_argument("--time-range", type=float, nargs=2, metavar=("START", "END"),
                   help="film-time range in seconds kept from every video")
    v.add_argument("--cache-dir", help=f"feature cache (default {default_cache_dir()})")


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--query-labels", required=True)
    p.add_argument("--database", required=True)
    p.add_argument("--database-labels", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 40, 60, 80, 100])
    p.add_argument("--tie-order", choices=("stable", "published"), default="stable")
    p.add_argument("--tsne-points", type=positive_int, default=2000)


def _model_config(args: argparse.Namespace, frames: int, feature_dim: int):
    from chain_sdk.nn.checkpoint import read_config
    from chain_sdk.nn.chain import ChainConfig

    given = {name: getattr(args, name) for name in ARCH_ARGS if getattr(args, name) is not None}
    given.update(frames=frames, feature_dim=feature_dim)
    if args.resume:
        saved = read_config(args.out)["model"]
        clashes = {k: (v, saved[k]) for k, v in given.items() if saved.get(k) != v}
        if clashes:
            raise CheckpointError(f"{args.out}: --resume with settings that differ from the "
                                  f"checkpoint (given, saved): {clashes}")
        return ChainConfig.from_dict(saved)
    return ChainConfig(**given)


def _train_config(args: argparse.Namespace):

    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(contrastive=not args.no_contrastive, order=not args.no_order,
                  scene=not args.no_scene, scene_max_iter=200)
    return TrainConfig(**values)


def _views_from_features(args):
    from .data import FeatureViews, open_features

    views = FeatureViews(open_features(args.features), args.view_frames)
    if args.frames is not None and args.frames != views.frames:
        raise ValueError(f"--frames {args.frames} differs from the file's T={views.frames}")
    backbone = {"name": args.backbone, "feature_dim": views.feature_dim,
                "input_size": [224, 224] if args.backbone == "efficientnet_lite0" else None}
    return views, backbone


def _views_from_videos(args, frames: int):
    from .data import ExtractionConfig, VideoWindowViews, build_window_cache

    if args.view_frames is not None:  # refused, not ignored: a recipe must not train other than it says
        raise ValueError("--view-frames applies to --features input; a video window's views are T "
                         "segment-sampled frames of a --temporal-crop of its dense frames")

    from .reupload import ReuploadConfig

    backbone = resolve_backbone(args.backbone)
    config = ExtractionConfig(
        frames=frames, dense_frames=args.dense_frames, fps=args.fps,
        segment=args.segment if args.segment and args.segment > 0 else None, hop=args.hop,
        time_range=tuple(args.time_range) if args.time_range else None,
        draws=args.augment_draws, seed=args.seed if args.augment_seed is None else args.augment_seed,
        crop_borders=not args.no_crop_borders,
        spatial=SpatialAugmentConfig(grey_p=args.grey_p, blur_p=args.blur_p,
                                     letterbox_p=args.letterbox_p, overlay_p=args.overlay_p),
        reupload=ReuploadConfig() if args.augment_policy == "reupload" else None)
    windows = build_window_cache(list(args.videos or []) + split_videos(args.data_split), backbone, config,
                                 args.cache_dir or default_cache_dir())
    info = {"name": backbone.name, "feature_dim": int(backbone.feature_dim),
            "input_size": list(backbone.input_size)}
    return VideoWindowViews(windows, frames, args.temporal_crop), info


def cmd_fit(args: argparse.Namespace) -> int:
    import torch

    from chain_sdk.nn.checkpoint import read_config
    from .trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)  # before feature extraction, which runs the CNN
    if args.features:
        views, backbone = _views_from_features(args)
    else:
        frames = args.frames
        if frames is None:
            frames = read_config(args.out)["model"]["frames"] if args.resume else 25
        views, backbone = _views_from_videos(args, frames)
    model_config = _model_config(args, views.frames, views.feature_dim)
    train_config = _train_config(args)
    train_config.extra = {"source": args.features or args.videos or f"chain_sdk.data split {args.data_split}",
                          "time_range": args.time_range, "segment": args.segment, "hop": getattr(args, "hop", None),
                          "augment_seed": getattr(args, "augment_seed", None)}
    if not args.features:
        train_config.extra["augment_policy"] = args.augment_policy
        train_config.extra["augmentation"] = {k: getattr(args, k) for k in AUGMENT_ARGS}
        train_config.extra["crop_borders"] = not args.no_crop_borders
    codes = None
    if args.teacher:
        if args.features:
            raise ValueError("--teacher needs --videos input (the teacher sees each window's draws)")
        from chain_sdk.files import sha256_of

        from .teacher import teacher_codes
        codes = teacher_codes(args.teacher, views, model_config.bits, backbone)
        train_config.extra["teacher_weights_sha256"] = sha256_of(Path(args.teacher) / "model.safetensors")
    trainer = Trainer(views, model_config, train_config, args.out, backbone=backbone, teacher_codes=codes)
    out = trainer.fit(resume=args.resume)
    print(f"checkpoint: {out} (step {trainer.step})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_table

    result = evaluate(args.checkpoint, args.query, args.query_labels, args.database,
                      args.database_labels, args.out, ks=args.ks, tie_order=args.tie_order,
                      tsne_points=args.tsne_points)
    print(format_table(result, args.ks))
    print(f"written: {Path(args.out) / 'metrics.json'}, pr_curve.png, tsne.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here (argparse)
    configure_logging(args.verbose, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    # ValueError: settings that argparse cannot check one by one (TrainConfig, --frames vs the file)
    return run("chain-train", cmd_fit if args.command == "fit" else cmd_eval, args, usage_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())

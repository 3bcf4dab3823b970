"""The CHAIN training loop: L = w_c * L_contrastive + w_o * L_order + w_s * L_scene (+ w_d * L_distill).

Paper fact: the three tasks (docs/research/chain_method.md §2.1). Proposals (§2.3, §3.2; all `TrainConfig`
fields): the weights (1, 0.5, 0.5 from the proposed sweep {0.1, 0.5, 1}), AdamW with lr 5e-4 and
a cosine schedule to 1e-5 (S5VH's verified setting), the order task on view 1, the scene task
on view 1's tokens; with a teacher (train/teacher.py), a fourth term that distils its codes.

Determinism and resume: the data order of epoch e comes from `default_rng([seed, e])` and the
views of step s from `default_rng([seed, 1, s])`, so the sampling depends only on (seed, step);
torch's RNG (dropout, shuffles of the order task) and the optimizer/scheduler states are saved in
`trainer_state.pt` with every checkpoint. A resumed run therefore takes exactly the steps an
uninterrupted run would have taken (bit-identical on CPU).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from chain_sdk.errors import CheckpointError

from chain_sdk.nn.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    read_config,
    save_checkpoint,
    save_trainer_state,
)
from .config import TrainConfig
from .init import pca_init
from .losses import CodeDistillationLoss, FrameOrderLoss, NTXentLoss, SceneChangeLoss, contrastive_codes
from chain_sdk.nn.chain import ChainConfig, ChainModel

log = logging.getLogger(__name__)

LOG_FILE = "train_log.csv"
LOG_FIELDS = ("step", "epoch", "loss", "contrastive", "order", "order_acc", "scene",
              "scene_skipped", "distill", "lr", "clips_per_s")


class ViewSource(Protocol):
    n_videos: int
    frames: int
    feature_dim: int

    def sample(self, indices: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]: ...

    def pca_samples(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self) -> dict: ...


class Trainer:
    def __init__(self, views: ViewSource, model_config: ChainConfig, config: TrainConfig,
                 out_dir: str | os.PathLike, backbone: dict[str, Any] | None = None,
                 teacher_codes: np.ndarray | None = None) -> None:
        if views.feature_dim != model_config.feature_dim or views.frames != model_config.frames:
            raise ValueError(
                f"data gives {views.frames} frames x {views.feature_dim}-d features, the model "
                f"expects {model_config.frames} x {model_config.feature_dim}")
        self.views, self.cfg, self.out = views, config, Path(out_dir)
        if (teacher_codes is None) != (config.teacher is None):
            raise ValueError("config.teacher and teacher_codes go together (train/teacher.py)")
        self.teacher_codes = None if teacher_codes is None else torch.from_numpy(teacher_codes)
        self.backbone = backbone
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = ChainModel(model_config)
        self.batch = min(config.batch_size, views.n_videos)
        if self.batch < 2:
            raise ValueError("need at least 2 training videos")
        self.steps_per_epoch = views.n_videos // self.batch
        # The lr schedule spans all epochs; --max-steps only stops early (an interrupted run).
        self.schedule_steps = config.epochs * self.steps_per_epoch
        self.total_steps = self.schedule_steps
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.contrastive = NTXentLoss(config.temperature, config.debiased, config.tau_plus)
        self.order = FrameOrderLoss(config.order_fraction)
        self.scene = SceneChangeLoss(config.scene_temperature, config.scene_damping,
                                     config.scene_max_iter, config.scene_batch_negatives)
        self.distill = CodeDistillationLoss()
        self.step = 0

    def _lr_factor(self, step: int) -> float:
        if step < self.cfg.warmup_steps:
            return (step + 1) / self.cfg.warmup_steps
        span = max(1, self.schedule_steps - self.cfg.warmup_steps)
        progress = min(1.0, (step - self.cfg.warmup_steps) / span)
        floor = self.cfg.min_lr / self.cfg.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    # ------------------------------------------------------------------ one step

    def train_step(self, indices: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        cfg = self.cfg
        if self.teacher_codes is None:
            views, draws = self.views.sample(indices, rng), None
        else:
            views, draws = self.views.sample_with_draws(indices, rng)
        x1, p1, x2, p2 = (torch.from_numpy(np.ascontiguousarray(a)) for a in views)
        p1, p2 = p1.long(), p2.long()
        self.model.train()
        out1 = self.model(x1, p1)
        out2 = self.model(x2, p2) if cfg.contrastive or draws is not None else None
        total = torch.zeros(())
        row: dict[str, float] = {}
        if draws is not None:
            targets = self.teacher_codes[torch.from_numpy(indices)[:, None], torch.from_numpy(draws)]
            l_distill = 0.5 * (self.distill(out1.video_logits, targets[:, 0])
                               + self.distill(out2.video_logits, targets[:, 1]))
            total = total + cfg.w_distill * l_distill
            row["distill"] = l_distill.item()
        if cfg.contrastive:
            l_con = self.contrastive(contrastive_codes(out1, cfg.code), contrastive_codes(out2, cfg.code))
            total = total + cfg.w_contrastive * l_con
            row["contrastive"] = l_con.item()
        if cfg.order:
            l_order, acc = self.order(self.model, x1, p1)
            total = total + cfg.w_order * l_order
            row["order"], row["order_acc"] = l_order.item(), acc
        if cfg.scene:
            l_scene = self.scene(out1.tokens)
            total = total + cfg.w_scene * l_scene
            row["scene"], row["scene_skipped"] = l_scene.item(), self.scene.last_skipped
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        row["loss"] = total.item()
        return row

    # ------------------------------------------------------------------ loop

    def fit(self, resume: bool = False) -> Path:
        from tqdm.auto import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        elif (self.out / "config.json").exists():
            raise CheckpointError(f"{self.out} already holds a checkpoint; pass --resume to continue it "
                                  "or choose another --out")
        elif self.cfg.init == "pca":
            frames, clip_means = self.views.pca_samples(np.random.default_rng([self.cfg.seed, 2]))
            pca_init(self.model, frames, clip_means)
            log.info("initialised from PCA of %d frames and %d clip means", len(frames), len(clip_means))
        log.info("training %d steps (%d per epoch, batch %d) on %s", self.total_steps,
                 self.steps_per_epoch, self.batch, self.views.describe().get("kind"))
        writer = _LogWriter(self.out / LOG_FILE, truncate_from=self.step)
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step")
        tick = time.perf_counter()
        try:
            while self.step < self.total_steps:
                epoch = self.step // self.steps_per_epoch
                order = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.views.n_videos)
                start = (self.step % self.steps_per_epoch) * self.batch
                rng = np.random.default_rng([self.cfg.seed, 1, self.step])
                row = self.train_step(order[start:start + self.batch], rng)
                now = time.perf_counter()
                row.update(step=self.step, epoch=epoch, lr=float(self.scheduler.get_last_lr()[0]),
                           clips_per_s=self.batch / max(now - tick, 1e-9))
                tick = now
                writer.write(row)
                self.step += 1
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                    log.info("step %d/%d %s", self.step, self.total_steps, _format(row))
                if self.step % self.steps_per_epoch == 0 or self.step == self.total_steps:
                    self.save()
        finally:
            bar.close()
            writer.close()
        return self.out

    def save(self) -> None:
        training = {**asdict(self.cfg), "step": self.step, "total_steps": self.total_steps,
                    "data": self.views.describe()}
        save_checkpoint(self.out, self.model, backbone=self.backbone, training=training)
        save_trainer_state(self.out, {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "seed": self.cfg.seed,
        })

    def _resume(self) -> None:
        config = read_config(self.out)
        if config["model"] != self.model.config.to_dict():
            raise CheckpointError(
                f"{self.out}: the checkpoint's model config {config['model']} differs from the "
                f"requested one {self.model.config.to_dict()}")
        state = load_trainer_state(self.out)
        if state is None:
            raise CheckpointError(f"{self.out}: no trainer_state.pt, cannot resume")
        if state.get("seed") != self.cfg.seed:
            raise CheckpointError(f"{self.out}: saved with seed {state.get('seed')}, resumed with "
                                  f"{self.cfg.seed}")
        model, _ = load_checkpoint(self.out)
        self.model.load_state_dict(model.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        log.info("resumed %s at step %d", self.out, self.step)


def _format(row: dict[str, float]) -> str:
    keys = ("loss", "contrastive", "order", "order_acc", "scene", "scene_skipped", "distill", "clips_per_s")
    return " ".join(f"{k}={row[k]:.4g}" for k in keys if k in row)


class _LogWriter:
    """Per-step CSV log; on resume, rows at or after the resumed step are dropped first."""

    def __init__(self, path: Path, truncate_from: int) -> None:
        rows = []
        if path.exists() and truncate_from > 0:
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < truncate_from]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=LOG_FIELDS, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        self.writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self.file.flush()

    def close(self) -> None:
        self.file.close()

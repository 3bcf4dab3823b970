"""Training settings: the one place their defaults live (the CLI reads them from here)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_steps: int | None = None  # stop early (throughput runs, smoke tests)
    seed: int = 0
    init: str = "random"  # "random" or "pca" (train/init.py)
    threads: int | None = 1  # 1: on small shared CPUs two OpenMP threads ran 40x slower (measured)
    contrastive: bool = True
    order: bool = True
    scene: bool = True
    w_contrastive: float = 1.0
    w_order: float = 0.5
    w_scene: float = 0.5
    temperature: float = 0.5
    debiased: bool = False
    tau_plus: float = 0.1
    code: str = "ste"
    order_fraction: float = 1.0
    scene_temperature: float = 0.1
    scene_damping: float = 0.5
    scene_max_iter: int = 200
    scene_batch_negatives: bool = False
    teacher: str | None = None  # checkpoint whose codes the student learns (train/teacher.py)
    w_distill: float = 1.0
    log_every: int = 10
    extra: dict = field(default_factory=dict)  # free-form provenance stored in the checkpoint

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (in-batch negatives)")
        if not (self.contrastive or self.order or self.scene):
            raise ValueError("at least one task must be enabled")
        if self.teacher is not None and self.w_distill <= 0:
            raise ValueError("a teacher needs a positive w_distill")
        if self.init not in ("random", "pca"):
            raise ValueError(f"init must be 'random' or 'pca', got {self.init!r}")

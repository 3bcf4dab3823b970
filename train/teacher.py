"""A trained CHAIN model as the teacher of a cheaper student (`--teacher`, a proposal of this project).

The teacher's codes are computed once, before training: for every training window and
augmentation draw, the code the teacher gives that draw's clip on its own T frames (segment
centres, as `Encoder` samples). The student then learns them with `CodeDistillationLoss`
beside the three CHAIN tasks, from its own fewer, randomly sampled frames of the same draw.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from chain_sdk.errors import CheckpointError
from chain_sdk.nn.checkpoint import load_checkpoint


def teacher_codes(teacher_dir: str | os.PathLike, views: Any, bits: int, backbone: dict[str, Any]) -> np.ndarray:
    """float32 [N, A, bits] in {-1, +1}: the teacher's code of every (window, draw) of `views`."""
    teacher, config = load_checkpoint(teacher_dir)
    if teacher.config.bits != bits:
        raise CheckpointError(f"{teacher_dir}: the teacher has {teacher.config.bits} bits, the student {bits}")
    if teacher.config.feature_dim != views.feature_dim:
        raise CheckpointError(f"{teacher_dir}: the teacher takes {teacher.config.feature_dim}-d features, "
                              f"the training windows have {views.feature_dim}")
    taught_on = config.get("backbone", {}).get("name")
    if taught_on != backbone.get("name"):
        raise CheckpointError(f"{teacher_dir}: the teacher's backbone is {taught_on}, the student's "
                              f"{backbone.get('name')}")
    clips = views.teacher_clips(teacher.config.frames)  # [N, A, T, D]
    n, a = clips.shape[:2]
    with torch.no_grad():
        logits = teacher(torch.from_numpy(np.ascontiguousarray(clips.reshape(n * a, *clips.shape[2:])))).video_logits
    return torch.where(logits >= 0, 1.0, -1.0).reshape(n, a, bits).numpy()

"""PCA initialisation of the temporal model (a proposal of this project, `--init pca`).

With a few dozen training videos, a randomly initialised encoder learns its 64 hash directions
from scratch. This initialisation starts CHAIN *at* the PCA-sign hash instead, so the three
tasks refine a projection rather than rediscover it (as ITQ starts from PCA). On the default
model's data it was no better on dev than a random start and no more stable across seeds
(docs/default_model.md), so the default does not use it.

- `embed` projects a frame feature f onto the top-`dim` principal axes of the training frames:
  z = s * V^T (f - mu), with `s` making the typical |z| large against the position table, and
  the bias also cancels the mean position embedding, so a clip's mean token is its mean
  feature's PCA coordinates;
- the residual branches (attention and MLP output projections) start at zero, so every block
  starts as the identity (as in ReZero / Fixup) and the encoder starts as that projection;
- `hash` takes the top-`bits` principal axes of the training *clip means* in the token space.

The model then starts close to sign(PCA(mean feature)); it is not exactly that, because the two
LayerNorms re-centre each token and each frame's logits, and the frame logits are averaged
after the hash LayerNorm; tests/test_train_init.py measures how close (about 90 % of bits).
"""

from __future__ import annotations

import numpy as np
import torch

from chain_sdk.nn.chain import ChainModel

TOKEN_RMS = 4.0  # typical token coordinate after `embed`, against the position table's ~0.7


def principal_axes(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and the top-k principal axes [D, k] (unit columns) of the rows of x [N, D]."""
    if len(x) <= k:
        raise ValueError(f"PCA with {k} components needs more than {k} samples, got {len(x)}")
    mean = x.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:k].T


@torch.no_grad()
def pca_init(model: ChainModel, frames: np.ndarray, clip_means: np.ndarray) -> None:
    """Initialise `model` from training frame features [N, D] and clip-mean features [M, D]."""
    c = model.config
    if c.bits > c.dim:
        raise ValueError(f"--init pca needs bits <= dim, got bits {c.bits} > dim {c.dim}")
    mean, axes = principal_axes(frames.astype(np.float64), c.dim)
    scale = TOKEN_RMS / float(np.sqrt(((frames - mean) @ axes).var(axis=0).mean()))
    mean_pos = model.pos.detach().mean(dim=0).double().numpy()
    model.embed.weight.copy_(torch.from_numpy(scale * axes.T))
    model.embed.bias.copy_(torch.from_numpy(-scale * (mean @ axes) - mean_pos))
    for block in model.blocks:
        for out in (block.attn.proj, block.mlp[-1]):
            out.weight.zero_()
            out.bias.zero_()
    tokens = scale * (clip_means - mean) @ axes
    _, hash_axes = principal_axes(tokens, c.bits)
    model.hash.weight.copy_(torch.from_numpy(hash_axes.T))
    model.hash.bias.zero_()

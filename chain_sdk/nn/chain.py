"""CHAIN's temporal hashing model: frame features [B, T, D] -> per-frame hash logits -> video code.

What is from the CHAIN paper (ACM MM 2023) and what is a proposal of this project
(see docs/research/chain_method.md; every proposal is a `ChainConfig` field):

- Paper: a frozen 2D CNN gives frame features; an attention-based (transformer) temporal
  encoder models long-range dependencies; frame-level representations stay available for the
  two local tasks (frame order verification, scene change regularization); binary codes of
  16 to 256 bits.
- Proposal (ConMH/BTH-style, the public reference architectures): per-frame linear projection
  to `dim`, fixed sinusoidal position embeddings, pre-LN transformer blocks, a per-frame hash
  head Linear -> LayerNorm, video logits = mean of the frame logits, bits = `logit >= 0`
  (a zero logit is a 1 bit, never a third value), a straight-through estimator with a
  hard-tanh window for training. Depth, width, heads and dropout are not public; the defaults
  are sized for CPU training and are proposals.
- Proposal (frame order verification, docs/research/chain_method.md §2.3): `order_head`, a Linear(dim, frames)
  on each frame token that predicts the frame's original index. It lives in the model so that
  checkpoints carry it, but `forward` (the path that export traces) never touches it.
- Proposal: `forward(features, positions)` takes optional position indices, so a clip of fewer
  frames sampled from a T-frame grid keeps the positions of its frames on that grid;
  `with_fewer_frames` bakes those positions into a model that takes the shorter clips as they are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from chain_sdk.video.sampling import segment_indices


@dataclass
class ChainConfig:
    """Architecture of the temporal model. Stored in the checkpoint's config.json."""

    bits: int = 64
    frames: int = 25  # T: clip length, sizes the position table and the order head
    feature_dim: int = 1280  # D: frame feature size of the backbone
    dim: int = 256  # transformer width (proposal, as ConMH)
    depth: int = 4  # transformer blocks (proposal; ConMH uses 12, BTH 1)
    heads: int = 4  # attention heads (proposal)
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    position: str = "sinusoidal"  # "sinusoidal" (fixed, ConMH/BTH) or "learned"

    def __post_init__(self) -> None:
        if not (16 <= self.bits <= 256 and self.bits % 8 == 0):
            raise ValueError(f"bits must be a multiple of 8 in 16..256, got {self.bits}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.position not in ("sinusoidal", "learned"):
            raise ValueError(f"position must be 'sinusoidal' or 'learned', got {self.position!r}")
        if self.frames < 1 or self.feature_dim < 1:
            raise ValueError("frames and feature_dim must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ChainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**data)


class ChainOutput(NamedTuple):
    tokens: torch.Tensor  # [B, T, dim] frame representations (after the final LayerNorm)
    frame_logits: torch.Tensor  # [B, T, bits]
    video_logits: torch.Tensor  # [B, bits], mean of frame_logits


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The fixed Transformer position table [length, dim] (sin on even, cos on odd channels)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-LN transformer block (ViT/ConMH style)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


def binarize_ste(logits: torch.Tensor) -> torch.Tensor:
    """±1 codes with `logit >= 0 -> +1`; gradient of hard-tanh (identity inside (-1, 1))."""
    hard = torch.where(logits >= 0, 1.0, -1.0).to(logits.dtype)
    soft = logits.clamp(-1.0, 1.0)
    return soft + (hard - soft).detach()


class ChainModel(nn.Module):
    """Temporal encoder + hash head. `forward(features[B, T, D]) -> ChainOutput`."""

    def __init__(self, config: ChainConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Linear(c.feature_dim, c.dim)
        if c.position == "sinusoidal":
            self.register_buffer("pos", sinusoid_table(c.frames, c.dim), persistent=False)
        else:
            self.pos = nn.Parameter(torch.zeros(c.frames, c.dim).normal_(std=0.02))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.hash = nn.Linear(c.dim, c.bits)
        self.hash_norm = nn.LayerNorm(c.bits, eps=1e-6)
        # Task head of frame order verification; unused by forward (so absent from exports).
        self.order_head = nn.Linear(c.dim, c.frames)

    def forward(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> ChainOutput:
        """`positions` [B, t] (int64, each < frames) picks position embeddings; default 0..t-1."""
        t = features.shape[1]
        pos = self.pos[:t] if positions is None else self.pos[positions]
        x = self.drop(self.embed(features) + pos)
        for block in self.blocks:
            x = block(x)
        tokens = self.norm(x)
        frame_logits = self.hash_norm(self.hash(tokens))
        return ChainOutput(tokens, frame_logits, frame_logits.mean(dim=1))

    def predict_order(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, t, frames] over each token's original frame index."""
        return self.order_head(tokens)

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Packed uint8 codes [B, bits/8], MSB-first (numpy.packbits order)."""
        return pack_bits_torch(self(features).video_logits >= 0)


def pack_bits_torch(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean [B, n*8] tensor MSB-first into uint8 [B, n] with plain arithmetic.

    Multiply-and-sum instead of bitwise ops, so the same graph exports to ONNX ops that
    TensorRT's parser supports (no BitShift / BitwiseOr).
    """
    b, nbits = bits.shape
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32, device=bits.device)
    grouped = bits.to(torch.int32).reshape(b, nbits // 8, 8)
    return (grouped * weights).sum(dim=-1).to(torch.uint8)


def with_fewer_frames(model: ChainModel, frames: int) -> ChainModel:
    """The same weights for clips of `frames` (<= T) frames sampled at segment centres, as
    `Encoder` samples: each frame gets the position embedding (and order-head row) of the
    T-grid segment its centre falls in, `segment_indices(T, frames)`, so
    `small(x) == model(x, segment_indices(T, frames))`. The gathered table is stored as a
    "learned" one (it is not trained further); fewer frames cost less to decode and embed, and
    docs/default_model.md measures what they lose."""
    c = model.config
    if not 1 <= frames <= c.frames:
        raise ValueError(f"the model takes clips of {c.frames} frames; fewer must be 1..{c.frames}, got {frames}")
    grid = torch.from_numpy(segment_indices(c.frames, frames))
    small = ChainModel(ChainConfig(**{**c.to_dict(), "frames": frames, "position": "learned"}))
    state = model.state_dict()
    state.update({"pos": model.pos.detach()[grid].clone(),
                  "order_head.weight": state["order_head.weight"][grid].clone(),
                  "order_head.bias": state["order_head.bias"][grid].clone()})
    small.load_state_dict(state)
    return small.train(model.training)

"""CHAIN's three self-supervised tasks, one small module each (formula in each docstring).

Paper facts (CHAIN, ACM MM 2023, docs/research/chain_method.md §2.1): two spatio-temporally augmented clips
of a video form a positive pair (global contrastive task); a frame order verification task
predicts absolute temporal positions; a scene change regularization task clusters frames into
scenes with Affinity Propagation and contrasts frames against the scene prototypes.
Everything else here (loss forms, temperatures, which representation, shuffling fraction,
AP settings, degenerate-case handling) is the proposal of docs/research/chain_method.md §2.3 and is a
constructor argument.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chain_sdk.nn.chain import ChainModel, ChainOutput, binarize_ste

CODE_KINDS = ("ste", "tanh", "frame_mean")


def contrastive_codes(output: ChainOutput, kind: str = "ste") -> torch.Tensor:
    """The video representation the contrastive loss compares, [B, bits].

    - "ste" (default, proposal): the binary video code itself, sign(mean logits), with the
      hard-tanh straight-through gradient; trains exactly what retrieval uses.
    - "tanh": the continuous relaxation tanh(mean logits).
    - "frame_mean": ConMH's choice, the mean of the per-frame binary codes.
    """
    if kind == "ste":
        return binarize_ste(output.video_logits)
    if kind == "tanh":
        return torch.tanh(output.video_logits)
    if kind == "frame_mean":
        return binarize_ste(output.frame_logits).mean(dim=1)
    raise ValueError(f"code kind must be one of {CODE_KINDS}, got {kind!r}")


class NTXentLoss(nn.Module):
    """NT-Xent over two views with in-batch negatives (SimCLR), or ConMH's debiased variant.

    With z = L2-normalised codes of both views stacked, [z1; z2] (2B rows), s_ik = z_i . z_k,
    and j(i) the other view of the same video:

        L = 1/(2B) * sum_i -log( exp(s_ij/tau) / sum_{k != i} exp(s_ik/tau) )

    Debiased (DCL, Chuang et al. 2020, as in ConMH's loss with N = 2B - 2 negatives):

        Ng_i = max( (sum_{k not in {i, j}} exp(s_ik/tau) - tau_plus * N * exp(s_ij/tau))
                    / (1 - tau_plus),  N * exp(-1/tau) )
        L = mean_i -log( exp(s_ij/tau) / (exp(s_ij/tau) + Ng_i) )

    Default tau = 0.5: the temperature ConMH and S5VH use for their contrastive loss on
    binary video codes (the only verified value for this setting); with +-1 codes the cosine
    moves in steps of 2/bits, and a low tau would make a single bit flip dominate the loss.
    """

    def __init__(self, temperature: float = 0.5, debiased: bool = False, tau_plus: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        if not 0.0 <= tau_plus < 1.0:
            raise ValueError("tau_plus must be in [0, 1)")
        self.temperature = temperature
        self.debiased = debiased
        self.tau_plus = tau_plus

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"views must both be [B, bits], got {tuple(z1.shape)}, {tuple(z2.shape)}")
        b = z1.shape[0]
        if b < 2:
            raise ValueError("NT-Xent needs at least 2 videos per batch (in-batch negatives)")
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = z @ z.T / self.temperature
        pos_index = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        if not self.debiased:
            sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
            return F.cross_entropy(sim, pos_index)
        pos = sim.gather(1, pos_index[:, None]).squeeze(1)
        negatives = torch.ones_like(sim, dtype=torch.bool)
        negatives[torch.arange(2 * b), torch.arange(2 * b)] = False
        negatives[torch.arange(2 * b), pos_index] = False
        n = 2 * b - 2
        neg = (sim.exp() * negatives).sum(dim=1)
        ng = (neg - self.tau_plus * n * pos.exp()) / (1.0 - self.tau_plus)
        ng = ng.clamp(min=n * math.exp(-1.0 / self.temperature))
        return (-(pos - torch.log(pos.exp() + ng))).mean()


class FrameOrderLoss(nn.Module):
    """Frame order verification: shuffle the frames of a clip, predict where each came from.

    A fraction p of the clip's t slots is permuted (content moves, the slot position embeddings
    stay, so they cannot leak the answer); a separate forward pass encodes the shuffled clip
    and the model's order head classifies each permuted token's original absolute position
    pi(s) on the frame grid (0..frames-1):

        L = mean over permuted slots s of  CE( order_head(h_s), pi(s) )
    """

    def __init__(self, fraction: float = 1.0):
        super().__init__()
        if not 0.0 < fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        self.fraction = fraction

    def forward(self, model: ChainModel, features: torch.Tensor,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """Returns (loss, accuracy on the permuted slots)."""
        b, t, _ = features.shape
        if positions is None:
            positions = torch.arange(t, device=features.device).expand(b, t)
        source, moved = self.shuffle(b, t, features.device)
        shuffled = features.gather(1, source[..., None].expand_as(features))
        logits = model.predict_order(model(shuffled, positions).tokens)
        target = positions.gather(1, source)
        loss = F.cross_entropy(logits[moved], target[moved])
        accuracy = float((logits[moved].argmax(dim=-1) == target[moved]).float().mean())
        return loss, accuracy

    def shuffle(self, b: int, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """`source[b, s]`: which original slot fills slot s; `moved[b, s]`: slot s is scored."""
        m = min(t, max(2, round(self.fraction * t)))  # permuting one slot is a no-op
        chosen = torch.rand(b, t, device=device).argsort(dim=1)[:, :m]  # slots to permute
        mixed = chosen.gather(1, torch.rand(b, m, device=device).argsort(dim=1))
        source = torch.arange(t, device=device).repeat(b, 1)
        source.scatter_(1, chosen, mixed)
        moved = torch.zeros(b, t, dtype=torch.bool, device=device)
        moved.scatter_(1, chosen, True)
        return source, moved


class SceneChangeLoss(nn.Module):
    """Scene change regularization: prototypical contrast of frames against their scenes.

    Per video, Affinity Propagation (scikit-learn, negative squared Euclidean affinity,
    `damping`, `preference=None` = median) clusters the detached, L2-normalised frame tokens
    h_t into scenes; prototype c_k = normalised mean of cluster k (detached). With k(t) the
    scene of frame t and phi the temperature:

        L = mean over frames t of -log( exp(h_t . c_k(t) / phi) / sum_k' exp(h_t . c_k' / phi) )

    The sum runs over the video's own prototypes, plus every other video's prototypes in the
    batch when `batch_negatives`. Videos where AP finds a single scene, does not converge, or
    labels frames -1 are skipped and counted (`last_skipped`); if all are skipped the loss is
    an exact zero that still belongs to the graph.
    """

    def __init__(self, temperature: float = 0.1, damping: float = 0.5, max_iter: int = 200,
                 batch_negatives: bool = False):
        super().__init__()
        if not 0.5 <= damping < 1.0:
            raise ValueError("damping must be in [0.5, 1)")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature
        self.damping = damping
        self.max_iter = max_iter
        self.batch_negatives = batch_negatives
        self.last_skipped = 0

    def cluster(self, frames: np.ndarray) -> np.ndarray | None:
        """Scene label per frame, or None for a degenerate result."""
        from sklearn.cluster import AffinityPropagation
        from sklearn.exceptions import ConvergenceWarning

        if len(frames) < 2:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            # Identical frames: AP warns and returns one arbitrary scene, handled below.
            warnings.filterwarnings("ignore", message="All samples have mutually equal")
            try:
                ap = AffinityPropagation(damping=self.damping, max_iter=self.max_iter,
                                         random_state=0).fit(frames)
            except ConvergenceWarning:
                return None
        labels = ap.labels_
        if (labels < 0).any() or len(np.unique(labels)) < 2:
            return None
        return labels

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = F.normalize(tokens, dim=-1)
        detached = h.detach().cpu().numpy().astype(np.float64)
        protos, rows, targets = [], [], []
        offset, skipped = 0, 0
        for i in range(len(h)):
            labels = self.cluster(detached[i])
            if labels is None:
                skipped += 1
                continue
            label_t = torch.as_tensor(labels, device=h.device)
            k = int(labels.max()) + 1
            means = torch.zeros(k, h.shape[-1], device=h.device).index_add_(0, label_t, h[i].detach())
            protos.append(F.normalize(means, dim=-1))
            rows.append((i, offset, k))
            targets.append(label_t + offset)
            offset += k
        self.last_skipped = skipped
        if not rows:
            return tokens.sum() * 0.0
        all_protos = torch.cat(protos)
        losses = []
        for (i, start, k), target in zip(rows, targets):
            logits = h[i] @ all_protos.T / self.temperature
            if not self.batch_negatives:
                logits, target = logits[:, start:start + k], target - start
            losses.append(F.cross_entropy(logits, target, reduction="sum"))
        return torch.stack(losses).sum() / (len(rows) * h.shape[1])


class CodeDistillationLoss(nn.Module):
    """Distillation of a teacher's binary video codes (a proposal of this project, not CHAIN's).

    A cheaper student (fewer frames T) learns to give the code that a trained CHAIN teacher
    gives the same augmented clip. With s the student's video logits [B, bits] and y in {-1, +1}
    the teacher's code of the clip (sign of its video logits on its own T frames):

        L = mean over b, k of  log(1 + exp(-y_bk * s_bk))

    the logistic loss on each bit, i.e. BCE with logits against the targets (y + 1) / 2.
    """

    def forward(self, student_logits: torch.Tensor, teacher_bits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_bits.shape:
            raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher bits "
                             f"{tuple(teacher_bits.shape)} differ in shape")
        return F.softplus(-teacher_bits * student_logits).mean()

"""SM, the shallow frame-level model (SPEC section 4; paper 2.3, its figure 1 is not in the text).

Our layer choice, since the paper's figure is missing:

* input (B, 640, 64) log-mel -> per-mel-bin BatchNorm (:class:`~sed.models.common.InputNorm`);
* ``len(channels)`` conv blocks (3x3 conv, BatchNorm, context gating ``x * sigmoid(W x + b)`` with
  W a 1x1 conv (the paper's [7]), pooling along FREQUENCY ONLY -- max by default (``pool_type``;
  ``avg`` is the alternative), dropout): the 640 frames are never pooled;
* the remaining (channels x freq) features of each frame go through a gated temporal 1-D conv
  (``head_kernel`` frames of context, also context-gated) and a per-frame linear layer to 10 logits;
* sigmoid -> SM_f (B, 640, 10).  SM_c = max over time of SM_f (:func:`clip_from_frames`).

Why: few layers and no temporal compression keep frame resolution (the paper's point about the
pooling trade-off); the gated head widens the temporal receptive field from 7 frames
(three 3x3 convs) to 7 + head_kernel - 1 frames without pooling.  Dropout is slightly higher than
DM's (paper).  The sizes live in conf/model/sm_dm.yaml only: channels [8, 16, 32], freq pools [4, 4, 4],
head 9 frames x 32 units, dropout 0.3, max pooling: **18,162 parameters** (checked in tests/test_models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sed.core.constants import DEFAULT_FEATURES
from sed.models.common import ConvBlock, InputNorm, ModelConfigError


def clip_from_frames(frame_probs: torch.Tensor) -> torch.Tensor:
    """SM_c: global max pooling over time of (B, T, C) frame probabilities -> (B, C) (paper 2.3)."""
    return frame_probs.amax(dim=1)


class SM(nn.Module):
    """Shallow model: ``(B, T, n_mels)`` log-mel -> ``(B, T, n_classes)`` frame probabilities."""

    def __init__(
        self,
        *,
        channels: Sequence[int],
        freq_pools: Sequence[int],
        kernel: int,
        dropout: float,
        head_kernel: int,
        head_units: int,
        pool_type: str,
        activation: str = "cg",
        n_mels: int = DEFAULT_FEATURES.n_mels,
        n_classes: int,
    ) -> None:
        super().__init__()
        if len(freq_pools) != len(channels):
            raise ModelConfigError(f"SM: {len(freq_pools)} freq pools for {len(channels)} conv blocks")
        if head_kernel % 2 != 1:
            raise ModelConfigError(f"SM: head_kernel {head_kernel} must be odd (same-length output)")
        self.norm = InputNorm(n_mels)
        self.context_frames = len(channels) * (int(kernel) // 2) + head_kernel // 2
        blocks, in_ch, f = [], 1, n_mels
        for ch, fp in zip(channels, freq_pools):
            blocks.append(ConvBlock(in_ch, ch, kernel, activation, (1, int(fp)), dropout, pool_type))
            in_ch, f = ch, f // int(fp)
        if f < 1:
            raise ModelConfigError(f"SM: freq pools {list(freq_pools)} reduce {n_mels} mel bins below 1")
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv1d(in_ch * f, head_units, head_kernel, padding=head_kernel // 2)
        self.head_gate = nn.Conv1d(head_units, head_units, 1)
        self.head_drop = nn.Dropout(dropout)
        self.out = nn.Linear(head_units, n_classes)

    #: frames of input on each side that an output frame depends on (three 3x3 convs and a 9-frame
    #: head: 7); set in ``__init__``.  Nothing else mixes frames (no time pooling, per-frame BatchNorm and
    #: gates), so on a sub-sequence every output frame at least this far from both ends is exact.
    context_frames: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, F) -> SM_f (B, T, C) probabilities."""
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.blocks(self.norm(x).unsqueeze(1))  # (B, C, T, F')
        h = h.permute(0, 1, 3, 2).reshape(b, -1, t)  # (B, C*F', T)
        h = self.head(h)
        h = self.head_drop(h * torch.sigmoid(self.head_gate(h)))  # context gating, (B, U, T)
        return self.out(h.transpose(1, 2))  # (B, T, C)

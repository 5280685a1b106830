"""The DCASE 2020 Task 4 baseline CRNN (the "baseline to beat", SPEC section 7).

The DCASE 2020 baseline (DESED_task / dcase20_task4 baseline) is: 7 conv blocks (3x3 conv,
BatchNorm, gating ``x * sigmoid(W x)`` with W linear across channels -- our ``activation='cg'`` --,
dropout 0.5), filters [16, 32, 64, 128, 128, 128, 128], pooling
[[2,2],[2,2],[1,2],[1,2],[1,2],[1,2],[1,2]] (time x freq, time pooled 4x), on 128 mel bins; a
2-layer bidirectional GRU of 128 cells; a per-frame linear layer with sigmoid (strong output) and
attention pooling (softmax over time of a second linear layer) to the clip (weak) output.  It is
trained with mean teacher (see :class:`sed.training.systems.MeanTeacherSystem`).

Our adaptations (all in conf/model/crnn*.yaml):

* our features have 64 mel bins (SPEC section 2), so the last block does not pool frequency
  (64 -> 1 bin after six halvings) -- ``conf/model/crnn_dcase2020.yaml`` keeps the original widths;
* ``conf/model/crnn.yaml`` (the sizes live there only) is reduced to fit 2 CPU cores at about the training
  compute of the default SM+DM (~45 M multiply-adds per clip forward, x2 for the EMA teacher):
  filters [8, 16, 16, 32, 32, 32, 32] and a BiGRU of 32 cells, **74,044 parameters** (SM+DM:
  118,956; 84,780 with the SM before issue 20) against **1,112,548** at the original widths -- the DCASE
  2020 baseline's ~1.1 M
  (checked in tests/test_models.py);
* the strong output (160 steps) is repeated 4x along time (nearest) back to 640 frames, so that
  post-processing sees the same frame grid as SM.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sed.core.constants import DEFAULT_FEATURES
from sed.models.common import ConvBlock, InputNorm, ModelConfigError, as_pairs


class CRNN(nn.Module):
    """``(B, T, n_mels)`` -> ``(frame_probs (B, T, C), clip_probs (B, C))``."""

    def __init__(
        self,
        *,
        channels: Sequence[int],
        pools: Sequence,
        kernel: int,
        dropout: float,
        rnn_cells: int,
        rnn_layers: int,
        attention: bool,
        activation: str = "cg",
        n_mels: int = DEFAULT_FEATURES.n_mels,
        n_classes: int,
    ) -> None:
        super().__init__()
        pairs = as_pairs(pools, len(channels), "CRNN")
        self.norm = InputNorm(n_mels)
        blocks, in_ch, f, self.time_pool = [], 1, n_mels, 1
        for ch, p in zip(channels, pairs):
            blocks.append(ConvBlock(in_ch, ch, kernel, activation, p, dropout))
            in_ch, f, self.time_pool = ch, f // p[1], self.time_pool * p[0]
        if f < 1:
            raise ModelConfigError(f"CRNN: pools {pairs} reduce {n_mels} mel bins below 1")
        self.blocks = nn.Sequential(*blocks)
        self.rnn = nn.GRU(in_ch * f, rnn_cells, num_layers=rnn_layers, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.strong = nn.Linear(2 * rnn_cells, n_classes)
        self.attention = attention
        if attention:
            self.att = nn.Linear(2 * rnn_cells, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        h = self.blocks(self.norm(x).unsqueeze(1))  # (B, C, T', F')
        h = h.permute(0, 2, 1, 3).reshape(b, h.shape[2], -1)  # (B, T', C*F')
        h, _ = self.rnn(h)
        h = self.drop(h)
        strong = torch.sigmoid(self.strong(h))  # (B, T', C)
        if self.attention:
            w = torch.softmax(self.att(h), dim=1).clamp(min=1e-7, max=1.0)
            weak = (strong * w).sum(1) / w.sum(1)
        else:
            weak = strong.mean(1)
        frame = strong.repeat_interleave(self.time_pool, dim=1)
        if frame.shape[1] < t:  # T not divisible by the time pooling: repeat the last step
            frame = torch.cat([frame, frame[:, -1:].expand(b, t - frame.shape[1], -1)], dim=1)
        return frame[:, :t], weak

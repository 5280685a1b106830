"""DM, the deep clip-level model (SPEC section 4; paper 2.3, its figure 2 is not in the text).

Our layer choice, since the paper's figure is missing:

* input (B, 640, 64) log-mel -> per-mel-bin BatchNorm;
* ``len(channels)`` conv blocks (3x3 conv, BatchNorm, ReLU, pooling -- max by default, ``pool_type`` --
  along time AND frequency, dropout) -- more blocks than SM, ReLU instead of gating, slightly lower
  dropout (paper);
* mean over the remaining frequency bins, then global pooling over the remaining time steps
  (``clip_pool``: ``maxmean`` = max + mean, the default; ``max``; ``mean``);
* a hidden ReLU layer and a linear layer to 10 logits; sigmoid -> DM_c (B, 10).

The sizes live in conf/model/sm_dm.yaml only: channels [8, 16, 32, 64, 64], pools [2,4] then [2,2] x 4
(640 frames -> 20, 64 bins -> 1), hidden 64, dropout 0.2: **66,618 parameters** (checked in
tests/test_models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sed.core.constants import DEFAULT_FEATURES
from sed.models.common import ConvBlock, InputNorm, ModelConfigError, as_pairs


class DM(nn.Module):
    """Deep model: ``(B, T, n_mels)`` log-mel -> ``(B, n_classes)`` clip probabilities."""

    def __init__(
        self,
        *,
        channels: Sequence[int],
        pools: Sequence,
        pool_type: str,
        kernel: int,
        dropout: float,
        hidden: int,
        clip_pool: str,
        n_mels: int = DEFAULT_FEATURES.n_mels,
        n_classes: int,
    ) -> None:
        super().__init__()
        pairs = as_pairs(pools, len(channels), "DM")
        if clip_pool not in ("max", "mean", "maxmean"):
            raise ModelConfigError(f"DM: clip_pool {clip_pool!r}: expected max, mean or maxmean")
        self.clip_pool = clip_pool
        self.norm = InputNorm(n_mels)
        blocks, in_ch, f = [], 1, n_mels
        for ch, p in zip(channels, pairs):
            blocks.append(ConvBlock(in_ch, ch, kernel, "relu", p, dropout, pool_type))
            in_ch, f = ch, f // p[1]
        if f < 1:
            raise ModelConfigError(f"DM: pools {pairs} reduce {n_mels} mel bins below 1")
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Linear(in_ch, hidden), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, F) -> DM_c (B, C) probabilities."""
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.norm(x).unsqueeze(1)).mean(dim=3)  # (B, C, T')
        if self.clip_pool == "max":
            h = h.amax(dim=2)
        elif self.clip_pool == "mean":
            h = h.mean(dim=2)
        else:
            h = h.amax(dim=2) + h.mean(dim=2)
        return self.fc(h)

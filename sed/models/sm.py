"""SM, the shallow frame-level model (SPEC section 4; paper 2.3, its figure 1 is not in the text).

Our layer choice, since the paper's figure is missing:

* input (B, 640, 64) log-mel -> per-mel-bin BatchNorm (:class:`~sed.models.common.InputNorm`);
* ``len(channels)`` conv blocks (``kernel`` x ``kernel`` conv, BatchNorm, context gating
  ``x * sigmoid(W x + b)`` with W a 1x1 conv (the paper's [7]), pooling along FREQUENCY ONLY -- max by
  default (``pool_type``; ``avg`` is the alternative), dropout): the 640 frames are never pooled;
* the remaining (channels x freq) features of each frame go through a gated temporal 1-D conv, the head
  (``head_kernel`` taps ``head_dilation`` frames apart, also context-gated), then through
  ``len(tcn_dilations)`` residual context-gated temporal convs (:class:`GatedTemporalConv`,
  ``tcn_kernel`` taps, one dilation each; none by default), and a per-frame linear layer to 10 logits;
* sigmoid -> SM_f (B, 640, 10).  SM_c = max over time of SM_f (:func:`clip_from_frames`).

Why: few layers and no temporal compression keep frame resolution (the paper's point about the
pooling trade-off); the gated head widens the temporal receptive field without pooling, and dilation
widens it further at the same layer count.  Dropout is slightly higher than DM's (paper).  The sizes
live in the config group conf/model/sm/.  The default, ``tcn`` (issue 20's A/B, docs/sm_ab.md): 2 conv
blocks [8, 32], freq pools [4, 4], the gated head (9 frames x 32 units), one residual context-gated
temporal conv of 9 taps 13 frames apart, dropout 0.3, max pooling: **52,338 parameters**, 4 conv
layers (DM has 5), context +-58 frames (0.91 s).  ``gated_head``, the SM of every run before issue
20: channels [8, 16, 32], freq pools [4, 4, 4], the same head: 18,162 parameters, context +-7 frames.
The counts are checked in tests/test_models.py.  The constructor defaults of the options added by
issue 20 (``head_dilation``, ``tcn_*``) give ``gated_head``'s architecture, so checkpoints saved
before them load unchanged.
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


class GatedTemporalConv(nn.Module):
    """Residual context-gated 1-D conv along time: ``x + drop(h * sigmoid(W h + b))``, ``h = conv(x)``.

    ``kernel`` taps ``dilation`` frames apart (same-length output, no striding): ``dilation * (kernel //
    2)`` frames of context on each side.  ``W`` is a 1x1 conv across units (context gating, paper's [7]).
    """

    def __init__(self, units: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(units, units, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.gate = nn.Conv1d(units, units, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, U, T)
        h = self.conv(x)
        return x + self.drop(h * torch.sigmoid(self.gate(h)))


def _check(channels, freq_pools, head_kernel, head_dilation, tcn_kernel, tcn_dilations) -> None:
    if len(freq_pools) != len(channels):
        raise ModelConfigError(f"SM: {len(freq_pools)} freq pools for {len(channels)} conv blocks")
    for name, k in (("head_kernel", head_kernel), ("tcn_kernel", tcn_kernel)):
        if k % 2 != 1:
            raise ModelConfigError(f"SM: {name} {k} must be odd (same-length output)")
    if min([int(head_dilation), *map(int, tcn_dilations)]) < 1:
        raise ModelConfigError(f"SM: dilations must be >= 1 (head {head_dilation}, "
                               f"tcn {list(tcn_dilations)})")


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
        head_dilation: int = 1,
        tcn_kernel: int = 3,
        tcn_dilations: Sequence[int] = (),
        n_mels: int = DEFAULT_FEATURES.n_mels,
        n_classes: int,
    ) -> None:
        super().__init__()
        _check(channels, freq_pools, head_kernel, head_dilation, tcn_kernel, tcn_dilations)
        self.norm = InputNorm(n_mels)
        self.context_frames = (len(channels) * (int(kernel) // 2) + int(head_dilation) * (head_kernel // 2)
                               + sum(int(d) * (int(tcn_kernel) // 2) for d in tcn_dilations))
        self.conv_layers = len(channels) + 1 + len(tcn_dilations)
        blocks, in_ch, f = [], 1, n_mels
        for ch, fp in zip(channels, freq_pools):
            blocks.append(ConvBlock(in_ch, ch, kernel, activation, (1, int(fp)), dropout, pool_type))
            in_ch, f = ch, f // int(fp)
        if f < 1:
            raise ModelConfigError(f"SM: freq pools {list(freq_pools)} reduce {n_mels} mel bins below 1")
        self.blocks = nn.Sequential(*blocks)
        hd = int(head_dilation)
        self.head = nn.Conv1d(in_ch * f, head_units, head_kernel, padding=hd * (head_kernel // 2),
                              dilation=hd)
        self.head_gate = nn.Conv1d(head_units, head_units, 1)
        self.head_drop = nn.Dropout(dropout)
        # empty by default: no parameters, no checkpoint keys (checkpoints from before issue 20 load as is)
        self.tcn = nn.ModuleList(
            GatedTemporalConv(head_units, int(tcn_kernel), int(d), dropout) for d in tcn_dilations)
        self.out = nn.Linear(head_units, n_classes)

    #: frames of input on each side that an output frame depends on: ``kernel // 2`` per conv block,
    #: ``head_dilation * (head_kernel // 2)`` for the head and ``d * (tcn_kernel // 2)`` per temporal
    #: conv of dilation d (default sizes: 3 + 4 = 7); set in ``__init__``.  Nothing else mixes frames
    #: (no time pooling, per-frame BatchNorm and gates), so on a sub-sequence every output frame at least
    #: this far from both ends is exact.
    context_frames: int
    #: convolutions with more than one tap (conv blocks, head, temporal convs; the 1x1 gates not
    #: counted): the paper's SM has fewer layers than DM (5 conv blocks)
    conv_layers: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, F) -> SM_f (B, T, C) probabilities."""
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.blocks(self.norm(x).unsqueeze(1))  # (B, C, T, F')
        h = h.permute(0, 1, 3, 2).reshape(b, -1, t)  # (B, C*F', T)
        h = self.head(h)
        h = self.head_drop(h * torch.sigmoid(self.head_gate(h)))  # context gating, (B, U, T)
        for layer in self.tcn:
            h = layer(h)
        return self.out(h.transpose(1, 2))  # (B, T, C)

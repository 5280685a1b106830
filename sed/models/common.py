"""Building blocks shared by the SM, DM and baseline CRNN models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ModelConfigError(ValueError):
    """A model configuration that cannot build a network (lists of different lengths, bad sizes)."""


def as_pairs(pools: Sequence, n: int, what: str) -> list[tuple[int, int]]:
    """Normalise a list of pool sizes (ints or ``[time, freq]`` pairs) to ``n`` pairs."""
    if len(pools) != n:
        raise ModelConfigError(f"{what}: {len(pools)} pool sizes given for {n} conv blocks")
    out = []
    for p in pools:
        if isinstance(p, int):
            out.append((int(p), int(p)))
        else:
            p = list(p)
            if len(p) != 2:
                raise ModelConfigError(f"{what}: pool size {p} is not [time, freq]")
            out.append((int(p[0]), int(p[1])))
    return out


class InputNorm(nn.Module):
    """Normalisation of the log-mel input, per mel bin (BatchNorm over (clips, frames)).

    The paper does not say how the input is normalised; we let a BatchNorm1d over the 64 mel
    bins learn the dataset's per-bin mean and variance (running statistics at inference), so no
    separate statistics file travels with a checkpoint.
    """

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F)
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class ConvBlock(nn.Module):
    """Conv2d (same padding) -> BatchNorm -> activation -> pool -> dropout, on (B, C, T, F).

    ``activation='cg'``: context gating (paper's [7], Miech et al.), ``y = x * sigmoid(W x + b)`` with
    ``W`` a 1x1 convolution across channels at every (time, freq) position -- the gating of the
    DCASE 2020 baseline CRNN too.  ``activation='glu'``: a gated linear unit, ``a * sigmoid(b)``
    where the convolution makes ``2 * out_ch`` channels split into ``a`` and ``b``.
    ``activation='relu'``: a plain ReLU.  Pooling: ``pool_type`` ``avg`` or ``max`` (SM and DM use max);
    ``pool=(1, 1)`` keeps the size.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        activation: str = "relu",
        pool: tuple[int, int] = (1, 1),
        dropout: float = 0.0,
        pool_type: str = "avg",
    ) -> None:
        super().__init__()
        if activation not in ("relu", "glu", "cg"):
            raise ModelConfigError(f"activation {activation!r}: expected 'relu', 'glu' or 'cg'")
        self.activation = activation
        mult = 2 if activation == "glu" else 1
        self.conv = nn.Conv2d(in_ch, out_ch * mult, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(out_ch * mult)
        self.gate = nn.Conv2d(out_ch, out_ch, 1) if activation == "cg" else None
        if tuple(pool) == (1, 1):
            self.pool: nn.Module = nn.Identity()
        elif pool_type == "avg":
            self.pool = nn.AvgPool2d(pool)
        elif pool_type == "max":
            self.pool = nn.MaxPool2d(pool)
        else:
            raise ModelConfigError(f"pool_type {pool_type!r}: expected 'avg' or 'max'")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.activation == "glu":
            a, b = x.chunk(2, dim=1)
            x = a * torch.sigmoid(b)
        elif self.activation == "cg":
            x = x * torch.sigmoid(self.gate(x))
        else:
            x = torch.relu(x)
        return self.drop(self.pool(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""Building blocks shared by the SM, DM and baseline CRNN models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
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


#: the CPU fast paths below on/off (benchmarks/bench_train_step.py times both in one run)
CPU_FAST_CONV = True


def _fast(x: torch.Tensor) -> bool:
    """The fast paths pay in training (their backward); forward-only (validation, inference) keeps
    oneDNN's."""
    return CPU_FAST_CONV and x.device.type == "cpu" and torch.is_grad_enabled()


def _nhwc(x: torch.Tensor) -> bool:
    """Stored channels_last and not also plain contiguous (one channel is both)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class BlockMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (kernel = stride, no padding); without autograd (validation, inference) computed
    as a max over a reshaped view, which skips the argmax indices: the same output, about 2x faster on CPU
    for NCHW tensors. NHWC tensors (channels_last) keep the library kernel: there the reshape would copy,
    and the library's vectorised NHWC kernel is 4x faster than the copy and max (16 windows, DM's block 1)."""

    def __init__(self, kernel: tuple[int, int]) -> None:
        super().__init__(kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not CPU_FAST_CONV or _nhwc(x):
            # NHWC (channels_last, Predictor.speed_up): the library kernel is 4x faster
            return super().forward(x)
        a, b = self.kernel_size
        n, c, t, f = x.shape
        x = x[:, :, : t // a * a, : f // b * b]
        return x.reshape(n, c, t // a, a, f // b, b).amax(dim=(3, 5))


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 Conv2d (same parameters and checkpoint keys) computed on CPU as a channel matmul.

    oneDNN's 1x1 convolution with few channels at full (640 x 64) resolution is 5-6x slower on CPU
    than the same product as an ``einsum`` (backward included; benchmarks/bench_train_step.py);
    on other devices the library convolution runs.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast(x):
            return super().forward(x)
        y = torch.einsum("oc,bctf->botf", self.weight[:, :, 0, 0], x)
        return y + self.bias[:, None, None] if self.bias is not None else y


class SingleInputConv2d(nn.Conv2d):
    """A k x k, stride 1, same-padding Conv2d from ONE input channel (the log-mel), computed on CPU as
    ``k*k`` shifted copies times a ``(out, k*k)`` matrix: about 2x faster than oneDNN's kernel there
    (backward included); the library convolution elsewhere.  Same parameters and checkpoint keys."""

    def __init__(self, out_ch: int, kernel: int) -> None:
        super().__init__(1, out_ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast(x):
            return super().forward(x)
        k, (_, _, t, f) = self.kernel_size[0], x.shape
        p = F.pad(x[:, 0], (k // 2,) * 4)
        # (B, k*k, T, F)
        shifted = torch.stack([p[:, i:i + t, j:j + f] for i in range(k) for j in range(k)], 1)
        y = torch.einsum("ok,bktf->botf", self.weight.reshape(self.out_channels, k * k), shifted)
        return y + self.bias[:, None, None] if self.bias is not None else y


def conv2d(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    """A same-padding Conv2d, with the CPU fast paths above where they apply (odd kernels)."""
    if kernel == 1:
        return PointwiseConv2d(in_ch, out_ch)
    if in_ch == 1 and kernel % 2 == 1:
        return SingleInputConv2d(out_ch, kernel)
    return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)


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
        self.conv = conv2d(in_ch, out_ch * mult, kernel)
        self.bn = nn.BatchNorm2d(out_ch * mult)
        self.gate = PointwiseConv2d(out_ch, out_ch) if activation == "cg" else None
        if tuple(pool) == (1, 1):
            self.pool: nn.Module = nn.Identity()
        elif pool_type == "avg":
            self.pool = nn.AvgPool2d(pool)
        elif pool_type == "max":
            self.pool = BlockMaxPool2d(tuple(pool))
        else:
            raise ModelConfigError(f"pool_type {pool_type!r}: expected 'avg' or 'max'")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.activation == "relu" and isinstance(self.pool, nn.MaxPool2d) and not torch.is_grad_enabled():
            # pooled first: the same numbers (max and ReLU commute); avg pooling does not commute with ReLU,
            # so it keeps the training order below
            return self.drop(torch.relu(self.pool(x)))
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

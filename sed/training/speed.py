"""GPU throughput switches that act on the LightningModule's networks, as Lightning callbacks.

``speed.channels_last`` (:class:`ChannelsLast`): conv weights in NHWC order, which cuDNN's tensor-core
kernels prefer under bf16/fp16 (inputs follow the weights' format); a no-op for the numbers.
``speed.compile`` (:class:`Compile`): ``torch.compile`` each network in place (``nn.Module.compile``),
so parameter names and checkpoints stay as they are. bf16 autocast is Lightning's own switch
(``trainer.precision=bf16-mixed``, conf/trainer/gpu_fast.yaml); pinned memory and on-device features
are the datamodule's (``datamodule.pin_memory``, ``datamodule.features_on_device``).

Networks: the module's direct sub-modules that hold parameters (SM and DM; the CRNN student and
teacher), or the attribute names given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from sed.core.errors import ConfigError


def networks(module: nn.Module, names: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """``{attribute: network}``: the named children, or every direct child that holds parameters."""
    if names:
        missing = [n for n in names if not isinstance(getattr(module, n, None), nn.Module)]
        if missing:
            raise ConfigError(f"speed: the module has no network(s) {missing}")
        return {n: getattr(module, n) for n in names}
    return {n: m for n, m in module.named_children() if any(True for _ in m.parameters())}


def to_channels_last(module: nn.Module) -> int:
    """Convert every 4-D parameter and buffer of ``module`` to channels_last, in place; returns how many."""
    n = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
            t.data = t.data.contiguous(memory_format=torch.channels_last)
            n += 1
    return n


class ChannelsLast(pl.Callback):
    """Conv weights in channels_last memory format before fitting, validating and predicting."""

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.names = list(names) if names else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for net in networks(pl_module, self.names).values():
            to_channels_last(net)


class Compile(pl.Callback):
    """``torch.compile`` the networks in place at setup (``mode``/``backend`` as torch.compile's)."""

    def __init__(self, names: Sequence[str] | None = None, mode: str | None = None, backend: str = "inductor",
                 dynamic: bool | None = None) -> None:
        self.names = list(names) if names else None
        self.kw = {"backend": backend, "mode": mode, "dynamic": dynamic}
        self.compiled: list[str] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for name, net in networks(pl_module, self.names).items():
            if name not in self.compiled:
                net.compile(**self.kw)
                self.compiled.append(name)


def speed_callbacks(cfg: Mapping | None) -> list[pl.Callback]:
    """The callbacks the ``speed`` config node asks for (conf/train.yaml)::

        speed: {channels_last: false, compile: false, compile_mode: null, compile_backend: inductor,
                networks: null}
    """
    cfg = dict(cfg or {})
    unknown = set(cfg) - {"channels_last", "compile", "compile_mode", "compile_backend", "networks"}
    if unknown:
        raise ConfigError(f"speed: unknown key(s) {sorted(unknown)}")
    names = cfg.get("networks")
    out: list[pl.Callback] = []
    if cfg.get("channels_last"):
        out.append(ChannelsLast(names))
    if cfg.get("compile"):
        out.append(Compile(names, mode=cfg.get("compile_mode"),
                           backend=str(cfg.get("compile_backend") or "inductor")))
    return out

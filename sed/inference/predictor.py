"""Trained systems -> probabilities (contract in docs/ARCHITECTURE.md, "Inference").

``load_system(ckpt)`` rebuilds the system from a Lightning checkpoint (its ``hyper_parameters`` hold
the class path, ``_target_``, and its arguments; run folders resolve in :mod:`sed.core.runs`) and
returns a :class:`Predictor`;
``predict_split(ckpt | [ckpt, ...], data_cfg, split)`` runs it (or the average of several: the
ensemble of SPEC section 6) over a split of the feature cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from sed.core.constants import FRAME_SECONDS
from sed.core.devices import resolve_device
from sed.core.predictions import Predictions, average
from sed.core.runs import CheckpointError, resolve_checkpoint
from sed.datamodules.cache import load_split
from sed.models.common import ConvBlock

__all__ = [
    "CheckpointError", "Predictor", "load_system", "predict_split", "resolve_checkpoint", "resolve_device"
]


def fuse_batchnorm(module: torch.nn.Module) -> int:
    """Fold each conv block's BatchNorm into its convolution, in place (inference only: the running
    statistics are constants there, so ``bn(conv(x))`` is one convolution with rescaled weights and
    bias; equal up to float rounding, about 1e-7). Returns how many blocks were folded."""
    n = 0
    for m in module.modules():
        if isinstance(m, ConvBlock) and isinstance(m.bn, torch.nn.BatchNorm2d) and not m.bn.training:
            m.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = torch.nn.Identity()
            n += 1
    return n


class Predictor:
    """A trained system in eval mode: ``predict_logmel(x (B, T, 64)) -> (frame_probs, clip_probs)``."""

    def __init__(self, system, device: torch.device, path: Path) -> None:
        self.system, self.device, self.path = system.eval().to(device), device, path
        self.classes: tuple[str, ...] = tuple(system.classes)
        self.frame_seconds: float = FRAME_SECONDS
        self.postproc_cfg: dict | None = system.postproc_cfg

    def speed_up(self) -> Predictor:
        """Inference-only rewrites for long runs (``sed detect``): BatchNorm folded into the convolutions
        and conv weights in channels_last (NHWC: oneDNN's and cuDNN's fast layout). Same outputs up to
        float rounding; the system can no longer be trained or saved as a training checkpoint."""
        # lazy: pytorch_lightning (sed.training) costs ~2 s; `sedx --help` imports this module (via sed.tune)
        from sed.training.speed import to_channels_last

        fuse_batchnorm(self.system)
        to_channels_last(self.system)
        return self

    @property
    def frame_context(self) -> int | None:
        """Receptive-field half-width of the frame output in frames (None: not local); see
        :attr:`sed.training.systems.BaseSystem.frame_context`."""
        return getattr(self.system, "frame_context", None)

    @torch.inference_mode()
    def predict_frames_logmel(self, x: torch.Tensor) -> np.ndarray:
        """Frame probabilities alone (systems with a local frame model): ``(B, T, 64)`` -> ``(B, T, C)``."""
        return self.system.predict_frames(x.float().to(self.device)).float().cpu().numpy()

    @torch.inference_mode()
    def predict_clips_logmel(self, x: torch.Tensor) -> np.ndarray:
        """Clip probabilities alone: ``(B, T, 64)`` -> ``(B, C)``."""
        return self.system.predict_clips(x.float().to(self.device)).float().cpu().numpy()

    @torch.inference_mode()
    def predict_logmel(self, x: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(x, torch.Tensor):
            x = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: memmap rows are read-only
        x = x.float()
        frame, clip = self.system.predict(x.to(self.device))
        return frame.float().cpu().numpy(), clip.float().cpu().numpy()


def load_system(ckpt_path: str | Path, device: str | torch.device = "auto") -> Predictor:
    """Load a training checkpoint (file or run folder) as a :class:`Predictor`."""
    # lazy: pytorch_lightning (sed.training) costs ~2 s; `sedx --help` imports this module (via sed.tune)
    from sed.training.systems import system_from_hparams

    path = resolve_checkpoint(ckpt_path)
    dev = resolve_device(device)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: cannot read checkpoint ({e})") from e
    if not isinstance(ck, Mapping) or "state_dict" not in ck or "hyper_parameters" not in ck:
        raise CheckpointError(f"{path}: not a sed training checkpoint (no state_dict/hyper_parameters)")
    try:
        system = system_from_hparams(ck["hyper_parameters"])
        system.load_state_dict(ck["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: checkpoint does not match the sed systems ({e})") from e
    return Predictor(system, dev, path)


def stored_postproc(ckpt_path: str | Path) -> dict | None:
    """The post-processing a checkpoint carries (the training config's), without building the model;
    None when the file cannot be read (the caller reports it when it loads the model)."""
    try:
        ck = torch.load(resolve_checkpoint(ckpt_path), map_location="cpu", weights_only=False, mmap=True)
        pp = ck["hyper_parameters"].get("postproc")
    except Exception:  # noqa: BLE001 - reported by load_system
        return None
    return dict(pp) if isinstance(pp, Mapping) else None


def predict_split(
    ckpt_path: str | Path | Sequence[str | Path],
    data_cfg: Mapping,
    split: str = "validation",
    batch_size: int = 32,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> Predictions:
    """Probabilities of every cached clip of ``split``; a list of checkpoints is averaged (ensemble)."""
    paths = [ckpt_path] if isinstance(ckpt_path, (str, Path)) else list(ckpt_path)
    if not paths:
        raise CheckpointError("predict_split: no checkpoint given")
    feats = load_split(data_cfg, split, progress=progress)
    out = []
    for p in paths:
        pred = load_system(p, device)
        frames, clips = [], []
        for s in range(0, len(feats), batch_size):
            f, c = pred.predict_logmel(np.asarray(feats.logmel[s : s + batch_size], dtype=np.float32))
            frames.append(f)
            clips.append(c)
        n_frames = feats.spec.n_frames
        frame = np.concatenate(frames) if frames else np.zeros((0, n_frames, len(pred.classes)), np.float32)
        clip = np.concatenate(clips) if clips else np.zeros((0, len(pred.classes)), np.float32)
        out.append(Predictions(list(feats.filenames), frame, clip, pred.classes, pred.frame_seconds))
    return out[0] if len(out) == 1 else average(out)

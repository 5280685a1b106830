"""Batched log-mel frontend in torch (SPEC section 2, paper 2.1).

``torch.stft`` (Hann window 2048, hop 345, centred, zero padding) -> power -> a librosa mel
filterbank (64 bands, Slaney) -> ``log(mel + floor)``. Matches ``librosa.feature.melspectrogram``
with the same settings, batched over clips, on CPU or GPU.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

from sed.constants import DEFAULT_FEATURES, FeatureSpec


def mel_filterbank(spec: FeatureSpec = DEFAULT_FEATURES) -> np.ndarray:
    """The ``(n_mels, 1 + n_fft // 2)`` librosa (Slaney) mel filterbank."""
    return librosa.filters.mel(
        sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax
    ).astype(np.float32)


class LogMel(nn.Module):
    """Waveforms ``(B, samples)`` -> log-mel ``(B, frames, n_mels)``; 640 x 64 for a 10 s clip."""

    def __init__(self, spec: FeatureSpec = DEFAULT_FEATURES) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)
        fb = torch.from_numpy(mel_filterbank(spec)).T.contiguous()  # (F, n_mels)
        # Each row twice, to weight the interleaved (real, imag) squares: |X|^2 @ fb == (re^2, im^2) @ fb2.
        self.register_buffer("fb2", fb.repeat_interleave(2, dim=0), persistent=False)

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram before the log (for NMF, SPEC section 3): ``(B, frames, n_mels)``."""
        if wave.ndim == 1:
            wave = wave[None]
        stft = torch.stft(
            wave.to(self.window.dtype),
            n_fft=self.spec.n_fft,
            hop_length=self.spec.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        ).transpose(1, 2)  # (B, T, F), contiguous in this order
        ri = torch.view_as_real(stft).flatten(2)  # (B, T, 2F): re, im interleaved
        return torch.matmul(ri * ri, self.fb2)  # (B, T, n_mels): sum over bins of |X|^2 * filter

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel_power(wave) + self.spec.log_floor)


def logmel_to_mel(x: np.ndarray | torch.Tensor, spec: FeatureSpec = DEFAULT_FEATURES):
    """Invert the log of :class:`LogMel`: mel power = ``exp(x) - floor`` (clamped at 0)."""
    if isinstance(x, torch.Tensor):
        return (torch.exp(x) - spec.log_floor).clamp_min(0.0)
    return np.maximum(np.exp(x) - spec.log_floor, 0.0)

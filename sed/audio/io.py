"""Audio decoding to the SPEC section 2 form: mono, 22 050 Hz, padded or truncated to 10 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sed.core.constants import DEFAULT_FEATURES, FeatureSpec
from sed.core.errors import DataError


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode any soundfile-readable file -> ``(mono float32 samples, sample_rate)``.

    Raises :class:`DataError` naming the file for a missing, undecodable, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: cannot decode audio ({msg})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: no samples (zero-length audio)")
    if sr <= 0:
        raise DataError(f"{path}: invalid sample rate {sr}")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or truncate the last axis to ``n`` samples (paper 2.1: every clip is 10 s)."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad)


def load_audio(path: str | Path, spec: FeatureSpec = DEFAULT_FEATURES) -> np.ndarray:
    """A clip as the network sees it: mono, ``spec.sample_rate`` (soxr HQ), ``spec.n_samples`` long."""
    x, sr = read_audio(path)
    if sr != spec.sample_rate:
        # Truncate before resampling: nothing past 10 s is used, so do not resample it.
        keep = int(np.ceil(spec.clip_seconds * sr)) + 64
        x = soxr.resample(x[:keep], sr, spec.sample_rate, quality="HQ").astype(np.float32, copy=False)
    return fit_length(x, spec.n_samples)

"""Audio decoding to the SPEC section 2 form: mono, 22 050 Hz, padded or truncated to 10 s."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sed.core.constants import DEFAULT_FEATURES, FeatureSpec
from sed.core.errors import DataError

log = logging.getLogger(__name__)


def wav_truncation(path: str | Path) -> str | None:
    """A one-line note when a WAV file holds fewer samples than its header announces (a file cut
    short: libsndfile silently reads what is there), else None. Other formats: None."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            block = rate = None
            while True:
                ch = fh.read(8)
                if len(ch) < 8:
                    return None
                cid, n = ch[:4], struct.unpack("<I", ch[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(min(n, 16))
                    if len(fmt) < 14:
                        return None
                    rate, block = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
                    fh.seek(n - len(fmt) + (n & 1), 1)
                elif cid == b"data":
                    have = size - fh.tell()
                    if n in (0, 0xFFFFFFFF) or n <= have or not block or not rate:
                        return None  # streamed header (size unknown) or complete
                    said, got = n / block / rate, have / block / rate
                    return (f"{path}: truncated file: its header announces {said:.2f} s of audio, "
                            f"the file holds {got:.2f} s (read as {got:.2f} s)")
                else:
                    fh.seek(n + (n & 1), 1)
    except OSError:
        return None


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
    note = wav_truncation(path)
    if note:
        log.warning("%s", note)
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

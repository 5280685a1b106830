"""A recording chain for the bundled data's "real" splits: what a consumer device and an upload do to a sound.

Each step is a pure function of a signal and its parameters; :func:`recording_chain` draws the parameters
and which steps apply from a :class:`ChainRecipe` and a random stream. Signals are float arrays, peak about 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


def band_limit(x: np.ndarray, sr: int, highpass_hz: float, lowpass_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth highpass at ``highpass_hz`` and lowpass at ``lowpass_hz`` (a small microphone and its
    codec)."""
    lp = min(lowpass_hz, 0.45 * sr)
    sos = np.vstack([signal.butter(order, highpass_hz, btype="highpass", fs=sr, output="sos"),
                     signal.butter(order, lp, btype="lowpass", fs=sr, output="sos")])
    return signal.sosfilt(sos, x)


def peaking_eq(x: np.ndarray, sr: int, centre_hz: float, gain_db: float, q: float) -> np.ndarray:
    """One peaking-EQ biquad (RBJ cookbook): ``gain_db`` at ``centre_hz``, unity far from it."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * centre_hz / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return signal.lfilter(b / den[0], den / den[0], x)


def compress(x: np.ndarray, sr: int, threshold_db: float, ratio: float, time_s: float = 0.01) -> np.ndarray:
    """Dynamic-range compressor: a one-pole envelope follower of ``|x|`` (time constant ``time_s``) and a
    static curve, gain ``(threshold - level) * (1 - 1/ratio)`` dB above ``threshold_db`` (re the peak),
    0 below."""
    a = np.exp(-1.0 / max(1.0, time_s * sr))
    env = signal.lfilter([1 - a], [1, -a], np.abs(x))
    level_db = 20 * np.log10(env / (np.abs(x).max() + 1e-12) + 1e-12)
    gain_db = np.minimum(0.0, (threshold_db - level_db) * (1 - 1 / ratio))
    return x * 10 ** (gain_db / 20)


def clip(x: np.ndarray, limit: float, soft: bool = False) -> np.ndarray:
    """Clip at ``±limit``: hard (``np.clip``) or soft (``limit * tanh(x / limit)``)."""
    return limit * np.tanh(x / limit) if soft else np.clip(x, -limit, limit)


def quantise(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to a ``bits``-bit grid over [-1, 1): at most ``2**bits`` distinct values (step
    ``2**(1-bits)``)."""
    q = 2 ** (bits - 1)
    return np.clip(np.round(x * q), -q, q - 1) / q


def lossy(x: np.ndarray, sr: int, cutoff_hz: float, step_db: float, nperseg: int = 512) -> np.ndarray:
    """A lossy-codec-like step: STFT bins above ``cutoff_hz`` zeroed, magnitudes rounded to ``step_db`` dB."""
    f, _, z = signal.stft(x, sr, nperseg=nperseg)
    z[f > cutoff_hz] = 0
    mag = np.abs(z)
    db = np.round(20 * np.log10(mag + 1e-9) / step_db) * step_db
    z = np.where(mag > 0, z / (mag + 1e-30) * 10 ** (db / 20), 0)
    return signal.istft(z, sr, nperseg=nperseg)[1][: len(x)]


@dataclass(frozen=True)
class ChainRecipe:
    """Probability and parameter range of each step of :func:`recording_chain` (applied in this order)."""

    band_prob: float = 0.7
    highpass_hz: tuple[float, float] = (60.0, 400.0)
    lowpass_hz: tuple[float, float] = (3000.0, 9000.0)
    eq_prob: float = 0.6
    eq_bands: tuple[int, int] = (1, 3)
    eq_gain_db: tuple[float, float] = (-9.0, 9.0)
    eq_centre_hz: tuple[float, float] = (150.0, 6000.0)
    compress_prob: float = 0.4
    compress_threshold_db: tuple[float, float] = (-24.0, -10.0)
    compress_ratio: tuple[float, float] = (2.0, 6.0)
    clip_prob: float = 0.25
    clip_level: tuple[float, float] = (0.3, 0.7)  # re the peak
    quantise_prob: float = 0.2
    quantise_bits: tuple[int, int] = (8, 12)
    lossy_prob: float = 0.3
    lossy_cutoff_hz: tuple[float, float] = (4000.0, 8000.0)
    lossy_step_db: tuple[float, float] = (1.5, 4.0)


def recording_chain(x: np.ndarray, sr: int, rng: np.random.Generator, recipe: ChainRecipe) -> np.ndarray:
    """Apply each step of ``recipe`` with its probability and random parameters; the output's peak is 0.9.

    Every parameter is drawn whether or not its step applies, so the draws do not depend on earlier
    choices."""
    x = x / (np.abs(x).max() + 1e-12)
    u = rng.random(6)
    hp, lp = rng.uniform(*recipe.highpass_hz), rng.uniform(*recipe.lowpass_hz)
    if u[0] < recipe.band_prob:
        x = band_limit(x, sr, hp, lp)
    n_eq = int(rng.integers(recipe.eq_bands[0], recipe.eq_bands[1] + 1))
    eq = zip(np.exp(rng.uniform(*np.log(recipe.eq_centre_hz), n_eq)), rng.uniform(*recipe.eq_gain_db, n_eq),
             rng.uniform(0.7, 2.5, n_eq))
    if u[1] < recipe.eq_prob:
        for fc, g, q in eq:
            x = peaking_eq(x, sr, min(fc, 0.4 * sr), g, q)
    thr, ratio = rng.uniform(*recipe.compress_threshold_db), rng.uniform(*recipe.compress_ratio)
    if u[2] < recipe.compress_prob:
        x = compress(x, sr, thr, ratio)
    x = x / (np.abs(x).max() + 1e-12)
    level, soft = rng.uniform(*recipe.clip_level), rng.random() < 0.5
    if u[3] < recipe.clip_prob:
        x = clip(x, level, soft) / level
    bits = int(rng.integers(recipe.quantise_bits[0], recipe.quantise_bits[1] + 1))
    cut, step = rng.uniform(*recipe.lossy_cutoff_hz), rng.uniform(*recipe.lossy_step_db)
    if u[5] < recipe.lossy_prob:
        x = lossy(x, sr, cut, step)
    x = 0.9 * x / (np.abs(x).max() + 1e-12)
    if u[4] < recipe.quantise_prob:
        x = quantise(x, bits)
    return x

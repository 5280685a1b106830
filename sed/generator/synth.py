"""Procedural sound sources for the bundled mini-DESED (one family per class, SPEC section 1).

Each ``make_<class>(rng, sr)`` returns a mono float32 event with random pitch, duration, envelope
and timbre, recognisable by its own spectro-temporal character. Durations follow DESED's
character: Dishes and Dog short, Frying and Vacuum_cleaner long.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from scipy import signal

Rng = np.random.Generator


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat, linear release (seconds)."""
    env = np.ones(n, dtype=np.float64)
    a, r = max(1, int(attack * sr)), max(1, int(release * sr))
    a, r = min(a, n // 2), min(r, n // 2)
    env[:a] = np.linspace(0.0, 1.0, a)
    env[n - r:] = np.linspace(1.0, 0.0, r)
    return env


def _harmonics(f0: np.ndarray, sr: int, amps: np.ndarray, rng: Rng) -> np.ndarray:
    """Sum of harmonics k*f0(t) with amplitudes ``amps[k-1]``, each below Nyquist, random phases."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    keep = np.flatnonzero(np.abs(amps) > 1e-3 * np.abs(amps).max())
    amps = amps[keep]
    k = (keep + 1)[:, None]
    phi = rng.uniform(0, 2 * np.pi, (len(amps), 1))
    lim = 0.45 * sr
    # harmonics above the limit throughout add exact zeros: skipped
    rows = np.flatnonzero(k[:, 0] * f0.min() < lim)
    k, phi, amps = k[rows], phi[rows], amps[rows]
    parts = np.sin(k * phase[None, :] + phi) * amps[:, None]
    partial = np.flatnonzero(k[:, 0] * f0.max() >= lim)  # below the limit only part of the time
    if len(partial):
        parts[partial] *= (k[partial] * f0[None, :]) < lim
    return parts.sum(axis=0)


def _band_noise(n: int, sr: int, lo: float, hi: float, rng: Rng, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, [lo, min(hi, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _decaying_partials(n: int, sr: int, freqs, decays, rng: Rng) -> np.ndarray:
    t = _t(n, sr)
    out = np.zeros(n)
    for f, d in zip(freqs, decays):
        if f < 0.45 * sr:
            out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / d)
    return out


def _place(n: int, pieces: list[tuple[int, np.ndarray]]) -> np.ndarray:
    out = np.zeros(n)
    for start, x in pieces:
        end = min(n, start + len(x))
        out[start:end] += x[: end - start]
    return out


def alarm_bell(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Repeated ringing tones: an electric bell's fast strikes, or an alarm's beeps (``real``: other pitches,
    strike rates, partials and beep timings)."""
    dur = rng.uniform(1.5, 6.0)
    n = int(dur * sr)
    f = rng.uniform(*((450, 3200) if real else (700, 2200)))
    if rng.random() < 0.5:  # bell: inharmonic partials re-struck 8-15 (real: 5-22) times a second
        period = 1.0 / rng.uniform(*((5, 22) if real else (8, 15)))
        ratios = np.array([1, 2.2, 3.9]) if real else np.array([1, 2.76, 5.4])
        strike = _decaying_partials(int(period * sr * 1.5), sr, f * ratios, [0.06, 0.04, 0.02], rng)
        x = _place(n, [(int(s * sr), strike) for s in np.arange(0, dur - 0.05, period)])
    else:  # beeps: a tone with two harmonics, on/off
        on = rng.uniform(*((0.07, 0.8) if real else (0.15, 0.5)))
        off = rng.uniform(*((0.05, 0.5) if real else (0.1, 0.3)))
        gate = ((_t(n, sr) % (on + off)) < on).astype(float)
        gate = np.convolve(gate, np.ones(64) / 64, mode="same")
        amps = np.array([1.0, 0.1, 0.5, 0.05, 0.3]) if real else np.array([1.0, 0.4, 0.2])  # real: square-ish
        x = _harmonics(np.full(n, f), sr, amps, rng) * gate
    return x * _envelope(n, sr, 0.005, 0.05)


def blender(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Loud harmonic motor noise: a sawtooth-like motor tone over pulsing broadband noise (``real``: a slower,
    wobblier motor, darker tone and noise)."""
    n = int(rng.uniform(2.0, 7.0) * sr)
    wobble = 0.06 if real else 0.02
    f0 = rng.uniform(*((60, 170) if real else (90, 250))) * (
        1 + wobble * np.sin(2 * np.pi * rng.uniform(0.3, 2) * _t(n, sr))
    )
    tone = signal.sawtooth(2 * np.pi * np.cumsum(f0) / sr + rng.uniform(0, 6))
    tone = signal.sosfilt(signal.butter(2, 3000 if real else 5000, fs=sr, output="sos"), tone)
    noise = _band_noise(n, sr, 150 if real else 200, 4500 if real else 6000, rng) * (
        1 + 0.8 * np.sin(2 * np.pi * np.cumsum(f0) / sr)
    )
    x = tone / (np.std(tone) + 1e-9) + 0.7 * noise / (np.std(noise) + 1e-9)
    return x * _envelope(n, sr, 0.15, 0.2)


def cat(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Frequency-swept tonal calls (meows): f0 rises then falls, rich harmonics, 1-2 calls (``real``:
    1-3 calls, wider pitch ranges, a steeper harmonic roll-off)."""
    calls = []
    start = 0
    for _ in range(rng.integers(1, 4 if real else 3)):
        m = int(rng.uniform(*((0.35, 1.6) if real else (0.5, 1.3))) * sr)
        lo = rng.uniform(*((300, 650) if real else (380, 600)))
        peak = rng.uniform(*((650, 1400) if real else (700, 1100)))
        u = np.linspace(0, 1, m)
        f0 = lo + (peak - lo) * np.sin(np.pi * u ** rng.uniform(0.6, 1.4))
        amps = rng.uniform(0.5, 1.0, 8) / np.arange(1, 9) ** (1.7 if real else 1.2)
        calls.append((start, _harmonics(f0, sr, amps, rng) * np.sin(np.pi * u) ** 0.7))
        start += m + int(rng.uniform(0.1, 0.4) * sr)
    return _place(start, calls)


def dishes(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Short bright clinks: 1-4 strikes of high inharmonic partials with fast decay (``real``: 1-6 strikes,
    lower partials ringing longer)."""
    pieces, start = [], 0
    for _ in range(rng.integers(1, 7 if real else 5)):
        m = int(0.25 * sr)
        freqs = rng.uniform(*((1200, 6000) if real else (2000, 8000)), rng.integers(3, 6))
        decays = rng.uniform(*((0.03, 0.1) if real else (0.015, 0.07)), len(freqs))
        pieces.append((start, _decaying_partials(m, sr, freqs, decays, rng)))
        start += int(rng.uniform(0.06, 0.2) * sr)
    return _place(start + int(0.12 * sr), pieces)


def dog(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Harmonic barks: 1-3 short bursts with a falling pitch and a noisy attack (``real``: other dog sizes,
    f0 150-900 Hz, 1-5 barks, a lower noisy attack)."""
    pieces, start = [], 0
    big = rng.uniform(150, 900) if real else 0.0  # real: one dog per event, its size sets f0
    for _ in range(rng.integers(1, 6 if real else 4)):
        m = int(rng.uniform(*((0.1, 0.35) if real else (0.12, 0.28))) * sr)
        u = np.linspace(0, 1, m)
        f0 = (big * rng.uniform(0.9, 1.1) if real else rng.uniform(280, 650)) * (1 - 0.35 * u)
        body = _harmonics(f0, sr, rng.uniform(0.4, 1.0, 12) / np.arange(1, 13) ** 0.8, rng)
        burst = _band_noise(m, sr, 300 if real else 500, 3000 if real else 4000, rng) * np.exp(-u * 12)
        env = np.minimum(u / 0.05, 1.0) * np.exp(-u * rng.uniform(2, 5))
        pieces.append((start, (body / (np.std(body) + 1e-9) + 0.6 * burst / (np.std(burst) + 1e-9)) * env))
        start += m + int(rng.uniform(0.08, 0.3) * sr)
    return _place(start, pieces)


def shaver(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """High buzzing: a pulse-like wave with strong upper harmonics and a fast tremolo (``real``: other
    motor f0, a lower spectral centre, a slower tremolo)."""
    n = int(rng.uniform(2.0, 7.0) * sr)
    f0 = np.full(n, rng.uniform(*((140, 320) if real else (90, 230))))
    k = np.arange(1, 61)
    centre = rng.uniform(*((1500, 3500) if real else (2500, 5000)))
    amps = np.where(k % 2 == 1, 1.0, 0.3) * np.exp(-((np.log(k * f0[0]) - np.log(centre)) ** 2))
    x = _harmonics(f0, sr, amps, rng) * (
        1 + 0.3 * np.sin(2 * np.pi * rng.uniform(*((6, 25) if real else (15, 40))) * _t(n, sr))
    )
    return x * _envelope(n, sr, 0.05, 0.05)


def frying(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Crackling impulsive noise: dense random pops over a sizzling high hiss (``real``: other pop densities,
    a lower hiss band)."""
    n = int(rng.uniform(4.0, 10.0) * sr)
    pops = ((rng.random(n) < rng.uniform(*((25, 500) if real else (60, 250))) / sr)
            * rng.uniform(0.3, 1.0, n) * np.sign(rng.standard_normal(n)))
    sos = signal.butter(2, 1000 if real else 1500, btype="highpass", fs=sr, output="sos")
    pops = signal.sosfilt(sos, pops)
    hiss = _band_noise(n, sr, 2000 if real else 3000, 7000 if real else 9000, rng)
    x = pops / (np.std(pops) + 1e-9) + 0.5 * hiss / (np.std(hiss) + 1e-9)
    return x * _envelope(n, sr, 0.3, 0.3)


def running_water(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Filtered bubbling noise: band noise with slow swell plus short rising bubble chirps (``real``: a lower
    band, fewer and lower bubbles)."""
    n = int(rng.uniform(3.0, 10.0) * sr)
    lo = rng.uniform(*((150, 450) if real else (250, 600)))
    base = _band_noise(n, sr, lo, lo * rng.uniform(4, 8), rng)
    swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * _t(n, sr) + rng.uniform(0, 6))
    m = int(0.02 * sr)
    u = np.linspace(0, 1, m)
    pieces = []
    for s in np.flatnonzero(rng.random(n) < rng.uniform(*((6, 25) if real else (15, 40))) / sr):
        f = rng.uniform(*((300, 1400) if real else (500, 2000))) * (1 + 0.8 * u)
        pieces.append((s, np.sin(2 * np.pi * np.cumsum(f) / sr) * np.sin(np.pi * u)))
    bub = _place(n, pieces)
    x = base * swell / (np.std(base) + 1e-9) + 0.6 * bub / (np.std(bub) + 1e-9)
    return x * _envelope(n, sr, 0.2, 0.2)


def speech(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Formant-like voiced syllables in words: a glottal pulse train through moving formant resonators
    (``real``: wider f0 and formant ranges, longer words, more intonation)."""
    f0_base = rng.uniform(*((75, 300) if real else (95, 240)))
    formants = ((250, 1000), (800, 2800), (2200, 3800)) if real else ((300, 900), (900, 2500), (2500, 3300))
    pieces, start = [], 0
    for _ in range(rng.integers(1, 4)):  # words
        for _ in range(rng.integers(1, 5 if real else 4)):  # syllables
            m = int(rng.uniform(*((0.08, 0.3) if real else (0.1, 0.25))) * sr)
            u = np.linspace(0, 1, m)
            f0 = f0_base * (1 + rng.uniform(-0.15, 0.15) + (0.2 if real else 0.1) * np.sin(np.pi * u))
            src = _harmonics(f0, sr, 1.0 / np.arange(1, 31), rng)
            y = np.zeros(m)
            for fc, bw in ((rng.uniform(*formants[0]), 90), (rng.uniform(*formants[1]), 120),
                           (rng.uniform(*formants[2]), 200)):
                b, a = signal.iirpeak(fc, fc / bw, fs=sr)
                y += signal.lfilter(b, a, src)
            pieces.append((start, y * np.sin(np.pi * u) ** 0.5))
            start += m
        start += int(rng.uniform(0.06, 0.25) * sr)
    return _place(start, pieces)


def vacuum(rng: Rng, sr: int, real: bool = False) -> np.ndarray:
    """Steady broadband whine: pink-ish broadband noise plus a high tonal whine (``real``: a darker noise
    band, other whine pitches)."""
    n = int(rng.uniform(4.0, 10.0) * sr)
    noise = _band_noise(n, sr, 60 if real else 100, 6500 if real else 9000, rng, order=2)
    whine = _harmonics(np.full(n, rng.uniform(*((400, 2600) if real else (700, 1800)))), sr,
                       np.array([1.0, 0.5, 0.25]), rng)
    x = noise / (np.std(noise) + 1e-9) + 0.5 * whine / (np.std(whine) + 1e-9)
    return x * _envelope(n, sr, 0.4, 0.4)


#: Class name -> source, in SPEC order.
SOURCES: dict[str, Callable[[Rng, int], np.ndarray]] = {
    "Alarm_bell_ringing": alarm_bell,
    "Blender": blender,
    "Cat": cat,
    "Dishes": dishes,
    "Dog": dog,
    "Electric_shaver_toothbrush": shaver,
    "Frying": frying,
    "Running_water": running_water,
    "Speech": speech,
    "Vacuum_cleaner": vacuum,
}


#: The "real" variant of each class family (other parameter ranges and timbres; the same class to a listener).
SOURCES_REAL: dict[str, Callable[[Rng, int], np.ndarray]] = {
    c: partial(f, real=True) for c, f in SOURCES.items()
}


def babble(n: int, sr: int, rng: Rng, voices: tuple[int, int] = (3, 6)) -> np.ndarray:
    """Unannotated distant talkers: 3-6 voices, each a glottal pulse train (f0 90-260 Hz) through two formant
    resonators whose balance changes every syllable (3-6 a second, a quarter of them silent), low-passed at
    3.5 kHz; RMS 1."""
    t = _t(n, sr)
    out = np.zeros(n)
    lp = signal.butter(2, min(3500.0, 0.45 * sr), fs=sr, output="sos")
    for _ in range(int(rng.integers(voices[0], voices[1] + 1))):
        rate = rng.uniform(3, 6)
        pos = t * rate
        syl = pos.astype(int)  # syllable index of each sample
        n_syl = syl[-1] + 1
        f0 = rng.uniform(90, 260) * rng.uniform(0.85, 1.15, n_syl)[syl]  # one pitch per syllable
        pulses = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)  # one impulse per glottal period
        gate = (rng.random(n_syl) < 0.75)[syl] * (1 - np.abs(2 * (pos - syl) - 1))  # triangular syllables
        voice = np.zeros(n)
        # two formants, their balance set per syllable
        for fc in (rng.uniform(300, 900), rng.uniform(900, 2500)):
            b, a = signal.iirpeak(fc, 4.0, fs=sr)
            voice += signal.lfilter(b, a, pulses) * rng.uniform(0.2, 1.0, n_syl)[syl]
        out += voice * gate / (np.std(voice) + 1e-9)
    out = signal.sosfilt(lp, out)
    return out / (np.std(out) + 1e-12)


def background(n: int, sr: int, rng: Rng) -> np.ndarray:
    """Varied backgrounds: coloured noise (white to brown), sometimes mains hum, sometimes a low rumble."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    slope = rng.uniform(0.0, 2.0)  # 0 white, 1 pink, 2 brown (power slope)
    spec /= np.maximum(f, 20.0) ** (slope / 2)
    x = np.fft.irfft(spec, n)
    x /= np.std(x) + 1e-12
    if rng.random() < 0.4:
        hz = rng.choice([50.0, 60.0])
        hum = _harmonics(np.full(n, hz), sr, np.array([1.0, 0.5, 0.3, 0.2]), rng)
        x += rng.uniform(0.3, 1.5) * hum / (np.std(hum) + 1e-12)
    return x


def room_response(sr: int, rng: Rng) -> np.ndarray:
    """A room-like impulse response: direct path plus exponentially decaying noise (RT60 0.15-0.7 s)."""
    rt60 = rng.uniform(0.15, 0.7)
    m = int(rt60 * sr)
    t = _t(m, sr)
    ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt60) * rng.uniform(0.1, 0.4)
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir ** 2))

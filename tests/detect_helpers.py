"""Synthetic recordings and a fake trained system for the ``sed detect`` tests.

The fake predictor is a fixed function of the log-mel: class c's frame probability is a steep
sigmoid of the loudest of three mel bands around the class's tone frequency, so that a tone placed
at known times is "detected" exactly there. ``edge_frames`` zeroes the probabilities near each
window's edges (a model with little context there); a window-by-window detector without
stitching would then cut every event that crosses a window edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from sed.core.constants import DEFAULT_FEATURES, FRAME_SECONDS
from sed.core.constants import DESED_CLASSES as CLASSES

#: Tone frequency (Hz) of the classes the fake model hears.
TONES = {"Speech": 1000.0, "Dog": 3000.0, "Cat": 5000.0}

POSTPROC = {
    "tagging_threshold": 0.5,
    "frame_thresholds": {c: 0.3 for c in CLASSES},
    "median_windows": {c: [7, 15] for c in CLASSES},
    "hysteresis_low": 0.08,
    "min_duration": 0.1,
    "join_gap": 0.2,
    "order": "remove_then_join",
}


class FakePredictor:
    classes = CLASSES
    frame_seconds = FRAME_SECONDS
    device = torch.device("cpu")

    def __init__(self, edge_frames: int = 16, postproc_cfg: dict | None = None):
        self.edge_frames = edge_frames
        self.postproc_cfg = dict(POSTPROC) if postproc_cfg is None else postproc_cfg
        centres = librosa.mel_frequencies(DEFAULT_FEATURES.n_mels + 2,
                                          fmax=DEFAULT_FEATURES.sample_rate / 2)[1:-1]
        self.bands = {CLASSES.index(c): int(np.argmin(np.abs(centres - f))) for c, f in TONES.items()}
        self.calls: list[int] = []  # batch sizes seen

    def predict_logmel(self, x: torch.Tensor):
        x = x.detach().cpu().numpy()
        b, t, _ = x.shape
        self.calls.append(b)
        frame = np.zeros((b, t, len(CLASSES)), dtype=np.float32)
        for c, band in self.bands.items():
            level = x[:, :, band - 1 : band + 2].max(axis=2)
            frame[:, :, c] = 1.0 / (1.0 + np.exp(-2.0 * (level + 1.0)))
        if self.edge_frames:
            frame[:, : self.edge_frames] = 0.0
            frame[:, -self.edge_frames :] = 0.0
        return frame, frame.max(axis=1)


def synth(events: list[tuple[str, float, float]], seconds: float, sr: int = 22050, seed: int = 0,
          noise: float = 0.003, amp: float = 0.3) -> np.ndarray:
    """Low white noise with a tone of each event's class over [onset, offset)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    x = noise * rng.standard_normal(n)
    t = np.arange(n) / sr
    for label, on, off in events:
        a, b = int(round(on * sr)), int(round(off * sr))
        x[a:b] += amp * np.sin(2 * np.pi * TONES[label] * t[a:b])
    return x.astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = 22050, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, **kw)
    return path


def events_of(df, name: str | None = None) -> list[tuple[str, float, float]]:
    """Sorted (label, onset, offset) of one file's rows (rows without an event are ignored)."""
    d = df if name is None else df[df["filename"] == name]
    d = d.dropna(subset=["onset"])
    return sorted(
        (str(lab), float(on), float(off)) for on, off, lab in zip(d["onset"], d["offset"], d["event_label"])
    )


def assert_events(found, expected, tol: float = 0.2) -> None:
    assert len(found) == len(expected), f"found {found}, expected {expected}"
    for (fl, fon, foff), (el, eon, eoff) in zip(sorted(found, key=lambda e: e[1]),
                                                sorted(expected, key=lambda e: e[1])):
        assert fl == el and abs(fon - eon) < tol and abs(foff - eoff) < tol, (
            f"found {found}, expected {expected}"
        )


def make_untrained_checkpoint(path: Path, seed: int = 0, overrides: Sequence[str] = ()) -> Path:
    """A checkpoint of the paper's SM+DM system (conf/model/sm_dm.yaml, with ``overrides``) with random
    weights, in the format ``sed.inference.predictor.load_system`` reads (``state_dict`` +
    ``hyper_parameters``)."""
    from sed.train import build_model

    torch.manual_seed(seed)
    system = build_model(list(overrides))  # conf/train.yaml's model (conf/model/sm_dm.yaml, conf/postproc)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, path)
    return path


def detect_cli(args, predictor=None):
    """``sedx detect ARGS --ckpt fake.ckpt`` through ``sed.cli.main``, with ``predictor`` (default:
    :class:`FakePredictor`) in place of the checkpoint's model."""
    from sed import cli
    from sed.detect import run as detect_run

    fake = predictor or FakePredictor()
    orig = detect_run.load_predictor
    detect_run.load_predictor = lambda ckpt, device="auto": fake
    try:
        return cli.main(["detect", *args, "--ckpt", "fake.ckpt"])
    finally:
        detect_run.load_predictor = orig

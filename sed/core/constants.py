"""Fixed facts of the task: DESED's classes (the default label set) and the feature grid (SPEC 1 and 2).

The feature grid is a constant, not configuration: every module shares it, and changing it invalidates
the feature cache (its key includes :class:`FeatureSpec`).  The classes are configuration
(``data.classes``, default :data:`DESED_CLASSES`): a run records them (``<run>/data.yaml`` and its
checkpoints) and every command reads them from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: The ten DESED classes in SPEC section 1's order: ``data.classes``'s default, the column order of a
#: DESED run's arrays, and the classes of Table 1 (conf/postproc/paper.yaml).
DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)


@dataclass(frozen=True)
class FeatureSpec:
    """The log-mel grid of SPEC section 2 (paper 2.1).

    A 10 s clip at 22 050 Hz is 220 500 samples; a centred STFT with hop 345 gives
    ``1 + 220500 // 345 = 640`` frames of 64 mel bins.
    """

    sample_rate: int = 22050
    clip_seconds: float = 10.0
    n_fft: int = 2048
    hop_length: int = 345
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    log_floor: float = 1e-8  # log(mel + floor): the "small floor" of SPEC section 2

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length

    @property
    def frame_seconds(self) -> float:
        """Length of one frame in seconds: hop / sample_rate = 15.65 ms (SPEC section 2)."""
        return self.hop_length / self.sample_rate

    def key(self) -> dict:
        return asdict(self)


DEFAULT_FEATURES = FeatureSpec()
N_FRAMES = DEFAULT_FEATURES.n_frames  # 640
FRAME_SECONDS = DEFAULT_FEATURES.frame_seconds  # 0.015646...


def seconds_to_frame(t: np.ndarray | float, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Index of the frame that holds time ``t``: frame i spans [i*dt, (i+1)*dt)."""
    return np.floor(np.asarray(t, dtype=np.float64) / frame_seconds + 1e-9).astype(np.int64)


def seconds_to_frame_end(t: np.ndarray | float, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Exclusive end frame of an event ending at ``t``: every frame the event overlaps is covered."""
    return np.ceil(np.asarray(t, dtype=np.float64) / frame_seconds - 1e-9).astype(np.int64)


def frame_to_seconds(f: np.ndarray | float, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Start time of frame ``f`` (or, for an exclusive end frame, the event's offset)."""
    return np.asarray(f, dtype=np.float64) * frame_seconds

#: Time columns a timeline plot keeps (``sed.reporting.plots``; a 16-inch figure at 100 dpi has ~1400 pixels).
TIMELINE_COLS = 2048

"""Training targets from annotations (SPEC section 2: frame i spans [i*dt, (i+1)*dt), dt = 345/22050 s)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sed.core.classes import class_index
from sed.core.constants import FRAME_SECONDS, N_FRAMES, seconds_to_frame, seconds_to_frame_end


def events_to_frame_targets(
    events: Iterable[Sequence], classes: Sequence[str], n_frames: int = N_FRAMES,
    frame_seconds: float = FRAME_SECONDS,
) -> np.ndarray:
    """Strong labels -> ``(n_frames, len(classes))`` 0/1 targets; an event covers every frame it overlaps.

    An event [onset, offset) sets frames ``floor(onset/dt)`` to ``ceil(offset/dt) - 1``, clipped to
    the clip; a zero-length event still marks the frame that holds its onset.
    """
    y = np.zeros((n_frames, len(classes)), dtype=np.float32)
    evs = list(events)
    if not evs:
        return y
    on = seconds_to_frame(np.array([e[0] for e in evs]), frame_seconds)
    off = np.maximum(seconds_to_frame_end(np.array([e[1] for e in evs]), frame_seconds), on + 1)
    index = class_index(classes)
    cls = np.array([index[e[2]] for e in evs])
    frames = np.arange(n_frames)[:, None]
    covered = (frames >= on[None, :]) & (frames < off[None, :])  # (n_frames, n_events)
    np.maximum.at(y.T, cls, covered.T.astype(np.float32))
    return y


def tags_to_clip_targets(labels: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Weak tags (or the labels of a clip's events) -> ``(len(classes),)`` 0/1 clip targets."""
    y = np.zeros(len(classes), dtype=np.float32)
    index = class_index(classes)
    for label in labels:
        y[index[label]] = 1.0
    return y

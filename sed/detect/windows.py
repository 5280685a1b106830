"""10 s windows over a recording of any length, and stitching of their frame probabilities.

The model sees 10 s (220 500 samples -> 640 frames, SPEC section 2). A recording is cut into
windows starting every ``hop`` samples, where ``hop`` is a whole number of STFT hops (345
samples), so that frame ``i`` of window ``k`` is exactly global frame ``k * hop_frames + i``; the
last window (and a recording shorter than 10 s) is padded with zeros, as the data layer pads
short clips. Frame probabilities are stitched by averaging every window's estimate of a frame
(SPEC is silent on long recordings: this is our choice). The default hop is 320 frames (5.007 s,
an overlap of 49.9 %): every frame away from the ends is seen by two windows, one of which has it
at least 2.5 s away from its edge. Edge frames of a window (STFT padding, less context for the
network) are thereby averaged with a well-placed estimate.

Clip-level rule (also our choice): a recording's clip probability is the maximum over its windows
(a class is present in the recording if it is present in any 10 s of it). For audio tagging
(SPEC section 6, step 1) the default is *local*: a frame may hold class c only if a window
covering it tags c (DM_c > tagging threshold), which is exactly the paper's rule on 10 s clips,
applied window by window, and stops one confident window from enabling a class for a whole hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from sed.core.constants import DEFAULT_FEATURES, FeatureSpec

#: Default fraction of a window shared with the next one.
DEFAULT_OVERLAP = 0.5


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry in samples and frames at the feature rate."""

    win_samples: int = DEFAULT_FEATURES.n_samples  # 220 500
    win_frames: int = DEFAULT_FEATURES.n_frames  # 640
    frame_hop: int = DEFAULT_FEATURES.hop_length  # 345
    hop_frames: int = 320

    def __post_init__(self) -> None:
        max_hop = self.win_samples // self.frame_hop
        if not 1 <= self.hop_frames <= max_hop:
            raise ValueError(f"window hop must be 1..{max_hop} frames (got {self.hop_frames})")

    @property
    def hop_samples(self) -> int:
        return self.hop_frames * self.frame_hop

    @property
    def overlap(self) -> float:
        return 1.0 - self.hop_samples / self.win_samples

    @classmethod
    def from_overlap(
        cls, overlap: float = DEFAULT_OVERLAP, spec: FeatureSpec = DEFAULT_FEATURES
    ) -> WindowSpec:
        """The frame-aligned hop nearest to ``overlap`` (0 <= overlap < 1); overlap 0 gives the
        largest hop that leaves no sample unseen (639 frames)."""
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        max_hop = spec.n_samples // spec.hop_length
        hop = int(round(spec.n_frames * (1.0 - overlap)))
        return cls(spec.n_samples, spec.n_frames, spec.hop_length, min(max(hop, 1), max_hop))

    def n_windows(self, n_samples: int) -> int:
        """Windows needed to cover ``n_samples`` (at least one)."""
        if n_samples <= self.win_samples:
            return 1
        return 1 + math.ceil((n_samples - self.win_samples) / self.hop_samples)

    def n_frames(self, n_samples: int) -> int:
        """Frames holding audio: frame i spans [i*hop, (i+1)*hop) samples, kept while it starts
        before the end (640 for exactly 10 s, as in training)."""
        return max(1, math.ceil(n_samples / self.frame_hop))

    def total_frames(self, n_windows: int) -> int:
        return (n_windows - 1) * self.hop_frames + self.win_frames


class Windower:
    """Cut a stream of chunks into windows with constant memory (one window plus one chunk).

    ``for k, w in Windower(spec).iter(chunks)`` yields window index and a float32 copy of
    ``win_samples`` samples; after the loop, ``n_samples`` holds the stream's length.
    """

    def __init__(self, spec: WindowSpec):
        self.spec = spec
        self.n_samples = 0

    def iter(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        s = self.spec
        buf = np.zeros(0, dtype=np.float32)
        buf_start = 0  # global index of buf[0]
        k = 0
        self.n_samples = 0
        for chunk in chunks:
            buf = np.concatenate([buf, np.asarray(chunk, dtype=np.float32)])
            self.n_samples += len(chunk)
            # every full window is needed: k*hop + win <= n implies k < n_windows(n)
            while k * s.hop_samples + s.win_samples <= buf_start + len(buf):
                a = k * s.hop_samples - buf_start
                yield k, buf[a : a + s.win_samples].copy()
                k += 1
                drop = k * s.hop_samples - buf_start
                buf, buf_start = buf[drop:], buf_start + drop
        n = self.n_samples
        if n == 0:
            return
        for kk in range(k, s.n_windows(n)):
            a = kk * s.hop_samples - buf_start
            w = np.zeros(s.win_samples, dtype=np.float32)
            part = buf[max(a, 0) : a + s.win_samples]
            w[: len(part)] = part
            yield kk, w


def stitch(window_probs: np.ndarray, hop_frames: int) -> np.ndarray:
    """Average overlapping window estimates: ``(W, F, C) -> ((W-1)*hop + F, C)``.

    Global frame ``k*hop + i`` receives window k's frame i; each output frame is the mean of the
    estimates it received.
    """
    w, f, c = window_probs.shape
    total = (w - 1) * hop_frames + f
    acc = np.zeros((total, c), dtype=np.float64)
    cnt = np.zeros(total, dtype=np.int64)
    for k in range(w):
        acc[k * hop_frames : k * hop_frames + f] += window_probs[k]
        cnt[k * hop_frames : k * hop_frames + f] += 1
    return (acc / cnt[:, None]).astype(np.float32)


class Stitcher:
    """Streaming form of :func:`stitch` for one recording, plus the clip-level rules.

    Memory is O(frames x classes) (9 MB per hour of audio with 10 classes), the only state that
    grows with the recording. ``tag_threshold`` (None: no tagging) builds the local tagging mask.
    """

    def __init__(
        self, spec: WindowSpec, n_classes: int, tag_threshold: float | None = None, expected_windows: int = 1
    ):
        self.spec = spec
        self.c = n_classes
        self.tag_threshold = tag_threshold
        self._acc = np.zeros((0, n_classes), dtype=np.float32)
        self._cnt = np.zeros(0, dtype=np.int32)
        self._tag = np.zeros((0, n_classes), dtype=bool)
        self.clip_max = np.zeros(n_classes, dtype=np.float32)
        self.n_added = 0
        self._grow(spec.total_frames(max(1, expected_windows)))

    def _grow(self, frames: int) -> None:
        if frames <= len(self._cnt):
            return
        frames = max(frames, 2 * len(self._cnt))
        for name, dtype in (("_acc", np.float32), ("_cnt", np.int32), ("_tag", bool)):
            old = getattr(self, name)
            new = np.zeros((frames, *old.shape[1:]), dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def add(self, k: int, frame_probs: np.ndarray, clip_probs: np.ndarray) -> None:
        """Window ``k``'s frame probabilities ``(F, C)`` and clip probabilities ``(C,)``."""
        s = self.spec
        a = k * s.hop_frames
        f = frame_probs.shape[0]
        self._grow(a + f)
        self._acc[a : a + f] += frame_probs
        self._cnt[a : a + f] += 1
        self.clip_max = np.maximum(self.clip_max, clip_probs)
        if self.tag_threshold is not None:
            self._tag[a : a + f] |= clip_probs[None, :] > self.tag_threshold
        self.n_added += 1

    def frame_probs(self, n_frames: int) -> np.ndarray:
        """Stitched ``(n_frames, C)`` probabilities (frames past the audio are dropped)."""
        cnt = self._cnt[:n_frames]
        if (cnt == 0).any():
            raise RuntimeError("stitching: some frames were not covered by any window")
        return (self._acc[:n_frames] / cnt[:, None]).astype(np.float32)

    def local_tags(self, n_frames: int) -> np.ndarray | None:
        """``(n_frames, C)`` bool: some window covering the frame tags the class (None: no tagging)."""
        return None if self.tag_threshold is None else self._tag[:n_frames].copy()

"""Overlapping windows without running the frame model twice over the same frames (issue 15).

With the default 50 % overlap every frame of a recording lies in two windows, so SM ran twice per
frame. SM is local: an output frame depends on the input frames within ``context`` frames of it (7 for
conf/model/sm_dm.yaml) and nothing else mixes frames (no time pooling; BatchNorm and the gates act
frame by frame). A window's log-mel equals the recording's own log-mel except in its first and last few
frames (3 each), where the centred STFT reads the window's zero padding. So a window's SM output
differs from SM run over the whole recording only in its first ``lo`` and last ``F - hi`` frames
(10 each); in between it is the same number, whichever window computes it.

The log-mel is shared the same way (:class:`MelReuse`): a window's clean frames ``[3, 637)`` that the
previous window also holds are copied from it, and only its 3 + 323 other frames are computed.

A window ``k > 0`` of a recording therefore runs SM on two slices only:

* its left edge, frames ``[0, lo + context)``, which gives its exact outputs on ``[0, lo)``;
* its new frames, ``[new - context, F)``, which gives its exact outputs on ``[new, F)`` (the slice
  ends at the window's own right border), with ``new = hi - hop``;

and takes its middle ``[lo, new)`` from the previous window's outputs at ``[lo + hop, hi)``, which lie in
that window's exact interior. The first window of a recording runs whole. The estimates, and so the
stitched probabilities and the events, are those of running every window whole, up to float rounding
(tests/test_detect_overlap.py). At the default hop (320 frames) SM sees 354 frames per window instead
of 640. The clip-level DM pools time and still runs on every whole window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sed.detect.windows import WindowSpec


def _first_and_later(ks: Sequence[int]) -> tuple[list[int], list[int]]:
    """Batch positions of first windows (k = 0, run whole) and of the others (reused)."""
    return [j for j, k in enumerate(ks) if k == 0], [j for j, k in enumerate(ks) if k > 0]


def clean_frames(spec: WindowSpec, n_fft: int) -> tuple[int, int]:
    """``[first, stop)``: the frames of a window whose centred STFT reads no padding, only its own samples
    (``j * hop >= n_fft / 2`` and ``j * hop + n_fft / 2 <= samples``): ``[3, 637)`` at the defaults."""
    half = n_fft // 2
    return -(-half // spec.frame_hop), (spec.win_samples - half) // spec.frame_hop + 1


@dataclass(frozen=True)
class MelReuse:
    """A window's log-mel from the previous window's: its clean frames ``[lo, hi - hop)`` are that window's
    ``[lo + hop, hi)``; only ``[0, lo)`` and ``[hi - hop, F)`` are computed (:attr:`new_index`)."""

    win_frames: int
    hop_frames: int
    lo: int
    hi: int

    @classmethod
    def plan(cls, spec: WindowSpec, n_fft: int) -> MelReuse | None:
        """None when consecutive windows share no clean frame (overlap 0)."""
        lo, hi = clean_frames(spec, n_fft)
        return cls(spec.win_frames, spec.hop_frames, lo, hi) if hi - spec.hop_frames > lo else None

    @property
    def new_index(self) -> torch.Tensor:
        return torch.cat([torch.arange(self.lo), torch.arange(self.hi - self.hop_frames, self.win_frames)])

    def assemble(self, new: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Window k's ``(F, n_mels)`` log-mel from its :attr:`new_index` frames and window k-1's log-mel."""
        return torch.cat([new[: self.lo], prev[self.lo + self.hop_frames : self.hi], new[self.lo :]])


def logmel_windows(frontend: Callable, reuse: MelReuse | None, x: torch.Tensor, ks: Sequence[int],
                   files: Sequence) -> torch.Tensor:
    """Log-mel ``(B, F, n_mels)`` of windows ``x`` (B, samples) with indices ``ks`` of recordings ``files``
    (objects with a ``prev_mel`` attribute, set here to each one's last window). Windows of a recording come
    in order, and its window k - 1 went through before window k."""
    if reuse is None:
        return frontend(x)
    first, later = _first_and_later(ks)
    whole = frontend(x[first]) if first else None
    new = frontend(x[later], reuse.new_index.to(x.device)) if later else None
    some = whole if whole is not None else new
    mel = torch.empty((len(ks), reuse.win_frames, some.shape[-1]), dtype=some.dtype, device=x.device)
    if whole is not None:
        mel[first] = whole
    pos = {j: i for i, j in enumerate(later)}
    for j, f in enumerate(files):
        if j in pos:
            mel[j] = reuse.assemble(new[pos[j]], f.prev_mel)
        f.prev_mel = mel[j].clone()
    return mel


@dataclass(frozen=True)
class FrameReuse:
    """Slices of a window that the frame model must see, and how to assemble its full estimates."""

    win_frames: int  # F
    hop_frames: int
    context: int  # receptive-field half-width of the frame model, in frames
    lo: int  # outputs [0, lo) depend on the window's left border
    hi: int  # outputs [hi, F) depend on its right border

    @classmethod
    def plan(cls, spec: WindowSpec, n_fft: int, context: int | None) -> FrameReuse | None:
        """The reuse plan for ``spec``'s windows, or None when it saves nothing (no local frame model,
        or a hop of 606 frames or more at the defaults: overlap under about 5 %)."""
        if context is None or context < 0:
            return None
        first, stop = clean_frames(spec, n_fft)
        plan = cls(spec.win_frames, spec.hop_frames, int(context), first + int(context), stop - int(context))
        if plan.new < plan.lo or plan.frames_per_window >= spec.win_frames:
            return None
        return plan

    @property
    def new(self) -> int:
        """First frame of a window that no earlier window computed exactly."""
        return self.hi - self.hop_frames

    @property
    def left_slice(self) -> slice:
        return slice(0, self.lo + self.context)

    @property
    def right_slice(self) -> slice:
        return slice(self.new - self.context, self.win_frames)

    @property
    def frames_per_window(self) -> int:
        """Input frames the frame model sees for a window ``k > 0``."""
        return (self.lo + self.context) + (self.win_frames - self.new + self.context)

    def assemble(self, left: np.ndarray, right: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Window k's ``(F, C)`` estimates from its left-slice and right-slice outputs and window k-1's
        ``(F, C)`` estimates."""
        out = np.empty((self.win_frames, *left.shape[1:]), dtype=np.float32)
        out[: self.lo] = left[: self.lo]
        out[self.lo : self.new] = prev[self.lo + self.hop_frames : self.hi]
        out[self.new :] = right[self.context :]
        return out


def frame_forward(
    reuse: FrameReuse,
    predict_frames: Callable[[torch.Tensor], np.ndarray],
    mel: torch.Tensor,
    ks: Sequence[int],
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The frame model over a batch of windows ``mel`` (B, F, n_mels) with window indices ``ks``: first
    windows (k = 0) run whole, into ``frames`` (B, F, C; zeros elsewhere); the others give their two slices'
    outputs, ``parts[j] = (left, right)``, which :meth:`FrameReuse.assemble` completes in window order."""
    first, later = _first_and_later(ks)
    whole = predict_frames(mel[first]) if first else None
    n_classes = whole.shape[-1] if whole is not None else None
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if later:
        sub = mel[later]
        left, right = predict_frames(sub[:, reuse.left_slice]), predict_frames(sub[:, reuse.right_slice])
        parts = {j: (left[i], right[i]) for i, j in enumerate(later)}
        n_classes = left.shape[-1]
    frames = np.zeros((len(ks), reuse.win_frames, n_classes), np.float32)
    if whole is not None:
        frames[first] = whole
    return frames, parts

"""From probabilities to events (SPEC section 6; paper 2.4): vectorised over clips, classes and frames.

Pipeline, for every clip ``n`` and class ``c``:

1. audio tagging: the class is kept when ``clip_probs[n, c] > tagging_threshold``; otherwise
   its frame scores are set to 0 (no event at any threshold);
2. iterative median filter with the class's windows (:mod:`sed.postproc.median`);
3.-4. frame threshold ``th_c`` with hysteresis down to ``low``: a maximal run of frames whose
   score is ``> low`` becomes active when it holds at least one frame ``> th_c``. This is
   computed once, independent of the threshold, by giving each frame of such a run the run's
   maximum ("hysteresis scores"); then ``active = hscore > th_c`` for any ``th_c``. When
   ``th_c <= low`` this is plain thresholding (``score > th_c``), and so is ``low: null``;
5. frame -> seconds (frame ``i`` spans ``[i dt, (i+1) dt)``; an active run ``[s, e)`` is the
   event ``[s dt, e dt)``, its offset clipped to the clip's duration), then removal of events
   shorter than ``min_duration`` and joining of same-class events whose gap is shorter than
   ``join_gap`` (order: ``params.order``).

For PSDS operating points (:func:`decode_thresholds`) only the frame threshold is swept, one
value for every class; tagging, median filtering, hysteresis (its lower bound stays
``hysteresis_low``), removal and joining stay as configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sed.core.predictions import Predictions
from sed.postproc.median import iterative_median
from sed.postproc.params import PostprocError, PostprocParams

#: Tolerance (s) of the duration/gap comparisons: ``d < min_duration - EPS`` removes,
#: ``gap < join_gap - EPS`` joins.
EPS = 1e-9
#: Decimals of onsets/offsets in the returned tables (and so in ``detections.tsv``).
TIME_DECIMALS = 6
DETECTION_COLUMNS = ["filename", "onset", "offset", "event_label"]


def empty_detections() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c in ("onset", "offset") else object) for c in DETECTION_COLUMNS}
    )


def check_predictions(preds: Predictions, source: str = "predictions") -> None:
    """Refuse predictions that would give a wrong number: empty, NaN, or probabilities outside [0, 1]."""
    if len(preds) == 0:
        raise PostprocError(f"{source}: no clips (empty predictions)")
    if preds.frame_probs.shape[1] == 0:
        raise PostprocError(f"{source}: no frames")
    if len(set(preds.filenames)) != len(preds.filenames):
        dup = pd.Series(preds.filenames)
        raise PostprocError(f"{source}: duplicate filenames, e.g. {dup[dup.duplicated()].iloc[0]!r}")
    for name in ("frame_probs", "clip_probs"):
        a = getattr(preds, name)
        if not np.all(np.isfinite(a)):
            raise PostprocError(f"{source}: {name} holds NaN or inf")
        if a.size and (a.min() < -1e-6 or a.max() > 1 + 1e-6):
            raise PostprocError(
                f"{source}: {name} is outside [0, 1] (min {a.min():.3g}, max {a.max():.3g}): "
                "not probabilities"
            )


# ---------------------------------------------------------------------------- array steps
def tag_mask(clip_probs: np.ndarray, tagging_threshold: float | np.ndarray | None) -> np.ndarray:
    """``(N, C)`` bool: the classes kept in each clip (step 1); all True when tagging is off.

    ``tagging_threshold``: one value, ``None`` (off), or a ``(C,)`` array (per class; ``-inf``: off).
    """
    clip_probs = np.asarray(clip_probs)
    if tagging_threshold is None:
        return np.ones(clip_probs.shape, dtype=bool)
    return clip_probs > np.asarray(tagging_threshold)


def smooth_scores(
    frame_probs: np.ndarray, clip_probs: np.ndarray, params: PostprocParams, classes: Sequence[str]
) -> np.ndarray:
    """Steps 1-2: tagged, median-filtered frame scores ``(N, T, C)`` float32 (untagged classes are 0)."""
    tags = tag_mask(clip_probs, params.tagging_for(classes))
    out = iterative_median(
        frame_probs,
        [params.raw_windows(c) for c in classes],
        even_window=params.even_window,
        edge=params.median_edge,
        rows=tags,
    )
    out *= tags[:, None, :]
    return out


def hysteresis_scores(rows: np.ndarray, low: float | None) -> np.ndarray:
    """Hysteresis folded into the scores, for ``rows`` ``(R, T)`` (one row per clip and class).

    Each frame of a maximal run of frames ``> low`` gets the run's maximum; other frames keep
    their score. Then ``h > th`` is the hysteresis decision for any ``th >= low`` and plain
    thresholding for ``th < low``.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if low is None or rows.size == 0:
        return rows.copy()
    r, t = rows.shape
    flat = np.full((r, t + 1), min(float(low), 0.0) - 1.0, dtype=np.float32)  # separator column <= low
    flat[:, :t] = rows
    flat = flat.ravel()
    mask = flat > low
    starts = mask.copy()
    starts[1:] &= ~mask[:-1]
    idx = np.flatnonzero(starts)
    if idx.size == 0:
        return rows.copy()
    # from a run's start to the next run's start: the run's frames (> low) and frames <= low only,
    # so the maximum is the run's maximum
    run_max = np.maximum.reduceat(flat, idx)
    run_id = np.cumsum(starts) - 1
    out = np.where(mask, run_max[np.maximum(run_id, 0)], flat)
    return out.reshape(r, t + 1)[:, :t]


def active_runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True in each row of ``active`` ``(R, T)``: ``(row, start, end)`` with ``end`` exclusive.

    Sorted by row, then start. Each row is framed by False, so the changes of value alternate
    start, end, start, end ... (one pass over the array).
    """
    r, t = active.shape
    flat = np.zeros((r, t + 2), dtype=bool)
    flat[:, 1 : t + 1] = active
    flat = flat.ravel()
    d = np.flatnonzero(flat[1:] != flat[:-1])  # index i: value changes between i and i + 1 of flat
    st, en = d[0::2], d[1::2]  # a run's first frame sits at flat index st + 1 (frame st - row * (t + 2))
    row = st // (t + 2)
    return row, st - row * (t + 2), en - row * (t + 2)


def remove_short(row: np.ndarray, onset: np.ndarray, offset: np.ndarray, min_duration: float):
    """Drop events strictly shorter than ``min_duration`` seconds."""
    if min_duration <= 0 or row.size == 0:
        return row, onset, offset
    keep = (offset - onset) >= min_duration - EPS
    return row[keep], onset[keep], offset[keep]


def join_close(row: np.ndarray, onset: np.ndarray, offset: np.ndarray, join_gap: float):
    """Join consecutive events of the same row (clip and class) whose gap is strictly shorter than
    ``join_gap``.

    Events must be sorted by row then onset (as :func:`active_runs` returns them).
    """
    if join_gap <= 0 or row.size == 0:
        return row, onset, offset
    new = np.ones(row.size, dtype=bool)
    new[1:] = (row[1:] != row[:-1]) | ((onset[1:] - offset[:-1]) >= join_gap - EPS)
    starts = np.flatnonzero(new)
    return row[starts], onset[starts], np.maximum.reduceat(offset, starts)


def runs_to_seconds(row, start, end, n_classes: int, frame_seconds: float, durations: np.ndarray):
    """Frame runs to seconds, offsets clipped to each clip's duration; events starting at or after the end
    dropped."""
    clip = row // n_classes
    onset = start * float(frame_seconds)
    offset = np.minimum(end * float(frame_seconds), durations[clip])
    keep = offset > onset + EPS
    return row[keep], onset[keep], offset[keep]


def clean_events(row, onset, offset, params: PostprocParams):
    """Step 5: removal and joining in the configured order."""
    if params.order == "remove_then_join":
        row, onset, offset = remove_short(row, onset, offset, params.min_duration)
        return join_close(row, onset, offset, params.join_gap)
    row, onset, offset = join_close(row, onset, offset, params.join_gap)
    return remove_short(row, onset, offset, params.min_duration)


def events_table(row, onset, offset, filenames: Sequence[str], classes: Sequence[str]) -> pd.DataFrame:
    """DataFrame ``filename, onset, offset, event_label``, sorted by clip, onset, class."""
    if row.size == 0:
        return empty_detections()
    c = len(classes)
    clip, cls = row // c, row % c
    order = np.lexsort((cls, onset, clip))
    clip, cls, onset, offset = clip[order], cls[order], onset[order], offset[order]
    return pd.DataFrame(
        {
            "filename": np.asarray(filenames, dtype=object)[clip],
            "onset": np.round(onset, TIME_DECIMALS),
            "offset": np.round(offset, TIME_DECIMALS),
            "event_label": np.asarray(classes, dtype=object)[cls],
        }
    )


# ---------------------------------------------------------------------------- the decoder
def smoothing_key(params: PostprocParams, classes: Sequence[str]) -> tuple:
    """The settings steps 1-4 depend on (a decoder can be reused while they stay the same)."""
    return (
        params.tagging_key(),
        tuple(params.windows_for(classes)),
        params.median_edge,
        params.hysteresis_low,
    )


@dataclass
class Decoder:
    """Steps 1-4 done once (tagging, median filter, hysteresis scores); :meth:`events` thresholds them.

    ``hscores`` is ``(N * C, T)``: row ``n * C + c``. ``live`` lists the rows with a score above 0
    (the others, untagged classes mostly, are never active at a threshold >= 0 and are skipped).
    """

    preds: Predictions
    params: PostprocParams
    scores: np.ndarray  # (N, T, C) tagged, median-filtered
    hscores: np.ndarray  # (N*C, T) hysteresis-folded
    live: np.ndarray | None = None  # (R,) rows of hscores with a positive score

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = (np.flatnonzero(self.hscores.max(axis=1) > 0) if self.hscores.size
                         else np.zeros(0, np.int64))
        self._hlive = np.ascontiguousarray(self.hscores[self.live])

    @classmethod
    def prepare(cls, preds: Predictions, params: PostprocParams) -> Decoder:
        check_predictions(preds)
        params = params.for_classes(preds.classes, "the predictions")
        scores = smooth_scores(preds.frame_probs, preds.clip_probs, params, preds.classes)
        n, t, c = scores.shape
        rows = np.ascontiguousarray(scores.transpose(0, 2, 1)).reshape(n * c, t)
        return cls(preds, params, scores, hysteresis_scores(rows, params.hysteresis_low))

    def reusable_for(self, preds: Predictions, params: PostprocParams) -> bool:
        """True when ``params`` differ from this decoder's only in steps 3-5 (thresholds, removal,
        joining)."""
        return preds is self.preds and smoothing_key(params, preds.classes) == smoothing_key(
            self.params, preds.classes
        )

    def events(
        self,
        thresholds: float | Sequence[float] | np.ndarray | None = None,
        params: PostprocParams | None = None,
    ) -> pd.DataFrame:
        """Detections at per-class ``thresholds`` ``(C,)`` or one value for all; default: the params'
        thresholds.

        ``params`` (default: the decoder's) gives the thresholds, removal and joining; its tagging,
        median and hysteresis settings must be the decoder's (see :meth:`reusable_for`).
        """
        c = len(self.preds.classes)
        params = self.params if params is None else params
        if thresholds is None:
            thresholds = params.thresholds_for(self.preds.classes)
        th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (c,)).astype(np.float32)
        if np.any(th < 0):
            raise PostprocError(f"frame thresholds must be >= 0, got {th.min()}")
        active = self._hlive > th[self.live % c][:, None]
        sub, start, end = active_runs(active)
        row = self.live[sub]
        row, onset, offset = runs_to_seconds(
            row, start, end, c, self.preds.frame_seconds, self.preds.durations
        )
        row, onset, offset = clean_events(row, onset, offset, params)
        return events_table(row, onset, offset, self.preds.filenames, self.preds.classes)


def decode(
    preds: Predictions | np.ndarray,
    params: PostprocParams | np.ndarray,
    *args,
    frame_seconds: float | None = None,
    filenames: Sequence[str] | None = None,
    durations: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Events ``filename, onset, offset, event_label`` (seconds) from probabilities.

    Two call forms (docs/ARCHITECTURE.md): ``decode(preds, params)`` with a
    :class:`~sed.core.predictions.Predictions`, or
    ``decode(frame_probs, clip_probs, params, frame_seconds, filenames, durations=None, classes=...)``.
    """
    if not isinstance(preds, Predictions):
        rest = list(args)
        frame_probs, clip_probs = preds, params
        params = rest.pop(0) if rest else None
        frame_seconds = rest.pop(0) if rest else frame_seconds
        filenames = rest.pop(0) if rest else filenames
        durations = rest.pop(0) if rest else durations
        if params is None or frame_seconds is None or filenames is None or classes is None:
            raise TypeError(
                "decode(frame_probs, clip_probs, params, frame_seconds, filenames, durations=None, "
                "classes=[...])"
            )
        preds = Predictions(
            list(filenames), frame_probs, clip_probs, tuple(classes), float(frame_seconds), durations
        )
    if not isinstance(params, PostprocParams):
        params = PostprocParams.from_cfg(params)
    return Decoder.prepare(preds, params).events()


def decode_thresholds(
    preds: Predictions, params: PostprocParams, thresholds: Sequence[float]
) -> list[pd.DataFrame]:
    """One detection table per threshold (same for all classes), smoothing done once (PSDS operating
    points)."""
    dec = Decoder.prepare(preds, params)
    return [dec.events(float(t)) for t in thresholds]


def psds_thresholds(n: int) -> np.ndarray:
    """The DCASE 2020 baseline's operating points: ``n`` thresholds ``1/(2n), 3/(2n), ..., 1 - 1/(2n)``.

    For ``n = 50``: 0.01, 0.03, ..., 0.99 ("50 operating points, linear from 0.01 to 0.99").
    """
    if n < 1:
        raise PostprocError(f"n_thresholds must be >= 1, got {n}")
    return (2 * np.arange(n) + 1) / (2.0 * n)

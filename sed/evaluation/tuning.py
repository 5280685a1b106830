"""Exact per-class search of the post-processing (issue 10 part 3; SPEC section 6 steps 1-5).

With a tagging threshold per class, class ``c``'s events depend only on class ``c``'s frame
threshold, median windows and tagging threshold (and on the shared hysteresis bound, removal and
joining). The event-based F1 of class ``c`` (sed_eval rules, as
:func:`sed.evaluation.metrics.event_based_fast`) depends only on its events, and the macro F1 is the
mean of the per-class F1 over the classes with reference events. So the best macro F1 over the joint
grid is reached by choosing, for each class apart, its best point of its own grid: each class is
searched independently and exactly (every grid point). For a searched hysteresis bound (one value for
all classes, as :class:`~sed.postproc.params.PostprocParams` holds it) the per-class search runs for
each bound and the bound with the best macro F1 is kept: still exact.

Work shared between grid points (per class, all clips at once):

- the median filter (:func:`~sed.postproc.median.median_filter_frames`) runs once per first window
  and once per (first, second) pair, never per threshold or tagging value; only the clips whose clip
  probability passes the lowest tagging threshold of the grid and whose largest frame probability passes
  its lowest frame threshold are filtered (the others never produce an event);
- the hysteresis scores (:func:`~sed.postproc.decoder.hysteresis_scores`) once per window pair and bound;
  every frame threshold is applied on top in one array operation, and events are cut, converted,
  removed and joined by the decoder's own steps;
- the true positives, detections (and for the segment objective the active segments) are counted per
  clip once per (windows, threshold); tagging then only selects clips, so each tagging threshold costs
  a matrix product: ``TP(th, tag) = sum over clips passing tag of tp(th, clip)``.

Per class, with ``n_tp`` true positives, ``n_sys`` detections and ``n_ref`` reference events (or
segments): ``F1 = 2 n_tp / (n_sys + n_ref)`` (sed_eval's F with ``zero_score``: 0 when nothing is
output), undefined (nan, the class is skipped by the macro mean) when ``n_ref = 0``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sed.core.predictions import Predictions
from sed.evaluation.metrics import align
from sed.evaluation.sed_eval_metrics import max_matching  # sed_eval's matching, shared with event_based_fast
from sed.postproc.decoder import (
    TIME_DECIMALS,
    active_runs,
    check_predictions,
    clean_events,
    hysteresis_scores,
    runs_to_seconds,
)
from sed.postproc.median import median_filter_frames
from sed.postproc.params import PostprocError, PostprocParams

#: Objectives the exact search can fit (each is a mean of per-class figures that depend on the class alone).
OBJECTIVES = ("event_f1", "segment_f1")
#: Objectives that are not separable per class and are not offered: PSDS1 / PSDS macro (the alpha_st
#: penalty couples classes; threshold-independent) and psds_eval's F-score (it averages only the classes
#: with a true positive, so a class's contribution depends on the others).
NOT_SEPARABLE = ("psds1", "psds_macro", "psds_f_score")

T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.2
SEGMENT_SECONDS = 1.0


class TuneError(PostprocError):
    """A grid or input the search cannot use."""


def _check_objective(objective: str) -> None:
    """Raise :class:`TuneError` unless the exact search can fit ``objective``."""
    if objective not in OBJECTIVES:
        raise TuneError(
            f"objective {objective!r} is not one of {OBJECTIVES} (not separable per class: {NOT_SEPARABLE})"
        )


# ---------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class TuneGrid:
    """The values searched for every class. ``tagging_thresholds`` may hold ``None`` (tagging off for the
    class); ``hysteresis_lows``: bounds tried (one for all classes); ``None``: the base parameters' bound."""

    thresholds: tuple[float, ...]
    first_windows: tuple[int, ...]
    second_windows: tuple[int, ...]
    tagging_thresholds: tuple[float | None, ...]
    hysteresis_lows: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        def floats(name, allow_none):
            vals = getattr(self, name)
            if vals is None or len(vals) == 0:
                raise TuneError(f"tune grid: {name} is empty")
            out = []
            for v in vals:
                if v is None and allow_none:
                    out.append(None)
                    continue
                try:
                    f = float(v)
                except (TypeError, ValueError) as e:
                    raise TuneError(f"tune grid: {name} holds {v!r}, not a number") from e
                if not 0.0 <= f <= 1.0:
                    raise TuneError(f"tune grid: {name} holds {f}, not in [0, 1]")
                out.append(f)
            if len(set(out)) != len(out):
                raise TuneError(f"tune grid: {name} holds a value twice: {list(vals)}")
            return tuple(out)

        object.__setattr__(self, "thresholds", floats("thresholds", False))
        object.__setattr__(self, "tagging_thresholds", floats("tagging_thresholds", True))
        if self.hysteresis_lows is not None:
            object.__setattr__(self, "hysteresis_lows", floats("hysteresis_lows", True))
        for name in ("first_windows", "second_windows"):
            vals = getattr(self, name)
            if not vals:
                raise TuneError(f"tune grid: {name} is empty")
            try:
                ws = tuple(int(w) for w in vals)
            except (TypeError, ValueError) as e:
                raise TuneError(f"tune grid: {name} holds {list(vals)}, not window lengths") from e
            if any(w < 1 for w in ws) or len(set(ws)) != len(ws):
                raise TuneError(f"tune grid: {name} must hold distinct lengths >= 1, got {list(ws)}")
            object.__setattr__(self, name, ws)

    @classmethod
    def from_cfg(cls, cfg: Any) -> TuneGrid:
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover
            pass
        if not isinstance(cfg, Mapping):
            raise TuneError(f"tune grid: expected a mapping, got {cfg!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            raise TuneError(f"tune grid: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        missing = known - {"hysteresis_lows"} - set(cfg)
        if missing:
            raise TuneError(f"tune grid: missing {sorted(missing)}")
        return cls(**{k: (None if v is None else tuple(v)) for k, v in cfg.items()})

    def lows(self, base: PostprocParams) -> tuple[float | None, ...]:
        return (base.hysteresis_low,) if self.hysteresis_lows is None else self.hysteresis_lows

    def settings_per_class(self) -> int:
        """Grid points per class and hysteresis bound."""
        return (
            len(self.thresholds) * len(self.first_windows) * len(self.second_windows)
            * len(self.tagging_thresholds)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.thresholds),
            "first_windows": list(self.first_windows),
            "second_windows": list(self.second_windows),
            "tagging_thresholds": list(self.tagging_thresholds),
            "hysteresis_lows": None if self.hysteresis_lows is None else list(self.hysteresis_lows),
        }


# ---------------------------------------------------------------------------- counting
def _round(x: np.ndarray) -> np.ndarray:
    return np.round(x, TIME_DECIMALS)  # as the decoder's detection tables


def class_events(
    scores: np.ndarray,
    thresholds: Sequence[float],
    low: float | None,
    params: PostprocParams,
    frame_seconds: float,
    durations: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of one class at every threshold: ``scores`` ``(N, T)`` median-filtered (tagging not applied).

    Returns ``(row, onset, offset)`` with ``row = k * N + n`` (threshold ``k``, clip ``n``), sorted by row
    then onset, after the decoder's steps 3-5 (hysteresis down to ``low``, seconds, removal, joining).
    """
    n, t = scores.shape
    th = np.asarray(thresholds, dtype=np.float32)
    h = hysteresis_scores(scores, low)
    # only the (threshold, clip) rows with a score above the threshold can hold an event
    k, clip = np.nonzero(h.max(axis=1)[None, :] > th[:, None])
    sub, start, end = active_runs(h[clip] > th[k][:, None])
    sub = k[sub] * n + clip[sub]  # row k * N + n, still sorted (k, then clip)
    row, onset, offset = runs_to_seconds(sub, start, end, 1, frame_seconds, np.tile(durations, len(th)))
    row, onset, offset = clean_events(row, onset, offset, params)
    return row, _round(onset), _round(offset)


def match_counts(
    ref_row: np.ndarray,
    ref_on: np.ndarray,
    ref_off: np.ndarray,
    est_row: np.ndarray,
    est_on: np.ndarray,
    est_off: np.ndarray,
    n_rows: int,
    *,
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
) -> np.ndarray:
    """True positives per row ``(n_rows,)`` (a row: one clip of one class at one setting), with the hit
    rule and maximum matching of :func:`sed.evaluation.metrics.event_based_fast` (sed_eval's optimal
    event matching, onset and offset). ``est_row`` must be sorted."""
    tp = np.zeros(n_rows, dtype=np.int64)
    if ref_row.size == 0 or est_row.size == 0:
        return tp
    lo = np.searchsorted(est_row, ref_row, side="left")
    hi = np.searchsorted(est_row, ref_row, side="right")
    cnt = hi - lo
    total = int(cnt.sum())
    if total == 0:
        return tp
    ri = np.repeat(np.arange(ref_row.size), cnt)
    first = np.cumsum(cnt) - cnt
    ei = lo[ri] + (np.arange(total) - first[ri])
    hit = (np.abs(ref_on[ri] - est_on[ei]) <= t_collar) & (
        np.abs(ref_off[ri] - est_off[ei])
        <= np.maximum(t_collar, percentage_of_length * (ref_off[ri] - ref_on[ri]))
    )
    ri, ei = ri[hit], ei[hit]
    if ri.size == 0:
        return tp
    deg_r = np.bincount(ri, minlength=ref_row.size)
    deg_e = np.bincount(ei, minlength=est_row.size)
    simple = (deg_r[ri] == 1) & (deg_e[ei] == 1)
    tp += np.bincount(ref_row[ri[simple]], minlength=n_rows)
    if not simple.all():
        ri, ei = ri[~simple], ei[~simple]
        rows = ref_row[ri]
        order = np.argsort(rows, kind="stable")
        ri, ei, rows = ri[order], ei[order], rows[order]
        cuts = np.flatnonzero(np.diff(rows)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, rows.size]):
            tp[rows[a]] += max_matching(list(zip(ri[a:b].tolist(), ei[a:b].tolist())))
    return tp


def segment_roll(
    row: np.ndarray, onset: np.ndarray, offset: np.ndarray, n_rows: int, n_segments: np.ndarray
) -> np.ndarray:
    """``(n_rows, S)`` bool: the 1 s segments each row's events touch, as sed_eval's event roll
    (segments ``floor(onset)`` to ``ceil(offset)`` exclusive), cut at each row's ``n_segments``."""
    s = int(n_segments.max()) if n_segments.size else 0
    roll = np.zeros((n_rows, s), dtype=bool)
    if row.size:
        a = np.floor(onset / SEGMENT_SECONDS).astype(np.int64)
        b = np.ceil(offset / SEGMENT_SECONDS).astype(np.int64)
        seg = np.arange(s)
        cells = (seg[None, :] >= a[:, None]) & (seg[None, :] < b[:, None])
        r, k = np.nonzero(cells)
        roll[row[r], k] = True
    roll &= np.arange(s)[None, :] < n_segments[:, None]
    return roll


# ---------------------------------------------------------------------------- the search
@dataclass
class ClassSearch:
    """One class's grid: ``f1`` ``(L, W1, W2, TH, TAG)`` (nan when the class has no reference), and the
    true positive / detection counts behind it, and ``n_ref``."""

    cls: str
    f1: np.ndarray
    tp: np.ndarray
    n_sys: np.ndarray
    n_ref: int

    def best(self, low_index: int) -> tuple[tuple[int, int, int, int], float]:
        """Grid index ``(w1, w2, th, tag)`` of the best point at bound ``low_index`` (first in grid order
        on ties) and its F1 (nan when undefined)."""
        f = self.f1[low_index]
        if np.all(np.isnan(f)):
            return (-1, -1, -1, -1), math.nan
        i = int(np.nanargmax(f))
        return tuple(int(v) for v in np.unravel_index(i, f.shape)), float(f.flat[i])


def search_class(
    frame_probs: np.ndarray,
    clip_probs: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    grid: TuneGrid,
    base: PostprocParams,
    *,
    frame_seconds: float,
    durations: np.ndarray,
    objective: str = "event_f1",
    cls: str = "",
) -> ClassSearch:
    """Every grid point of one class: ``frame_probs`` ``(N, T)``, ``clip_probs`` ``(N,)``, ``reference``
    ``(clip index, onset, offset)`` of the class's true events (all clips)."""
    _check_objective(objective)
    n = frame_probs.shape[0]
    taus = np.array([-np.inf if v is None else v for v in grid.tagging_thresholds])
    shape = (len(grid.lows(base)), len(grid.first_windows), len(grid.second_windows), len(grid.thresholds),
             len(taus))
    tp_all = np.zeros(shape, dtype=np.int64)
    sys_all = np.zeros(shape, dtype=np.int64)
    clip_probs = np.asarray(clip_probs, dtype=np.float32)
    # the clips that can hold an event at some grid point: tagged by some tagging value, and with a frame
    # above the lowest threshold (a median filter never exceeds the row's maximum)
    keep = np.flatnonzero((clip_probs > taus.min()) & (frame_probs.max(axis=1) > min(grid.thresholds)))
    tagged = (clip_probs[keep][None, :] > taus[:, None]).astype(np.int64)  # (TAG, n)
    r_clip, r_on, r_off = (np.asarray(a) for a in reference)
    r_on, r_off = _round(r_on.astype(np.float64)), _round(r_off.astype(np.float64))
    ref_roll_all = n_seg = None
    if objective == "event_f1":
        n_ref = int(r_clip.size)
    else:
        # segments per clip as sed_eval counts them
        n_seg = np.ceil(np.asarray(durations, dtype=np.float64) / SEGMENT_SECONDS).astype(np.int64)
        ref_roll_all = segment_roll(r_clip.astype(np.int64), r_on, r_off, n, n_seg)
        n_ref = int(ref_roll_all.sum())
    if keep.size:
        ref = _kept_reference(keep, n, (r_clip, r_on, r_off), len(grid.thresholds))
        if objective == "segment_f1":
            ref["roll"] = np.tile(ref_roll_all[keep], (len(grid.thresholds), 1))
            ref["n_seg"] = np.tile(n_seg[keep], len(grid.thresholds))
        x = np.ascontiguousarray(frame_probs[keep], dtype=np.float32)
        dur = np.asarray(durations, dtype=np.float64)[keep]
        _count_grid(x, dur, tagged, ref, grid, base, tp_all, sys_all, frame_seconds=frame_seconds,
                    objective=objective)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(n_ref > 0, 2.0 * tp_all / (sys_all + n_ref), np.nan)
    return ClassSearch(cls=cls, f1=f1, tp=tp_all, n_sys=sys_all, n_ref=n_ref)


def _kept_reference(
    keep: np.ndarray, n: int, reference: tuple[np.ndarray, np.ndarray, np.ndarray], n_th: int
) -> dict[str, np.ndarray]:
    """The reference events of the ``keep`` clips (others are only missed) repeated per threshold, as
    rows ``k * len(keep) + position`` sorted (stable) by row: ``{"rows", "onset", "offset"}``."""
    r_clip, r_on, r_off = reference
    pos = np.full(n, -1, dtype=np.int64)
    pos[keep] = np.arange(keep.size)
    sel = pos[r_clip] >= 0  # reference events in clips that can be tagged (others are only missed)
    k_clip, k_on, k_off = pos[r_clip[sel]], r_on[sel], r_off[sel]
    rows_ref = (np.arange(n_th)[:, None] * keep.size + k_clip[None, :]).ravel()
    on_ref, off_ref = np.tile(k_on, n_th), np.tile(k_off, n_th)
    order = np.argsort(rows_ref, kind="stable")
    return {"rows": rows_ref[order], "onset": on_ref[order], "offset": off_ref[order]}


def _count_grid(
    x: np.ndarray,
    dur: np.ndarray,
    tagged: np.ndarray,
    ref: Mapping[str, np.ndarray],
    grid: TuneGrid,
    base: PostprocParams,
    tp_all: np.ndarray,
    sys_all: np.ndarray,
    *,
    frame_seconds: float,
    objective: str,
) -> None:
    """True positives and detections of every grid point into ``tp_all`` / ``sys_all``: ``x`` ``(m, T)``
    the kept clips' frame probabilities, ``tagged`` ``(TAG, m)`` which clips each tagging value keeps."""
    n_th, m = len(grid.thresholds), x.shape[0]
    for i1, w1 in enumerate(grid.first_windows):
        m1 = median_filter_frames(x, w1, even_window=base.even_window, edge=base.median_edge)
        for i2, w2 in enumerate(grid.second_windows):
            m2 = median_filter_frames(m1, w2, even_window=base.even_window, edge=base.median_edge)
            for il, low in enumerate(grid.lows(base)):
                row, on, off = class_events(m2, grid.thresholds, low, base, frame_seconds, dur)
                if objective == "event_f1":
                    tp = match_counts(ref["rows"], ref["onset"], ref["offset"], row, on, off, n_th * m)
                    ns = np.bincount(row, minlength=n_th * m)
                else:
                    est_roll = segment_roll(row, on, off, n_th * m, ref["n_seg"])
                    tp = (est_roll & ref["roll"]).sum(axis=1)
                    ns = est_roll.sum(axis=1)
                tp_all[il, i1, i2] = tp.reshape(n_th, m) @ tagged.T
                sys_all[il, i1, i2] = ns.reshape(n_th, m) @ tagged.T


@dataclass
class TuneResult:
    """The fitted parameters, the per-class choice and figures, and the searches behind them."""

    params: PostprocParams
    objective: str
    macro: float  # tune-split objective of the fitted parameters (mean over classes with references)
    per_class: dict[str, dict[str, Any]]
    grid: TuneGrid
    low: float | None
    macro_by_low: dict[str, float] = field(default_factory=dict)
    searches: dict[str, ClassSearch] = field(default_factory=dict)
    seconds: float = 0.0


_JOB: tuple | None = None  # (grid, base, keywords) of the classes a forked worker searches


def _search_job(job) -> ClassSearch:
    grid, base, kw = _JOB
    fp, cp, ref, c = job
    return search_class(fp, cp, ref, grid, base, cls=c, **kw)


def default_workers(n_jobs: int) -> int:
    """The CPUs this process may use, at most ``n_jobs`` (a class search takes seconds: forking pays)."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, n_jobs))


def reference_arrays(
    ground_truth: Mapping[str, Sequence], filenames: Sequence[str], cls: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clip index, onset, offset)`` of the events of ``cls`` in ``ground_truth`` (clips by
    ``filenames``)."""
    idx = {f: i for i, f in enumerate(filenames)}
    ev = [(idx[f], float(e[0]), float(e[1]))
          for f, evs in ground_truth.items() if f in idx for e in evs if str(e[2]) == cls]
    if not ev:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    a = np.array(ev, dtype=np.float64)
    return a[:, 0].astype(np.int64), a[:, 1], a[:, 2]


def tune(
    preds: Predictions,
    ground_truth: Mapping[str, Sequence],
    grid: TuneGrid,
    base: PostprocParams | None = None,
    *,
    objective: str = "event_f1",
    tuned_on: str | None = None,
    on_missing: str = "error",
    workers: int | None = 1,
) -> TuneResult:
    """Fit the post-processing of every class on ``preds`` / ``ground_truth`` (the tuning split only).

    ``base`` gives what is not searched (median edge and window parity, removal, joining, order) and the
    values of classes without reference events on the split (kept as they are). ``workers``: processes
    searching classes in parallel (``None``: the usable CPUs, at most one per class). Returns the fitted
    :class:`~sed.postproc.params.PostprocParams` (per-class tagging thresholds) with ``tuned_on``.
    """
    t0 = time.perf_counter()
    base = PostprocParams() if base is None else base
    _check_objective(objective)
    check_predictions(preds)
    base = base.for_classes(preds.classes, "the predictions")
    preds, gt = align(preds, ground_truth, on_missing=on_missing)
    lows = grid.lows(base)
    jobs = [
        (preds.frame_probs[:, :, k], preds.clip_probs[:, k], reference_arrays(gt, preds.filenames, c), c)
        for k, c in enumerate(preds.classes)
    ]
    kw = dict(frame_seconds=preds.frame_seconds, durations=preds.durations, objective=objective)
    workers = default_workers(len(jobs)) if workers is None else max(1, int(workers))
    searches = {s.cls: s for s in _search_classes(jobs, grid, base, kw, workers)}
    macro_by_low = {}
    for il, low in enumerate(lows):
        fs = [s.best(il)[1] for s in searches.values()]
        fs = [f for f in fs if not math.isnan(f)]
        macro_by_low[str(low)] = float(np.mean(fs)) if fs else math.nan
    vals = np.array(list(macro_by_low.values()))
    il = 0 if np.all(np.isnan(vals)) else int(np.nanargmax(vals))
    low = lows[il]
    th, win, tag, per_class = _fitted_values(searches, il, grid, base, objective)
    params = replace(
        base,
        frame_thresholds=th,
        median_windows=win,
        tagging_threshold=tag,
        hysteresis_low=low,
        tuned_on=tuned_on,
    )
    return TuneResult(
        params=params,
        objective=objective,
        macro=macro_by_low[str(low)],
        per_class=per_class,
        grid=grid,
        low=low,
        macro_by_low=macro_by_low,
        searches=searches,
        seconds=time.perf_counter() - t0,
    )


def _search_classes(
    jobs: Sequence[tuple], grid: TuneGrid, base: PostprocParams, kw: Mapping[str, Any], workers: int
) -> list[ClassSearch]:
    """:func:`search_class` for every job ``(frame_probs, clip_probs, reference, class)``: in ``workers``
    forked processes when more than one (in this process when forking fails)."""
    global _JOB
    if workers > 1:
        try:
            import multiprocessing as mp

            _JOB = (grid, base, kw)
            with mp.get_context("fork").Pool(workers) as pool:
                return pool.map(_search_job, jobs, chunksize=1)
        except (OSError, ValueError, RuntimeError):  # no fork here: in this process
            pass
        finally:
            _JOB = None
    return [search_class(fp, cp, ref, grid, base, cls=c, **kw) for fp, cp, ref, c in jobs]


def _fitted_values(
    searches: Mapping[str, ClassSearch], il: int, grid: TuneGrid, base: PostprocParams, objective: str
) -> tuple[dict, dict, dict, dict]:
    """``(frame thresholds, median windows, tagging thresholds, per-class report)`` of each class's best
    point at hysteresis bound ``il``; a class without reference events keeps the base values."""
    th, win, tag, per_class = {}, {}, {}, {}
    base_tag = base.tagging_threshold
    for c, s in searches.items():
        (i1, i2, it, ik), f = s.best(il)
        if i1 < 0:  # no reference event of the class on this split: keep the base values
            th[c] = base.frame_thresholds[c]
            win[c] = tuple(base.median_windows[c])
            tag[c] = base_tag.get(c) if isinstance(base_tag, Mapping) else base_tag
            per_class[c] = {"tuned": False, "reason": "no reference event on the tuning split", "n_ref": 0}
            continue
        th[c] = grid.thresholds[it]
        win[c] = (grid.first_windows[i1], grid.second_windows[i2])
        tag[c] = grid.tagging_thresholds[ik]
        per_class[c] = {
            "tuned": True,
            "frame_threshold": th[c],
            "median_windows": list(win[c]),
            "tagging_threshold": tag[c],
            objective: f,
            "n_tp": int(s.tp[il, i1, i2, it, ik]),
            "n_sys": int(s.n_sys[il, i1, i2, it, ik]),
            "n_ref": s.n_ref,
        }
    return th, win, tag, per_class

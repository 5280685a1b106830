"""Frame-level average precision: the threshold-free checkpoint criterion (issue 10, part 2).

Every frame of every clip is one ranked item per class; a class's AP is the area under its
precision-recall step curve, ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds
(tied scores form one threshold, as ``sklearn.metrics.average_precision_score``).  The AP of a random
ranking (and of a constant score) is the class's frame prevalence: :func:`chance_ap`.
"""

from __future__ import annotations

import numpy as np


def frame_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class AP over all frames: ``scores``, ``targets`` ``(..., C)`` (e.g. (clips, frames, classes))
    -> ``(C,)`` float64; NaN for a class with no positive frame.  Vectorised over classes."""
    s = np.asarray(scores).reshape(-1, np.shape(scores)[-1])
    y = np.asarray(targets).reshape(-1, s.shape[1]) > 0.5
    if s.shape != y.shape:
        raise ValueError(f"scores {np.shape(scores)} and targets {np.shape(targets)} differ")
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    tp = np.cumsum(np.take_along_axis(y, order, axis=0), axis=0, dtype=np.float64)
    n_pos = tp[-1] if len(tp) else np.zeros(s.shape[1])
    rank = np.arange(1, len(s) + 1, dtype=np.float64)[:, None]
    # the last item of each run of tied scores closes one threshold
    end = np.ones_like(s_sorted, dtype=bool)
    end[:-1] = s_sorted[:-1] != s_sorted[1:]
    tp_end = np.where(end, tp, 0.0)
    prev = np.zeros_like(tp)
    prev[1:] = np.maximum.accumulate(tp_end, axis=0)[:-1]  # tp at the previous threshold (tp never falls)
    gain = np.where(end, (tp - prev) * (tp / rank), 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, gain / n_pos, np.nan)


def chance_ap(targets: np.ndarray) -> np.ndarray:
    """``(C,)`` frame prevalence of each class: the expected AP of a random ranking (NaN: no positive)."""
    y = np.asarray(targets).reshape(-1, np.shape(targets)[-1]) > 0.5
    p = y.mean(axis=0) if len(y) else np.zeros(y.shape[1])
    return np.where(y.any(axis=0), p, np.nan)


def macro(ap: np.ndarray) -> float:
    """Mean AP over the classes that have a positive frame (NaN if none has)."""
    ap = np.asarray(ap, dtype=np.float64)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")

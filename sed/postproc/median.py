"""Iterative median filter over frames (SPEC section 6 step 2; paper 2.4, Table 1).

Vectorised over clips: per (class, pass), the ``(clips, frames)`` plane is padded by the edge rule
and the median of every ``w``-frame window is taken at once (``sliding_window_view`` +
``np.partition``, in blocks of rows to stay in cache: 5x faster than ``scipy.ndimage.median_filter``
with identical results, which the tests check). The loop is over classes only, because each class
has its own windows. Window parity and edge rule: see :mod:`sed.postproc.params`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter

from sed.postproc.params import effective_window


def median_filter_frames(
    x: np.ndarray, window: int, *, even_window: str = "round_up", edge: str = "reflect"
) -> np.ndarray:
    """Median-filter each row of ``x`` (..., frames) along the last axis with a centred window.

    ``window`` is the configured length; :func:`effective_window` applies the even-length rule.
    ``edge`` is scipy.ndimage's ``mode`` (``reflect``: ``d c b a | a b c d``; ``nearest``:
    ``a a a a | a b c d``; ``constant``: zeros).
    """
    w = effective_window(window, even_window)
    x = np.asarray(x)
    if w == 1 or x.size == 0:
        return x.copy()
    t = x.shape[-1]
    left, right = w // 2, w - 1 - w // 2  # scipy's window: w // 2 frames before the centre
    if max(left, right) >= t or edge not in _NP_PAD:
        size = (1,) * (x.ndim - 1) + (w,)
        return median_filter(x, size=size, mode=edge, cval=0.0)
    rows = x.reshape(-1, t)
    pad = [(0, 0), (left, right)]
    padded = (
        np.pad(rows, pad, mode=_NP_PAD[edge]) if edge != "constant" else np.pad(rows, pad, constant_values=0)
    )
    out = np.empty_like(rows)
    # Blocks of rows and of frames: the (rows, frames, w) window view is partitioned a block at a time,
    # so memory stays bounded for hour-long rows (sed detect) as well as for thousands of clips.
    for s in range(0, rows.shape[0], _BLOCK):
        for a in range(0, t, _TIME_BLOCK):
            b = min(t, a + _TIME_BLOCK)
            win = sliding_window_view(padded[s : s + _BLOCK, a : b + w - 1], w, axis=1)
            out[s : s + _BLOCK, a:b] = np.partition(win, w // 2, axis=-1)[..., w // 2]
    return out.reshape(x.shape)


#: scipy.ndimage mode -> numpy.pad mode (scipy "reflect" is numpy "symmetric", "mirror" is "reflect")
_NP_PAD = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect", "constant": "constant"}
_BLOCK = 32
_TIME_BLOCK = 16384


def iterative_median(
    scores: np.ndarray,
    windows: Sequence[Sequence[int]],
    *,
    even_window: str = "round_up",
    edge: str = "reflect",
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Apply each class's windows in turn (first window, then the second on the result).

    ``scores``: ``(N, T, C)``; ``windows[c]``: the configured windows of class ``c``;
    ``rows``: optional ``(N, C)`` bool, the (clip, class) pairs to filter (the tagged ones);
    others are returned unchanged. Returns a new ``(N, T, C)`` float32 array.
    """
    scores = np.asarray(scores, dtype=np.float32)
    out = scores.copy()
    n, _, c = scores.shape
    if len(windows) != c:
        raise ValueError(f"{len(windows)} window lists for {c} classes")
    for k in range(c):
        sel = np.arange(n) if rows is None else np.flatnonzero(rows[:, k])
        if sel.size == 0 or all(effective_window(w, even_window) == 1 for w in windows[k]):
            continue
        plane = np.ascontiguousarray(scores[sel, :, k])
        for w in windows[k]:
            plane = median_filter_frames(plane, w, even_window=even_window, edge=edge)
        out[sel, :, k] = plane
    return out

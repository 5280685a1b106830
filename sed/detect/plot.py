"""What ``sed detect --plot`` needs besides the shared timeline (``sed.reporting.plots.plot_timeline``):
a constant-memory log-mel summary of a long recording (mean of the log-mel over blocks of frames, at
most ``max_cols`` columns) and a flat file name for a recording's path.
"""

from __future__ import annotations

import math

import numpy as np

from sed.core.constants import TIMELINE_COLS as MAX_COLS


class MelSummary:
    """Log-mel of a whole recording, averaged over blocks of ``pool`` frames, in constant memory.

    Frames arrive window by window (overlapping); only frames not seen yet are kept. When more
    than ``2 * max_cols`` columns accumulate, neighbouring columns are averaged pairwise and the
    pool doubles, so memory stays below ``2 * max_cols`` columns whatever the length.
    """

    def __init__(self, hop_frames: int, expected_frames: int = 0, max_cols: int = MAX_COLS):
        self.hop_frames = hop_frames
        self.max_cols = max_cols
        self.pool = max(1, math.ceil(expected_frames / max_cols))
        self._cols: list[np.ndarray] = []
        self._pending = np.zeros((0, 0), dtype=np.float32)
        self.n_frames = 0  # frames taken in so far

    def add(self, k: int, logmel: np.ndarray) -> None:
        """Window ``k``'s log-mel ``(F, n_mels)``."""
        start = k * self.hop_frames
        new = logmel[max(self.n_frames - start, 0) :]
        if len(new) == 0:
            return
        self.n_frames += len(new)
        pend = new if self._pending.size == 0 else np.concatenate([self._pending, new])
        n_full = len(pend) // self.pool
        if n_full:
            cols = pend[: n_full * self.pool].reshape(n_full, self.pool, -1).mean(axis=1)
            self._cols.extend(cols.astype(np.float32))
        self._pending = pend[n_full * self.pool :].copy()
        while len(self._cols) > 2 * self.max_cols:
            self._coarsen()

    def _coarsen(self) -> None:
        c = np.stack(self._cols)
        odd = c[-1:] if len(c) % 2 else None
        c = c[: len(c) // 2 * 2].reshape(-1, 2, c.shape[1]).mean(axis=1)
        self._cols = list(c)
        if odd is not None:  # an unpaired last column goes back to pending, as raw frames
            self._pending = np.concatenate([np.repeat(odd, self.pool, axis=0), self._pending])
        self.pool *= 2

    def result(self, n_frames: int) -> tuple[np.ndarray, int]:
        """``(cols, n_mels)`` summary of the first ``n_frames`` frames, and the pool (frames per column)."""
        cols = list(self._cols)
        if self._pending.size:
            cols.append(self._pending.mean(axis=0))
        c = np.stack(cols) if cols else np.zeros((1, 1), dtype=np.float32)
        keep = max(1, math.ceil(n_frames / self.pool))
        return c[:keep], self.pool


def safe_name(name: str) -> str:
    """A flat file name for a recording's path: separators become ``__``."""
    s = name.replace("\\", "/").lstrip("./")
    s = s.replace("../", "").replace("/", "__")
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in s) or "recording"

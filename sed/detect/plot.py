"""Timeline PNG for one recording: log-mel spectrogram, detected events as labelled bars, and the
class probability curves, readable from a 10 s clip to an hour-long recording.

Long recordings are summarised to at most ``max_cols`` time columns (mean of the log-mel, max of
the probabilities, so that short peaks stay visible); the time axis is in minutes beyond two
minutes; every event bar is drawn at least ``min_bar_fraction`` of the axis wide, so that a
0.2 s event in an hour is still a visible mark.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns kept in the spectrogram summary (a 16-inch figure at 100 dpi has ~1400 pixels).
MAX_COLS = 2048


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


def _pool_max(x: np.ndarray, max_cols: int) -> tuple[np.ndarray, int]:
    """Max over blocks of frames so that at most ``max_cols`` remain: ``(T, C) -> (cols, C)``."""
    pool = max(1, math.ceil(len(x) / max_cols))
    n = math.ceil(len(x) / pool) * pool
    pad = np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)]) if n > len(x) else x
    return pad.reshape(-1, pool, x.shape[1]).max(axis=1), pool


def safe_name(name: str) -> str:
    """A flat file name for a recording's path: separators become ``__``."""
    s = name.replace("\\", "/").lstrip("./")
    s = s.replace("../", "").replace("/", "__")
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in s) or "recording"


def plot_timeline(
    out_png: str | Path,
    title: str,
    mel_cols: np.ndarray,
    mel_pool: int,
    frame_probs: np.ndarray,
    events: pd.DataFrame,
    classes: tuple[str, ...],
    frame_seconds: float,
    duration: float,
    *,
    min_bar_fraction: float = 0.002,
) -> Path:
    """Write the PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    minutes = duration > 120.0
    scale = 1 / 60.0 if minutes else 1.0
    unit = "min" if minutes else "s"
    t_end = duration * scale
    colors = plt.get_cmap("tab10")(np.arange(len(classes)) % 10)

    fig, axes = plt.subplots(
        3, 1, figsize=(16 if minutes else 12, 9), sharex=True,
        gridspec_kw={"height_ratios": [3, 2.2, 2.5]}, constrained_layout=True,
    )
    ax_mel, ax_ev, ax_p = axes
    # 1. log-mel
    mel_t = len(mel_cols) * mel_pool * frame_seconds * scale
    lo, hi = np.percentile(mel_cols, [1.0, 99.7]) if mel_cols.size > 1 else (None, None)
    ax_mel.imshow(mel_cols.T, origin="lower", aspect="auto", cmap="magma", extent=(0, mel_t, 0, mel_cols.shape[1]),
                  interpolation="nearest", vmin=lo, vmax=hi)
    ax_mel.set_ylabel("mel band")
    ax_mel.set_title(f"{title}  ({duration / 60:.1f} min)" if minutes else f"{title}  ({duration:.1f} s)")
    # 2. events, one lane per class
    min_w = min_bar_fraction * t_end
    for i, c in enumerate(classes):
        ev = events[events["event_label"] == c] if len(events) else events
        bars = [(on * scale, max((off - on) * scale, min_w)) for on, off in zip(ev["onset"], ev["offset"])] if len(ev) else []
        if bars:
            ax_ev.broken_barh(bars, (i - 0.4, 0.8), facecolors=colors[i], edgecolor=colors[i])
            if not minutes and len(bars) <= 20:
                for x, w in bars:
                    ax_ev.text(x + w / 2, i, c.split("_")[0], ha="center", va="center", fontsize=6, color="black")
    ax_ev.set_yticks(range(len(classes)), [f"{c} ({(events['event_label'] == c).sum() if len(events) else 0})"
                                            for c in classes], fontsize=8)
    ax_ev.set_ylim(-0.6, len(classes) - 0.4)
    ax_ev.grid(axis="x", alpha=0.3)
    ax_ev.set_title("detected events (count)", fontsize=9)
    # 3. probability curves (max over each column so that peaks stay visible)
    p, pool = _pool_max(frame_probs, MAX_COLS)
    t = (np.arange(len(p)) * pool * frame_seconds) * scale
    for i, c in enumerate(classes):
        ax_p.plot(t, p[:, i], color=colors[i], lw=0.8, label=c)
    ax_p.set_ylim(0, 1.02)
    ax_p.set_ylabel("frame probability")
    ax_p.set_xlabel(f"time ({unit})")
    ax_p.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    ax_p.grid(alpha=0.3)
    ax_p.set_xlim(0, t_end)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png

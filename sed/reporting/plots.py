"""Plots shared by several entry points: a log-mel with events drawn over it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sed.core.constants import CLASSES, FRAME_SECONDS  # noqa: E402

#: One colour per class, fixed so that every plot of the project agrees.
CLASS_COLORS = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(CLASSES)}


def draw_logmel(ax, logmel: np.ndarray, frame_seconds: float = FRAME_SECONDS, time_scale: float = 1.0) -> None:
    """Log-mel ``(frames, mels)`` as an image with time in seconds (or minutes with ``time_scale=60``)."""
    t_end = logmel.shape[0] * frame_seconds / time_scale
    ax.imshow(logmel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, t_end, 0, logmel.shape[1]),
              interpolation="nearest")
    ax.set_ylabel("mel bin")


def draw_events(ax, events: Sequence, y0: float, height: float, time_scale: float = 1.0, alpha: float = 0.85,
                labels: bool = True) -> None:
    """Events ``(onset, offset, label)`` as coloured bars within ``[y0, y0 + height]``, labelled.

    Overlapping events are stacked in lanes so that none hides another.
    """
    lanes: list[float] = []  # each lane's last offset
    placed = []
    for on, off, label in sorted(events, key=lambda e: (e[0], e[1])):
        lane = next((i for i, end in enumerate(lanes) if end <= on), len(lanes))
        if lane == len(lanes):
            lanes.append(off)
        lanes[lane] = off
        placed.append((lane, on, off, label))
    h = height / max(1, len(lanes))
    for lane, on, off, label in placed:
        y = y0 + lane * h
        color = CLASS_COLORS.get(label, "white")
        ax.add_patch(plt.Rectangle((on / time_scale, y), (off - on) / time_scale, h * 0.9, color=color, alpha=alpha,
                                   linewidth=0))
        if labels:
            ax.text(on / time_scale, y + h * 0.45, f" {label}", va="center", ha="left", fontsize=7, color="black",
                    clip_on=True)


def plot_examples(root: str | Path, out: str | Path, split: str = "synthetic") -> Path:
    """One clip per class from a DESED-layout ``split``: log-mel with its true events drawn over it."""
    import torch

    from sed.audio.features import LogMel
    from sed.audio.io import load_audio
    from sed.datamodules.layout import DesedLayout
    from sed.datamodules.tsv import read_strong_tsv

    s = DesedLayout(root).split(split)
    clips = read_strong_tsv(s.tsv)
    chosen: dict[str, str] = {}  # per class, the clip with the fewest events holding it (the clearest view)
    for name, events in sorted(clips.items(), key=lambda kv: len(kv[1])):
        for ev in events:
            chosen.setdefault(ev.label, name)
    picks = [(c, chosen[c]) for c in CLASSES if c in chosen]
    frontend = LogMel()
    fig, axes = plt.subplots(len(picks), 1, figsize=(11, 1.9 * max(1, len(picks))), squeeze=False)
    for ax, (cls, name) in zip(axes[:, 0], picks):
        with torch.no_grad():
            x = frontend(torch.from_numpy(load_audio(s.audio_dir / name))[None])[0].numpy()
        draw_logmel(ax, x)
        draw_events(ax, clips[name], y0=x.shape[1] * 0.72, height=x.shape[1] * 0.27, alpha=0.9)
        ax.set_title(f"{name}: example of {cls}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out

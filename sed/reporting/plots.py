"""The project's plots, one home for all: class colours, a log-mel with events, the clip/recording
timeline (training validation reports, ``sed.eval`` reports, ``sed detect``), the PSD-ROC curves
(training validation reports and ``sed.eval``), and the dataset examples (``sed.generate``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import zlib  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sed.audio.io import load_audio  # noqa: E402
from sed.core.constants import DESED_CLASSES, FRAME_SECONDS  # noqa: E402
from sed.core.constants import TIMELINE_COLS as MAX_COLS  # noqa: E402
from sed.datamodules.layout import DesedLayout  # noqa: E402
from sed.datamodules.tsv import read_strong_tsv  # noqa: E402

_DESED_COLOR = {c: i for i, c in enumerate(DESED_CLASSES)}


def class_color(label: str) -> tuple:
    """One colour per class name, fixed so that every plot of the project agrees: DESED's ten are tab10 in
    their order; any other name gets a tab20 colour from a hash of the name."""
    i = _DESED_COLOR.get(label)
    if i is not None:
        return plt.get_cmap("tab10")(i)
    return plt.get_cmap("tab20")(zlib.crc32(label.encode()) % 20)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """``tight_layout``, write ``path`` (its folder created), close the figure; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def pool_max(x: np.ndarray, max_cols: int = MAX_COLS) -> tuple[np.ndarray, int]:
    """Max over blocks of frames so that at most ``max_cols`` remain: ``(T, C) -> (cols, C)``, and the
    block."""
    pool = max(1, math.ceil(len(x) / max_cols))
    n = math.ceil(len(x) / pool) * pool
    pad = np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)]) if n > len(x) else x
    return pad.reshape(-1, pool, x.shape[1]).max(axis=1), pool


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def draw_logmel(
    ax, logmel: np.ndarray, frame_seconds: float = FRAME_SECONDS, time_scale: float = 1.0
) -> None:
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
        color = class_color(label)
        ax.add_patch(plt.Rectangle((on / time_scale, y), (off - on) / time_scale, h * 0.9, color=color,
                                   alpha=alpha, linewidth=0))
        if labels:
            ax.text(on / time_scale, y + h * 0.45, f" {label}", va="center", ha="left", fontsize=7,
                    color="black", clip_on=True)


def plot_examples(root: str | Path, out: str | Path, split: str = "synthetic",
                  classes: Sequence[str] = DESED_CLASSES) -> Path:
    """One clip per class of ``classes`` from a DESED-layout ``split``: log-mel with its true events drawn
    over it."""
    # lazy: torch (via sed.audio.features) costs ~1 s; `sedx score --out` plots through this module without it
    import torch

    from sed.audio.features import LogMel

    s = DesedLayout(root).split(split)
    clips = read_strong_tsv(s.tsv)
    chosen: dict[str, str] = {}  # per class, the clip with the fewest events holding it (the clearest view)
    for name, events in sorted(clips.items(), key=lambda kv: len(kv[1])):
        for ev in events:
            chosen.setdefault(ev.label, name)
    picks = [(c, chosen[c]) for c in classes if c in chosen]
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


def plot_timeline(
    path: str | Path,
    title: str,
    frame_probs: np.ndarray,
    classes: Sequence[str],
    frame_seconds: float,
    detections: Sequence,
    truth: Sequence | None = None,
    logmel: np.ndarray | None = None,
    mel_pool: int = 1,
    clip_probs: Sequence[float] | None = None,
    smoothed: np.ndarray | None = None,
    thresholds: Mapping[str, float] | None = None,
    duration: float | None = None,
    all_classes: bool = False,
    min_bar_fraction: float = 0.002,
) -> Path:
    """One clip or recording: log-mel (if given), events, and the frame probabilities; returns ``path``.

    ``frame_probs`` ``(T, C)``; ``detections``/``truth``: events ``(onset, offset, label)``; with
    ``truth`` each class lane shows the truth (upper half, solid) over the detections (lower half,
    hatched).  ``logmel`` ``(cols, mels)`` with ``mel_pool`` frames per column (a summary of a long
    recording); ``smoothed`` ``(T, C)``: post-processed probabilities drawn thick over the raw ones,
    with each class's ``thresholds`` dotted.  Classes shown: those with an event (or all, with
    ``all_classes``).  Beyond two minutes the time axis is in minutes, the curves are max-pooled to
    :data:`MAX_COLS` columns and every event bar is at least ``min_bar_fraction`` of the axis wide.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dt = frame_seconds
    duration = float(duration if duration is not None else frame_probs.shape[0] * dt)
    minutes = duration > 120.0
    scale, unit = (1 / 60.0, "min") if minutes else (1.0, "s")
    t_end = duration * scale
    det = [(float(e[0]), float(e[1]), str(e[2])) for e in detections]
    true = None if truth is None else [(float(e[0]), float(e[1]), str(e[2])) for e in truth]
    present = {e[2] for e in det} | {e[2] for e in (true or [])}
    shown = list(classes) if all_classes else [c for c in classes if c in present]
    rows = 3 if logmel is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(16 if minutes else 11, 2.2 * rows + 1), sharex=True,
                             gridspec_kw={"height_ratios": [1.4] * (rows - 2) + [1, 1.4]},
                             constrained_layout=True)
    k = 0
    if logmel is not None:
        _draw_timeline_logmel(axes[0], logmel, len(logmel) * mel_pool * dt * scale)
        k = 1
    _draw_event_lanes(axes[k], shown, det, true, scale, min_bar_fraction * t_end, minutes)
    _draw_probabilities(axes[k + 1], frame_probs, smoothed, classes, shown, clip_probs, thresholds,
                        (dt, scale, t_end, unit))
    sub = ("thin: frame probabilities, thick: post-processed, dotted: frame threshold"
           if smoothed is not None else "")
    length = f"{duration / 60:.1f} min" if minutes else f"{duration:.1f} s"
    fig.suptitle(f"{title} ({length}){': ' + sub if sub else ''}", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _draw_timeline_logmel(ax, logmel: np.ndarray, mel_t: float) -> None:
    """The timeline's log-mel panel over ``[0, mel_t]``, its colour range from the 1st to the 99.7th
    percentile."""
    lo, hi = np.percentile(logmel, [1.0, 99.7]) if logmel.size > 1 else (None, None)
    ax.imshow(logmel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, mel_t, 0, logmel.shape[1]),
              interpolation="nearest", vmin=lo, vmax=hi)
    ax.set_ylabel("mel bin")


def _draw_event_lanes(ax, shown: Sequence[str], det: Sequence, true: Sequence | None, scale: float,
                      min_w: float, minutes: bool) -> None:
    """The timeline's event panel: one lane per shown class, truth (upper half) over detections (lower
    half, hatched) when ``true`` is given, else the detections (labelled when few and not in minutes)."""
    for j, c in enumerate(shown):
        color = class_color(c)
        mine = [(on * scale, max((off - on) * scale, min_w)) for on, off, lab in det if lab == c]
        if true is not None:
            ours = [(on * scale, max((off - on) * scale, min_w)) for on, off, lab in true if lab == c]
            ax.broken_barh(ours, (j + 0.5, 0.4), facecolors=color, alpha=0.9)
            ax.broken_barh(mine, (j + 0.05, 0.4), facecolors=color, alpha=0.45, hatch="//", edgecolor=color)
        else:
            ax.broken_barh(mine, (j + 0.1, 0.8), facecolors=color, edgecolor=color)
            if not minutes and 0 < len(mine) <= 20:
                for x, w in mine:
                    ax.text(x + w / 2, j + 0.5, c.split("_")[0], ha="center", va="center", fontsize=6)
    n_det = {c: sum(lab == c for _, _, lab in det) for c in shown}
    ax.set_ylim(0, max(len(shown), 1))
    ax.set_yticks(np.arange(len(shown)) + 0.5, [f"{c.replace('_', ' ')} ({n_det[c]})" for c in shown],
                  fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("events (detected count): solid truth (upper half) / hatched detections (lower half)"
                 if true is not None else "detected events (count)", fontsize=8)


def _draw_probabilities(ax, frame_probs: np.ndarray, smoothed: np.ndarray | None, classes: Sequence[str],
                        shown: Sequence[str], clip_probs: Sequence[float] | None,
                        thresholds: Mapping[str, float] | None,
                        axis: tuple[float, float, float, str]) -> None:
    """The timeline's probability panel: each shown class's frame probabilities (max-pooled to
    :data:`MAX_COLS` columns), thin under the ``smoothed`` ones when given, and its threshold dotted;
    ``axis``: ``(frame seconds, time scale, axis end, unit)``."""
    dt, scale, t_end, unit = axis
    p, pool = pool_max(frame_probs)
    t = np.arange(len(p)) * pool * dt * scale
    sm = pool_max(smoothed)[0] if smoothed is not None else None
    for c in shown:
        j = list(classes).index(c)
        color = class_color(c)
        label = c if clip_probs is None else f"{c} (clip p {clip_probs[j]:.2f})"
        ax.plot(t, p[:, j], color=color, lw=0.8, alpha=0.6 if sm is not None else 1.0, label=label)
        if sm is not None:
            ax.plot(t, sm[:, j], color=color, lw=1.6)
        if thresholds and c in thresholds:
            ax.axhline(thresholds[c], color=color, ls=":", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, t_end)
    ax.set_ylabel("frame probability")
    ax.set_xlabel(f"time ({unit})")
    if shown:
        ax.legend(fontsize=6, loc="upper right", ncol=2)
    ax.grid(alpha=0.3)


def plot_per_class_f1(metrics: Mapping[str, Any], path: Path) -> Path:
    """Per-class event-based and segment-based F1 (sed_eval) as bars, macro values in the legend."""
    per = metrics["per_class"]
    classes = list(per)
    ev = [per[c]["event_f1"] or 0.0 for c in classes]
    seg = [per[c]["segment_f1"] or 0.0 for c in classes]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x - 0.2, ev, 0.4, label=f"event-based (macro {_fmt(metrics.get('event_f1_macro'), True)} %)")
    ax.bar(
        x + 0.2, seg, 0.4, label=f"segment-based 1 s (macro {_fmt(metrics.get('segment_f1_macro'), True)} %)"
    )
    ax.set_xticks(x, [c.replace("_", " ") for c in classes], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (sed_eval)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_psd_roc(curves: Mapping[str, Any], metrics: Mapping[str, Any], path: str | Path,
                 title: str = "PSD-ROC") -> Path | None:
    """PSD-ROC curves (eTPR against eFPR up to 100 per hour) of an evaluation: one panel for psds_eval
    (its thresholds) and one for sed_scores_eval (all thresholds), whichever ``curves`` holds; None if
    neither."""
    panels = []
    if "psds_eval" in curves:
        n = len(curves.get("psds_eval_thresholds", []))
        panels.append((f"psds_eval, {n} thresholds" if n else "psds_eval", curves["psds_eval"]))
    if "sed_scores_eval" in curves:
        panels.append(("sed_scores_eval, all thresholds", curves["sed_scores_eval"]))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (sub, cv) in zip(axes[0], panels):
        for key, c in cv.items():
            x, y = np.asarray(c["efpr"], float), np.asarray(c["etpr"], float)
            keep = x <= 100.0
            ax.step(x[keep], y[keep], where="post", label=f"{key} = {_fmt(metrics.get(key))}")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("eFPR (per hour)")
        ax.set_ylabel("eTPR")
        ax.set_title(f"{title} ({sub})", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_frame_probability_history(history: Sequence[Mapping[str, Any]], path: str | Path,
                                   classes: Sequence[str]) -> Path:
    """SM's mean frame probability on event frames (one line per class) and on background frames
    (black, dashed: the class mean) across epochs, one panel per source (:mod:`sed.training.diagnostics`)."""
    sources = [s for s in ("synthetic", "weak_nmf", "weak_true", "validation") if s in history[0]]
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.6), sharey=True, squeeze=False)
    for ax, source in zip(axes[0], sources):
        ev = np.array([h[source]["p_event"] for h in history], dtype=np.float64)
        bg = np.array([h[source]["p_background"] for h in history], dtype=np.float64)
        for c, name in enumerate(classes):
            if np.isfinite(ev[:, c]).any():
                ax.plot(epochs, ev[:, c], color=class_color(name), lw=1.2, label=name)
        ax.plot(epochs, np.nanmean(bg, axis=1), "k--", lw=1.5, label="background (mean)")
        ax.set_title(source)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean SM frame probability")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path, dpi=110)


def _band(ax, frames: Sequence[Any], col: str, label: str, color: Any, scale: float = 1.0) -> bool:
    """Mean over runs of ``col`` per epoch (index) with a +-sd band; False when no run has it."""
    import pandas as pd

    series = [f[col].rename(i) * scale for i, f in enumerate(frames) if col in f and f[col].notna().any()]
    if not series:
        return False
    df = pd.concat(series, axis=1)
    m, sd = df.mean(axis=1), df.std(axis=1, ddof=1).fillna(0.0)
    x = df.index.to_numpy() + 1  # epochs 1..n
    ax.plot(x, m.to_numpy(), color=color, label=f"{label} ({df.shape[1]} runs)", lw=1.5, marker="o", ms=3)
    ax.fill_between(x, (m - sd).to_numpy(), (m + sd).to_numpy(), color=color, alpha=0.2, lw=0)
    return True


def plot_claims_curves(curves: Mapping[str, Sequence[Any]], path: str | Path) -> Path:
    """Learning curves of several systems, each the mean over its seeds with a +-sd band: total train
    loss, the held-out selection criterion (frame mAP), validation frame mAP, validation event F1
    (Table 1), then each system's own loss terms and its per-class held-out frame AP.
    ``curves``: ``{system: [per-epoch DataFrame of one run, ...]}`` (``sed.claims.read_curves``)."""
    colors = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(curves)}
    shared = [("train/loss", "train loss (total, per epoch)", 1.0),
              ("val/holdout_frame_map", "held-out synthetic frame mAP", 1.0),
              ("val/frame_map", "validation (real) frame mAP", 1.0),
              ("val/event_f1_macro", "validation event F1, Table 1 post-processing (%)", 100.0)]
    n = len(shared) + 2 * len(curves)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (col, title, scale) in zip(flat, shared):
        drawn = [_band(ax, frames, col, name, colors[name], scale) for name, frames in curves.items()]
        ax.set_title(title, fontsize=9)
        if any(drawn):
            ax.legend(fontsize=7)
    for ax, (name, frames) in zip(flat[len(shared):], curves.items()):
        terms = sorted({c for f in frames for c in f.columns if c.startswith("train/l_")})
        for i, term in enumerate(terms):
            _band(ax, frames, term, term.split("/", 1)[1], plt.get_cmap("Dark2")(i % 8))
        ax.set_title(f"{name}: loss terms", fontsize=9)
        if terms:
            ax.legend(fontsize=7)
    for ax, (name, frames) in zip(flat[len(shared) + len(curves):], curves.items()):
        prefix = "val/holdout_ap/"
        for cls in dict.fromkeys(c[len(prefix):] for f in frames for c in f.columns if c.startswith(prefix)):
            _band(ax, frames, f"{prefix}{cls}", cls, class_color(cls))
        ax.set_title(f"{name}: held-out frame AP per class", fontsize=9)
        ax.legend(fontsize=5, ncol=2)
    for ax in flat[:n]:
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.axis("off")
    return save_figure(fig, path, dpi=90)


def plot_per_class_bars(bars: Mapping[str, Mapping[str, tuple[float | None, float | None]]], path: str | Path,
                        title: str = "") -> Path:
    """Per-class F1 bars, one group per class and one bar per system: ``{system: {class: (mean, sd)}}``,
    the sd drawn as an error bar (a missing mean draws nothing)."""
    names = list(bars)
    classes = list(dict.fromkeys(c for b in bars.values() for c in b))
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(11, 4))
    for i, name in enumerate(names):
        m = [(bars[name].get(c) or (None, None))[0] for c in classes]
        sd = [(bars[name].get(c) or (None, None))[1] for c in classes]
        ax.bar(x - 0.4 + width * (i + 0.5), [100 * v if v is not None else np.nan for v in m], width,
               yerr=[100 * v if v is not None else 0.0 for v in sd], capsize=2, label=name)
    ax.set_xticks(x, [c.replace("_", " ") for c in classes], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("event F1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=100)

"""Generated systems for ``sedx score`` tests and its benchmark: a ground truth, frame scores that follow it
with noise, the detections at a threshold, operating-point TSVs and sed_scores_eval score TSVs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sed.core.constants import DESED_CLASSES as ALL_CLASSES
from sed.core.constants import FRAME_SECONDS

CLASSES = ("Cat", "Dog", "Speech")
FRAME = 0.128


def make_truth(
    n_clips: int, seed: int = 0, classes: Sequence[str] = CLASSES, short: int = 2
) -> tuple[dict, dict]:
    """``(events, durations)``: 0-3 non-overlapping events per class per clip; ``short`` clips last 7 s."""
    rng = np.random.default_rng(seed)
    events, durations = {}, {}
    for i in range(n_clips):
        f = f"clip{i:04d}.wav"
        dur = 7.0 if i < short else 10.0
        durations[f] = dur
        evs = []
        for c in classes:
            t = float(rng.uniform(0, 2))
            for _ in range(int(rng.integers(0, 3))):
                on = round(t + float(rng.uniform(0, 1.5)), 3)
                off = round(min(on + float(rng.uniform(0.3, 3.0)), dur), 3)
                if off - on < 0.2:
                    break
                evs.append((on, off, c))
                t = off + 0.3
        events[f] = evs
    return events, durations


def make_scores(
    events: Mapping, durations: Mapping, seed: int = 1, noise: float = 0.35, classes=CLASSES
) -> dict[str, np.ndarray]:
    """Per clip ``(frames, classes)`` scores in [0, 1]: high inside the (shifted) events, noise elsewhere."""
    rng = np.random.default_rng(seed)
    out = {}
    for f, evs in events.items():
        n = int(np.ceil(durations[f] / FRAME))
        t = (np.arange(n) + 0.5) * FRAME
        raw = rng.uniform(0, 1, size=(n + 4, len(classes)))
        s = (
            noise * (raw[:-4] + raw[1:-3] + raw[2:-2] + raw[3:-1] + raw[4:]) / 5
        )  # smooth noise: fewer fragments
        for on, off, c in evs:
            shift = rng.normal(0, 0.15)
            inside = (t >= on + shift) & (t < off + shift)
            s[inside, classes.index(c)] += rng.uniform(0.4, 0.65)
        out[f] = np.clip(s, 0, 1)
    return out


def detections_at(
    scores: Mapping[str, np.ndarray], durations: Mapping, threshold: float, classes=CLASSES
) -> pd.DataFrame:
    """Events = runs of frames above ``threshold``, for every clip at once (clips padded to one length)."""
    names = list(scores)
    t_max = max(len(s) for s in scores.values())
    x = np.zeros((len(names), t_max + 2, len(classes)), dtype=np.int8)
    for i, f in enumerate(names):
        x[i, 1 : len(scores[f]) + 1] = scores[f] > threshold
    d = np.diff(x, axis=1)
    sn, st, sc = np.nonzero(d == 1)
    en, et, ec = np.nonzero(d == -1)
    o1, o2 = np.lexsort((st, sc, sn)), np.lexsort((et, ec, en))
    dur = np.asarray([durations[f] for f in names])
    n = sn[o1]
    on = np.round(st[o1] * FRAME, 6)
    off = np.round(np.minimum(et[o2] * FRAME, dur[n]), 6)
    return pd.DataFrame(
        {
            "filename": np.asarray(names, dtype=object)[n],
            "onset": on,
            "offset": off,
            "event_label": np.asarray(classes, dtype=object)[sc[o1]],
        }
    )


def write_truth(path: Path, events: Mapping) -> Path:
    lines = ["filename\tonset\toffset\tevent_label"]
    for f, evs in events.items():
        lines += [f"{f}\t{on}\t{off}\t{c}" for on, off, c in evs] or [f"{f}\t\t\t"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_durations(path: Path, durations: Mapping) -> Path:
    path.write_text("filename\tduration\n" + "".join(f"{f}\t{d}\n" for f, d in durations.items()))
    return path


def write_detections(path: Path, table: pd.DataFrame) -> Path:
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")
    return path


#: the layouts systems publish detections in (``write_layout``), each as the field writes it
LAYOUTS = ("desed", "dcase2020_ops", "desed_task_csv", "aliases", "no_header")


def write_layout(path: Path, table: pd.DataFrame, layout: str) -> Path:
    """``table`` written as a published system writes it: ``desed`` (tab, ``filename onset offset
    event_label``), ``dcase2020_ops`` (the DCASE 2020 baseline's operating points: tab, ``event_label
    onset offset filename index``), ``desed_task_csv`` (DESED_task: comma CSV with pandas' unnamed index
    column first, ``,event_label,onset,offset,filename``), ``aliases`` (tab, ``file start end label``),
    ``no_header`` (tab, DCASE order, no header)."""
    t = table[["filename", "onset", "offset", "event_label"]].reset_index(drop=True)
    if layout == "desed":
        t.to_csv(path, sep="\t", index=False, float_format="%.6g")
    elif layout == "dcase2020_ops":
        t[["event_label", "onset", "offset", "filename"]].assign(index=np.arange(len(t))).to_csv(
            path, sep="\t", index=False, float_format="%.6g"
        )
    elif layout == "desed_task_csv":
        t[["event_label", "onset", "offset", "filename"]].to_csv(path, float_format="%.6g")
    elif layout == "aliases":
        t.set_axis(["file", "start", "end", "label"], axis=1).to_csv(
            path, sep="\t", index=False, float_format="%.6g"
        )
    elif layout == "no_header":
        t.to_csv(path, sep="\t", index=False, header=False, float_format="%.6g")
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return path


def read_layout(path: Path, layout: str) -> pd.DataFrame:
    """What a direct library call gets from a file of ``layout``: pandas' own reading, DCASE columns."""
    if layout == "desed_task_csv":
        t = pd.read_csv(path, index_col=0)
    elif layout == "no_header":
        t = pd.read_csv(path, sep="\t", header=None, names=["filename", "onset", "offset", "event_label"])
    else:
        t = pd.read_csv(path, sep="\t").rename(
            columns={"file": "filename", "start": "onset", "end": "offset", "label": "event_label"}
        )
    return t[["filename", "onset", "offset", "event_label"]]


def write_operating_points(
    folder: Path, scores, durations, thresholds: Sequence[float]
) -> list[pd.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    tables = []
    for th in thresholds:
        t = detections_at(scores, durations, th)
        write_detections(folder / f"predictions_th_{th:.2f}.tsv", t)
        tables.append(pd.read_csv(folder / f"predictions_th_{th:.2f}.tsv", sep="\t"))
    return tables


def score_frames(scores, durations, classes=CLASSES) -> dict[str, pd.DataFrame]:
    """sed_scores_eval score DataFrames keyed by audio id (the last frame's offset clipped to the
    duration)."""
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    out = {}
    for f, s in scores.items():
        ts = np.minimum(np.arange(len(s) + 1) * FRAME, durations[f])
        out[Path(f).stem] = create_score_dataframe(s.astype(np.float64), ts, list(classes))
    return out


def write_score_folder(folder: Path, scores, durations, classes=CLASSES) -> dict[str, pd.DataFrame]:
    from sed_scores_eval.base_modules.io import write_sed_scores

    frames = score_frames(scores, durations, classes)
    write_sed_scores(frames, folder)
    return frames


def truth_probs(names: Sequence[str], gt: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Frame and clip probabilities (10 DESED classes) that follow the ground truth: 0.9 on every true
    event's frames and classes, uniform noise under 0.1 elsewhere (seed 0)."""
    rng = np.random.default_rng(0)
    frame = (rng.random((len(names), 640, 10)) * 0.1).astype(np.float32)
    clip = np.zeros((len(names), 10), np.float32)
    for i, f in enumerate(names):
        for on, off, lab in gt[f]:
            k = ALL_CLASSES.index(lab)
            frame[i, int(on / FRAME_SECONDS) : int(np.ceil(off / FRAME_SECONDS)), k] = 0.9
            clip[i, k] = 0.9
    return frame, clip

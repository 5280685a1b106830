"""Quality of the NMF labels against the weak clips' true strong labels (issue 3, point 5).

Event-based F1 (sed_eval, SPEC section 7: t_collar 0.2 s, offsets within 0.2 s or 20 % of the length)
and segment-based F1 (1 s segments), per class and macro, through :mod:`sed.evaluation.metrics`; the
same for the trivial labels (every tag active over the whole clip). Also a PNG of a few clips (log-mel,
activation curves with the threshold, true and NMF events on one time axis) and, for Hydra multirun
sweeps, a callback that prints one summary row per sweep point.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sed.core.constants import FRAME_SECONDS
from sed.evaluation.metrics import event_based, ground_truth_table, segment_based
from sed.reporting.plots import class_color, draw_events, draw_logmel, save_figure
from sed.reporting.sweeps import sweep_points
from sed.reporting.tables import markdown_table

log = logging.getLogger(__name__)


def trivial_labels(tags: Mapping[str, Sequence[str]], clip_seconds: float = 10.0) -> dict[str, list[tuple]]:
    """Every tag active over the whole clip: the baseline the NMF labels must beat."""
    return {f: [(0.0, clip_seconds, t) for t in dict.fromkeys(ts)] for f, ts in tags.items()}


def _table(events: Mapping[str, Sequence]):
    return ground_truth_table({f: [(e[0], e[1], e[2]) for e in evs] for f, evs in events.items()})


def score_labels(estimated: Mapping[str, Sequence], truth: Mapping[str, Sequence], filenames: Sequence[str],
                 clip_seconds: float = 10.0) -> dict[str, Any]:
    """``{"event": {...}, "segment": {...}}`` with ``f1_macro``, ``f1_micro`` and ``per_class`` each."""
    ref = _table({f: truth.get(f, []) for f in filenames})
    est = _table({f: estimated.get(f, []) for f in filenames})
    return {
        "event": event_based(ref, est, filenames),
        "segment": segment_based(ref, est, filenames, durations={f: clip_seconds for f in filenames}),
    }


def _f(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{100 * float(x):.1f}"


def markdown_tables(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """One table per metric (event, segment): rows = classes + macro + micro, columns = systems (F1 in %)."""
    systems = list(scores)
    out = []
    for metric, title in (("event", "Event-based F1 (%) (t_collar 0.2 s, 20 % of length)"),
                          ("segment", "Segment-based F1 (%) (1 s segments)")):
        classes = list(dict.fromkeys(c for s in systems for c in scores[s][metric]["per_class"]))
        rows = [{"class": c, **{s: _f(scores[s][metric]["per_class"].get(c, {}).get("f1")) for s in systems}}
                for c in classes]
        rows.append({"class": "**macro**",
                     **{s: f"**{_f(scores[s][metric]['f1_macro'])}**" for s in systems}})
        rows.append({"class": "micro", **{s: _f(scores[s][metric]["f1_micro"]) for s in systems}})
        out += [f"### {title}\n", markdown_table(rows, ["class", *systems]), ""]
    return "\n".join(out)


def write_quality(
    out_dir: str | Path, scores: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> str:
    """Write ``quality.md`` and ``quality.json`` to ``out_dir``; returns the markdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = markdown_tables(scores)
    (out_dir / "quality.md").write_text(md + "\n")
    text = json.dumps({"scores": scores, **(extra or {})}, indent=1, default=float)
    (out_dir / "quality.json").write_text(text + "\n")
    return md


def plot_clips(
    out: str | Path,
    names: Sequence[str],
    logmels: Sequence[np.ndarray],
    curves: Sequence[Mapping[str, np.ndarray]],
    truth: Mapping[str, Sequence],
    estimated: Mapping[str, Sequence],
    threshold: float,
    *,
    normalize: str = "max",
    frame_seconds: float = FRAME_SECONDS,
) -> Path:
    """One row of three panels per clip, sharing the time axis: log-mel; each tagged class's curve with
    the threshold; true events (top half) and NMF events (bottom half)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    fig, axes = plt.subplots(3 * n, 1, figsize=(11, 4.2 * n), sharex=True,
                             gridspec_kw={"height_ratios": [2.2, 1.2, 0.8] * n})
    axes = np.atleast_1d(axes)
    for i, name in enumerate(names):
        ax_m, ax_a, ax_e = axes[3 * i], axes[3 * i + 1], axes[3 * i + 2]
        draw_logmel(ax_m, logmels[i], frame_seconds)
        ax_m.set_title(name, fontsize=9)
        t = np.arange(logmels[i].shape[0]) * frame_seconds
        for c, a in curves[i].items():
            ax_a.plot(t, a, color=class_color(c), lw=1, label=c)
        ax_a.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax_a.set_ylabel(f"activation\n({normalize})", fontsize=8)
        ax_a.legend(fontsize=7, loc="upper right", ncol=3)
        draw_events(ax_e, truth.get(name, []), 0.5, 0.5)
        draw_events(ax_e, estimated.get(name, []), 0.0, 0.5)
        ax_e.set_ylim(0, 1)
        ax_e.set_yticks([0.25, 0.75], ["NMF", "truth"], fontsize=8)
        ax_e.axhline(0.5, color="grey", lw=0.5)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, 10.0)
    return save_figure(fig, out, dpi=90)


def summary_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per sweep point that wrote ``quality.json`` under ``sweep_dir`` (Hydra multirun folder)."""
    rows = []
    for q in sweep_points(sweep_dir, "quality.json"):
        d = json.loads(q.read_text())
        s = d["scores"]
        ov = q.parent / ".hydra" / "overrides.yaml"
        swept = ""
        if ov.is_file():  # the sweep's own parameters (Hydra writes each job's overrides there)
            items = [x.strip()[2:] for x in ov.read_text().splitlines() if x.strip().startswith("- ")]
            swept = " ".join(x for x in items if x.startswith("nmf."))
        rows.append({"job": q.parent.name, "overrides": swept, **d.get("point", {}),
                     "event_f1": s["nmf"]["event"]["f1_macro"], "segment_f1": s["nmf"]["segment"]["f1_macro"],
                     "trivial_event_f1": s["trivial"]["event"]["f1_macro"]})
    return rows


def summary_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no sweep point wrote quality.json)"
    best = max(range(len(rows)), key=lambda i: rows[i].get("event_f1") or -1)
    return markdown_table(rows,
                          fmt=lambda k, v: _f(v) if k.endswith("_f1") else ("" if v is None else str(v)),
                          notes={best: " <- best event F1"})


def sweep_summary(sweep_dir: Path, config=None) -> str:  # noqa: ANN001
    """``hydra.callbacks.summary`` of conf/nmf_labels.yaml: ``summary.md``, one row per sweep point."""
    md = summary_markdown(summary_rows(sweep_dir))
    (Path(sweep_dir) / "summary.md").write_text(md + "\n")
    return f"NMF label sweep ({sweep_dir}): macro F1 (%) of the labels vs the truth\n{md}"

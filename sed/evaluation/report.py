"""Evaluation report: ``report.md`` with the figures and per-class table, and plots (issue 4, point 4).

Plots (drawn by :mod:`sed.reporting.plots`): per-class F1 bars (event-based and segment-based, sed_eval), the PSD-ROC curves (psds_eval at
its thresholds and sed_scores_eval threshold-independent), and a few clips' timelines: log-mel (when
the clip's audio is at hand), true and predicted events, and the frame probability curves (raw and
post-processed) with each class's frame threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sed.reporting.plots import plot_per_class_f1, plot_psd_roc, plot_timeline
from sed.reporting.tables import markdown_table, per_class_rows

log = logging.getLogger(__name__)

def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


# ---------------------------------------------------------------------------- plots
def pick_clips(filenames: Sequence[str], ground_truth: Mapping[str, Sequence], n: int) -> list[int]:
    """``n`` clips spread over the set (sorted by name), preferring clips with events; deterministic."""
    if n <= 0:
        return []
    order = sorted(range(len(filenames)), key=lambda i: filenames[i])
    with_events = [i for i in order if ground_truth.get(filenames[i])] or order
    idx = np.linspace(0, len(with_events) - 1, num=min(n, len(with_events))).round().astype(int)
    return [with_events[i] for i in dict.fromkeys(idx.tolist())]


def clip_logmel(data_cfg: Any, split: str, filename: str) -> np.ndarray | None:
    """The clip's log-mel ``(frames, mels)`` from its audio under the data config, or None when unavailable."""
    try:
        import torch

        from sed.audio.features import LogMel
        from sed.audio.io import load_audio
        from sed.datamodules.layout import DesedLayout

        s = DesedLayout.from_cfg(data_cfg).split(split)
        path = Path(s.audio_dir) / filename
        if not path.is_file():
            return None
        wave = torch.from_numpy(load_audio(path))[None]
        with torch.no_grad():
            return LogMel()(wave)[0].numpy()
    except Exception as e:  # noqa: BLE001 - a report without a spectrogram beats no report
        log.debug("no log-mel for %s: %s", filename, e)
        return None


# ---------------------------------------------------------------------------- report
def coverage_lines(run: dict) -> list[str]:
    """Report lines on the ground-truth clips left out (missing audio) and the clip durations used."""
    lines = []
    lo = run.get("left_out")
    if lo:
        lines.append(f"- **left out**: {lo['n_clips']} of {lo['of_clips']} ground-truth clips ({lo['n_events']} of "
                     f"{lo['of_events']} events): {lo['reason']} under `{lo['audio_dir']}` (list: `{lo['list']}`)")
    du = run.get("durations")
    if du:
        lines.append(f"- clip durations: from `{du['file']}` ({du['n_clips']} clips listed there)")
    return lines


def write_report(
    out_dir: str | Path,
    result,
    metrics: Mapping[str, Any],
    preds,
    ground_truth: Mapping[str, Sequence],
    *,
    data_cfg: Any = None,
    split: str = "validation",
    n_timelines: int = 4,
    logmel: bool = True,
) -> Path:
    """Write ``report.md`` and its plots into ``out_dir``; returns the report's path."""
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    run = metrics.get("run", {})
    tune_split = run.get("tune_split")
    tuned_on = run.get("postproc_tuned_on")
    lines = ["# Evaluation report", ""]
    lines += [
        f"- reported split: **{run.get('split', split)}** ({metrics.get('n_clips')} clips, {metrics.get('n_detections')} detections)",
        f"- predictions: {run.get('predictions', '?')}",
        f"- ground truth: {run.get('ground_truth', '?')}",
        f"- post-processing: `conf/postproc/{run.get('postproc_name') or '?'}.yaml`; "
        + (f"tuned on split **{tuned_on}**" if tuned_on else "Table 1 of the paper (not tuned here)"),
    ]
    if tune_split:
        lines.append(f"- sweep points ranked on split **{tune_split}** by `{metrics.get('select_metric')}`")
    lines += coverage_lines(run)
    reported = run.get("split", split)
    if tuned_on and tuned_on == reported:
        lines.append(
            f"- **warning**: the post-processing was tuned on the reported split ({reported}): these figures are optimistic"
        )
    lines += ["", "## Figures", ""]
    lines += [f"- {line}" for line in metrics.get("lines", {}).values()]
    if metrics.get("notes"):
        lines += ["", *[f"- note: {n}" for n in metrics["notes"]]]
    if metrics.get("tune"):
        tn = metrics["tune"]
        lines += [
            "",
            f"Tuning split **{tn['split']}**: "
            + ", ".join(
                f"{k} {_fmt(tn.get(k))}" for k in ("event_f1_macro", "psds") if tn.get(k) is not None
            ),
        ]
    lines += [
        "",
        "## Per class",
        "",
    ]
    titles = {"event_f1": "event F1 %", "event_precision": "precision %", "event_recall": "recall %",
              "n_ref": "n ref", "n_sys": "n sys", "segment_f1": "segment F1 %", "psds_f": "PSDS F %"}
    rows = [{"class": r["class"], **{t: r[k] if k.startswith("n_") else _fmt(r[k], True) for k, t in titles.items()}}
            for r in per_class_rows(metrics)]
    lines.append(markdown_table(rows, ["class", *titles.values()]))
    lines += ["", "## Plots", ""]
    p = plot_per_class_f1(metrics, plots / "per_class_f1.png")
    lines.append(f"![per-class F1]({p.relative_to(out)})")
    p = plot_psd_roc(result.curves, metrics, plots / "psd_roc.png")
    if p is not None:
        lines.append(f"![PSD-ROC]({p.relative_to(out)})")
    for i in pick_clips(preds.filenames, ground_truth, n_timelines):
        lm = clip_logmel(data_cfg, split, preds.filenames[i]) if (logmel and data_cfg is not None) else None
        name = Path(preds.filenames[i]).stem
        f = preds.filenames[i]
        det = result.detections[result.detections["filename"] == f]
        params = result.params or (result.decoder.params if result.decoder is not None else None)
        p = plot_timeline(plots / f"timeline_{name}.png", f, preds.frame_probs[i], preds.classes, preds.frame_seconds,
                          list(zip(det["onset"], det["offset"], det["event_label"])),
                          truth=list(ground_truth.get(f, [])), logmel=lm, clip_probs=preds.clip_probs[i],
                          smoothed=result.decoder.scores[i] if result.decoder is not None else None,
                          thresholds=params.frame_thresholds if params is not None else None)
        lines.append(f"![{name}]({p.relative_to(out)})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

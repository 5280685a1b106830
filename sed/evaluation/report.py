"""Evaluation report: ``report.md`` with the figures and per-class table, and plots (issue 4, point 4).

Plots (drawn by :mod:`sed.reporting.plots`): per-class F1 bars (event-based and segment-based,
sed_eval), the PSD-ROC curves (psds_eval at its thresholds and sed_scores_eval threshold-independent),
and a few clips' timelines: log-mel (when
the clip's audio is at hand), true and predicted events, and the frame probability curves (raw and
post-processed) with each class's frame threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sed.audio.io import load_audio
from sed.datamodules.layout import DesedLayout
from sed.evaluation import metrics as M
from sed.evaluation.scenarios import SCENARIOS
from sed.reporting.plots import plot_per_class_f1, plot_psd_roc, plot_timeline
from sed.reporting.tables import markdown_table, per_class_rows

log = logging.getLogger(__name__)

def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


# -------------------------------------------------------------------- zeros explained (issue 10 part 5)
def add_alpha_st0(metrics: dict, result, ground_truth: Mapping[str, Sequence]) -> None:
    """When PSDS macro, PSDS1 or PSDS2 is 0, store the same figure with alpha_st = 0 in
    ``metrics["alpha_st0"]`` (PSDS macro's is psds_eval's plain PSDS; PSDS1/PSDS2 are recomputed with
    sed_scores_eval on the same scores), so the report can tell a cross-class penalty from no detection."""
    out = {}
    if metrics.get("psds_macro") == 0 and metrics.get("psds") is not None:
        out["psds_macro"] = metrics["psds"]
    todo = [replace(SCENARIOS[k], alpha_st=0.0) for k in ("psds1", "psds2") if metrics.get(k) == 0]
    if todo and result is not None and result.decoder is not None:
        gt, _ = M.merge_connected({f: ground_truth.get(f, []) for f in result.decoder.preds.filenames})
        p = result.decoder.preds
        figs, _ = M.sed_scores_psds(
            M.score_tables(result.decoder),
            {M.audio_id(f): v for f, v in gt.items()},
            {M.audio_id(f): float(d) for f, d in zip(p.filenames, p.durations)},
            todo,
        )
        out.update(figs)
    if out:
        metrics["alpha_st0"] = out


def zero_explanations(preds, params, metrics: Mapping[str, Any]) -> list[str]:
    """One line per zero the figures hold and why: classes that cannot produce an event (largest frame
    probability of the tagged clips not above the class's threshold, or no clip passes tagging), PSDS
    figures at 0 because of the cross-class penalty (with the alpha_st = 0 figure), and psds_eval's F-score
    averaging only the classes with detections (with the all-classes figure)."""
    lines = []
    per = metrics.get("per_class", {})
    if preds is not None and params is not None:
        th = params.thresholds_for(preds.classes)
        tag = params.tagging_for(preds.classes)
        for k, c in enumerate(preds.classes):
            if per.get(c, {}).get("n_sys"):
                continue
            tagged = preds.clip_probs[:, k] > tag[k]
            cmax = float(preds.clip_probs[:, k].max())
            if not tagged.any():
                lines.append(
                    f"{c}: no event possible: no clip passes tagging (largest clip probability {cmax:.3f} "
                    f"<= tagging threshold {tag[k]:g} over {len(preds)} clips)"
                )
                continue
            fmax = float(preds.frame_probs[tagged, :, k].max())
            if fmax <= th[k]:
                lines.append(
                    f"{c}: no event possible: largest frame probability {fmax:.3f} in the "
                    f"{int(tagged.sum())} tagged clips (of {len(preds)}) <= its frame threshold {th[k]:g}"
                )
            else:
                lines.append(
                    f"{c}: no detection: frames pass threshold {th[k]:g} (largest {fmax:.3f} in "
                    f"{int(tagged.sum())} tagged clips) but the median filter or event removal takes them "
                    "all away"
                )
    a0 = metrics.get("alpha_st0", {})
    names = {"psds_macro": "PSDS macro (psds_eval)", "psds1": "PSDS1", "psds2": "PSDS2"}
    for k, name in names.items():
        if metrics.get(k) == 0 and k in a0:
            if a0[k] and a0[k] > 0:
                lines.append(
                    f"{name} = 0 because of the cross-class penalty (alpha_st 1 subtracts the spread of the "
                    f"per-class TPRs): with alpha_st = 0 it is {a0[k]:.3f}"
                )
            else:
                lines.append(f"{name} = 0 with alpha_st = 0 too: no detection meets its criteria")
    f = metrics.get("psds_f_score")
    if f is not None:
        with_gt = [c for c, r in per.items() if r.get("n_ref")]
        scored = [c for c in with_gt if per[c].get("psds_f") is not None]
        if len(scored) < len(with_gt):
            allc = sum(per[c]["psds_f"] or 0.0 for c in with_gt) / len(with_gt)
            lines.append(
                f"PSDS F-score {100 * f:.1f} % averages only the {len(scored)} of {len(with_gt)} classes "
                f"with detections (psds_eval leaves the others out); over all {len(with_gt)} classes: "
                f"{100 * allc:.1f} %"
            )
    return lines


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
    """The clip's log-mel ``(frames, mels)`` from its audio under the data config, or None when
    unavailable."""
    try:
        # lazy: torch (via sed.audio.features) costs ~1 s; `sedx score --out` imports this module, no log-mel
        import torch

        from sed.audio.features import LogMel

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
        lines.append(f"- **left out**: {lo['n_clips']} of {lo['of_clips']} ground-truth clips "
                     f"({lo['n_events']} of {lo['of_events']} events): {lo['reason']} under "
                     f"`{lo['audio_dir']}` (list: `{lo['list']}`)")
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
    lines = ["# Evaluation report", ""]
    lines += _header_lines(metrics, split)
    lines += ["", "## Figures", ""]
    lines += [f"- {line}" for line in metrics.get("lines", {}).values()]
    lines += _figure_notes(metrics)
    lines += [
        "",
        "## Per class",
        "",
    ]
    lines.append(_per_class_table(metrics))
    lines += ["", "## Plots", ""]
    p = plot_per_class_f1(metrics, plots / "per_class_f1.png")
    lines.append(f"![per-class F1]({p.relative_to(out)})")
    p = plot_psd_roc(result.curves, metrics, plots / "psd_roc.png")
    if p is not None:
        lines.append(f"![PSD-ROC]({p.relative_to(out)})")
    for i in pick_clips(preds.filenames, ground_truth, n_timelines):
        lm = clip_logmel(data_cfg, split, preds.filenames[i]) if (logmel and data_cfg is not None) else None
        p = _timeline(plots, result, preds, i, ground_truth, lm)
        lines.append(f"![{Path(preds.filenames[i]).stem}]({p.relative_to(out)})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _header_lines(metrics: Mapping[str, Any], split: str) -> list[str]:
    """The report's opening list: split, predictions, ground truth, post-processing and where it was tuned
    (with a warning when on the reported split), and the coverage lines."""
    run = metrics.get("run", {})
    tune_split = run.get("tune_split")
    tuned_on = run.get("postproc_tuned_on")
    postproc = run.get("postproc_source") or "conf/postproc/" + (run.get("postproc_name") or "?") + ".yaml"
    lines = [
        f"- reported split: **{run.get('split', split)}** ({metrics.get('n_clips')} clips, "
        f"{metrics.get('n_detections')} detections)",
        f"- predictions: {run.get('predictions', '?')}",
        f"- ground truth: {run.get('ground_truth', '?')}",
        f"- post-processing: `{postproc}`; "
        + (f"tuned on split **{tuned_on}**" if tuned_on else "Table 1 of the paper (not tuned here)"),
    ]
    if tune_split:
        lines.append(f"- sweep points ranked on split **{tune_split}** by `{metrics.get('select_metric')}`")
    lines += coverage_lines(run)
    reported = run.get("split", split)
    if tuned_on and tuned_on == reported:
        lines.append(
            f"- **warning**: the post-processing was tuned on the reported split ({reported}): "
            "these figures are optimistic"
        )
    return lines


def _figure_notes(metrics: Mapping[str, Any]) -> list[str]:
    """What follows the figures: why some are zero, the per-split lines, the notes and the tuning split."""
    lines: list[str] = []
    if metrics.get("explanations"):
        lines += ["", "Why some figures are zero:", ""] + [f"- {x}" for x in metrics["explanations"]]
    if metrics.get("splits"):
        lines += ["", "## Splits", "",
                  "Each line: the split, the post-processing and the split it was tuned on, "
                  "the figures, and whether the split tuned it (optimistic) or is reported.", ""]
        for row in metrics["splits"]:
            lines.append(f"- {row['line']}")
            lines += [f"  - {x}" for x in row.get("explanations") or []]
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
    return lines


def _per_class_table(metrics: Mapping[str, Any]) -> str:
    """The per-class table (markdown): event F1, precision, recall, counts, segment F1, PSDS F (in %)."""
    titles = {"event_f1": "event F1 %", "event_precision": "precision %", "event_recall": "recall %",
              "n_ref": "n ref", "n_sys": "n sys", "segment_f1": "segment F1 %", "psds_f": "PSDS F %"}
    rows = [{"class": r["class"],
             **{t: r[k] if k.startswith("n_") else _fmt(r[k], True) for k, t in titles.items()}}
            for r in per_class_rows(metrics)]
    return markdown_table(rows, ["class", *titles.values()])


def _timeline(plots: Path, result, preds, i: int, ground_truth: Mapping[str, Sequence],
              logmel: np.ndarray | None) -> Path:
    """Clip ``i``'s timeline plot (``timeline_<name>.png`` in ``plots``): its detections, truth, raw and
    post-processed probabilities and frame thresholds."""
    name = Path(preds.filenames[i]).stem
    f = preds.filenames[i]
    det = result.detections[result.detections["filename"] == f]
    params = result.params or (result.decoder.params if result.decoder is not None else None)
    return plot_timeline(plots / f"timeline_{name}.png", f, preds.frame_probs[i], preds.classes,
                         preds.frame_seconds, list(zip(det["onset"], det["offset"], det["event_label"])),
                         truth=list(ground_truth.get(f, [])), logmel=logmel, clip_probs=preds.clip_probs[i],
                         smoothed=result.decoder.scores[i] if result.decoder is not None else None,
                         thresholds=params.frame_thresholds if params is not None else None,
                         duration=float(preds.durations[i]))

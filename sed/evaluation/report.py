"""Evaluation report: ``report.md`` with the figures and per-class table, and plots (issue 4, point 4).

Plots: per-class F1 bars (event-based and segment-based, sed_eval), the PSD-ROC curves (psds_eval at
its thresholds and sed_scores_eval threshold-independent), and a few clips' timelines: log-mel (when
the clip's audio is at hand), true and predicted events, and the frame probability curves (raw and
post-processed) with each class's frame threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sed.core.constants import CLASSES  # noqa: E402

log = logging.getLogger(__name__)

try:  # one colour per class, shared with the project's other plots
    from sed.reporting.plots import CLASS_COLORS
except Exception:  # noqa: BLE001 - plots.py is another module's; fall back to tab10
    CLASS_COLORS = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(CLASSES)}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


# ---------------------------------------------------------------------------- zeros explained (issue 10 part 5)
def add_alpha_st0(metrics: dict, result, ground_truth: Mapping[str, Sequence]) -> None:
    """When PSDS macro, PSDS1 or PSDS2 is 0, store the same figure with alpha_st = 0 in
    ``metrics["alpha_st0"]`` (PSDS macro's is psds_eval's plain PSDS; PSDS1/PSDS2 are recomputed with
    sed_scores_eval on the same scores), so the report can tell a cross-class penalty from no detection."""
    from sed.evaluation import metrics as M

    out = {}
    if metrics.get("psds_macro") == 0 and metrics.get("psds") is not None:
        out["psds_macro"] = metrics["psds"]
    todo = {k: {**M.SED_SCORES_SETTINGS[k], "alpha_st": 0.0} for k in ("psds1", "psds2") if metrics.get(k) == 0}
    if todo and result is not None and result.decoder is not None:
        gt, _ = M.merge_connected({f: ground_truth.get(f, []) for f in result.decoder.preds.filenames})
        p = result.decoder.preds
        figs, _ = M.sed_scores_psds(
            M.score_tables(result.decoder),
            {M.audio_id(f): v for f, v in gt.items()},
            {M.audio_id(f): float(d) for f, d in zip(p.filenames, p.durations)},
            settings=todo,
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
                    f"{c}: no event possible: largest frame probability {fmax:.3f} in the {int(tagged.sum())} "
                    f"tagged clips (of {len(preds)}) <= its frame threshold {th[k]:g}"
                )
            else:
                lines.append(
                    f"{c}: no detection: frames pass threshold {th[k]:g} (largest {fmax:.3f} in "
                    f"{int(tagged.sum())} tagged clips) but the median filter or event removal takes them all away"
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
                f"PSDS F-score {100 * f:.1f} % averages only the {len(scored)} of {len(with_gt)} classes with "
                f"detections (psds_eval leaves the others out); over all {len(with_gt)} classes: {100 * allc:.1f} %"
            )
    return lines


# ---------------------------------------------------------------------------- plots
def plot_per_class_f1(metrics: Mapping[str, Any], path: Path) -> Path:
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


def plot_psd_roc(curves: Mapping[str, Any], metrics: Mapping[str, Any], path: Path) -> Path | None:
    panels = []
    if "psds_eval" in curves:
        n = len(curves.get("psds_eval_thresholds", []))
        panels.append((f"psds_eval, {n} thresholds", curves["psds_eval"]))
    if "sed_scores_eval" in curves:
        panels.append(("sed_scores_eval, all thresholds", curves["sed_scores_eval"]))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, cv) in zip(axes[0], panels):
        for key, c in cv.items():
            x, y = np.asarray(c["efpr"], float), np.asarray(c["etpr"], float)
            keep = x <= 100.0
            ax.step(x[keep], y[keep], where="post", label=f"{key} = {_fmt(metrics.get(key))}")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("eFPR (per hour)")
        ax.set_ylabel("eTPR")
        ax.set_title(f"PSD-ROC ({title})", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


def plot_timeline(
    i: int, preds, result, ground_truth: Mapping[str, Sequence], path: Path, logmel: np.ndarray | None = None
) -> Path:
    f = preds.filenames[i]
    dt = preds.frame_seconds
    t = np.arange(preds.frame_probs.shape[1]) * dt
    det = result.detections[result.detections["filename"] == f]
    true = list(ground_truth.get(f, []))
    present = {str(e[2]) for e in true} | set(det["event_label"])
    shown = [c for c in preds.classes if c in present]
    rows = 3 if logmel is not None else 2
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(11, 2.2 * rows + 1),
        sharex=True,
        gridspec_kw={"height_ratios": [1.2] * (rows - 2) + [1, 1.4]},
    )
    k = 0
    if logmel is not None:
        ax = axes[0]
        ax.imshow(
            logmel.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, logmel.shape[0] * dt, 0, logmel.shape[1]),
            interpolation="nearest",
        )
        ax.set_ylabel("mel bin")
        k = 1
    ax = axes[k]
    for j, c in enumerate(shown):
        color = CLASS_COLORS.get(c, "grey")
        for on, off, lab in true:
            if lab == c:
                ax.add_patch(plt.Rectangle((on, j + 0.5), off - on, 0.4, color=color, alpha=0.9))
        for on, off in zip(
            det.loc[det["event_label"] == c, "onset"], det.loc[det["event_label"] == c, "offset"]
        ):
            ax.add_patch(plt.Rectangle((on, j + 0.05), off - on, 0.4, color=color, alpha=0.45, hatch="//"))
    ax.set_ylim(0, max(len(shown), 1))
    ax.set_yticks(np.arange(len(shown)) + 0.5, [c.replace("_", " ") for c in shown], fontsize=7)
    ax.set_ylabel("events")
    ax.set_title("solid: truth (upper half) / hatched: detections (lower half)", fontsize=8)
    ax = axes[k + 1]
    params = result.params or (result.decoder.params if result.decoder is not None else None)
    thresholds = params.frame_thresholds if params is not None else {}
    for c in shown:
        j = list(preds.classes).index(c)
        color = CLASS_COLORS.get(c, "grey")
        ax.plot(
            t,
            preds.frame_probs[i, :, j],
            color=color,
            lw=0.8,
            alpha=0.6,
            label=f"{c} (clip p {preds.clip_probs[i, j]:.2f})",
        )
        if result.decoder is not None:
            ax.plot(t, result.decoder.scores[i, :, j], color=color, lw=1.6)
        if c in thresholds:
            ax.axhline(thresholds[c], color=color, ls=":", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, t[-1] + dt)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(fontsize=6, loc="upper right", ncol=2)
    fig.suptitle(
        f"{f}: thin = SM frame probabilities, thick = after tagging + median filter, dotted = frame threshold",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- report
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
        f"- post-processing: `{run.get('postproc_source') or 'conf/postproc/' + (run.get('postproc_name') or '?') + '.yaml'}`; "
        + (f"tuned on split **{tuned_on}**" if tuned_on else "Table 1 of the paper (not tuned here)"),
    ]
    if tune_split:
        lines.append(f"- sweep points ranked on split **{tune_split}** by `{metrics.get('select_metric')}`")
    reported = run.get("split", split)
    if tuned_on and tuned_on == reported:
        lines.append(
            f"- **warning**: the post-processing was tuned on the reported split ({reported}): these figures are optimistic"
        )
    lines += ["", "## Figures", ""]
    lines += [f"- {line}" for line in metrics.get("lines", {}).values()]
    if metrics.get("explanations"):
        lines += ["", "Why some figures are zero:", ""] + [f"- {x}" for x in metrics["explanations"]]
    if metrics.get("splits"):
        lines += ["", "## Splits", "", "Each line: the split, the post-processing and the split it was tuned on, "
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
    lines += [
        "",
        "## Per class",
        "",
        "| class | event F1 % | precision % | recall % | n ref | n sys | segment F1 % | PSDS F % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, r in metrics["per_class"].items():
        lines.append(
            f"| {c} | {_fmt(r['event_f1'], True)} | {_fmt(r['event_precision'], True)} | {_fmt(r['event_recall'], True)} "
            f"| {r['n_ref']} | {r['n_sys']} | {_fmt(r['segment_f1'], True)} | {_fmt(r['psds_f'], True)} |"
        )
    lines += ["", "## Plots", ""]
    p = plot_per_class_f1(metrics, plots / "per_class_f1.png")
    lines.append(f"![per-class F1]({p.relative_to(out)})")
    p = plot_psd_roc(result.curves, metrics, plots / "psd_roc.png")
    if p is not None:
        lines.append(f"![PSD-ROC]({p.relative_to(out)})")
    for i in pick_clips(preds.filenames, ground_truth, n_timelines):
        lm = clip_logmel(data_cfg, split, preds.filenames[i]) if (logmel and data_cfg is not None) else None
        name = Path(preds.filenames[i]).stem
        p = plot_timeline(i, preds, result, ground_truth, plots / f"timeline_{name}.png", lm)
        lines.append(f"![{name}]({p.relative_to(out)})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

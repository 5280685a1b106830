"""Evaluation orchestration (SPEC sections 6-7): post-process predictions and score them with every library.

The wrappers live by library, as sed_scores_eval is laid out: :mod:`sed.evaluation.sed_eval_metrics`
(event- and segment-based F1), :mod:`sed.evaluation.psds_eval_metrics` (PSDS from operating points,
PSDS-F), :mod:`sed.evaluation.sed_scores_metrics` (threshold-independent PSDS), the scenarios in
:mod:`sed.evaluation.scenarios`, report text in :mod:`sed.evaluation.text`, the metric names in
:mod:`sed.evaluation.names`. This module aligns predictions with the ground truth and runs them all
(:func:`evaluate`); it re-exports the wrappers' public names for callers.

Overlapping same-class ground-truth events (which psds_eval and sed_scores_eval refuse) are merged
into their union for those two libraries only, with a note in the metrics (:func:`merge_connected`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sed.core.predictions import Predictions, PredictionsError
from sed.evaluation.common import (  # noqa: F401 - re-exported for callers
    MetricsError,
    audio_id,
    ground_truth_table,
    merge_connected,
    merged_note,
    nan_to_none,
)
from sed.evaluation.names import METRIC_KEYS
from sed.evaluation.psds_eval_metrics import (  # noqa: F401 - re-exported for callers
    PSDS_2020,
    PSDS_SETTINGS,
    default_workers,
    psds_eval_scores,
    psds_f_score,
)
from sed.evaluation.scenarios import MAX_EFPR, PSDS_EVAL_DEFAULT, SED_SCORES_DEFAULT, Scenario  # noqa: F401
from sed.evaluation.sed_eval_metrics import (  # noqa: F401 - re-exported for callers
    PERCENTAGE_OF_LENGTH,
    SEGMENT_SECONDS,
    T_COLLAR,
    event_based,
    event_based_fast,
    segment_based,
)
from sed.evaluation.sed_scores_metrics import SED_SCORES_SETTINGS, score_tables, sed_scores_psds  # noqa: F401
from sed.evaluation.text import report_lines
from sed.postproc import Decoder, PostprocParams, psds_thresholds

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Detections at the configured operating point, the metrics (JSON-ready) and the curves for plots."""

    detections: pd.DataFrame
    metrics: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    decoder: Decoder | None = None
    params: PostprocParams | None = None


# ---------------------------------------------------------------------------- alignment
def align(
    preds: Predictions,
    ground_truth: Mapping[str, Sequence],
    *,
    on_missing: str = "error",
    source: str = "predictions",
) -> tuple[Predictions, dict[str, list]]:
    """Check that predictions and ground truth name the same clips and known classes.

    ``on_missing='error'`` (default): a ground-truth clip without prediction, or a predicted clip absent
    from the ground truth, raises :class:`MetricsError`; ``'drop'`` scores the clips both hold.
    """
    if len(preds) == 0:
        raise MetricsError(f"{source}: no clips (empty predictions)")
    if not ground_truth:
        raise MetricsError("ground truth: no clips")
    pf, gf = set(preds.filenames), set(ground_truth)
    no_pred = [f for f in ground_truth if f not in pf]
    no_gt = [f for f in preds.filenames if f not in gf]
    if on_missing == "error":
        if no_pred:
            raise MetricsError(
                f"ground truth names {len(no_pred)} clip(s) with no prediction in {source}, "
                f"e.g. {no_pred[0]!r}"
            )
        if no_gt:
            raise MetricsError(
                f"{source} hold {len(no_gt)} clip(s) absent from the ground truth, e.g. {no_gt[0]!r}"
            )
    elif on_missing != "drop":
        raise MetricsError(f"on_missing must be 'error' or 'drop', got {on_missing!r}")
    keep = [i for i, f in enumerate(preds.filenames) if f in gf]
    if not keep:
        raise MetricsError(f"{source} and the ground truth have no clip in common")
    if len(keep) < len(preds):
        preds = Predictions(
            [preds.filenames[i] for i in keep],
            preds.frame_probs[keep],
            preds.clip_probs[keep],
            preds.classes,
            preds.frame_seconds,
            preds.durations[keep],
        )
    gt = {f: list(ground_truth[f]) for f in preds.filenames}
    known = set(preds.classes)
    for f, evs in gt.items():
        for e in evs:
            if str(e[2]) not in known:
                raise MetricsError(
                    f"ground truth for {f!r}: class {e[2]!r} is not among the predictions' classes"
                )
            if not float(e[1]) > float(e[0]):
                raise MetricsError(f"ground truth for {f!r}: event {tuple(e)} has offset <= onset")
    ends = [max((float(e[1]) for e in gt[f]), default=0.0) for f in preds.filenames]
    try:  # an event past the frames' end: the predictions are not of these clips' length
        preds.check_coverage(ends, source, preds.filenames)
    except PredictionsError as e:
        msg = str(e).replace("clips last longer", "clips hold ground-truth events ending later")
        raise MetricsError(msg) from None
    return preds, gt


# ---------------------------------------------------------------------------- evaluate
def evaluate(
    preds: Predictions,
    ground_truth: Mapping[str, Sequence],
    params: PostprocParams,
    *,
    psds: bool = True,
    n_thresholds: int = 50,
    threshold_independent: bool | None = None,
    on_missing: str = "error",
    f1_engine: str = "sed_eval",
    segment: bool = True,
    decoder: Decoder | None = None,
    workers: int = 1,
    scenarios: Sequence[Scenario] = PSDS_EVAL_DEFAULT,
    ti_scenarios: Sequence[Scenario] = SED_SCORES_DEFAULT,
) -> EvalResult:
    """Post-process ``preds`` with ``params`` and score against ``ground_truth`` (SPEC sections 6-7).

    ``psds=False`` computes only the sed_eval F1 figures (fast: for every validation epoch);
    ``n_thresholds`` sets the psds_eval operating points; ``threshold_independent`` (default: ``psds``)
    adds the sed_scores_eval figures; ``f1_engine='fast'`` computes the event-based F1 with
    :func:`event_based_fast` (identical figures, for sweeps and per-epoch validation); ``segment=False``
    skips the segment-based F1 (sed_eval, ~1 s per 1000 clips). Figures not computed are ``None``.
    ``metrics["lines"]`` holds one report line per figure naming the library and the thresholds.
    ``decoder``: a :class:`Decoder` prepared earlier on the same ``preds``, reused when only thresholds,
    removal or joining changed (sweeps). ``workers``: processes for psds_eval's operating points.
    ``scenarios`` / ``ti_scenarios``: the PSDS figures computed with psds_eval / sed_scores_eval
    (:mod:`sed.evaluation.scenarios`; default the DCASE 2020 figures / threshold-independent, PSDS1, PSDS2).
    """
    if f1_engine not in ("sed_eval", "fast"):
        raise MetricsError(f"f1_engine must be 'sed_eval' or 'fast', got {f1_engine!r}")
    if not isinstance(params, PostprocParams):
        params = PostprocParams.from_cfg(params)
    threshold_independent = psds if threshold_independent is None else threshold_independent
    preds, gt = align(preds, ground_truth, on_missing=on_missing)
    reuse = decoder is not None and decoder.reusable_for(preds, params)
    dec = decoder if reuse else Decoder.prepare(preds, params)
    detections = dec.events(params=params)
    reference = ground_truth_table(gt)
    durations = {f: float(d) for f, d in zip(preds.filenames, preds.durations)}
    ev, seg = _f1_figures(reference, detections, preds, durations, f1_engine=f1_engine, segment=segment)
    metrics: dict[str, Any] = {k: None for k in METRIC_KEYS}
    metrics.update(event_f1_macro=ev["f1_macro"], event_f1_micro=ev["f1_micro"],
                   segment_f1_macro=seg["f1_macro"], segment_f1_micro=seg["f1_micro"])
    curves: dict[str, Any] = {}
    notes: list[str] = []
    psds_f_per_class = _psds_figures(
        dec, params, gt, reference, detections, durations, metrics, curves, notes,
        n_thresholds=n_thresholds if psds else 0, threshold_independent=threshold_independent,
        workers=workers, scenarios=scenarios, ti_scenarios=ti_scenarios,
    ) if (psds or threshold_independent) else {}
    metrics.update(per_class=_per_class_figures(preds.classes, ev, seg, psds_f_per_class), n_clips=len(preds),
                   n_detections=len(detections), n_thresholds=int(n_thresholds) if psds else 0,
                   f1_engine=f1_engine)
    metrics["lines"] = report_lines(metrics)
    if notes:
        metrics["notes"] = notes
    return EvalResult(
        detections=detections, metrics=nan_to_none(metrics), curves=curves, decoder=dec, params=params
    )


def _f1_figures(
    reference: pd.DataFrame,
    detections: pd.DataFrame,
    preds: Predictions,
    durations: Mapping[str, float],
    *,
    f1_engine: str,
    segment: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event-based and segment-based F1 (sed_eval rules); the segment figures ``None`` without
    ``segment``."""
    if f1_engine == "fast":
        ev = event_based_fast(reference, detections, preds.filenames, classes=preds.classes)
    else:
        ev = event_based(reference, detections, preds.filenames, classes=preds.classes)
    if segment:
        seg = segment_based(
            reference, detections, preds.filenames, durations=durations, classes=preds.classes
        )
    else:
        seg = {"f1_macro": None, "f1_micro": None, "per_class": {}}
    return ev, seg


def _psds_figures(
    dec: Decoder,
    params: PostprocParams,
    gt: Mapping[str, Sequence],
    reference: pd.DataFrame,
    detections: pd.DataFrame,
    durations: Mapping[str, float],
    metrics: dict[str, Any],
    curves: dict[str, Any],
    notes: list[str],
    *,
    n_thresholds: int,
    threshold_independent: bool,
    workers: int,
    scenarios: Sequence[Scenario],
    ti_scenarios: Sequence[Scenario],
) -> dict[str, float]:
    """The PSDS figures of psds_eval (``n_thresholds`` > 0) and sed_scores_eval (``threshold_independent``)
    into ``metrics`` and ``curves``, on the ground truth with overlapping same-class events merged (noted);
    returns psds_eval's per-class F-score."""
    psds_gt, n_merged = merge_connected(gt)
    psds_reference = ground_truth_table(psds_gt) if n_merged else reference
    if n_merged:
        notes.append(merged_note(n_merged))
    psds_f_per_class: dict[str, float] = {}
    if n_thresholds > 0:
        psds_f_per_class = _psds_eval_figures(
            dec, params, detections, psds_reference, durations, metrics, curves, notes,
            n_thresholds=n_thresholds, workers=workers, scenarios=scenarios,
        )
    if threshold_independent:
        _sed_scores_figures(dec, psds_gt, psds_reference, durations, metrics, curves, notes, ti_scenarios)
    return psds_f_per_class


def _psds_eval_figures(
    dec: Decoder,
    params: PostprocParams,
    detections: pd.DataFrame,
    reference: pd.DataFrame,
    durations: Mapping[str, float],
    metrics: dict[str, Any],
    curves: dict[str, Any],
    notes: list[str],
    *,
    n_thresholds: int,
    workers: int,
    scenarios: Sequence[Scenario],
) -> dict[str, float]:
    """psds_eval's figures at ``n_thresholds`` operating points, into ``metrics`` and ``curves`` (a note
    when there is no reference event); returns the per-class PSDS F-score."""
    if reference.empty:
        notes.append("no ground-truth event: PSDS figures are undefined")
        return {}
    ths = psds_thresholds(n_thresholds)
    ops = [dec.events(float(t), params=params) for t in ths]
    figs, cv = psds_eval_scores(
        ops,
        reference,
        durations,
        thresholds=ths,
        operating_point=detections,
        workers=workers,
        scenarios=scenarios,
    )
    psds_f_per_class = figs.pop("psds_f_per_class", {})
    metrics.update(figs)
    curves["psds_eval"] = cv
    curves["psds_eval_thresholds"] = ths.tolist()
    return psds_f_per_class


def _sed_scores_figures(
    dec: Decoder,
    ground_truth: Mapping[str, Sequence],
    reference: pd.DataFrame,
    durations: Mapping[str, float],
    metrics: dict[str, Any],
    curves: dict[str, Any],
    notes: list[str],
    scenarios: Sequence[Scenario],
) -> None:
    """sed_scores_eval's threshold-independent PSDS figures, into ``metrics`` and ``curves`` (a note when
    ``reference``, the table of ``ground_truth``, holds no event)."""
    if reference.empty:
        notes.append("no ground-truth event: sed_scores_eval PSDS figures are undefined")
        return
    figs, cv = sed_scores_psds(
        score_tables(dec),
        {audio_id(f): v for f, v in ground_truth.items()},
        {audio_id(f): d for f, d in durations.items()},
        scenarios,
    )
    metrics.update(figs)
    curves["sed_scores_eval"] = cv


def _per_class_figures(
    classes: Sequence[str], ev: Mapping[str, Any], seg: Mapping[str, Any], psds_f: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Per class: event-based F1, precision, recall and counts, segment-based F1 and PSDS F-score."""
    per_class = {}
    for c in classes:
        e = ev["per_class"].get(c, {})
        s = seg["per_class"].get(c, {})
        per_class[c] = {
            "event_f1": e.get("f1"),
            "event_precision": e.get("precision"),
            "event_recall": e.get("recall"),
            "n_ref": e.get("n_ref", 0),
            "n_sys": e.get("n_sys", 0),
            "segment_f1": s.get("f1"),
            "psds_f": psds_f.get(c),
        }
    return per_class

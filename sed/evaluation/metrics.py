"""Evaluation metrics (SPEC section 7), thin wrappers over the reference libraries.

- Event-based F1 (the DCASE 2020 ranking metric): ``sed_eval`` EventBasedMetrics, t_collar 0.2 s,
  percentage_of_length 0.2, onsets and offsets evaluated, ``empty_system_output_handling='zero_score'``
  (as the DCASE 2020 baseline); macro = class-wise average, micro = overall.
  :func:`event_based_fast` gives the same figures (checked in the tests) 50x faster, for sweeps.
- Segment-based F1: ``sed_eval`` SegmentBasedMetrics, 1 s segments, each clip evaluated over its duration.
- Classes: every class is listed to sed_eval; it gives a class without reference events F = nan, which
  the macro average skips (so the figure equals the DCASE 2020 baseline's, which listed only the
  classes present); a class with reference events but no output scores 0 ('zero_score', for the
  segment-based figure too, where sed_eval's default would give nan and skip it).
- PSDS as DCASE 2020 computed it: ``psds_eval`` 0.5.3, dtc 0.5, gtc 0.5, cttc 0.3, max_efpr 100, over
  ``n_thresholds`` operating points (frame threshold ``1/(2n), 3/(2n), ..., 1 - 1/(2n)``: 0.01 ... 0.99
  for 50, the same for every class; the rest of the post-processing as configured); PSDS
  (alpha_ct 0, alpha_st 0), PSDS cross-trigger (alpha_ct 1), PSDS macro (alpha_st 1); and the
  PSDS F-score: ``PSDSEval.compute_macro_f_score`` on the detections at the configured operating point
  (the DCASE 2020 baseline's ``compute_metrics``, which gave its "PSDS macro F-score"). Note that
  psds_eval's F-score leaves out (nan) a class with no true positive, as it did for DCASE 2020.
  psds_eval takes its class list from the ground truth.
- Threshold-independent PSDS (same dtc/gtc/cttc/alphas/max_efpr) and PSDS1 (dtc 0.7, gtc 0.7,
  alpha_st 1) and PSDS2 (dtc 0.1, gtc 0.1, cttc 0.3, alpha_ct 0.5, alpha_st 1), max_efpr 100, via
  ``sed_scores_eval`` on the frame scores after tagging, median filtering and hysteresis (folded in,
  see :mod:`sed.postproc.decoder`); event removal and joining are not applied to scores. As psds_eval,
  only classes with ground-truth events are scored.
- Overlapping same-class ground-truth events (which psds_eval and sed_scores_eval refuse) are merged
  into their union for those two libraries only, with a note in the metrics (:func:`merge_connected`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.core.errors import SedError
from sed.evaluation.names import METRIC_KEYS  # noqa: F401 - re-exported for callers
from sed.evaluation.predictions import Predictions
from sed.postproc import Decoder, PostprocParams, empty_detections, psds_thresholds

log = logging.getLogger(__name__)

T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.2
SEGMENT_SECONDS = 1.0
PSDS_2020 = {"dtc_threshold": 0.5, "gtc_threshold": 0.5, "cttc_threshold": 0.3}
MAX_EFPR = 100.0
PSDS_SETTINGS = {
    "psds": {**PSDS_2020, "alpha_ct": 0.0, "alpha_st": 0.0},
    "psds_cross_trigger": {**PSDS_2020, "alpha_ct": 1.0, "alpha_st": 0.0},
    "psds_macro": {**PSDS_2020, "alpha_ct": 0.0, "alpha_st": 1.0},
}
SED_SCORES_SETTINGS = {
    # sed_scores_eval refuses a cttc with alpha_ct 0 (it would not change the figure)
    "psds_threshold_independent": {**PSDS_2020, "cttc_threshold": None, "alpha_ct": 0.0, "alpha_st": 0.0},
    "psds1": {
        "dtc_threshold": 0.7,
        "gtc_threshold": 0.7,
        "cttc_threshold": None,
        "alpha_ct": 0.0,
        "alpha_st": 1.0,
    },
    "psds2": {
        "dtc_threshold": 0.1,
        "gtc_threshold": 0.1,
        "cttc_threshold": 0.3,
        "alpha_ct": 0.5,
        "alpha_st": 1.0,
    },
}


class MetricsError(SedError, ValueError):
    """Inputs that would give a wrong number (clips without prediction, unknown classes, no clips)."""


@dataclass
class EvalResult:
    """Detections at the configured operating point, the metrics (JSON-ready) and the curves for plots."""

    detections: pd.DataFrame
    metrics: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    decoder: Decoder | None = None
    params: PostprocParams | None = None


# ---------------------------------------------------------------------------- tables
def ground_truth_table(ground_truth: Mapping[str, Sequence]) -> pd.DataFrame:
    """``{filename: [(onset, offset, label), ...]}`` -> DataFrame ``filename, onset, offset, event_label`` (events only)."""
    rows = [(f, float(e[0]), float(e[1]), str(e[2])) for f, evs in ground_truth.items() for e in evs]
    if not rows:
        return empty_detections()
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def _by_file(table: pd.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f, on, off, lab in zip(table["filename"], table["onset"], table["offset"], table["event_label"]):
        out.setdefault(f, []).append(
            {"filename": f, "onset": float(on), "offset": float(off), "event_label": lab}
        )
    return out


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _check_table(table: pd.DataFrame, name: str) -> None:
    missing = {"filename", "onset", "offset", "event_label"} - set(table.columns)
    if missing:
        raise MetricsError(f"{name}: missing columns {sorted(missing)}")


def _labels(
    reference: pd.DataFrame, estimated: pd.DataFrame, classes: Sequence[str] | None = None
) -> list[str]:
    labels = (
        set(reference["event_label"].dropna()) | set(estimated["event_label"].dropna()) | set(classes or [])
    )
    return sorted(labels)


def _quiet():
    """sed_eval/dcase_util and psds_eval print and warn; keep their chatter out of our logs."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(np.errstate(all="ignore"))
    return stack


# ---------------------------------------------------------------------------- sed_eval
def event_based(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    filenames: Sequence[str],
    *,
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
    evaluate_onset: bool = True,
    evaluate_offset: bool = True,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Event-based F1 via ``sed_eval`` (SPEC 7): ``f1_macro``, ``f1_micro``, ``per_class`` ``{class: {f1, precision, recall}}``.

    ``filenames``: every clip scored (a clip with no reference and no estimate still counts);
    ``classes``: labels reported per class besides those present (sed_eval gives a class without
    reference events F = nan, which the macro average skips).
    """
    import sed_eval

    _check_table(reference, "reference")
    _check_table(estimated, "estimated")
    with _quiet():
        metric = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=_labels(reference, estimated, classes),
            t_collar=t_collar,
            percentage_of_length=percentage_of_length,
            evaluate_onset=evaluate_onset,
            evaluate_offset=evaluate_offset,
            empty_system_output_handling="zero_score",
        )
        ref, est = _by_file(reference), _by_file(estimated)
        for f in filenames:
            metric.evaluate(reference_event_list=ref.get(f, []), estimated_event_list=est.get(f, []))
        return _sed_eval_results(metric)


def _sed_eval_prf(
    ntp: float, nsys: float, nref: float, zero_score: bool = True
) -> tuple[float, float, float]:
    """sed_eval's precision/recall/F rules: P is nan when nothing is output (0 with 'zero_score'),
    R is nan without reference, F is 0 when P = R = 0 and nan when either is nan."""
    p = (0.0 if zero_score else math.nan) if nsys == 0 else float(ntp / float(nsys))
    r = math.nan if nref == 0 else float(ntp / float(nref))
    if p == 0 and r == 0:
        return 0.0, p, r
    return float(2 * p * r / (p + r)), p, r


def _max_matching(edges: Sequence[tuple[int, int]]) -> int:
    """Size of a maximum bipartite matching (Kuhn's augmenting paths); ``edges`` are (ref, est) pairs."""
    adj: dict[int, list[int]] = {}
    for r, e in edges:
        adj.setdefault(r, []).append(e)
    match: dict[int, int] = {}

    def augment(r: int, seen: set) -> bool:
        for e in adj[r]:
            if e in seen:
                continue
            seen.add(e)
            if e not in match or augment(match[e], seen):
                match[e] = r
                return True
        return False

    return sum(augment(r, set()) for r in adj)


def event_based_fast(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    filenames: Sequence[str] | None = None,
    *,
    classes: Sequence[str] | None = None,
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
) -> dict[str, Any]:
    """The same figures as :func:`event_based` (sed_eval, optimal matching, onset and offset, 'zero_score'),
    computed on whole tables at once: 50-100x faster, for sweeps. The tests check equality with sed_eval.

    A reference and an estimated event of the same clip and class hit when
    ``|on_r - on_e| <= t_collar`` and ``|off_r - off_e| <= max(t_collar, percentage_of_length * (off_r - on_r))``;
    true positives per clip and class are a maximum matching of the hits (pairs whose events hit
    nothing else are matched directly; the rare ambiguous groups by augmenting paths).
    """
    _check_table(reference, "reference")
    _check_table(estimated, "estimated")
    if filenames is not None:
        keep = set(filenames)
        reference = reference[reference["filename"].isin(keep)]
        estimated = estimated[estimated["filename"].isin(keep)]
    ref = reference[["filename", "event_label", "onset", "offset"]].reset_index(drop=True)
    est = estimated[["filename", "event_label", "onset", "offset"]].reset_index(drop=True)
    ref = ref.assign(rid=np.arange(len(ref)))
    est = est.assign(eid=np.arange(len(est)))
    labels = sorted(set(classes or []) | set(ref["event_label"]) | set(est["event_label"]))
    pairs = ref.merge(est, on=["filename", "event_label"], suffixes=("_r", "_e"))
    if len(pairs):
        on_r, off_r = pairs["onset_r"].to_numpy(float), pairs["offset_r"].to_numpy(float)
        on_e, off_e = pairs["onset_e"].to_numpy(float), pairs["offset_e"].to_numpy(float)
        hit = (np.abs(on_r - on_e) <= t_collar) & (
            np.abs(off_r - off_e) <= np.maximum(t_collar, percentage_of_length * (off_r - on_r))
        )
        pairs = pairs[hit]
    tp = dict.fromkeys(labels, 0)
    if len(pairs):
        deg_r = pairs["rid"].map(pairs["rid"].value_counts())
        deg_e = pairs["eid"].map(pairs["eid"].value_counts())
        simple = (deg_r == 1) & (deg_e == 1)
        for lab, n in pairs.loc[simple, "event_label"].value_counts().items():
            tp[lab] += int(n)
        for (_, lab), g in pairs.loc[~simple].groupby(["filename", "event_label"]):
            tp[lab] += _max_matching(list(zip(g["rid"].tolist(), g["eid"].tolist())))
    nref = ref["event_label"].value_counts().to_dict()
    nsys = est["event_label"].value_counts().to_dict()
    per_class = {}
    for lab in labels:
        f, p, r = _sed_eval_prf(tp[lab], nsys.get(lab, 0), nref.get(lab, 0))
        per_class[lab] = {
            "f1": f,
            "precision": p,
            "recall": r,
            "n_ref": int(nref.get(lab, 0)),
            "n_sys": int(nsys.get(lab, 0)),
        }
    f_micro, _, _ = _sed_eval_prf(sum(tp.values()), len(est), len(ref))
    fs = [v["f1"] for v in per_class.values()]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = float(np.nanmean(fs)) if fs else math.nan
    return {"f1_macro": macro, "f1_micro": f_micro, "per_class": per_class}


def segment_based(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    filenames: Sequence[str],
    *,
    time_resolution: float = SEGMENT_SECONDS,
    durations: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Segment-based F1 via ``sed_eval`` (1 s segments); same keys as :func:`event_based`.

    ``durations``: each clip's length in seconds (the evaluated length); default: sed_eval's (the last offset).
    A class never output scores precision 0 ('zero_score', as for the event-based figure; sed_eval's
    segment default would make it nan and drop it from the macro average).
    """
    import sed_eval

    _check_table(reference, "reference")
    _check_table(estimated, "estimated")
    with _quiet():
        metric = sed_eval.sound_event.SegmentBasedMetrics(
            event_label_list=_labels(reference, estimated, classes), time_resolution=time_resolution
        )
        metric.empty_system_output_handling = "zero_score"
        ref, est = _by_file(reference), _by_file(estimated)
        for f in filenames:
            metric.evaluate(
                reference_event_list=ref.get(f, []),
                estimated_event_list=est.get(f, []),
                evaluated_length_seconds=None if durations is None else float(durations[f]),
            )
        return _sed_eval_results(metric)


def _sed_eval_results(metric) -> dict[str, Any]:
    overall = metric.results_overall_metrics()
    average = metric.results_class_wise_average_metrics()
    class_wise = metric.results_class_wise_metrics()
    per_class = {
        c: {
            "f1": float(r["f_measure"]["f_measure"]),
            "precision": float(r["f_measure"]["precision"]),
            "recall": float(r["f_measure"]["recall"]),
            "n_ref": int(r["count"]["Nref"]),
            "n_sys": int(r["count"]["Nsys"]),
        }
        for c, r in class_wise.items()
    }
    return {
        "f1_macro": float(average["f_measure"]["f_measure"]),
        "f1_micro": float(overall["f_measure"]["f_measure"]),
        "per_class": per_class,
    }


# ---------------------------------------------------------------------------- psds_eval
def _psds_tables(reference: pd.DataFrame, durations: Mapping[str, float]):
    gt = reference[["filename", "onset", "offset", "event_label"]].reset_index(drop=True)
    meta = pd.DataFrame({"filename": list(durations), "duration": [float(v) for v in durations.values()]})
    return gt, meta


_PSDS_EV = None  # the PSDSEval a forked worker evaluates with


def _psds_eval_op(table: pd.DataFrame):
    return _PSDS_EV._evaluate_detections(table)


def _add_operating_points(
    ev, detections: Sequence[pd.DataFrame], infos: Sequence[dict], workers: int
) -> None:
    """``PSDSEval.add_operating_point`` for many tables, the evaluations spread over ``workers`` processes.

    Same steps as the library's method (psds_eval 0.5.3, pinned): prepare the table as
    ``_init_det_table`` does, skip an operating point identical to an earlier one (its id is
    the library's hash), evaluate with the library's ``_evaluate_detections``, then ``_add_op`` in
    order. The input check of ``_init_det_table`` (no overlapping same-class detections) is
    skipped: :mod:`sed.postproc` never outputs such events. The tests compare with the public API.
    """
    global _PSDS_EV
    tables, kept_infos, seen = [], [], set(ev.operating_points.id.values)
    for det, info in zip(detections, infos):
        t = det[list(ev.detection_cols)].reset_index(drop=True)
        t = t[t.offset > t.onset].sort_values(by=ev.detection_cols[:2], axis=0)
        t["duration"] = t.offset - t.onset
        t["id"] = t.index
        op_id = ev._operating_point_id(t)
        if not op_id or op_id in seen:
            continue
        seen.add(op_id)
        tables.append((op_id, t))
        kept_infos.append(info)
    results = None
    if workers > 1 and len(tables) > 1:
        try:
            import multiprocessing as mp

            _PSDS_EV = ev
            with mp.get_context("fork").Pool(min(workers, len(tables))) as pool:
                results = pool.map(_psds_eval_op, [t for _, t in tables], chunksize=1)
        except (OSError, ValueError, RuntimeError) as e:  # no fork here: do it in this process
            log.debug("psds_eval workers unavailable (%s); sequential", e)
            results = None
        finally:
            _PSDS_EV = None
    if results is None:
        results = [ev._evaluate_detections(t) for _, t in tables]
    for (op_id, _), info, (cts, tpr, fpr, ctr) in zip(tables, kept_infos, results):
        ev._add_op(opid=op_id, counts=cts, tpr=tpr, fpr=fpr, ctr=ctr, info=info)


def default_workers() -> int:
    """Processes for psds_eval's operating points: the CPUs this process may use, at most 4; 1 on a
    machine of 2 CPUs or fewer (forking does not pay off there: measured on 2 shared CPUs)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return 1 if n <= 2 else min(4, n)


def psds_eval_scores(
    detections: Sequence[pd.DataFrame],
    reference: pd.DataFrame,
    durations: Mapping[str, float],
    *,
    thresholds: Sequence[float] | None = None,
    operating_point: pd.DataFrame | None = None,
    workers: int = 1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DCASE 2020 PSDS figures via ``psds_eval`` from one detection table per operating point.

    Returns ``(figures, curves)``: figures ``psds``, ``psds_cross_trigger``, ``psds_macro`` and, when
    ``operating_point`` is given, ``psds_f_score`` and ``psds_f_per_class``; curves: each figure's
    PSD-ROC (``efpr``, ``etpr``). ``workers``: processes evaluating the operating points (1, the
    default: all in this process; ``sed.eval`` uses :func:`default_workers`).
    """
    from psds_eval import PSDSEval

    if reference.empty:
        raise MetricsError("psds_eval: the ground truth has no event (PSDS is undefined)")
    gt, meta = _psds_tables(reference, durations)
    figures: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    workers = default_workers() if workers is None else int(workers)
    with _quiet():
        ev = PSDSEval(**PSDS_2020, ground_truth=gt, metadata=meta)
        ths = list(thresholds) if thresholds is not None else [None] * len(detections)
        infos = [{"name": f"op{i:03d}", "threshold": th} for i, th in enumerate(ths)]
        _add_operating_points(ev, detections, infos, workers)
        for key, s in PSDS_SETTINGS.items():
            res = ev.psds(alpha_ct=s["alpha_ct"], alpha_st=s["alpha_st"], max_efpr=MAX_EFPR)
            figures[key] = float(res.value)
            curves[key] = {"efpr": np.asarray(res.plt.xp).tolist(), "etpr": np.asarray(res.plt.yp).tolist()}
        if operating_point is not None:
            f, per_class = ev.compute_macro_f_score(
                operating_point[["filename", "onset", "offset", "event_label"]]
            )
            figures["psds_f_score"] = float(f)
            figures["psds_f_per_class"] = {c: float(v) for c, v in per_class.items()}
    return figures, curves


def psds_f_score(
    detections: pd.DataFrame, reference: pd.DataFrame, durations: Mapping[str, float]
) -> tuple[float, dict]:
    """``PSDSEval.compute_macro_f_score`` (dtc 0.5, gtc 0.5, cttc 0.3) on one detection table."""
    from psds_eval import PSDSEval

    if reference.empty:
        raise MetricsError("psds_eval: the ground truth has no event (PSDS F-score is undefined)")
    gt, meta = _psds_tables(reference, durations)
    with _quiet():
        ev = PSDSEval(**PSDS_2020, ground_truth=gt, metadata=meta)
        f, per_class = ev.compute_macro_f_score(detections[["filename", "onset", "offset", "event_label"]])
    return float(f), {c: float(v) for c, v in per_class.items()}


# ---------------------------------------------------------------------------- sed_scores_eval
def audio_id(filename: str) -> str:
    """sed_scores_eval's key of a clip: its filename without the extension."""
    return Path(filename).stem if Path(filename).suffix else filename


def score_tables(decoder: Decoder) -> dict[str, pd.DataFrame]:
    """Per-clip score DataFrames in sed_scores_eval's format (``onset, offset, <class>...``).

    Scores are the decoder's hysteresis scores; frames beyond a clip's duration are cut and the
    last frame's offset is clipped to it.
    """
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    p = decoder.preds
    n, c = len(p), len(p.classes)
    h = decoder.hscores.reshape(n, c, -1)
    t = h.shape[2]
    out = {}
    for i, f in enumerate(p.filenames):
        dur = float(p.durations[i])
        nf = int(min(t, math.ceil(dur / p.frame_seconds - 1e-9)))
        ts = np.minimum(np.arange(nf + 1) * p.frame_seconds, dur)
        out[audio_id(f)] = create_score_dataframe(h[i, :, :nf].T.astype(np.float64), ts, list(p.classes))
    return out


def sed_scores_psds(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Sequence],
    durations: Mapping[str, float],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Threshold-independent PSDS figures via ``sed_scores_eval`` (all thresholds: every distinct score).

    ``scores``/``ground_truth``/``durations`` keyed by :func:`audio_id`; ``settings``: figure ->
    dtc/gtc/cttc/alpha_ct/alpha_st (default :data:`SED_SCORES_SETTINGS`).
    """
    from sed_scores_eval import intersection_based

    settings = SED_SCORES_SETTINGS if settings is None else settings
    gt = {k: [(float(e[0]), float(e[1]), str(e[2])) for e in v] for k, v in ground_truth.items()}
    if not any(gt.values()):
        raise MetricsError("sed_scores_eval: the ground truth has no event (PSDS is undefined)")
    # like psds_eval, score only the classes that have ground-truth events (sed_scores_eval refuses others)
    present = {e[2] for v in gt.values() for e in v}
    scores = {
        k: df[[c for c in df.columns if c in ("onset", "offset") or c in present]] for k, df in scores.items()
    }
    figures, curves = {}, {}
    with _quiet():
        for key, s in settings.items():
            value, _per_class, roc, _per_class_roc = intersection_based.psds(
                scores=dict(scores),
                ground_truth=gt,
                audio_durations=dict(durations),
                dtc_threshold=s["dtc_threshold"],
                gtc_threshold=s["gtc_threshold"],
                cttc_threshold=s["cttc_threshold"],
                alpha_ct=s["alpha_ct"],
                alpha_st=s["alpha_st"],
                max_efpr=MAX_EFPR,
            )
            figures[key] = float(value)
            etpr, efpr = roc
            curves[key] = {"efpr": np.asarray(efpr).tolist(), "etpr": np.asarray(etpr).tolist()}
    return figures, curves


def merge_connected(ground_truth: Mapping[str, Sequence]) -> tuple[dict[str, list], int]:
    """Same-class events of a clip that overlap or touch, merged into their union.

    psds_eval and sed_scores_eval refuse such ground truth (the generated set and some annotations
    hold it); sed_eval takes it as is. Returns the merged ground truth and how many events were merged away.
    """
    out, n_merged = {}, 0
    for f, evs in ground_truth.items():
        merged: list[list] = []
        for on, off, lab in sorted(
            ((float(e[0]), float(e[1]), str(e[2])) for e in evs), key=lambda e: (e[2], e[0])
        ):
            if merged and merged[-1][2] == lab and on <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], off)
                n_merged += 1
            else:
                merged.append([on, off, lab])
        out[f] = [(on, off, lab) for on, off, lab in merged]
    return out, n_merged


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
                f"ground truth names {len(no_pred)} clip(s) with no prediction in {source}, e.g. {no_pred[0]!r}"
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
    """
    if f1_engine not in ("sed_eval", "fast"):
        raise MetricsError(f"f1_engine must be 'sed_eval' or 'fast', got {f1_engine!r}")
    if not isinstance(params, PostprocParams):
        params = PostprocParams.from_cfg(params)
    threshold_independent = psds if threshold_independent is None else threshold_independent
    preds, gt = align(preds, ground_truth, on_missing=on_missing)
    if decoder is not None and decoder.reusable_for(preds, params):
        dec = decoder
    else:
        dec = Decoder.prepare(preds, params)
    detections = dec.events(params=params)
    reference = ground_truth_table(gt)
    durations = {f: float(d) for f, d in zip(preds.filenames, preds.durations)}

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
    metrics: dict[str, Any] = {k: None for k in METRIC_KEYS}
    metrics.update(
        event_f1_macro=ev["f1_macro"],
        event_f1_micro=ev["f1_micro"],
        segment_f1_macro=seg["f1_macro"],
        segment_f1_micro=seg["f1_micro"],
    )
    curves: dict[str, Any] = {}
    notes: list[str] = []
    psds_f_per_class: dict[str, float] = {}
    psds_gt, n_merged = merge_connected(gt) if (psds or threshold_independent) else (gt, 0)
    psds_reference = ground_truth_table(psds_gt) if n_merged else reference
    if n_merged:
        notes.append(
            f"{n_merged} overlapping same-class ground-truth event(s) merged into their union "
            "for psds_eval and sed_scores_eval (sed_eval scores them as given)"
        )
    if psds and n_thresholds > 0:
        if reference.empty:
            notes.append("no ground-truth event: PSDS figures are undefined")
        else:
            ths = psds_thresholds(n_thresholds)
            ops = [dec.events(float(t), params=params) for t in ths]
            figs, cv = psds_eval_scores(
                ops, psds_reference, durations, thresholds=ths, operating_point=detections, workers=workers
            )
            psds_f_per_class = figs.pop("psds_f_per_class", {})
            metrics.update(figs)
            curves["psds_eval"] = cv
            curves["psds_eval_thresholds"] = ths.tolist()
    if threshold_independent:
        if reference.empty:
            notes.append("no ground-truth event: sed_scores_eval PSDS figures are undefined")
        else:
            figs, cv = sed_scores_psds(
                score_tables(dec),
                {audio_id(f): v for f, v in psds_gt.items()},
                {audio_id(f): d for f, d in durations.items()},
            )
            metrics.update(figs)
            curves["sed_scores_eval"] = cv

    per_class = {}
    for c in preds.classes:
        e = ev["per_class"].get(c, {})
        s = seg["per_class"].get(c, {})
        per_class[c] = {
            "event_f1": e.get("f1"),
            "event_precision": e.get("precision"),
            "event_recall": e.get("recall"),
            "n_ref": e.get("n_ref", 0),
            "n_sys": e.get("n_sys", 0),
            "segment_f1": s.get("f1"),
            "psds_f": psds_f_per_class.get(c),
        }
    metrics["per_class"] = per_class
    metrics["n_clips"] = len(preds)
    metrics["n_detections"] = len(detections)
    metrics["n_thresholds"] = int(n_thresholds) if psds else 0
    metrics["f1_engine"] = f1_engine
    metrics["lines"] = report_lines(metrics)
    if notes:
        metrics["notes"] = notes
    return EvalResult(
        detections=detections, metrics=_nan_to_none(metrics), curves=curves, decoder=dec, params=params
    )


def report_lines(metrics: Mapping[str, Any]) -> dict[str, str]:
    """One line per figure, naming the library and the number of thresholds it used."""
    n = metrics.get("n_thresholds") or 0

    def fmt(v, pct=False):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "n/a"
        return f"{100 * v:.1f} %" if pct else f"{v:.3f}"

    lib = (
        "sed_eval"
        if metrics.get("f1_engine", "sed_eval") == "sed_eval"
        else "sed_eval rules, sed.evaluation.metrics.event_based_fast"
    )
    lines = {
        "event_f1_macro": f"event-based F1 macro: {fmt(metrics.get('event_f1_macro'), True)} ({lib}, collar 0.2 s / 20 %, 1 operating point)",
        "event_f1_micro": f"event-based F1 micro: {fmt(metrics.get('event_f1_micro'), True)} ({lib}, collar 0.2 s / 20 %, 1 operating point)",
        "segment_f1_macro": f"segment-based F1 macro: {fmt(metrics.get('segment_f1_macro'), True)} (sed_eval, 1 s segments, 1 operating point)",
        "psds_f_score": f"PSDS F-score: {fmt(metrics.get('psds_f_score'), True)} (psds_eval compute_macro_f_score, dtc 0.5 gtc 0.5 cttc 0.3, 1 operating point)",
        "psds": f"PSDS: {fmt(metrics.get('psds'))} (psds_eval, {n} thresholds, dtc 0.5 gtc 0.5 cttc 0.3, alpha_ct 0 alpha_st 0, max_efpr 100)",
        "psds_cross_trigger": f"PSDS cross-trigger: {fmt(metrics.get('psds_cross_trigger'))} (psds_eval, {n} thresholds, alpha_ct 1 alpha_st 0)",
        "psds_macro": f"PSDS macro: {fmt(metrics.get('psds_macro'))} (psds_eval, {n} thresholds, alpha_ct 0 alpha_st 1)",
        "psds_threshold_independent": f"PSDS threshold-independent: {fmt(metrics.get('psds_threshold_independent'))} (sed_scores_eval, all thresholds, dtc 0.5 gtc 0.5 cttc 0.3, alpha_ct 0 alpha_st 0, max_efpr 100)",
        "psds1": f"PSDS1: {fmt(metrics.get('psds1'))} (sed_scores_eval, all thresholds, dtc 0.7 gtc 0.7, alpha_st 1, max_efpr 100)",
        "psds2": f"PSDS2: {fmt(metrics.get('psds2'))} (sed_scores_eval, all thresholds, dtc 0.1 gtc 0.1 cttc 0.3, alpha_ct 0.5 alpha_st 1, max_efpr 100)",
    }
    return lines

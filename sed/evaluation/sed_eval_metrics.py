"""sed_eval wrappers (SPEC section 7): event-based and segment-based F1.

- Event-based F1 (the DCASE 2020 ranking metric): ``sed_eval`` EventBasedMetrics, t_collar 0.2 s,
  percentage_of_length 0.2, onsets and offsets evaluated, ``empty_system_output_handling='zero_score'``
  (as the DCASE 2020 baseline); macro = class-wise average, micro = overall.
  :func:`event_based_fast` gives the same figures (checked in the tests) 50x faster, for sweeps.
- Segment-based F1: ``sed_eval`` SegmentBasedMetrics, 1 s segments, each clip evaluated over its duration.
- Both also give sed_eval's overall precision, recall and error rate with its substitution, deletion
  and insertion rates (``overall``).
- Classes: every class is listed to sed_eval; it gives a class without reference events F = nan, which
  the macro average skips (so the figure equals the DCASE 2020 baseline's, which listed only the
  classes present); a class with reference events but no output scores 0 ('zero_score', for the
  segment-based figure too, where sed_eval's default would give nan and skip it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sed.evaluation.common import by_file, check_table, label_list, quiet

T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.2
SEGMENT_SECONDS = 1.0
#: sed_eval's overall error-rate figures (``results_overall_metrics()['error_rate']``)
ERROR_RATE_KEYS = ("error_rate", "substitution_rate", "deletion_rate", "insertion_rate")
#: the per-clip counts :func:`clip_counts` reads from sed_eval's overall tally: Ntp, Nsys, Nref, S, D, I
_OVERALL_KEYS = {
    "event": ("Ntp", "Nsys", "Nref", "Nsubs", "Nfn", "Nfp"),
    "segment": ("Ntp", "Nsys", "Nref", "S", "D", "I"),
}


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
    """Event-based F1 via ``sed_eval`` (SPEC 7): ``f1_macro``, ``f1_micro``, ``per_class``
    ``{class: {f1, precision, recall}}``.

    ``filenames``: every clip scored (a clip with no reference and no estimate still counts);
    ``classes``: labels reported per class besides those present (sed_eval gives a class without
    reference events F = nan, which the macro average skips).
    """
    # Lazy: sed_eval (~0.1 s, and dcase_util's import warning) kept off `sedx --help`.
    import sed_eval

    check_table(reference, "reference")
    check_table(estimated, "estimated")
    with quiet():
        metric = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=label_list(reference, estimated, classes),
            t_collar=t_collar,
            percentage_of_length=percentage_of_length,
            evaluate_onset=evaluate_onset,
            evaluate_offset=evaluate_offset,
            empty_system_output_handling="zero_score",
        )
        ref, est = by_file(reference), by_file(estimated)
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


def max_matching(edges: Sequence[tuple[int, int]]) -> int:
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
    ``|on_r - on_e| <= t_collar`` and
    ``|off_r - off_e| <= max(t_collar, percentage_of_length * (off_r - on_r))``; true positives per
    clip and class are a maximum matching of the hits (pairs whose events hit nothing else are matched
    directly; the rare ambiguous groups by augmenting paths).
    """
    check_table(reference, "reference")
    check_table(estimated, "estimated")
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
            tp[lab] += max_matching(list(zip(g["rid"].tolist(), g["eid"].tolist())))
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

    ``durations``: each clip's length in seconds (the evaluated length); default: sed_eval's (the last
    offset).
    A class never output scores precision 0 ('zero_score', as for the event-based figure; sed_eval's
    segment default would make it nan and drop it from the macro average).
    """
    # Lazy: sed_eval (~0.1 s, and dcase_util's import warning) kept off `sedx --help`.
    import sed_eval

    check_table(reference, "reference")
    check_table(estimated, "estimated")
    with quiet():
        metric = sed_eval.sound_event.SegmentBasedMetrics(
            event_label_list=label_list(reference, estimated, classes), time_resolution=time_resolution
        )
        metric.empty_system_output_handling = "zero_score"
        ref, est = by_file(reference), by_file(estimated)
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
    er = overall["error_rate"]
    return {
        "f1_macro": float(average["f_measure"]["f_measure"]),
        "f1_micro": float(overall["f_measure"]["f_measure"]),
        "per_class": per_class,
        "overall": {
            "precision": float(overall["f_measure"]["precision"]),
            "recall": float(overall["f_measure"]["recall"]),
            **{k: float(er[k]) for k in ERROR_RATE_KEYS},
        },
    }


def clip_counts(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    filenames: Sequence[str],
    *,
    kind: str = "event",
    durations: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
    time_resolution: float = SEGMENT_SECONDS,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """sed_eval's counts clip by clip: ``(labels, class_wise (clips, labels, 3), overall (clips, 6))``,
    class-wise (Ntp, Nsys, Nref) and overall (Ntp, Nsys, Nref, S, D, I), from the same metric object as
    :func:`event_based` / :func:`segment_based` (``kind``, same settings) read after each clip. The counts add
    up over clips, so :func:`f1_from_counts` on their (weighted) sum gives sed_eval's figures on any
    resampled clip set (bootstrap)."""
    # Lazy: sed_eval (~0.1 s, and dcase_util's import warning) kept off `sedx --help`.
    import sed_eval

    check_table(reference, "reference")
    check_table(estimated, "estimated")
    labels = label_list(reference, estimated, classes)
    if kind not in _OVERALL_KEYS:
        raise ValueError(f"kind must be 'event' or 'segment', got {kind!r}")
    keys, okeys = ("Ntp", "Nsys", "Nref"), _OVERALL_KEYS[kind]
    cw = np.zeros((len(filenames), len(labels), 3))
    ov = np.zeros((len(filenames), len(okeys)))
    with quiet():
        if kind == "event":
            metric = sed_eval.sound_event.EventBasedMetrics(
                event_label_list=labels,
                t_collar=t_collar,
                percentage_of_length=percentage_of_length,
                empty_system_output_handling="zero_score",
            )
        else:
            metric = sed_eval.sound_event.SegmentBasedMetrics(
                event_label_list=labels, time_resolution=time_resolution
            )
        ref, est = by_file(reference), by_file(estimated)
        prev_c, prev_o = np.zeros((len(labels), 3)), np.zeros(len(okeys))
        for i, f in enumerate(filenames):
            kw = {}
            if kind != "event":
                kw = {"evaluated_length_seconds": None if durations is None else float(durations[f])}
            metric.evaluate(reference_event_list=ref.get(f, []), estimated_event_list=est.get(f, []), **kw)
            now_c = np.array([[metric.class_wise[lab][k] for k in keys] for lab in labels], float)
            now_o = np.array([metric.overall[k] for k in okeys], float)
            cw[i], ov[i] = now_c - prev_c, now_o - prev_o
            prev_c, prev_o = now_c, now_o
    return labels, cw, ov


def f1_from_counts(labels: Sequence[str], class_wise: np.ndarray, overall: np.ndarray) -> dict[str, Any]:
    """sed_eval's rules ('zero_score') on summed counts ``class_wise`` (labels, 3) and ``overall`` (6,) as
    :func:`clip_counts` gives them: F1 per class, macro and micro, and the ``overall`` P, R and error rates
    (sed_eval's own ``metric`` functions); the same keys as :func:`event_based`."""
    # Lazy: sed_eval (~0.1 s, and dcase_util's import warning) kept off `sedx --help`.
    from sed_eval import metric as M

    per_class = {}
    for lab, (ntp, nsys, nref) in zip(labels, class_wise):
        f, p, r = _sed_eval_prf(ntp, nsys, nref)
        per_class[lab] = {"f1": f, "precision": p, "recall": r, "n_ref": int(nref), "n_sys": int(nsys)}
    ntp, nsys, nref, subs, dels, ins = overall
    f_micro, p, r = _sed_eval_prf(ntp, nsys, nref)
    rates = {
        "substitution_rate": M.substitution_rate(Nref=nref, Nsubstitutions=subs),
        "deletion_rate": M.deletion_rate(Nref=nref, Ndeletions=dels),
        "insertion_rate": M.insertion_rate(Nref=nref, Ninsertions=ins),
    }
    rates["error_rate"] = M.error_rate(
        rates["substitution_rate"], rates["deletion_rate"], rates["insertion_rate"]
    )
    fs = [v["f1"] for v in per_class.values()]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = float(np.nanmean(fs)) if fs else math.nan
    overall_figs = {"precision": p, "recall": r, **{k: float(rates[k]) for k in ERROR_RATE_KEYS}}
    return {"f1_macro": macro, "f1_micro": f_micro, "per_class": per_class, "overall": overall_figs}

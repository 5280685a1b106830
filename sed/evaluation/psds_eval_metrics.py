"""psds_eval wrappers (SPEC section 7): PSDS from one detection table per operating point, and PSDS-F.

PSDS as DCASE 2020 computed it: ``psds_eval`` 0.5.3 over the given operating points (``sed.eval``: frame
threshold ``1/(2n), 3/(2n), ..., 1 - 1/(2n)``: 0.01 ... 0.99 for 50, the same for every class), for each
:class:`~sed.evaluation.scenarios.Scenario` (default: the DCASE 2020 figures ``psds``,
``psds_cross_trigger``, ``psds_macro``); scenarios sharing dtc/gtc/cttc share one ``PSDSEval``. The PSDS
F-score is ``PSDSEval.compute_macro_f_score`` on the detections at one operating point (the DCASE 2020
baseline's "PSDS macro F-score"); it leaves out (nan) a class with no true positive, as it did for
DCASE 2020. psds_eval takes its class list from the ground truth.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sed.evaluation.common import MetricsError, count_overlaps, quiet
from sed.evaluation.scenarios import PSDS_EVAL_DEFAULT, SCENARIOS, Scenario, group_by_criteria

log = logging.getLogger(__name__)

PSDS_2020 = dict(
    zip(("dtc_threshold", "gtc_threshold", "cttc_threshold"), SCENARIOS["psds"].psds_eval_criteria())
)
#: the DCASE 2020 settings as ``{figure: settings}`` (from :mod:`sed.evaluation.scenarios`)
PSDS_SETTINGS = {
    s.name: {k: v for k, v in s.to_dict().items() if k not in ("name", "max_efpr")} for s in PSDS_EVAL_DEFAULT
}


def _psds_tables(reference: pd.DataFrame, durations: Mapping[str, float]):
    gt = reference[["filename", "onset", "offset", "event_label"]].reset_index(drop=True)
    meta = pd.DataFrame({"filename": list(durations), "duration": [float(v) for v in durations.values()]})
    return gt, meta


_PSDS_EV = None  # the PSDSEval a forked worker evaluates with


def _psds_eval_op(table: pd.DataFrame):
    return _PSDS_EV._evaluate_detections(table)


def _operating_point_table(ev, det: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """One operating point's detections as ``PSDSEval.add_operating_point`` prepares them (psds_eval
    0.5.3: zero-length events dropped, sorted, ``duration`` and ``id`` columns) and its id."""
    t = det[list(ev.detection_cols)].reset_index(drop=True)
    t = t[t.offset > t.onset].sort_values(by=ev.detection_cols[:2], axis=0)
    t["duration"] = t.offset - t.onset
    t["id"] = t.index
    return ev._operating_point_id(t), t


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
        op_id, t = _operating_point_table(ev, det)
        if not op_id or op_id in seen:
            continue
        seen.add(op_id)
        tables.append((op_id, t))
        kept_infos.append(info)
    results = None
    if workers > 1 and len(tables) > 1:
        try:
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
    scenarios: Sequence[Scenario] = PSDS_EVAL_DEFAULT,
    per_class: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """PSDS figures via ``psds_eval`` from one detection table per operating point, one per scenario.

    Returns ``(figures, curves)``: a figure per scenario name (default: the DCASE 2020 ``psds``,
    ``psds_cross_trigger``, ``psds_macro``) and, when ``operating_point`` is given, ``psds_f_score`` and
    ``psds_f_per_class`` (with the first scenario's dtc/gtc/cttc); curves: each figure's PSD-ROC
    (``efpr``, ``etpr``; ``per_class``: also each class's points, :func:`per_class_roc`). ``workers``:
    processes evaluating the operating points (1, the default: all in this process; ``sed.eval`` uses
    :func:`default_workers`). Overlapping same-class detections in a table raise :class:`MetricsError`,
    as psds_eval refuses them.
    """
    # Lazy: psds_eval costs ~0.3 s to import, kept off `sedx --help` (which imports this module).
    from psds_eval import PSDSEval

    if reference.empty:
        raise MetricsError("psds_eval: the ground truth has no event (PSDS is undefined)")
    if not scenarios:
        raise MetricsError("psds_eval: no scenario to compute")
    gt, meta = _psds_tables(reference, durations)
    figures: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    workers = default_workers() if workers is None else int(workers)
    ths = list(thresholds) if thresholds is not None else [None] * len(detections)
    infos = [{"name": f"op{i:03d}", "threshold": th} for i, th in enumerate(ths)]
    for i, det in enumerate(detections):
        _refuse_overlaps(det, f"operating point {i} (threshold {ths[i]})")
    first = scenarios[0].psds_eval_criteria()
    with quiet():
        for (dtc, gtc, cttc), group in group_by_criteria(scenarios).items():
            ev = PSDSEval(
                dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta
            )
            _add_operating_points(ev, detections, infos, workers)
            for s in group:
                figures[s.name], curves[s.name] = _psds_and_curve(ev, s, per_class)
            if operating_point is not None and (dtc, gtc, cttc) == first:
                f, per_class = ev.compute_macro_f_score(
                    operating_point[["filename", "onset", "offset", "event_label"]]
                )
                figures["psds_f_score"] = float(f)
                figures["psds_f_per_class"] = {c: float(v) for c, v in per_class.items()}
    return figures, curves


def _psds_and_curve(ev, s: Scenario, per_class: bool) -> tuple[float, dict[str, Any]]:
    """``PSDSEval.psds`` of ``s``: the value and PSD-ROC (``per_class``: :func:`per_class_roc` too)."""
    res = ev.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st, max_efpr=s.max_efpr)
    curve: dict[str, Any] = {"efpr": np.asarray(res.plt.xp).tolist(), "etpr": np.asarray(res.plt.yp).tolist()}
    if per_class:
        curve["per_class"] = per_class_roc(ev, s.alpha_ct)
    return float(res.value), curve


def per_class_roc(ev, alpha_ct: float) -> dict[str, dict[str, list]]:
    """Each class's PSD-ROC points as psds_eval holds them (``PSDSEval._effective_fp_rate``): per operating
    point, in the order added, its ``threshold`` (the info given), ``tpr`` and ``efpr`` (per hour; eFPR =
    FPR + alpha_ct x mean cross-trigger rate)."""
    # Lazy: psds_eval costs ~0.3 s to import, kept off `sedx --help` (which imports this module).
    from psds_eval.psds import WORLD

    rates = ev._effective_fp_rate(alpha_ct)
    ops = ev.operating_points
    n = len(ops)
    ths = ops["threshold"].tolist() if "threshold" in ops.columns else [None] * n
    classes = sorted(set(ev.class_names) - {WORLD})
    return {
        c: {
            "threshold": ths,
            "tpr": rates.tp_ratio[i, :n].tolist(),
            "efpr": rates.effective_fp_rate[i, :n].tolist(),
        }
        for i, c in enumerate(classes)
    }


def _refuse_overlaps(table: pd.DataFrame, name: str) -> None:
    n, example = count_overlaps(table)
    if n:
        raise MetricsError(
            f"psds_eval: {name} holds {n} overlapping same-class detection(s) (psds_eval refuses them), "
            f"e.g. {example}"
        )


def psds_f_score(
    detections: pd.DataFrame,
    reference: pd.DataFrame,
    durations: Mapping[str, float],
    scenario: Scenario = SCENARIOS["psds"],
) -> tuple[float, dict]:
    """``PSDSEval.compute_macro_f_score`` on one detection table, with the scenario's dtc/gtc/cttc
    (default dtc 0.5, gtc 0.5, cttc 0.3: the DCASE 2020 PSDS-F)."""
    # Lazy: psds_eval costs ~0.3 s to import, kept off `sedx --help` (which imports this module).
    from psds_eval import PSDSEval

    if reference.empty:
        raise MetricsError("psds_eval: the ground truth has no event (PSDS F-score is undefined)")
    gt, meta = _psds_tables(reference, durations)
    dtc, gtc, cttc = scenario.psds_eval_criteria()
    with quiet():
        ev = PSDSEval(
            dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta
        )
        f, per_class = ev.compute_macro_f_score(detections[["filename", "onset", "offset", "event_label"]])
    return float(f), {c: float(v) for c, v in per_class.items()}


def _psds_value(ev, s: Scenario) -> float:
    """``PSDSEval.psds(alpha_ct, alpha_st, max_efpr).value`` (psds_eval 0.5.3, step curves) without the
    per-class-pair cross-trigger and plain-FPR curves that ``psd_roc_curves`` also draws and ``psds`` does
    not use: the same library steps on the eFPR curve only (10x fewer pandas merges; tested equal)."""
    # Lazy: psds_eval costs ~0.3 s to import, kept off `sedx --help` (which imports this module).
    from psds_eval.psds import PSDROC

    pcr = ev._effective_fp_rate(s.alpha_ct)
    n_classes = len(ev.class_names) - 1
    x = np.unique(np.sort(pcr.effective_fp_rate.flatten()))
    y = np.full((n_classes, x.size), np.nan)
    for c in range(n_classes):
        y[c] = ev.step_curve(x, pcr.effective_fp_rate[c], pcr.tp_ratio[c])
    curve = PSDROC(yp=y, xp=x, mean=np.nanmean(y, axis=0), std=np.nanstd(y, axis=0))
    roc = ev._effective_tp_ratio(curve, s.alpha_st)
    return float(ev._auc(roc.xp, roc.yp, s.max_efpr, s.alpha_st > 0) / s.max_efpr)


class PsdsEvalResampler:
    """psds_eval's figures on resampled clip sets (bootstrap) without evaluating the detections again.

    psds_eval's operating-point statistics are sums over clips: a detection only meets ground truth of
    its own clip. So each operating point is evaluated once, by the library's own steps (as in
    ``PSDSEval._evaluate_detections``: intersections, DTC/GTC, CTTC, duplicates dropped), and its true
    positives and cross-triggers are counted per clip. A resample (``weights``: how many times each clip is
    drawn) sums those counts, forms the rates as ``PSDSEval._confusion_matrix_and_rates`` does, hands them to
    the library (``_add_op``) and computes ``PSDSEval.psds`` / the macro F-score as the library does. All
    weights 1 give the library's figures (tested). psds_eval 0.5.3 (pinned).
    """

    def __init__(
        self,
        detections: Sequence[pd.DataFrame],
        reference: pd.DataFrame,
        durations: Mapping[str, float],
        scenarios: Sequence[Scenario],
        thresholds: Sequence[float | None] | None = None,
    ) -> None:
        # Lazy: psds_eval costs ~0.3 s to import, kept off `sedx --help` (which imports this module).
        from psds_eval import PSDSEval
        from psds_eval.psds import WORLD

        if reference.empty:
            raise MetricsError("psds_eval: the ground truth has no event (PSDS is undefined)")
        gt, meta = _psds_tables(reference, durations)
        self.clips = list(durations)
        self.scenarios = list(scenarios)
        self.thresholds = list(thresholds) if thresholds is not None else [None] * len(detections)
        index = {f: i for i, f in enumerate(self.clips)}
        self.classes = sorted(set(gt["event_label"]))
        cls = {c: i for i, c in enumerate(self.classes)}
        n, c = len(self.clips), len(self.classes)
        self.duration = np.asarray([float(durations[f]) for f in self.clips])
        fi = gt["filename"].map(index).to_numpy()
        ci = gt["event_label"].map(cls).to_numpy()
        self.n_gt = np.zeros((n, c))
        np.add.at(self.n_gt, (fi, ci), 1)
        self.gt_dur = np.zeros((n, c))
        np.add.at(self.gt_dur, (fi, ci), (gt["offset"] - gt["onset"]).to_numpy(float))
        self.groups = []
        self.exact = []  # per group: the library's own (op id, index, rates) of every operating point
        with quiet():
            for (dtc, gtc, cttc), group in group_by_criteria(scenarios).items():
                ev = PSDSEval(
                    dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta
                )
                per_op, seen, exact = [], set(), []
                for k, det in enumerate(detections):
                    op_id, t = _operating_point_table(ev, det)
                    if not op_id or op_id in seen:
                        continue
                    seen.add(op_id)
                    inter = ev._ground_truth_intersections(t, ev.ground_truth)
                    tp, dtc_ids = ev._detection_and_ground_truth_criteria(inter)
                    ct = ev._cross_trigger_criterion(inter, tp, dtc_ids)
                    ct = ct.drop_duplicates(["id_det", "event_label_gt"])
                    tp = tp.drop_duplicates("id_gt")
                    tp_n = np.zeros((n, c))
                    tp_file = tp["filename"].map(index).to_numpy(int)
                    np.add.at(tp_n, (tp_file, tp["event_label_gt"].map(cls).to_numpy(int)), 1)
                    ct_n = np.zeros((n, c, c + 1))
                    j = ct["event_label_gt"].map(lambda x: c if x == WORLD else cls[x]).to_numpy(int)
                    ct_file = ct["filename"].map(index).to_numpy(int)
                    np.add.at(ct_n, (ct_file, ct["event_label_det"].map(cls).to_numpy(int), j), 1)
                    per_op.append((k, tp_n, ct_n))
                    exact.append((op_id, k, ev._confusion_matrix_and_rates(tp, ct)))
                self.groups.append((ev, group, per_op))
                self.exact.append(exact)

    def _rates(self, ev, w: np.ndarray, tp_n: np.ndarray, ct_n: np.ndarray):
        """``PSDSEval._confusion_matrix_and_rates`` on the clip-weighted counts."""
        c = len(self.classes)
        counts = np.zeros((c + 1, c + 1))
        counts[:c, :] = np.tensordot(w, ct_n, axes=1)
        tp = w @ tp_n
        counts[np.arange(c), np.arange(c)] = tp
        n_gt = w @ self.n_gt
        gt_dur = w @ self.gt_dur
        dataset_dur = float(w @ self.duration)
        with np.errstate(all="ignore"):
            tp_ratio = np.where(n_gt > 0, tp / n_gt, np.nan)
            fp_rate = counts[:c, c] * ev.nseconds / dataset_dur
            ct_rate = counts[:c, :c] * ev.nseconds / gt_dur[None, :]
        ct_rate[np.arange(c), np.arange(c)] = np.nan
        return counts, tp_ratio, fp_rate, ct_rate

    def library_figures(self, per_class: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
        """The full set's figures and PSD-ROC curves exactly as :func:`psds_eval_scores` gives them: the
        library's rates of each operating point (``_confusion_matrix_and_rates``), ``_add_op``, ``psds``."""
        figures, curves = {}, {}
        with quiet():
            for (ev, group, _), exact in zip(self.groups, self.exact):
                ev.clear_all_operating_points()
                for op_id, k, (cts, tpr, fpr, ctr) in exact:
                    info = {"name": f"op{k:03d}", "threshold": self.thresholds[k]}
                    ev._add_op(opid=op_id, counts=cts, tpr=tpr, fpr=fpr, ctr=ctr, info=info)
                for s in group:
                    figures[s.name], curves[s.name] = _psds_and_curve(ev, s, per_class)
        return figures, curves

    def psds(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """Each scenario's PSDS on the clip set drawn as ``weights`` (default: every clip once)."""
        w = np.ones(len(self.clips)) if weights is None else np.asarray(weights, float)
        out = {}
        with quiet():
            for ev, group, per_op in self.groups:
                ev.clear_all_operating_points()
                for k, tp_n, ct_n in per_op:
                    counts, tpr, fpr, ctr = self._rates(ev, w, tp_n, ct_n)
                    info = {"threshold": self.thresholds[k]}
                    ev._add_op(opid=f"op{k}", counts=counts, tpr=tpr, fpr=fpr, ctr=ctr, info=info)
                for s in group:
                    out[s.name] = _psds_value(ev, s)
        return out

    def f_score(self, weights: np.ndarray | None = None, op: int = 0) -> float:
        """``PSDSEval.compute_macro_f_score`` of operating point ``op`` (first criteria group), resampled."""
        w = np.ones(len(self.clips)) if weights is None else np.asarray(weights, float)
        ev, _, per_op = self.groups[0]
        match = [(tp_n, ct_n) for k, tp_n, ct_n in per_op if k == op]
        if not match:
            return 0.0
        counts, tp_ratios, _, _ = self._rates(ev, w, *match[0])
        with np.errstate(all="ignore"):
            per_class_tp = np.diag(counts)[:-1]
            num_gts = per_class_tp / tp_ratios
            per_class_fp = counts[:-1, -1]
            per_class_fn = num_gts - per_class_tp
            f = ev.compute_f_score(per_class_tp, per_class_fp, per_class_fn, 1.0)
            return float(np.nanmean(f))

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
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sed.evaluation.common import MetricsError, count_overlaps, quiet
from sed.evaluation.scenarios import PSDS_EVAL_DEFAULT, SCENARIOS, Scenario, group_by_criteria

log = logging.getLogger(__name__)

PSDS_2020 = dict(zip(("dtc_threshold", "gtc_threshold", "cttc_threshold"), SCENARIOS["psds"].psds_eval_criteria()))
#: the DCASE 2020 settings as ``{figure: settings}`` (from :mod:`sed.evaluation.scenarios`)
PSDS_SETTINGS = {s.name: {k: v for k, v in s.to_dict().items() if k not in ("name", "max_efpr")} for s in PSDS_EVAL_DEFAULT}


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
    scenarios: Sequence[Scenario] = PSDS_EVAL_DEFAULT,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """PSDS figures via ``psds_eval`` from one detection table per operating point, one per scenario.

    Returns ``(figures, curves)``: a figure per scenario name (default: the DCASE 2020 ``psds``,
    ``psds_cross_trigger``, ``psds_macro``) and, when ``operating_point`` is given, ``psds_f_score`` and
    ``psds_f_per_class`` (with the first scenario's dtc/gtc/cttc); curves: each figure's PSD-ROC
    (``efpr``, ``etpr``). ``workers``: processes evaluating the operating points (1, the default: all in
    this process; ``sed.eval`` uses :func:`default_workers`). Overlapping same-class detections in a
    table raise :class:`MetricsError`, as psds_eval refuses them.
    """
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
            ev = PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta)
            _add_operating_points(ev, detections, infos, workers)
            for s in group:
                res = ev.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st, max_efpr=s.max_efpr)
                figures[s.name] = float(res.value)
                curves[s.name] = {"efpr": np.asarray(res.plt.xp).tolist(), "etpr": np.asarray(res.plt.yp).tolist()}
            if operating_point is not None and (dtc, gtc, cttc) == first:
                f, per_class = ev.compute_macro_f_score(
                    operating_point[["filename", "onset", "offset", "event_label"]]
                )
                figures["psds_f_score"] = float(f)
                figures["psds_f_per_class"] = {c: float(v) for c, v in per_class.items()}
    return figures, curves


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
    from psds_eval import PSDSEval

    if reference.empty:
        raise MetricsError("psds_eval: the ground truth has no event (PSDS F-score is undefined)")
    gt, meta = _psds_tables(reference, durations)
    dtc, gtc, cttc = scenario.psds_eval_criteria()
    with quiet():
        ev = PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta)
        f, per_class = ev.compute_macro_f_score(detections[["filename", "onset", "offset", "event_label"]])
    return float(f), {c: float(v) for c, v in per_class.items()}

"""sed_scores_eval wrappers (SPEC section 7): threshold-independent PSDS from per-clip score tables.

Threshold-independent PSDS (every distinct score is a threshold) for each
:class:`~sed.evaluation.scenarios.Scenario` (``sed.eval``: the 2020 setting without cttc, PSDS1 and
PSDS2, max_efpr 100) via ``sed_scores_eval``; in ``sed.eval`` the scores are the frame scores after
tagging, median filtering and hysteresis (folded in, see :mod:`sed.postproc.decoder`); event removal
and joining are not applied to scores. As psds_eval, only classes with ground-truth events are scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sed.evaluation.common import MetricsError, audio_id, quiet
from sed.evaluation.scenarios import SED_SCORES_DEFAULT, Scenario

if TYPE_CHECKING:  # pragma: no cover
    from sed.postproc import Decoder

#: the sed.eval settings as ``{figure: settings}`` (from :mod:`sed.evaluation.scenarios`)
SED_SCORES_SETTINGS = {s.name: {k: v for k, v in s.sed_scores_kwargs().items() if k != "max_efpr"} for s in SED_SCORES_DEFAULT}


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
    scenarios: Sequence[Scenario] = SED_SCORES_DEFAULT,
    *,
    deltas: Mapping[str, Any] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Threshold-independent PSDS figures via ``sed_scores_eval`` (all thresholds: every distinct score).

    ``scores``/``ground_truth``/``durations`` keyed by :func:`audio_id`; ``scenarios``: one figure each
    (default: ``psds_threshold_independent``, ``psds1``, ``psds2``). ``deltas``: ``{scenario name:
    intermediate statistics deltas}`` computed earlier (:func:`psds_deltas`; bootstrap), used instead of
    the scores.
    """
    from sed_scores_eval import intersection_based

    gt = _check_gt(ground_truth)
    if scores is not None:
        scores = _present_classes(scores, gt)
    figures, curves = {}, {}
    with quiet():
        for s in scenarios:
            value, _per_class, roc, _per_class_roc = intersection_based.psds(
                scores=None if deltas is not None else dict(scores),
                deltas=None if deltas is None else deltas[s.name],
                ground_truth=gt,
                audio_durations=dict(durations),
                **s.sed_scores_kwargs(),
            )
            figures[s.name] = float(value)
            etpr, efpr = roc
            curves[s.name] = {"efpr": np.asarray(efpr).tolist(), "etpr": np.asarray(etpr).tolist()}
    return figures, curves


def _check_gt(ground_truth: Mapping[str, Sequence]) -> dict[str, list]:
    gt = {k: [(float(e[0]), float(e[1]), str(e[2])) for e in v] for k, v in ground_truth.items()}
    if not any(gt.values()):
        raise MetricsError("sed_scores_eval: the ground truth has no event (PSDS is undefined)")
    return gt


def _present_classes(scores: Mapping[str, pd.DataFrame], gt: Mapping[str, list]) -> dict[str, pd.DataFrame]:
    """Like psds_eval, score only the classes that have ground-truth events (sed_scores_eval refuses others)."""
    present = {e[2] for v in gt.values() for e in v}
    return {k: df[[c for c in df.columns if c in ("onset", "offset") or c in present]] for k, df in scores.items()}


def psds_deltas(
    scores: Mapping[str, pd.DataFrame], ground_truth: Mapping[str, Sequence], scenarios: Sequence[Scenario]
) -> dict[str, dict]:
    """sed_scores_eval's per-clip intermediate statistics deltas, per scenario (its dtc/gtc/cttc), for
    :func:`sed_scores_psds` on resampled clip sets (bootstrap: a clip drawn twice is its deltas twice)."""
    from sed_scores_eval.intersection_based.intermediate_statistics import intermediate_statistics_deltas

    gt = _check_gt(ground_truth)
    scores = _present_classes(scores, gt)
    out, cache = {}, {}
    with quiet():
        for s in scenarios:
            kw = s.sed_scores_kwargs()
            key = (kw["dtc_threshold"], kw["gtc_threshold"], kw["cttc_threshold"])
            if key not in cache:
                cache[key] = intermediate_statistics_deltas(
                    scores=dict(scores), ground_truth=gt, dtc_threshold=key[0], gtc_threshold=key[1], cttc_threshold=key[2]
                )
            out[s.name] = cache[key]
    return out


def collar_deltas(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Sequence],
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> dict:
    """sed_scores_eval's per-clip collar-based intermediate statistics deltas (for :func:`collar_best_f1` on resampled sets)."""
    from sed_scores_eval.collar_based.intermediate_statistics import intermediate_statistics_deltas

    gt = _check_gt(ground_truth)
    with quiet():
        return intermediate_statistics_deltas(
            scores=_present_classes(scores, gt),
            ground_truth=gt,
            onset_collar=t_collar,
            offset_collar=t_collar,
            offset_collar_rate=percentage_of_length,
        )


def collar_best_f1(
    scores: Mapping[str, pd.DataFrame] | None,
    ground_truth: Mapping[str, Sequence],
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    deltas: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Collar-based F1 at the best threshold per class via ``sed_scores_eval.collar_based.best_fscore``
    (onset collar = offset collar = ``t_collar``, offset collar rate ``percentage_of_length``: sed_eval's
    event-based rules). Returns ``f1_macro`` and ``per_class`` ``{class: {f1, precision, recall, threshold}}``.
    ``deltas``: from :func:`collar_deltas`, used instead of the scores."""
    from sed_scores_eval import collar_based

    gt = _check_gt(ground_truth)
    with quiet():
        f, p, r, th, _stats = collar_based.best_fscore(
            scores=None if deltas is not None else _present_classes(scores, gt),
            deltas=None if deltas is None else dict(deltas),
            ground_truth=gt,
            onset_collar=t_collar,
            offset_collar=t_collar,
            offset_collar_rate=percentage_of_length,
        )
    per_class = {
        c: {"f1": float(f[c]), "precision": float(p[c]), "recall": float(r[c]), "threshold": float(th[c])}
        for c in f
        if c not in ("macro_average", "micro_average")
    }
    return {"f1_macro": float(f["macro_average"]), "per_class": per_class}

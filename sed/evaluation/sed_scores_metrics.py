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
SED_SCORES_SETTINGS = {
    s.name: {k: v for k, v in s.sed_scores_kwargs().items() if k != "max_efpr"} for s in SED_SCORES_DEFAULT
}


def score_tables(decoder: Decoder) -> dict[str, pd.DataFrame]:
    """Per-clip score DataFrames in sed_scores_eval's format (``onset, offset, <class>...``).

    Scores are the decoder's hysteresis scores; frames beyond a clip's duration are cut and the
    last frame's offset is clipped to it.
    """
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
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
    per_class: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Threshold-independent PSDS figures via ``sed_scores_eval`` (all thresholds: every distinct score).

    ``scores``/``ground_truth``/``durations`` keyed by :func:`audio_id`; ``scenarios``: one figure each
    (default: ``psds_threshold_independent``, ``psds1``, ``psds2``). ``deltas``: ``{scenario name:
    intermediate statistics deltas}`` computed earlier (:func:`psds_deltas`; bootstrap), used instead of
    the scores. ``per_class``: each curve also holds the library's per-class PSD-ROC points
    (``per_class``: ``{class: {threshold, tpr, efpr}}``, the score thresholds where the curve changes).
    """
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
    from sed_scores_eval import intersection_based

    gt = _check_gt(ground_truth)
    if scores is not None:
        scores = _present_classes(scores, gt)
    figures, curves = {}, {}
    with quiet():
        for s in scenarios:
            value, _per_class, roc, class_rocs = intersection_based.psds(
                scores=None if deltas is not None else dict(scores),
                deltas=None if deltas is None else deltas[s.name],
                ground_truth=gt,
                audio_durations=dict(durations),
                **s.sed_scores_kwargs(),
            )
            figures[s.name] = float(value)
            etpr, efpr = roc
            curves[s.name] = {"efpr": np.asarray(efpr).tolist(), "etpr": np.asarray(etpr).tolist()}
            if per_class:
                curves[s.name]["per_class"] = {
                    c: {
                        "threshold": np.asarray(th).tolist(),
                        "tpr": np.asarray(tpr).tolist(),
                        "efpr": np.asarray(fpr).tolist(),
                    }
                    for c, (tpr, fpr, th) in class_rocs.items()
                }
    return figures, curves


def _check_gt(ground_truth: Mapping[str, Sequence]) -> dict[str, list]:
    gt = {k: [(float(e[0]), float(e[1]), str(e[2])) for e in v] for k, v in ground_truth.items()}
    if not any(gt.values()):
        raise MetricsError("sed_scores_eval: the ground truth has no event (PSDS is undefined)")
    return gt


def _present_classes(scores: Mapping[str, pd.DataFrame], gt: Mapping[str, list]) -> dict[str, pd.DataFrame]:
    """Like psds_eval, score only the classes that have ground-truth events (sed_scores_eval refuses
    others)."""
    present = {e[2] for v in gt.values() for e in v}
    return {
        k: df[[c for c in df.columns if c in ("onset", "offset") or c in present]] for k, df in scores.items()
    }


def psds_deltas(
    scores: Mapping[str, pd.DataFrame], ground_truth: Mapping[str, Sequence], scenarios: Sequence[Scenario]
) -> dict[str, dict]:
    """sed_scores_eval's per-clip intermediate statistics deltas, per scenario (its dtc/gtc/cttc), for
    :func:`sed_scores_psds` on resampled clip sets (bootstrap: a clip drawn twice is its deltas twice)."""
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
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
                    scores=dict(scores),
                    ground_truth=gt,
                    dtc_threshold=key[0],
                    gtc_threshold=key[1],
                    cttc_threshold=key[2],
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
    """sed_scores_eval's per-clip collar-based intermediate statistics deltas (for
    :func:`collar_best_f1` on resampled sets)."""
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
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
    event-based rules). Returns ``f1_macro`` and ``per_class``
    ``{class: {f1, precision, recall, threshold}}``. ``deltas``: from :func:`collar_deltas`, used instead
    of the scores."""
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
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


class SedScoresResampler:
    """sed_scores_eval's PSDS (per scenario) and collar-based best F1 on resampled clip sets (bootstrap).

    The library accumulates per-clip deltas (``intermediate_statistics_deltas``, computed here once) by
    concatenating them over clips, merging equal scores and summing
    (``_intermediate_statistics_from_deltas``); a clip drawn k times adds its deltas k times. So a
    resample (``weights``: each clip's multiplicity) keeps the drawn clips' deltas, multiplied by their
    multiplicity, and hands them to the library's own steps (``_intermediate_statistics_from_deltas``,
    ``_single_class_roc_from_intermediate_statistics``, ``multi_class_psd_roc_from_single_class_psd_rocs``,
    ``psds_from_psd_roc``, ``best_fscore_from_intermediate_statistics``), without the per-clip Python
    loop of re-concatenation.
    Tested equal to the library run on the resampled set itself. sed_scores_eval 0.0.4 (pinned).
    """

    def __init__(
        self,
        scores: Mapping[str, pd.DataFrame],
        ground_truth: Mapping[str, Sequence],
        durations: Mapping[str, float],
        scenarios: Sequence[Scenario],
        *,
        t_collar: float = 0.2,
        percentage_of_length: float = 0.2,
    ) -> None:
        gt = _check_gt(ground_truth)
        self.ids = list(gt)
        self.scenarios = list(scenarios)
        self.duration = np.asarray([float(durations[k]) for k in self.ids])
        d_psds = psds_deltas(scores, gt, scenarios)
        d_collar = collar_deltas(scores, gt, t_collar=t_collar, percentage_of_length=percentage_of_length)
        self.classes = list(d_collar[self.ids[0]])
        cls = {c: i for i, c in enumerate(self.classes)}
        self.n_ref = np.zeros((len(self.ids), len(self.classes)))
        self.t_ref = np.zeros((len(self.ids), len(self.classes)))
        for i, k in enumerate(self.ids):
            for on, off, lab in gt[k]:
                if lab in cls:
                    self.n_ref[i, cls[lab]] += 1
                    self.t_ref[i, cls[lab]] += off - on
        packed: dict[int, dict] = {}
        self.psds_packed = {}
        for s in scenarios:
            d = d_psds[s.name]
            self.psds_packed[s.name] = packed.setdefault(id(d), self._pack(d))
        self.collar_packed = self._pack(d_collar)

    def _pack(self, deltas: Mapping[str, Any]) -> dict[str, tuple]:
        """Per class: the concatenated change-point scores, each one's clip index, and the deltas."""
        out = {}
        for c in self.classes:
            cps = [np.asarray(deltas[k][c][0]) for k in self.ids]
            idx = np.repeat(np.arange(len(self.ids)), [len(x) for x in cps])
            keys = list(deltas[self.ids[0]][c][1])
            out[c] = (
                np.concatenate(cps),
                idx,
                {key: np.concatenate([np.asarray(deltas[k][c][1][key]) for k in self.ids]) for key in keys},
            )
        return out

    def _stats(self, packed: Mapping[str, tuple], w: np.ndarray) -> dict[str, tuple]:
        # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
        from sed_scores_eval.base_modules.statistics import _intermediate_statistics_from_deltas

        out = {}
        for c, (cp, idx, deltas) in packed.items():
            m = w[idx]
            keep = m > 0
            out[c] = _intermediate_statistics_from_deltas(
                cp[keep], {k: v[keep] * m[keep] for k, v in deltas.items()}
            )
        return out

    def figures(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """Each scenario's PSDS and ``collar_f1_best_macro`` on the clip set drawn as ``weights``."""
        # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
        from sed_scores_eval.base_modules.precision_recall import best_fscore_from_intermediate_statistics
        from sed_scores_eval.intersection_based.psds import (
            _single_class_roc_from_intermediate_statistics,
            multi_class_psd_roc_from_single_class_psd_rocs,
            psds_from_psd_roc,
        )

        w = np.ones(len(self.ids)) if weights is None else np.asarray(weights, float)
        n_ref, t_ref = w @ self.n_ref, w @ self.t_ref
        dataset_duration = float(w @ self.duration)
        out: dict[str, float] = {}
        with quiet():
            for s in self.scenarios:
                kw = s.sed_scores_kwargs()
                stats = self._stats(self.psds_packed[s.name], w)
                full = {}
                for i, c in enumerate(self.classes):
                    cp, st = stats[c]
                    full[c] = (cp, {
                        **st,
                        "n_ref": n_ref[i],
                        "t_ref": t_ref[i],
                        "n_ref_other": {o: n_ref[j] for j, o in enumerate(self.classes) if o != c},
                        "t_ref_other": {o: t_ref[j] for j, o in enumerate(self.classes) if o != c},
                    })
                rocs = _single_class_roc_from_intermediate_statistics(
                    full, dataset_duration=dataset_duration, alpha_ct=kw["alpha_ct"], max_efpr=kw["max_efpr"]
                )
                etpr, efpr = multi_class_psd_roc_from_single_class_psd_rocs(
                    rocs, alpha_st=kw["alpha_st"], max_efpr=kw["max_efpr"]
                )
                out[s.name] = float(psds_from_psd_roc(etpr, efpr, kw["max_efpr"]))
            stats = self._stats(self.collar_packed, w)
            full = {c: (stats[c][0], {**stats[c][1], "n_ref": n_ref[i]}) for i, c in enumerate(self.classes)}
            f = best_fscore_from_intermediate_statistics(full, beta=1.0, min_precision=0.0, min_recall=0.0)[0]
            out["collar_f1_best_macro"] = float(f["macro_average"])
        return out

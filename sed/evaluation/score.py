"""``sedx score``: score any DCASE system's outputs against a strong ground truth, with every metric.

A system is one of:

- a detections file, tab- or comma-separated, its columns named by a header (``filename``/``file``,
  ``onset``/``start``, ``offset``/``end``, ``event_label``/``label``; any order, extra columns ignored) or,
  with no header, ``filename onset offset event_label``: event-based and segment-based F1 (sed_eval, per
  class, macro, micro), sed_eval's overall precision, recall and error rate (S/D/I), and the PSDS-F /
  intersection F1 (psds_eval ``compute_macro_f_score`` with ``--psds-f``'s dtc/gtc/cttc, default
  DCASE 2020's);
- a folder (or glob) of operating-point detection files, one per threshold (from each file's name or
  ``--thresholds``): PSDS per scenario (psds_eval) and each class's PSD-ROC points;
- a folder of sed_scores_eval score TSVs (one per clip): threshold-independent PSDS per scenario and the
  collar-based F1 at the best threshold per class (sed_scores_eval);
- the project's predictions ``.npz`` (``sed.eval``'s): decoded with ``--postproc``; the detections'
  figures and the score tables' figures.

Clip durations: ``--durations`` (DESED's ``filename<TAB>duration``), else ``--audio`` (the files'
headers), else 10 s with a note. ``--bootstrap N``: clips resampled with replacement N times (seeded;
a clip drawn k times counts k times), each headline figure recomputed on every resample from the
libraries' per-clip statistics (:func:`bootstrap`); 95 % percentile intervals. Two systems: the same
resamples for both, the difference's interval and the share of resamples where A beats B (paired
bootstrap).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.core.errors import ConfigError, DataError, SedError
from sed.core.predictions import Predictions, PredictionsError
from sed.evaluation.common import (
    MetricsError,
    audio_id,
    ground_truth_table,
    merge_connected,
    merged_note,
    nan_to_none,
)
from sed.evaluation.metrics import align
from sed.evaluation.names import (
    SCORE_BOOTSTRAP_KEYS,
    SCORE_DETECTION_KEYS,
    SCORE_PR_KEYS,
    SCORE_SCORES_KEYS,
)
from sed.evaluation.psds_eval_metrics import PsdsEvalResampler, psds_eval_scores, psds_f_score
from sed.evaluation.scenarios import SCENARIOS, SCORE_DEFAULT, Scenario, parse_scenarios
from sed.evaluation.score_inputs import (
    DEFAULT_DURATION,
    Detections,
    Truth,
    check_event_ends,
    durations_from_audio,
    looks_like_score_folder,
    read_detections,
    read_durations,
    read_operating_points,
    read_score_folder,
    read_truth,
)
from sed.evaluation.sed_eval_metrics import (
    ERROR_RATE_KEYS,
    PERCENTAGE_OF_LENGTH,
    SEGMENT_SECONDS,
    T_COLLAR,
    clip_counts,
    event_based,
    f1_from_counts,
    segment_based,
)
from sed.evaluation.sed_scores_metrics import (
    SedScoresResampler,
    collar_best_f1,
    score_tables,
    sed_scores_psds,
)
from sed.postproc import Decoder
from sed.postproc.files import choose_postproc, tuned_postproc_file

CONFIDENCE = 0.95
#: figures printed as percentages (F-scores, precision, recall); PSDS figures and error rates print as ratios
PCT_KEYS = (*SCORE_DETECTION_KEYS, *SCORE_PR_KEYS, *SCORE_SCORES_KEYS)
#: ``--evaluated-length``: each clip's duration (the default) or sed_eval's own (the last event's offset)
EVALUATED_LENGTHS = ("durations", "last-offset")
#: the intersection F-score's criteria without ``--psds-f``: DCASE 2020's (dtc 0.5 gtc 0.5 cttc 0.3)
PSDS_F_DEFAULT = SCENARIOS["psds"]


@dataclass(frozen=True)
class Settings:
    """The settings of the detection figures: sed_eval's collars, segment length and evaluated length, and
    the PSDS-F criteria (``--psds-f``, never the ``--scenario``'s). Defaults: DCASE 2020's."""

    t_collar: float = T_COLLAR
    percentage_of_length: float = PERCENTAGE_OF_LENGTH
    segment_length: float = SEGMENT_SECONDS
    evaluated_length: str = "durations"
    f_scenario: Scenario = PSDS_F_DEFAULT

    def __post_init__(self) -> None:
        if not self.segment_length > 0:
            raise ConfigError(f"--segment-length must be > 0 seconds, got {self.segment_length:g}")
        if not self.t_collar >= 0:
            raise ConfigError(f"--collar must be >= 0 seconds, got {self.t_collar:g}")
        if not 0 <= self.percentage_of_length <= 1:
            raise ConfigError(
                "--collar-percentage is a fraction of the event's length in [0, 1] (0.2 = 20 %), "
                f"got {self.percentage_of_length:g}"
            )
        if self.evaluated_length not in EVALUATED_LENGTHS:
            raise ConfigError(
                f"--evaluated-length must be one of {', '.join(EVALUATED_LENGTHS)}, "
                f"got {self.evaluated_length!r}"
            )

    def segment_durations(self, durations: Mapping[str, float]) -> Mapping[str, float] | None:
        """sed_eval's evaluated length per clip: the durations, or None (its default, the last offset)."""
        return durations if self.evaluated_length == "durations" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "collar": self.t_collar,
            "collar_percentage": self.percentage_of_length,
            "segment_length": self.segment_length,
            "evaluated_length": self.evaluated_length,
        }


@dataclass
class System:
    """One system's outputs, read and checked: any of detections, operating points and score tables."""

    path: str
    kind: str  # detections | operating_points | scores | predictions
    detections: Detections | None = None
    ops: list[Detections] | None = None
    scores: dict[str, pd.DataFrame] | None = None
    durations: dict[str, float] | None = None  # from predictions
    notes: list[str] = field(default_factory=list)


def parse_psds_f(spec: str | Scenario | None) -> Scenario:
    """``--psds-f``: ``key=value`` settings (dtc, gtc, cttc) or a scenario name; None: DCASE 2020's."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return PSDS_F_DEFAULT
    if isinstance(spec, Scenario):
        return spec
    found = parse_scenarios(spec)
    if len({s.psds_eval_criteria() for s in found}) != 1:
        raise ConfigError(
            f"--psds-f {spec!r}: {len(found)} different criteria; give one (e.g. dtc=0.5,gtc=0.5,cttc=0.3)"
        )
    return found[0]


# ---------------------------------------------------------------------------- loading
def load_system(
    path: str | Path,
    truth: Truth,
    *,
    on_missing: str = "error",
    merge_overlaps: bool = False,
    postproc: str | None = None,
    thresholds: Sequence[float] | None = None,
    allow_empty: bool = False,
) -> System:
    """Read a system's outputs; the kind follows from the path (see the module docstring). A system without
    any detection is an error unless ``allow_empty`` (then every figure from it is 0, with a note)."""
    s = str(path)
    p = Path(s)
    if p.is_file() and p.suffix == ".npz":
        return _load_predictions(p, truth, on_missing=on_missing, postproc=postproc)
    if p.is_file():
        d = read_detections(p, truth, on_missing=on_missing, merge_overlaps=merge_overlaps)
        notes = [f"{p.name}: read as {d.layout}"] if d.layout else []
        system = System(s, "detections", detections=d, notes=notes + d.notes)
    elif p.is_dir() or any(ch in s for ch in "*?["):
        if looks_like_score_folder(s):
            scores, notes = read_score_folder(s, truth, on_missing=on_missing)
            return System(s, "scores", scores=scores, notes=notes)
        ops = read_operating_points(
            s, truth, thresholds=thresholds, on_missing=on_missing, merge_overlaps=merge_overlaps
        )
        system = System(s, "operating_points", ops=ops, notes=_ops_notes(ops))
    else:
        raise DataError(
            f"{s}: not found (expected a detections file, a folder or glob of them, or a predictions .npz)"
        )
    _refuse_empty(system, allow_empty)
    return system


def _ops_notes(ops: Sequence[Detections]) -> list[str]:
    """One note per layout read (not one per file), then the files' own notes: the first ones and a count."""
    layouts: dict[str, int] = {}
    for o in ops:
        if o.layout:
            layouts[o.layout] = layouts.get(o.layout, 0) + 1
    notes = [f"{n} operating-point file(s) read as {lay}" for lay, n in layouts.items()]
    own = [n for o in ops for n in o.notes]
    if len(own) > 3:
        own = [*own[:2], f"... and {len(own) - 2} more such note(s) on the other operating points"]
    return notes + own


def _refuse_empty(system: System, allow_empty: bool) -> None:
    """No detection at all (an empty file, only a header, every row dropped, every operating point empty):
    an error naming why, unless ``allow_empty`` (a note)."""
    tables = [system.detections] if system.detections is not None else list(system.ops or [])
    if any(not d.table.empty for d in tables):
        return
    if allow_empty:
        system.notes.append(f"{Path(system.path).name}: no detection (every figure from it scores 0)")
        return
    n_read = sum(d.n_read for d in tables)
    why = (
        "no detection (the file holds no row)"
        if system.kind == "detections"
        else (f"no detection in any of the {len(tables)} operating-point files")
    )
    if n_read:
        why = f"no detection left: all {n_read} row(s) are of clips absent from the ground truth"
        why += " (--on-missing drop)"
    raise DataError(f"{system.path}: {why}; such a system scores 0 on every figure (--allow-empty scores it)")


def _load_predictions(path: Path, truth: Truth, *, on_missing: str, postproc: str | None) -> System:
    try:
        preds = Predictions.load(path)
    except PredictionsError as e:
        raise DataError(str(e)) from None
    unknown = sorted(set(truth.classes) - set(preds.classes))
    if unknown:
        raise DataError(f"{truth.path}: class {unknown[0]!r} is not among {path}'s classes")
    preds, _ = align(preds, truth.events, on_missing=on_missing, source=str(path))
    tuned = tuned_postproc_file([], [path]) if postproc is None else None
    choice = choose_postproc(file=postproc, tuned=tuned)
    params = choice.params
    dec = Decoder.prepare(preds, params)
    det = dec.events(params=params)
    det = det[det["event_label"].isin(truth.classes)].reset_index(drop=True)
    scores = {k: v[["onset", "offset", *truth.classes]] for k, v in score_tables(dec).items()}
    durations = {f: float(d) for f, d in zip(preds.filenames, preds.durations)}
    notes = [f"{path.name}: decoded with {choice.line()}"]
    return System(
        str(path),
        "predictions",
        detections=Detections(str(path), det),
        scores=scores,
        durations=durations,
        notes=notes,
    )


def resolve_durations(
    truth: Truth,
    durations: str | None,
    audio_dir: str | None,
    system_durations: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], str, list[str]]:
    """Each clip's duration: ``--durations`` file, else ``--audio`` headers, else the predictions',
    else 10 s."""
    if durations:
        return read_durations(durations, truth.clips), f"{durations}", []
    if audio_dir:
        return durations_from_audio(audio_dir, truth.clips), f"audio headers in {audio_dir}", []
    if system_durations and all(c in system_durations for c in truth.clips):
        return {c: float(system_durations[c]) for c in truth.clips}, "the predictions file", []
    note = f"no --durations nor --audio: every clip taken as {DEFAULT_DURATION:g} s long"
    return (
        dict.fromkeys(truth.clips, DEFAULT_DURATION),
        f"{DEFAULT_DURATION:g} s for every clip (assumed)",
        [note],
    )


# ---------------------------------------------------------------------------- scoring
def evaluate_system(
    system: System,
    gt: Mapping[str, list],
    durations: Mapping[str, float],
    classes: Sequence[str],
    scenarios: Sequence[Scenario],
    *,
    workers: int = 1,
    settings: Settings = Settings(),
    ops_resampler: PsdsEvalResampler | None = None,
) -> tuple[dict[str, Any], dict[str, dict], dict[str, Any]]:
    """``(figures, per_class, curves)`` of one system on the clips of ``gt``.

    ``settings``: collars, segment and evaluated length, the PSDS-F's criteria. ``ops_resampler``: the
    operating points already evaluated for the bootstrap (the same figures, without evaluating them again).
    Curves hold each scenario's PSD-ROC and each class's points (``per_class``).
    """
    psds_gt, _ = merge_connected(gt)
    psds_ref = ground_truth_table(psds_gt)
    figures: dict[str, Any] = {}
    per_class: dict[str, dict] = {c: {} for c in classes}
    curves: dict[str, Any] = {}
    if system.detections is not None:
        figs, rows = _detection_figures(system.detections.table, gt, psds_ref, durations, classes, settings)
        figures.update(figs)
        for c in classes:
            per_class[c].update(rows[c])
    if system.ops is not None:
        tables = [o.table for o in system.ops]
        if all(t.empty for t in tables):
            figures.update({s.name: 0.0 for s in scenarios})
        else:
            ths = [o.threshold for o in system.ops]
            if ops_resampler is not None:
                figs, cv = ops_resampler.library_figures(per_class=True)
            else:
                figs, cv = psds_eval_scores(
                    tables,
                    psds_ref,
                    durations,
                    thresholds=ths,
                    scenarios=scenarios,
                    workers=workers,
                    per_class=True,
                )
            figures.update(figs)
            curves["psds_eval"] = cv
            curves["psds_eval_thresholds"] = ths
    if system.scores is not None:
        _score_table_figures(system, psds_gt, durations, scenarios, settings, figures, per_class, curves)
    return figures, per_class, curves


def _detection_figures(
    det: pd.DataFrame,
    gt: Mapping[str, list],
    psds_ref: pd.DataFrame,
    durations: Mapping[str, float],
    classes: Sequence[str],
    st: Settings,
) -> tuple[dict[str, Any], dict[str, dict]]:
    """sed_eval's event- and segment-based figures (F1 macro/micro, overall P/R, error rate with S/D/I) and
    psds_eval's intersection F-score of one detections table; and per class."""
    clips, reference = list(gt), ground_truth_table(gt)
    ev = event_based(
        reference,
        det,
        clips,
        classes=classes,
        t_collar=st.t_collar,
        percentage_of_length=st.percentage_of_length,
    )
    seg = segment_based(
        reference,
        det,
        clips,
        durations=st.segment_durations(durations),
        classes=classes,
        time_resolution=st.segment_length,
    )
    if det.empty:  # psds_eval refuses an empty table: no detection, no true positive
        pf, pf_class = 0.0, dict.fromkeys(classes, 0.0)
    else:
        pf, pf_class = psds_f_score(det, psds_ref, durations, scenario=st.f_scenario)
    figures: dict[str, Any] = {}
    for kind, r in (("event", ev), ("segment", seg)):
        figures.update({f"{kind}_f1_macro": r["f1_macro"], f"{kind}_f1_micro": r["f1_micro"]})
        figures.update(
            {
                f"{kind}_precision_micro": r["overall"]["precision"],
                f"{kind}_recall_micro": r["overall"]["recall"],
            }
        )
        figures.update({f"{kind}_{k}": r["overall"][k] for k in ERROR_RATE_KEYS})
    figures["psds_f_score"] = pf
    rows = {}
    for c in classes:
        e, g = ev["per_class"].get(c, {}), seg["per_class"].get(c, {})
        rows[c] = dict(
            event_f1=e.get("f1"),
            event_precision=e.get("precision"),
            event_recall=e.get("recall"),
            n_ref=e.get("n_ref", 0),
            n_sys=e.get("n_sys", 0),
            segment_f1=g.get("f1"),
            psds_f=pf_class.get(c),
        )
    return figures, rows


def _score_table_figures(
    system: System,
    psds_gt: Mapping[str, list],
    durations: Mapping[str, float],
    scenarios: Sequence[Scenario],
    st: Settings,
    figures: dict[str, Any],
    per_class: dict[str, dict],
    curves: dict[str, Any],
) -> None:
    """sed_scores_eval's threshold-independent PSDS per scenario and collar-based best F1, added in place."""
    gt_ids = {audio_id(f): v for f, v in psds_gt.items()}
    dur_ids = {audio_id(f): d for f, d in durations.items()}
    figs, cv = sed_scores_psds(system.scores, gt_ids, dur_ids, scenarios, per_class=True)
    cf = collar_best_f1(
        system.scores, gt_ids, t_collar=st.t_collar, percentage_of_length=st.percentage_of_length
    )
    key = lambda n: f"{n}_threshold_independent" if system.kind == "predictions" else n  # noqa: E731
    figures.update({key(k): v for k, v in figs.items()})
    figures["collar_f1_best_macro"] = cf["f1_macro"]
    curves["sed_scores_eval"] = {key(k): v for k, v in cv.items()}
    for c, r in cf["per_class"].items():
        if c in per_class:
            per_class[c].update(collar_f1_best=r["f1"], collar_best_threshold=r["threshold"])


def headline_keys(system: System, scenarios: Sequence[Scenario]) -> list[str]:
    """The figures ``--bootstrap`` gives an interval for: the detections' F1 (macro and micro), error
    rates and PSDS-F, each scenario's PSDS, the collar-based best F1."""
    keys = []
    if system.detections is not None:
        keys += [k for k in SCORE_BOOTSTRAP_KEYS if k.startswith(("event_", "segment_", "psds_f"))]
    if system.ops is not None:
        keys += [s.name for s in scenarios]
    if system.scores is not None:
        suffix = "_threshold_independent" if system.kind == "predictions" else ""
        keys += [f"{s.name}{suffix}" for s in scenarios] + ["collar_f1_best_macro"]
    return keys


def _detections_resampler(det: pd.DataFrame, truth: Truth, durations: Mapping[str, float], st: Settings):
    """``fn(weights) -> figures`` of a detections table: sed_eval's per-clip counts (event and segment) and
    psds_eval's per-clip statistics at the PSDS-F's criteria, computed once."""
    clips, reference = truth.clips, ground_truth_table(truth.events)
    psds_ref = ground_truth_table(merge_connected(truth.events)[0])
    counts = {
        "event": clip_counts(
            reference,
            det,
            clips,
            kind="event",
            classes=truth.classes,
            t_collar=st.t_collar,
            percentage_of_length=st.percentage_of_length,
        ),
        "segment": clip_counts(
            reference,
            det,
            clips,
            kind="segment",
            durations=st.segment_durations(durations),
            classes=truth.classes,
            time_resolution=st.segment_length,
        ),
    }
    pf = None if det.empty else PsdsEvalResampler([det], psds_ref, durations, [st.f_scenario])

    def fn(w):
        out = {"psds_f_score": 0.0 if pf is None else pf.f_score(w)}
        for kind, (labels, cw, ov) in counts.items():
            r = f1_from_counts(labels, np.tensordot(w, cw, axes=1), w @ ov)
            out.update({f"{kind}_f1_macro": r["f1_macro"], f"{kind}_f1_micro": r["f1_micro"]})
            out[f"{kind}_error_rate"] = r["overall"]["error_rate"]
        return out

    return fn


def _resampler(
    system: System,
    truth: Truth,
    durations: Mapping[str, float],
    scenarios: Sequence[Scenario],
    settings: Settings,
    ops_resampler: PsdsEvalResampler | None = None,
):
    """``fn(weights, idx) -> {figure: value}`` for one system on a resampled clip set; the per-clip
    statistics are computed here, once, by each library (see :func:`bootstrap`)."""
    psds_gt = merge_connected(truth.events)[0]
    parts = []
    if system.detections is not None:
        det_fn = _detections_resampler(system.detections.table, truth, durations, settings)
        parts.append(lambda w, idx: det_fn(w))
    if system.ops is not None:
        tables = [o.table for o in system.ops]
        if all(t.empty for t in tables):
            parts.append(lambda w, idx: {s.name: 0.0 for s in scenarios})
        else:
            ops = ops_resampler or ops_resampler_for(system, truth, durations, scenarios)
            parts.append(lambda w, idx: ops.psds(w))
    if system.scores is not None:
        gt_ids = {audio_id(f): v for f, v in psds_gt.items()}
        dur_ids = {audio_id(f): d for f, d in durations.items()}
        ss = SedScoresResampler(
            system.scores,
            gt_ids,
            dur_ids,
            scenarios,
            t_collar=settings.t_collar,
            percentage_of_length=settings.percentage_of_length,
        )
        suffix = "_threshold_independent" if system.kind == "predictions" else ""

        def scores_fn(w, idx):
            figs = ss.figures(w)
            return {(k if k == "collar_f1_best_macro" else f"{k}{suffix}"): v for k, v in figs.items()}

        parts.append(scores_fn)

    def fn(w, idx):
        out = {}
        for part in parts:
            out.update(part(w, idx))
        return out

    return fn


def ops_resampler_for(
    system: System, truth: Truth, durations: Mapping[str, float], scenarios: Sequence[Scenario]
) -> PsdsEvalResampler | None:
    """The operating points of ``system`` evaluated once for the bootstrap (None: no or only empty ones)."""
    if system.ops is None or all(o.table.empty for o in system.ops):
        return None
    psds_ref = ground_truth_table(merge_connected(truth.events)[0])
    return PsdsEvalResampler(
        [o.table for o in system.ops], psds_ref, durations, scenarios, [o.threshold for o in system.ops]
    )


def bootstrap(
    systems: Sequence[System],
    truth: Truth,
    durations: Mapping[str, float],
    scenarios: Sequence[Scenario],
    n: int,
    *,
    seed: int = 0,
    settings: Settings = Settings(),
    timing: dict | None = None,
    ops_resamplers: Sequence[PsdsEvalResampler | None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per system, ``{figure: n resampled values}``; every system is scored on the same resamples (paired).

    A resample draws the clips with replacement (a clip drawn k times counts k times). Each library's
    per-clip statistics are computed once, by the library: sed_eval's counts read clip by clip from its
    metric object (:func:`~sed.evaluation.sed_eval_metrics.clip_counts`), psds_eval's true positives
    and cross-triggers per clip and operating point
    (:class:`~sed.evaluation.psds_eval_metrics.PsdsEvalResampler`), sed_scores_eval's per-clip deltas
    (:class:`~sed.evaluation.sed_scores_metrics.SedScoresResampler`); a resample sums them with the
    clip multiplicities and applies the library's own final step. ``timing``: filled with ``setup_s``
    and ``per_resample_s``; ``ops_resamplers``: per system, its operating points already evaluated
    (:func:`ops_resampler_for`).
    """
    t0 = time.perf_counter()
    rs = list(ops_resamplers) if ops_resamplers is not None else [None] * len(systems)
    fns = [_resampler(s, truth, durations, scenarios, settings, r) for s, r in zip(systems, rs)]
    t1 = time.perf_counter()
    keys = [headline_keys(s, scenarios) for s in systems]
    out = [{k: np.full(n, np.nan) for k in ks} for ks in keys]
    rng = np.random.default_rng(seed)
    n_clips = len(truth.clips)
    for b in range(n):
        idx = rng.integers(0, n_clips, n_clips)
        w = np.bincount(idx, minlength=n_clips).astype(float)
        for i, fn in enumerate(fns):
            figs = fn(w, idx)
            for k in keys[i]:
                v = figs.get(k)
                out[i][k][b] = np.nan if v is None else float(v)
    if timing is not None:
        timing["setup_s"] = round(t1 - t0, 3)
        timing["per_resample_s"] = round((time.perf_counter() - t1) / max(n, 1), 4)
    return out


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the resampled values (nan resamples left out)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    a = (1 - confidence) / 2 * 100
    return float(np.percentile(v, a)), float(np.percentile(v, 100 - a))


# ---------------------------------------------------------------------------- the API
def score(
    systems: str | Path | Sequence[str | Path],
    truth: str | Path,
    *,
    scenarios: Any = None,
    durations: str | None = None,
    audio_dir: str | None = None,
    classes: Sequence[str] | None = None,
    bootstrap_n: int = 0,
    seed: int = 0,
    on_missing: str = "error",
    merge_overlaps: bool = False,
    postproc: str | None = None,
    workers: int = 1,
    out_dir: str | Path | None = None,
    thresholds: Sequence[float] | None = None,
    allow_empty: bool = False,
    psds_f: str | Scenario | None = None,
    collar: float = T_COLLAR,
    collar_percentage: float = PERCENTAGE_OF_LENGTH,
    segment_length: float = SEGMENT_SECONDS,
    evaluated_length: str = "durations",
) -> dict[str, Any]:
    """Score one system (or two: a paired comparison) against ``truth``; returns the JSON-ready result and,
    with ``out_dir``, writes ``metrics.json``, ``report.md`` and ``plots/`` there (PSD-ROC as PNG and, per
    class, as CSV). The keyword arguments are the CLI's options (``sedx score --help``)."""
    t0 = time.perf_counter()
    paths = [systems] if isinstance(systems, (str, Path)) else list(systems)
    if not 1 <= len(paths) <= 2:
        raise ConfigError("sedx score takes one system, or two to compare")
    if bootstrap_n < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {bootstrap_n}")
    scen = parse_scenarios(scenarios, default=SCORE_DEFAULT)
    st = Settings(
        float(collar), float(collar_percentage), float(segment_length), evaluated_length, parse_psds_f(psds_f)
    )
    tr = read_truth(truth, classes)
    kw = dict(on_missing=on_missing, merge_overlaps=merge_overlaps, postproc=postproc, thresholds=thresholds)
    loaded = [load_system(p, tr, allow_empty=allow_empty, **kw) for p in paths]
    if thresholds is not None and not any(s.ops is not None for s in loaded):
        raise ConfigError("--thresholds names the thresholds of an operating-point folder; no system is one")
    dur, dur_source, notes = resolve_durations(tr, durations, audio_dir, loaded[0].durations)
    notes += truth_notes(tr, dur)
    n_boot = bootstrap_n or (200 if len(loaded) == 2 else 0)
    t_rs = time.perf_counter()
    # with a bootstrap, the operating points are evaluated once for both the figures and the resamples
    resamplers = [ops_resampler_for(s, tr, dur, scen) if n_boot else None for s in loaded]
    t_rs = time.perf_counter() - t_rs
    results = [
        system_result(s, tr, dur, scen, st, dur_source, workers, rs) for s, rs in zip(loaded, resamplers)
    ]
    out: dict[str, Any] = {
        "ground_truth": str(truth),
        "n_clips": len(tr.clips),
        "n_events": tr.n_events,
        "classes": list(tr.classes),
        "durations": dur_source,
        "scenarios": [s.to_dict() for s in scen],
        "psds_f_scenario": st.f_scenario.to_dict(),
        "settings": st.to_dict(),
        "systems": results,
        "notes": notes,
    }
    if n_boot:
        timing: dict = {}
        boot = bootstrap(
            loaded, tr, dur, scen, n_boot, seed=seed, settings=st, timing=timing, ops_resamplers=resamplers
        )
        timing["setup_s"] = round(timing["setup_s"] + t_rs, 3)
        add_bootstrap(out, boot, n_boot, seed, timing)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["libraries"] = library_versions()
    if out_dir is not None:
        write_outputs(Path(out_dir), out)
    for r in results:
        r.pop("_curves", None)
    return out


def truth_notes(tr: Truth, durations: Mapping[str, float]) -> list[str]:
    """What the libraries do with the ground truth beyond taking it as is."""
    notes = []
    n_late = check_event_ends(tr, durations)
    if n_late:
        notes.append(f"{n_late} ground-truth event(s) end after their clip's duration")
    n_merged = merge_connected(tr.events)[1]
    if n_merged:
        notes.append(merged_note(n_merged))
    return notes


def system_result(
    s: System,
    tr: Truth,
    dur: Mapping[str, float],
    scen: Sequence[Scenario],
    st: Settings,
    dur_source: str,
    workers: int,
    ops_resampler: PsdsEvalResampler | None,
) -> dict[str, Any]:
    """One system's figures, per-class figures, lines, class sets and notes (and its curves, ``_curves``)."""
    figs, per_class, curves = evaluate_system(
        s, tr.events, dur, tr.classes, scen, workers=workers, settings=st, ops_resampler=ops_resampler
    )
    sets = class_sets(s, tr, per_class, figs, scen)
    return {
        "system": s.path,
        "kind": s.kind,
        "figures": nan_to_none(figs),
        "per_class": nan_to_none(per_class),
        "class_sets": sets,
        "lines": figure_lines(figs, s, scen, dur_source, st),
        "notes": s.notes + class_notes(sets),
        "_curves": curves,
    }


def add_bootstrap(
    out: dict[str, Any], boot: Sequence[Mapping[str, np.ndarray]], n: int, seed: int, timing: Mapping
) -> None:
    """The intervals of each system's figures, the method in words and, for two systems, the comparison."""
    results = out["systems"]
    out["bootstrap"] = {
        "n": n,
        "seed": seed,
        "confidence": CONFIDENCE,
        "method": (
            f"percentile bootstrap over clips: {n} resamples of the {out['n_clips']} clips drawn with "
            f"replacement (numpy default_rng seed {seed}); a clip drawn k times counts k times; each "
            "library's per-clip statistics computed once by the library (sed_eval's counts clip by clip, "
            "psds_eval's true positives and cross-triggers per clip and operating point, sed_scores_eval's "
            "per-clip deltas), "
            "summed with the clip multiplicities, then the library's own final step (sed_eval's F and "
            "error-rate rules, PSDSEval.psds, sed_scores_eval psds/best_fscore); "
            "95 % interval = 2.5th and 97.5th percentiles"
        ),
        **timing,
    }
    for r, b in zip(results, boot):
        r["ci95"] = {k: list(interval(v)) for k, v in b.items()}
    if len(results) == 2:
        out["comparison"] = compare(results[0], results[1], boot[0], boot[1])
        out["bootstrap"]["method"] += (
            "; comparison: paired (both systems on the same resamples), interval of the difference A - B "
            "and the share of resamples where A scores higher"
        )


# ---------------------------------------------------------------------------- class sets
def system_classes(system: System) -> set[str]:
    """The classes a system outputs: its detections' labels (every operating point's) or score columns."""
    tables = (
        [system.detections.table] if system.detections is not None else [o.table for o in system.ops or []]
    )
    out = {str(x) for t in tables for x in t["event_label"].unique()}
    for df in (system.scores or {}).values():
        out |= {str(c) for c in df.columns if c not in ("onset", "offset")}
    return out


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def class_sets(
    system: System,
    tr: Truth,
    per_class: Mapping[str, dict],
    figures: Mapping[str, Any],
    scenarios: Sequence[Scenario],
) -> dict[str, Any]:
    """The classes of the ground truth (those with events), of the system, and those each average covers:
    sed_eval's macro F1 the classes with a (non-nan) F, i.e. with reference events; psds_eval's PSDS-F those
    with a true positive; PSDS and the collar-based best F1 the ground truth's classes."""
    with_events = sorted({e[2] for v in tr.events.values() for e in v})
    averages: dict[str, list[str]] = {}
    if system.detections is not None:
        for key, col in (
            ("event_f1_macro", "event_f1"),
            ("segment_f1_macro", "segment_f1"),
            ("psds_f_score", "psds_f"),
        ):
            averages[key] = [c for c, v in per_class.items() if _finite(v.get(col))]
    if system.ops is not None or system.scores is not None:
        averages["psds"] = with_events  # psds_eval and sed_scores_eval take the classes of the ground truth
    if "collar_f1_best_macro" in figures:
        averages["collar_f1_best_macro"] = with_events
    return {"ground_truth": with_events, "system": sorted(system_classes(system)), "averages": averages}


_WHY = {
    "event_f1_macro": "sed_eval: classes with reference events, 0 for one never output",
    "psds_f_score": "psds_eval compute_macro_f_score: classes with a true positive",
    "psds": "psds_eval / sed_scores_eval: the ground truth's classes",
}


def class_notes(sets: Mapping[str, Any]) -> list[str]:
    """Where the ground truth's and the system's classes differ, or an average leaves a class out: which
    classes each average covers, in one line each (none when all agree)."""
    gt, sys_ = set(sets["ground_truth"]), set(sets["system"])
    averages = sets["averages"]
    if sys_ == gt and all(set(v) == gt for v in averages.values()):
        return []
    notes = []
    if sys_ != gt:
        parts = [f"the ground truth has events of {len(gt)}, the system outputs {len(sys_)}"]
        if gt - sys_:
            parts.append(f"never output: {', '.join(sorted(gt - sys_))}")
        if sys_ - gt:
            parts.append(f"output without ground-truth events: {', '.join(sorted(sys_ - gt))}")
        notes.append("classes: " + "; ".join(parts))
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, cls in averages.items():
        groups.setdefault(tuple(cls), []).append(key)
    parts = []
    for cls, keys in groups.items():
        left = sorted(gt - set(cls))
        why = "; ".join(_WHY[k] for k in keys if k in _WHY)
        parts.append(
            f"{', '.join(keys)} over {len(cls)} class(es)"
            + (f" (left out: {', '.join(left)})" if left else "")
            + (f" [{why}]" if why else "")
        )
    notes.append("averages: " + "; ".join(parts))
    return notes


def compare(
    a: Mapping, b: Mapping, boot_a: Mapping[str, np.ndarray], boot_b: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Paired bootstrap of A - B for each figure both systems have."""
    out = {}
    for k in boot_a:
        if k not in boot_b:
            continue
        fa, fb = a["figures"].get(k), b["figures"].get(k)
        d = boot_a[k] - boot_b[k]
        ok = np.isfinite(d)
        out[k] = {
            "a": fa,
            "b": fb,
            "difference": None if fa is None or fb is None else fa - fb,
            "ci95": list(interval(d)),
            "p_a_higher": float(np.mean(d[ok] > 0)) if ok.any() else None,
            "p_b_higher": float(np.mean(d[ok] < 0)) if ok.any() else None,
        }
    return nan_to_none(out)


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("sed_eval", "psds_eval", "sed_scores_eval"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


# ---------------------------------------------------------------------------- text
def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{100 * v:.2f} %" if pct else f"{v:.4f}"


def _detection_libs(st: Settings, dur_source: str) -> tuple[str, str]:
    """The event- and segment-based figures' library and settings, in words."""
    ev = (
        f"sed_eval EventBasedMetrics, collar {st.t_collar:g} s / {100 * st.percentage_of_length:g} % "
        "of length, "
        "onset and offset, zero_score"
    )
    length = (
        f"clip durations: {dur_source}"
        if st.evaluated_length == "durations"
        else ("the last event's offset per clip (sed_eval's default)")
    )
    return ev, f"sed_eval SegmentBasedMetrics, {st.segment_length:g} s segments, evaluated length: {length}"


def _detection_lines(figs: Mapping[str, Any], st: Settings, dur_source: str) -> dict[str, str]:
    """F1 macro, F1 micro with overall P/R, error rate with S/D/I (event and segment), PSDS-F."""
    lines = {}
    libs = dict(zip(("event", "segment"), _detection_libs(st, dur_source)))
    for kind, lib in libs.items():
        g = lambda k, pct=True, kind=kind: _fmt(figs.get(f"{kind}_{k}"), pct)  # noqa: E731
        lines[f"{kind}_f1_macro"] = f"{kind}-based F1 macro: {g('f1_macro')} ({lib})"
        lines[f"{kind}_f1_micro"] = (
            f"{kind}-based F1 micro: {g('f1_micro')} "
            f"(precision {g('precision_micro')}, recall {g('recall_micro')}; "
            "sed_eval overall, same settings)"
        )
        lines[f"{kind}_error_rate"] = (
            f"{kind}-based error rate: {g('error_rate', False)} (S {g('substitution_rate', False)}, "
            f"D {g('deletion_rate', False)}, I {g('insertion_rate', False)}; sed_eval overall, same settings)"
        )
    dtc, gtc, cttc = st.f_scenario.psds_eval_criteria()
    lines["psds_f_score"] = (
        f"PSDS-F (intersection F1 macro): {_fmt(figs.get('psds_f_score'), True)} "
        f"(psds_eval compute_macro_f_score, dtc {dtc:g} gtc {gtc:g} cttc {cttc:g}, --psds-f)"
    )
    return lines


def figure_lines(
    figs: Mapping[str, Any],
    system: System,
    scenarios: Sequence[Scenario],
    dur_source: str,
    settings: Settings = Settings(),
) -> dict[str, str]:
    """One line per figure naming the library and its settings."""
    lines = _detection_lines(figs, settings, dur_source) if system.detections is not None else {}
    if "collar_f1_best_macro" in figs:
        lines["collar_f1_best_macro"] = (
            "collar-based F1 macro at the best threshold per class: "
            f"{_fmt(figs['collar_f1_best_macro'], True)} "
            f"(sed_scores_eval collar_based.best_fscore, collar {settings.t_collar:g} s / "
            f"{100 * settings.percentage_of_length:g} % of length)"
        )
    n_ops = len(system.ops) if system.ops is not None else 0
    for s in scenarios:
        if system.ops is not None and s.name in figs:
            lines[s.name] = (
                f"{s.name}: {_fmt(figs[s.name])} (psds_eval, {n_ops} operating points, {s.describe()})"
            )
        key = f"{s.name}_threshold_independent" if system.kind == "predictions" else s.name
        if system.scores is not None and key in figs:
            lines[key] = (
                f"{key}: {_fmt(figs[key])} (sed_scores_eval intersection_based.psds, all thresholds, "
                f"{s.describe()})"
            )
    return lines


def text_report(out: Mapping[str, Any]) -> list[str]:
    """The report's figure lines (also what the CLI prints)."""
    lines = [
        f"ground truth: {out['ground_truth']} ({out['n_clips']} clips, {out['n_events']} events, "
        f"{len(out['classes'])} classes)",
        f"durations: {out['durations']}",
    ]
    for i, r in enumerate(out["systems"]):
        tag = "AB"[i] + ": " if len(out["systems"]) == 2 else ""
        lines.append(f"{tag}system: {r['system']} ({r['kind'].replace('_', ' ')})")
        ci = r.get("ci95", {})
        for k, line in r["lines"].items():
            if k in ci:
                lo, hi = ci[k]
                pct = k in PCT_KEYS
                line += f" [95 % CI {_fmt(lo, pct)} .. {_fmt(hi, pct)}]"
            lines.append(f"  {line}")
        lines += [f"  note: {n}" for n in r["notes"]]
    if "comparison" in out:
        lines.append(f"A - B (paired bootstrap, {out['bootstrap']['n']} resamples):")
        for k, c in out["comparison"].items():
            lo, hi = c["ci95"]
            lines.append(
                f"  {k}: {_fmt(c['difference'])} [95 % CI {_fmt(lo)} .. {_fmt(hi)}], "
                f"A higher in {_fmt(c['p_a_higher'], True)} of resamples"
            )
    lines += [f"note: {n}" for n in out["notes"]]
    if "bootstrap" in out:
        lines.append(f"bootstrap: {out['bootstrap']['method']}")
    return lines


def write_outputs(out_dir: Path, out: Mapping[str, Any]) -> None:
    """``metrics.json``, ``report.md`` and ``plots/`` (PSD-ROC as PNG and its per-class points as CSV,
    per-class F1) as ``sed.eval`` writes them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ["# sedx score report", ""] + [
        f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in text_report(out)
    ]
    if any(r["kind"] != "detections" for r in out["systems"]):  # PSDS figures were computed
        md += [
            "",
            "Scenarios: " + "; ".join(f"{s['name']} ({Scenario(**s).describe()})" for s in out["scenarios"]),
        ]
    md += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in out["libraries"].items())]
    n = len(out["systems"])
    for i, r in enumerate(out["systems"]):
        md += _system_md(out_dir, r, f"system {'AB'[i]}: " if n == 2 else "", f"_{'ab'[i]}" if n == 2 else "")
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    clean = {k: v for k, v in out.items() if k != "systems"}
    clean["systems"] = [{k: v for k, v in r.items() if k != "_curves"} for r in out["systems"]]
    (out_dir / "metrics.json").write_text(json.dumps(nan_to_none(clean), indent=2) + "\n")


def _system_md(out_dir: Path, r: Mapping[str, Any], tag: str, suffix: str) -> list[str]:
    """One system's part of ``report.md``: the per-class table and its plots (written to ``plots/``)."""
    # Lazy: sed.evaluation.report loads matplotlib (~0.35 s), needed only when a report is written.
    from sed.evaluation.report import plot_per_class_f1, plot_psd_roc

    plots = out_dir / "plots"
    md: list[str] = []
    order = (
        "event_f1",
        "event_precision",
        "event_recall",
        "n_ref",
        "n_sys",
        "segment_f1",
        "psds_f",
        "collar_f1_best",
        "collar_best_threshold",
    )
    cols = [c for c in order if any(c in v for v in r["per_class"].values())]
    if cols:
        md += [
            "",
            f"## Per class ({tag}{Path(r['system']).name})",
            "",
            "| class | " + " | ".join(cols) + " |",
            "|" + " --- |" * (len(cols) + 1),
        ]
        for c, v in r["per_class"].items():
            cells = [
                str(v.get(k)) if k in ("n_ref", "n_sys") else _fmt(v.get(k), k != "collar_best_threshold")
                for k in cols
            ]
            md.append(f"| {c} | " + " | ".join(cells) + " |")
    curves = r.get("_curves") or {}
    if curves:
        plots.mkdir(parents=True, exist_ok=True)
        p = plot_psd_roc(curves, r["figures"], plots / f"psd_roc{suffix}.png")
        if p is not None:
            md += ["", f"![PSD-ROC]({p.relative_to(out_dir)})"]
        c = write_roc_csv(curves, plots / f"psd_roc{suffix}.csv")
        if c is not None:
            md += [
                "",
                "Per-class PSD-ROC points (threshold, TPR, eFPR per hour): "
                f"[{c.name}]({c.relative_to(out_dir)})",
            ]
    if any("event_f1" in v for v in r["per_class"].values()):
        plots.mkdir(parents=True, exist_ok=True)
        p = plot_per_class_f1(
            {**r["figures"], "per_class": r["per_class"]}, plots / f"per_class_f1{suffix}.png"
        )
        md += ["", f"![per-class F1]({p.relative_to(out_dir)})"]
    return md


ROC_CSV_COLUMNS = ("library", "scenario", "class", "threshold", "tpr", "efpr")


def roc_rows(curves: Mapping[str, Any]) -> list[tuple]:
    """Each class's PSD-ROC points of each scenario, as the library gives them: psds_eval's one per
    operating point (its threshold), sed_scores_eval's one per score threshold where the curve changes."""
    rows = []
    for lib in ("psds_eval", "sed_scores_eval"):
        for scen, cv in (curves.get(lib) or {}).items():
            for cls, pts in (cv.get("per_class") or {}).items():
                rows += [
                    (lib, scen, cls, th, tpr, efpr)
                    for th, tpr, efpr in zip(pts["threshold"], pts["tpr"], pts["efpr"])
                ]
    return rows


def write_roc_csv(curves: Mapping[str, Any], path: Path) -> Path | None:
    """:func:`roc_rows` as a CSV (:data:`ROC_CSV_COLUMNS`); None when there is no curve."""
    rows = roc_rows(curves)
    if not rows:
        return None
    pd.DataFrame(rows, columns=list(ROC_CSV_COLUMNS)).to_csv(path, index=False)  # full precision
    return path


# ---------------------------------------------------------------------------- CLI
def add_score_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``score`` on the console command's subparsers."""
    p = sub.add_parser(
        "score",
        help="score a system's detections, operating points or score TSVs against a ground truth",
        description="Score any DCASE system's outputs against a strong ground truth with sed_eval, "
        "psds_eval and sed_scores_eval: a detections file, a folder or glob of operating-point files, a "
        "folder of score TSVs, or a predictions .npz. Detection files are tab- or comma-separated; a header "
        "names the columns (filename/file, onset/start, offset/end, event_label/label; any order, extra "
        "columns ignored), else they are filename, onset, offset, event_label. Two systems: a paired "
        "bootstrap of their difference.",
    )
    p.add_argument("systems", nargs="+", metavar="SYSTEM", help="one system, or two to compare (A B)")
    p.add_argument(
        "--truth", required=True, help="strong ground-truth TSV (filename onset offset event_label)"
    )
    p.add_argument("--durations", default=None, help="clip durations TSV (filename duration; DESED's format)")
    p.add_argument(
        "--audio", default=None, help="audio folder: clip durations from the files (when no --durations)"
    )
    p.add_argument(
        "--classes", default=None, help="comma-separated class list (default: the ground truth's labels)"
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=None,
        help=f"PSDS scenario(s): dcase2020, psds1, psds2 (comma lists), key=value settings "
        f"(name,dtc,gtc,cttc,alpha_ct,alpha_st,max_efpr) or a YAML file; repeatable "
        f"(default {SCORE_DEFAULT})",
    )
    _add_detection_options(p)
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="resamples for 95 %% intervals (two systems: 200 by default)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--on-missing",
        choices=("error", "drop"),
        default="error",
        help="detections of clips absent from the ground truth",
    )
    p.add_argument(
        "--merge-overlaps",
        action="store_true",
        help="merge overlapping same-class detections (psds_eval refuses them)",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="score a system without any detection (0 on every figure) instead of stopping",
    )
    p.add_argument(
        "--postproc", default=None, help="post-processing for a predictions .npz: conf/postproc name or YAML"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="processes for psds_eval's operating points (default 1)"
    )
    p.add_argument(
        "--out", default=None, help="folder for report.md, metrics.json and plots (default: none written)"
    )
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="stdout: text lines (default) or JSON"
    )
    p.set_defaults(func=cli_score)


def _add_detection_options(p: argparse.ArgumentParser) -> None:
    """The settings of the detection figures and of the operating points' thresholds."""
    p.add_argument(
        "--thresholds",
        default=None,
        help="operating points' thresholds, comma-separated, one per file in file-name order "
        "(default: the last number of each file's name, e.g. predictions_th_0.50.tsv)",
    )
    p.add_argument(
        "--psds-f",
        default=None,
        metavar="SETTINGS",
        help="the intersection F-score's criteria: dtc=,gtc=,cttc= or a scenario name "
        "(default dtc=0.5,gtc=0.5,cttc=0.3, DCASE 2020's; --scenario does not change it)",
    )
    p.add_argument(
        "--collar",
        type=float,
        default=T_COLLAR,
        metavar="S",
        help=f"event-based onset/offset collar in seconds (default {T_COLLAR:g})",
    )
    p.add_argument(
        "--collar-percentage",
        type=float,
        default=PERCENTAGE_OF_LENGTH,
        metavar="P",
        help="offset collar as a fraction of the reference event's length, the larger of the two counts "
        f"(sed_eval's percentage_of_length; default {PERCENTAGE_OF_LENGTH:g} = 20 %%)",
    )
    p.add_argument(
        "--segment-length",
        type=float,
        default=SEGMENT_SECONDS,
        metavar="S",
        help=f"segment-based metric's segment length in seconds (default {SEGMENT_SECONDS:g})",
    )
    p.add_argument(
        "--evaluated-length",
        choices=EVALUATED_LENGTHS,
        default="durations",
        help="the length over which each clip's segments are scored: 'durations' (default: the clip "
        "durations, "
        "the same audio psds_eval scores; a detection past a clip's end is cut there) or 'last-offset' "
        "(sed_eval's own default, the last reference or system offset, which the DCASE baselines used: "
        "choose it to reproduce their published segment F1)",
    )


def _float_list(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated numbers") from None


def cli_score(args: argparse.Namespace) -> int:
    try:
        out = score(
            args.systems,
            args.truth,
            scenarios=args.scenario,
            durations=args.durations,
            audio_dir=args.audio,
            classes=[c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None,
            bootstrap_n=args.bootstrap,
            seed=args.seed,
            on_missing=args.on_missing,
            merge_overlaps=args.merge_overlaps,
            postproc=args.postproc,
            workers=args.workers,
            out_dir=args.out,
            thresholds=_float_list(args.thresholds, "--thresholds"),
            allow_empty=args.allow_empty,
            psds_f=args.psds_f,
            collar=args.collar,
            collar_percentage=args.collar_percentage,
            segment_length=args.segment_length,
            evaluated_length=args.evaluated_length,
        )
    except (SedError, MetricsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(nan_to_none(out), indent=2))
    else:
        print("\n".join(text_report(out)))
        if args.out:
            print(f"report: {Path(args.out) / 'report.md'}")
    return 0

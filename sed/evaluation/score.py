"""``sedx score``: score any DCASE system's outputs against a strong ground truth, with every metric.

A system is one of:

- a detections TSV (``filename onset offset event_label``): event-based and segment-based F1 (sed_eval,
  per class, macro, micro) and the PSDS-F / intersection F1 (psds_eval ``compute_macro_f_score`` with the
  first scenario's dtc/gtc/cttc);
- a folder (or glob) of operating-point detection TSVs, one per threshold: PSDS per scenario (psds_eval);
- a folder of sed_scores_eval score TSVs (one per clip): threshold-independent PSDS per scenario and the
  collar-based F1 at the best threshold per class (sed_scores_eval);
- the project's predictions ``.npz`` (``sed.eval``'s): decoded with ``--postproc``; the detections'
  figures and the score tables' figures.

Clip durations: ``--durations`` (DESED's ``filename<TAB>duration``), else ``--audio`` (the files'
headers), else 10 s with a note. ``--bootstrap N``: clips resampled with replacement N times (seeded;
a clip drawn k times counts k times), each headline figure recomputed on every resample from the
libraries' per-clip statistics (:func:`bootstrap`); 95 % percentile intervals. Two systems: the same resamples for both, the
difference's interval and the share of resamples where A beats B (paired bootstrap).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.core.errors import ConfigError, DataError, SedError
from sed.evaluation.common import MetricsError, audio_id, ground_truth_table, merge_connected, nan_to_none
from sed.evaluation.names import SCORE_BOOTSTRAP_KEYS, SCORE_DETECTION_KEYS, SCORE_SCORES_KEYS
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
from sed.evaluation.sed_eval_metrics import clip_counts, event_based, f1_from_counts, segment_based
from sed.evaluation.sed_scores_metrics import SedScoresResampler, collar_best_f1, sed_scores_psds

CONFIDENCE = 0.95
#: figures printed as percentages (the F-scores; PSDS figures print as 0-1)
PCT_KEYS = (*SCORE_DETECTION_KEYS, *SCORE_SCORES_KEYS)


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


# ---------------------------------------------------------------------------- loading
def load_system(
    path: str | Path,
    truth: Truth,
    *,
    on_missing: str = "error",
    merge_overlaps: bool = False,
    postproc: str | None = None,
) -> System:
    """Read a system's outputs; the kind follows from the path (see the module docstring)."""
    s = str(path)
    p = Path(s)
    if p.is_file() and p.suffix == ".npz":
        return _load_predictions(p, truth, on_missing=on_missing, postproc=postproc)
    if p.is_file():
        d = read_detections(p, truth, on_missing=on_missing, merge_overlaps=merge_overlaps)
        return System(s, "detections", detections=d, notes=list(d.notes))
    if p.is_dir() or any(ch in s for ch in "*?["):
        if looks_like_score_folder(s):
            scores, notes = read_score_folder(s, truth, on_missing=on_missing)
            return System(s, "scores", scores=scores, notes=notes)
        ops = read_operating_points(s, truth, on_missing=on_missing, merge_overlaps=merge_overlaps)
        notes = [n for o in ops for n in o.notes]
        if len(notes) > 3:  # one per operating point: the first ones and a count
            notes = [*notes[:2], f"... and {len(notes) - 2} more such note(s) on the other operating points"]
        return System(s, "operating_points", ops=ops, notes=notes)
    raise DataError(f"{s}: not found (expected a detections TSV, a folder or glob of TSVs, or a predictions .npz)")


def _load_predictions(path: Path, truth: Truth, *, on_missing: str, postproc: str | None) -> System:
    from sed.detect.run import load_postproc_cfg
    from sed.evaluation.metrics import align
    from sed.evaluation.predictions import Predictions, PredictionsError
    from sed.evaluation.sed_scores_metrics import score_tables
    from sed.postproc import Decoder, PostprocParams

    try:
        preds = Predictions.load(path)
    except PredictionsError as e:
        raise DataError(str(e)) from None
    unknown = sorted(set(truth.classes) - set(preds.classes))
    if unknown:
        raise DataError(f"{truth.path}: class {unknown[0]!r} is not among {path}'s classes")
    preds, _ = align(preds, truth.events, on_missing=on_missing, source=str(path))
    params = PostprocParams.from_cfg(load_postproc_cfg(postproc or "default", None))
    dec = Decoder.prepare(preds, params)
    det = dec.events(params=params)
    det = det[det["event_label"].isin(truth.classes)].reset_index(drop=True)
    scores = {k: v[["onset", "offset", *truth.classes]] for k, v in score_tables(dec).items()}
    durations = {f: float(d) for f, d in zip(preds.filenames, preds.durations)}
    notes = [f"{path.name}: decoded with post-processing {postproc or 'default'}"]
    return System(
        str(path), "predictions", detections=Detections(str(path), det), scores=scores, durations=durations, notes=notes
    )


def resolve_durations(
    truth: Truth, durations: str | None, audio_dir: str | None, system_durations: Mapping[str, float] | None = None
) -> tuple[dict[str, float], str, list[str]]:
    """Each clip's duration: ``--durations`` file, else ``--audio`` headers, else the predictions', else 10 s."""
    if durations:
        return read_durations(durations, truth.clips), f"{durations}", []
    if audio_dir:
        return durations_from_audio(audio_dir, truth.clips), f"audio headers in {audio_dir}", []
    if system_durations and all(c in system_durations for c in truth.clips):
        return {c: float(system_durations[c]) for c in truth.clips}, "the predictions file", []
    note = f"no --durations nor --audio: every clip taken as {DEFAULT_DURATION:g} s long"
    return dict.fromkeys(truth.clips, DEFAULT_DURATION), f"{DEFAULT_DURATION:g} s for every clip (assumed)", [note]


# ---------------------------------------------------------------------------- scoring
def evaluate_system(
    system: System,
    gt: Mapping[str, list],
    durations: Mapping[str, float],
    classes: Sequence[str],
    scenarios: Sequence[Scenario],
    *,
    workers: int = 1,
    f_scenario: Scenario = SCENARIOS["psds"],
    ops_resampler: PsdsEvalResampler | None = None,
) -> tuple[dict[str, Any], dict[str, dict], dict[str, Any]]:
    """``(figures, per_class, curves)`` of one system on the clips of ``gt``.

    ``f_scenario``: the dtc/gtc/cttc of the PSDS-F (default DCASE 2020's). ``ops_resampler``: the
    operating points already evaluated for the bootstrap (the same figures, without evaluating them again).
    """
    clips = list(gt)
    reference = ground_truth_table(gt)
    psds_gt, _ = merge_connected(gt)
    psds_ref = ground_truth_table(psds_gt)
    figures: dict[str, Any] = {}
    per_class: dict[str, dict] = {c: {} for c in classes}
    curves: dict[str, Any] = {}
    if system.detections is not None:
        det = system.detections.table
        ev = event_based(reference, det, clips, classes=classes)
        seg = segment_based(reference, det, clips, durations=durations, classes=classes)
        if det.empty:  # psds_eval refuses an empty table: no detection, no true positive
            pf, pf_class = 0.0, dict.fromkeys(classes, 0.0)
        else:
            pf, pf_class = psds_f_score(det, psds_ref, durations, scenario=f_scenario)
        figures.update(
            event_f1_macro=ev["f1_macro"],
            event_f1_micro=ev["f1_micro"],
            segment_f1_macro=seg["f1_macro"],
            segment_f1_micro=seg["f1_micro"],
            psds_f_score=pf,
        )
        for c in classes:
            e, s = ev["per_class"].get(c, {}), seg["per_class"].get(c, {})
            per_class[c].update(
                event_f1=e.get("f1"),
                event_precision=e.get("precision"),
                event_recall=e.get("recall"),
                n_ref=e.get("n_ref", 0),
                n_sys=e.get("n_sys", 0),
                segment_f1=s.get("f1"),
                psds_f=pf_class.get(c),
            )
    if system.ops is not None:
        tables = [o.table for o in system.ops]
        if all(t.empty for t in tables):
            figures.update({s.name: 0.0 for s in scenarios})
        else:
            ths = [o.threshold for o in system.ops]
            if ops_resampler is not None:
                figs, cv = ops_resampler.library_figures()
            else:
                figs, cv = psds_eval_scores(tables, psds_ref, durations, thresholds=ths, scenarios=scenarios, workers=workers)
            figures.update(figs)
            curves["psds_eval"] = cv
            curves["psds_eval_thresholds"] = ths
    if system.scores is not None:
        gt_ids = {audio_id(f): v for f, v in psds_gt.items()}
        dur_ids = {audio_id(f): d for f, d in durations.items()}
        figs, cv = sed_scores_psds(system.scores, gt_ids, dur_ids, scenarios)
        cf = collar_best_f1(system.scores, gt_ids)
        key = lambda n: f"{n}_threshold_independent" if system.kind == "predictions" else n  # noqa: E731
        figures.update({key(k): v for k, v in figs.items()})
        figures["collar_f1_best_macro"] = cf["f1_macro"]
        curves["sed_scores_eval"] = {key(k): v for k, v in cv.items()}
        for c, r in cf["per_class"].items():
            if c in per_class:
                per_class[c].update(collar_f1_best=r["f1"], collar_best_threshold=r["threshold"])
    return figures, per_class, curves


def headline_keys(system: System, scenarios: Sequence[Scenario]) -> list[str]:
    """The figures ``--bootstrap`` gives an interval for."""
    keys = []
    if system.detections is not None:
        keys += [k for k in SCORE_BOOTSTRAP_KEYS if k in ("event_f1_macro", "segment_f1_macro", "psds_f_score")]
    if system.ops is not None:
        keys += [s.name for s in scenarios]
    if system.scores is not None:
        suffix = "_threshold_independent" if system.kind == "predictions" else ""
        keys += [f"{s.name}{suffix}" for s in scenarios] + ["collar_f1_best_macro"]
    return keys


def _resampler(
    system: System,
    truth: Truth,
    durations: Mapping[str, float],
    scenarios: Sequence[Scenario],
    f_scenario: Scenario,
    ops_resampler: PsdsEvalResampler | None = None,
):
    """``fn(weights, idx) -> {figure: value}`` for one system on a resampled clip set; the per-clip
    statistics are computed here, once, by each library (see :func:`bootstrap`)."""
    clips = truth.clips
    reference = ground_truth_table(truth.events)
    psds_gt = merge_connected(truth.events)[0]
    psds_ref = ground_truth_table(psds_gt)
    parts = []
    if system.detections is not None:
        det = system.detections.table
        ev = clip_counts(reference, det, clips, kind="event", classes=truth.classes)
        seg = clip_counts(reference, det, clips, kind="segment", durations=durations, classes=truth.classes)
        pf = None if det.empty else PsdsEvalResampler([det], psds_ref, durations, [f_scenario])

        def det_fn(w, idx):
            return {
                "event_f1_macro": f1_from_counts(ev[0], np.tensordot(w, ev[1], axes=1), w @ ev[2])["f1_macro"],
                "segment_f1_macro": f1_from_counts(seg[0], np.tensordot(w, seg[1], axes=1), w @ seg[2])["f1_macro"],
                "psds_f_score": 0.0 if pf is None else pf.f_score(w),
            }

        parts.append(det_fn)
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
        ss = SedScoresResampler(system.scores, gt_ids, dur_ids, scenarios)
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
    return PsdsEvalResampler([o.table for o in system.ops], psds_ref, durations, scenarios, [o.threshold for o in system.ops])


def bootstrap(
    systems: Sequence[System],
    truth: Truth,
    durations: Mapping[str, float],
    scenarios: Sequence[Scenario],
    n: int,
    *,
    seed: int = 0,
    f_scenario: Scenario = SCENARIOS["psds"],
    timing: dict | None = None,
    ops_resamplers: Sequence[PsdsEvalResampler | None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per system, ``{figure: n resampled values}``; every system is scored on the same resamples (paired).

    A resample draws the clips with replacement (a clip drawn k times counts k times). Each library's
    per-clip statistics are computed once, by the library: sed_eval's counts read clip by clip from its
    metric object (:func:`~sed.evaluation.sed_eval_metrics.clip_counts`), psds_eval's true positives and
    cross-triggers per clip and operating point (:class:`~sed.evaluation.psds_eval_metrics.PsdsEvalResampler`),
    sed_scores_eval's per-clip deltas (:class:`~sed.evaluation.sed_scores_metrics.SedScoresResampler`); a resample sums them with the clip multiplicities and applies the
    library's own final step. ``timing``: filled with ``setup_s`` and ``per_resample_s``;
    ``ops_resamplers``: per system, its operating points already evaluated (:func:`ops_resampler_for`).
    """
    import time as _time

    t0 = _time.perf_counter()
    rs = list(ops_resamplers) if ops_resamplers is not None else [None] * len(systems)
    fns = [_resampler(s, truth, durations, scenarios, f_scenario, r) for s, r in zip(systems, rs)]
    t1 = _time.perf_counter()
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
        timing["per_resample_s"] = round((_time.perf_counter() - t1) / max(n, 1), 4)
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
) -> dict[str, Any]:
    """Score one system (or two: a paired comparison) against ``truth``; returns the JSON-ready result and,
    with ``out_dir``, writes ``metrics.json``, ``report.md`` and ``plots/`` there."""
    t0 = time.perf_counter()
    paths = [systems] if isinstance(systems, (str, Path)) else list(systems)
    if not 1 <= len(paths) <= 2:
        raise ConfigError("sedx score takes one system, or two to compare")
    if bootstrap_n < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {bootstrap_n}")
    scen = parse_scenarios(scenarios, default=SCORE_DEFAULT)
    # the PSDS-F's criteria: the first scenario asked for, else DCASE 2020's (dtc 0.5 gtc 0.5 cttc 0.3)
    f_scen = scen[0] if scenarios else SCENARIOS["psds"]
    tr = read_truth(truth, classes)
    loaded = [
        load_system(p, tr, on_missing=on_missing, merge_overlaps=merge_overlaps, postproc=postproc) for p in paths
    ]
    dur, dur_source, notes = resolve_durations(tr, durations, audio_dir, loaded[0].durations)
    n_late = check_event_ends(tr, dur)
    if n_late:
        notes.append(f"{n_late} ground-truth event(s) end after their clip's duration")
    n_merged = merge_connected(tr.events)[1]
    if n_merged:
        notes.append(
            f"{n_merged} overlapping same-class ground-truth event(s) merged into their union for psds_eval "
            "and sed_scores_eval (sed_eval scores them as given)"
        )
    n_boot = bootstrap_n or (200 if len(loaded) == 2 else 0)
    t_rs = time.perf_counter()
    # with a bootstrap, the operating points are evaluated once for both the figures and the resamples
    resamplers = [ops_resampler_for(s, tr, dur, scen) if n_boot else None for s in loaded]
    t_rs = time.perf_counter() - t_rs
    results = []
    for s, rs in zip(loaded, resamplers):
        figs, per_class, curves = evaluate_system(
            s, tr.events, dur, tr.classes, scen, workers=workers, f_scenario=f_scen, ops_resampler=rs
        )
        results.append(
            {
                "system": s.path,
                "kind": s.kind,
                "figures": nan_to_none(figs),
                "per_class": nan_to_none(per_class),
                "lines": figure_lines(figs, s, scen, dur_source, f_scen),
                "notes": s.notes,
                "_curves": curves,
            }
        )
    out: dict[str, Any] = {
        "ground_truth": str(truth),
        "n_clips": len(tr.clips),
        "n_events": tr.n_events,
        "classes": list(tr.classes),
        "durations": dur_source,
        "scenarios": [s.to_dict() for s in scen],
        "psds_f_scenario": f_scen.to_dict(),
        "systems": results,
        "notes": notes,
    }
    if n_boot:
        n = n_boot
        timing: dict = {}
        boot = bootstrap(
            loaded, tr, dur, scen, n, seed=seed, f_scenario=f_scen, timing=timing, ops_resamplers=resamplers
        )
        timing["setup_s"] = round(timing["setup_s"] + t_rs, 3)
        out["bootstrap"] = {
            "n": n,
            "seed": seed,
            "confidence": CONFIDENCE,
            "method": (
                f"percentile bootstrap over clips: {n} resamples of the {len(tr.clips)} clips drawn with replacement "
                f"(numpy default_rng seed {seed}); a clip drawn k times counts k times; each library's per-clip statistics computed once by the library "
                "(sed_eval's counts clip by clip, psds_eval's true positives and cross-triggers per clip and operating "
                "point, sed_scores_eval's per-clip deltas), summed with the clip multiplicities, then the library's own "
                "final step (sed_eval's F rules, PSDSEval.psds, sed_scores_eval psds/best_fscore); "
                "95 % interval = 2.5th and 97.5th percentiles"
            ),
            **timing,
        }
        for r, b in zip(results, boot):
            r["ci95"] = {k: list(interval(v)) for k, v in b.items()}
        if len(loaded) == 2:
            out["comparison"] = compare(results[0], results[1], boot[0], boot[1])
            out["bootstrap"]["method"] += (
                "; comparison: paired (both systems on the same resamples), interval of the difference A - B "
                "and the share of resamples where A scores higher"
            )
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["libraries"] = library_versions()
    if out_dir is not None:
        write_outputs(Path(out_dir), out)
    for r in results:
        r.pop("_curves", None)
    return out


def compare(a: Mapping, b: Mapping, boot_a: Mapping[str, np.ndarray], boot_b: Mapping[str, np.ndarray]) -> dict[str, Any]:
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
    from importlib.metadata import PackageNotFoundError, version

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


def figure_lines(
    figs: Mapping[str, Any],
    system: System,
    scenarios: Sequence[Scenario],
    dur_source: str,
    f_scenario: Scenario = SCENARIOS["psds"],
) -> dict[str, str]:
    """One line per figure naming the library and its settings."""
    lines = {}
    dtc, gtc, cttc = f_scenario.psds_eval_criteria()
    ev_lib = "sed_eval EventBasedMetrics, collar 0.2 s / 20 % of length, onset and offset, zero_score"
    texts = {
        "event_f1_macro": ("event-based F1 macro", True, ev_lib),
        "event_f1_micro": ("event-based F1 micro", True, ev_lib),
        "segment_f1_macro": ("segment-based F1 macro", True, f"sed_eval SegmentBasedMetrics, 1 s segments, durations: {dur_source}"),
        "segment_f1_micro": ("segment-based F1 micro", True, f"sed_eval SegmentBasedMetrics, 1 s segments, durations: {dur_source}"),
        "psds_f_score": ("PSDS-F (intersection F1 macro)", True, f"psds_eval compute_macro_f_score, dtc {dtc:g} gtc {gtc:g} cttc {cttc:g}"),
        "collar_f1_best_macro": (
            "collar-based F1 macro at the best threshold per class",
            True,
            "sed_scores_eval collar_based.best_fscore, collar 0.2 s / 20 % of length",
        ),
    }
    for k, (label, pct, lib) in texts.items():
        if k in figs:
            lines[k] = f"{label}: {_fmt(figs[k], pct)} ({lib})"
    n_ops = len(system.ops) if system.ops is not None else 0
    for s in scenarios:
        if system.ops is not None and s.name in figs:
            lines[s.name] = f"{s.name}: {_fmt(figs[s.name])} (psds_eval, {n_ops} operating points, {s.describe()})"
        key = f"{s.name}_threshold_independent" if system.kind == "predictions" else s.name
        if system.scores is not None and key in figs:
            lines[key] = f"{key}: {_fmt(figs[key])} (sed_scores_eval intersection_based.psds, all thresholds, {s.describe()})"
    return lines


def text_report(out: Mapping[str, Any]) -> list[str]:
    """The report's figure lines (also what the CLI prints)."""
    lines = [
        f"ground truth: {out['ground_truth']} ({out['n_clips']} clips, {out['n_events']} events, {len(out['classes'])} classes)",
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
    """``metrics.json``, ``report.md`` and ``plots/`` (PSD-ROC, per-class F1) as ``sed.eval`` writes them."""
    from sed.evaluation.report import plot_per_class_f1, plot_psd_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    plots = out_dir / "plots"
    md = ["# sedx score report", ""] + [f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in text_report(out)]
    if any(r["kind"] != "detections" for r in out["systems"]):  # PSDS figures were computed
        md += ["", "Scenarios: " + "; ".join(f"{s['name']} ({Scenario(**s).describe()})" for s in out["scenarios"])]
    md += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in out["libraries"].items())]
    for i, r in enumerate(out["systems"]):
        tag = f"system {'AB'[i]}: " if len(out["systems"]) == 2 else ""
        order = ("event_f1", "event_precision", "event_recall", "n_ref", "n_sys", "segment_f1", "psds_f", "collar_f1_best", "collar_best_threshold")
        cols = [c for c in order if any(c in v for v in r["per_class"].values())]
        if cols:
            md += ["", f"## Per class ({tag}{Path(r['system']).name})", "", "| class | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
            for c, v in r["per_class"].items():
                cells = [str(v.get(k)) if k in ("n_ref", "n_sys") else _fmt(v.get(k), k != "collar_best_threshold") for k in cols]
                md.append(f"| {c} | " + " | ".join(cells) + " |")
        curves = r.get("_curves") or {}
        suffix = f"_{'ab'[i]}" if len(out["systems"]) == 2 else ""
        if curves:
            plots.mkdir(parents=True, exist_ok=True)
            p = plot_psd_roc(curves, r["figures"], plots / f"psd_roc{suffix}.png")
            if p is not None:
                md += ["", f"![PSD-ROC]({p.relative_to(out_dir)})"]
        if any("event_f1" in v for v in r["per_class"].values()):
            plots.mkdir(parents=True, exist_ok=True)
            p = plot_per_class_f1({**r["figures"], "per_class": r["per_class"]}, plots / f"per_class_f1{suffix}.png")
            md += ["", f"![per-class F1]({p.relative_to(out_dir)})"]
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    clean = {k: v for k, v in out.items() if k != "systems"}
    clean["systems"] = [{k: v for k, v in r.items() if k != "_curves"} for r in out["systems"]]
    (out_dir / "metrics.json").write_text(json.dumps(nan_to_none(clean), indent=2) + "\n")


# ---------------------------------------------------------------------------- CLI
def add_score_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``score`` on the console command's subparsers."""
    p = sub.add_parser(
        "score",
        help="score a system's detections, operating points or score TSVs against a ground truth",
        description="Score any DCASE system's outputs against a strong ground truth with sed_eval, psds_eval and "
        "sed_scores_eval: a detections TSV, a folder or glob of operating-point TSVs, a folder of score TSVs, "
        "or a predictions .npz. Two systems: a paired bootstrap of their difference.",
    )
    p.add_argument("systems", nargs="+", metavar="SYSTEM", help="one system, or two to compare (A B)")
    p.add_argument("--truth", required=True, help="strong ground-truth TSV (filename onset offset event_label)")
    p.add_argument("--durations", default=None, help="clip durations TSV (filename duration; DESED's format)")
    p.add_argument("--audio", default=None, help="audio folder: clip durations from the files (when no --durations)")
    p.add_argument("--classes", default=None, help="comma-separated class list (default: the ground truth's labels)")
    p.add_argument(
        "--scenario",
        action="append",
        default=None,
        help=f"PSDS scenario(s): dcase2020, psds1, psds2 (comma lists), key=value settings "
        f"(name,dtc,gtc,cttc,alpha_ct,alpha_st,max_efpr) or a YAML file; repeatable (default {SCORE_DEFAULT})",
    )
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="resamples for 95 %% intervals (two systems: 200 by default)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--on-missing", choices=("error", "drop"), default="error", help="detections of clips absent from the ground truth")
    p.add_argument("--merge-overlaps", action="store_true", help="merge overlapping same-class detections (psds_eval refuses them)")
    p.add_argument("--postproc", default=None, help="post-processing for a predictions .npz: conf/postproc name or YAML")
    p.add_argument("--workers", type=int, default=1, help="processes for psds_eval's operating points (default 1)")
    p.add_argument("--out", default=None, help="folder for report.md, metrics.json and plots (default: none written)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="stdout: text lines (default) or JSON")
    p.set_defaults(func=cli_score)


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

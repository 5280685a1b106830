"""Metrics wrappers (SPEC section 7) against hand-computed values and direct library calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS
from sed.core.predictions import Predictions
from sed.evaluation import metrics as M
from sed.postproc import Decoder, PostprocParams, decode_thresholds, psds_thresholds

DT = FRAME_SECONDS


def table(rows):
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def identity_params(**kw) -> PostprocParams:
    """Tagging at 0.5, no smoothing, no hysteresis, no removal/joining: frames > 0.5 are the events."""
    base = dict(
        frame_thresholds={c: 0.5 for c in CLASSES},
        median_windows={c: [1, 1] for c in CLASSES},
        hysteresis_low=None,
        min_duration=0.0,
        join_gap=0.0,
    )
    base.update(kw)
    return PostprocParams(**base)


def perfect_set():
    """4 clips whose probabilities are exactly their events (frame-aligned), and that ground truth."""
    spans = {
        "a.wav": [(64, 128, "Dog"), (200, 400, "Speech")],
        "b.wav": [(0, 100, "Cat")],
        "c.wav": [],
        "d.wav": [(300, 640, "Blender"), (10, 50, "Dishes")],
    }
    names = list(spans)
    frame = np.zeros((4, 640, 10), np.float32)
    clip = np.zeros((4, 10), np.float32)
    gt = {}
    for i, f in enumerate(names):
        gt[f] = []
        for s, e, lab in spans[f]:
            k = CLASSES.index(lab)
            frame[i, s:e, k] = 1.0
            clip[i, k] = 1.0
            gt[f].append((round(s * DT, 6), min(round(e * DT, 6), 10.0), lab))
    return Predictions(names, frame, clip, CLASSES), gt


# ---------------------------------------------------------------------------- event-based F1
def test_event_f1_hand_computed():
    ref = table([("a", 1.0, 2.0, "Dog"), ("a", 3.0, 5.0, "Speech")])
    # Dog: onset 0.1 s and offset 0.1 s off (collar 0.2 s): hit. Speech: onset 0.5 s late: a miss and a
    # false alarm.
    est = table([("a", 1.1, 2.1, "Dog"), ("a", 3.5, 5.0, "Speech")])
    for fn in (M.event_based, M.event_based_fast):
        r = fn(ref, est, ["a"])
        assert r["per_class"]["Dog"]["f1"] == 1.0
        assert r["per_class"]["Speech"]["f1"] == 0.0
        assert r["f1_macro"] == pytest.approx(0.5)
        assert r["f1_micro"] == pytest.approx(0.5)  # TP 1, FP 1, FN 1
    # offset: 20 % of a 2 s event is 0.4 s > collar: an offset 0.35 s late still hits
    r = M.event_based(ref, table([("a", 3.0, 5.35, "Speech")]), ["a"])
    assert r["per_class"]["Speech"]["f1"] == 1.0
    # and a clip with nothing predicted scores 0 for its classes ('zero_score')
    r = M.event_based(ref, table([]), ["a"])
    assert r["f1_macro"] == 0.0


def test_event_based_equals_direct_sed_eval():
    import sed_eval

    ref = table([("a", 1.0, 2.0, "Dog"), ("a", 3.0, 5.0, "Speech"), ("b", 0.0, 9.0, "Frying")])
    est = table(
        [("a", 1.1, 2.1, "Dog"), ("a", 6.0, 7.0, "Dog"), ("b", 0.1, 8.5, "Frying"), ("c", 1.0, 2.0, "Cat")]
    )
    files = ["a", "b", "c"]
    m = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=sorted(set(ref.event_label) | set(est.event_label)),
        t_collar=0.2,
        percentage_of_length=0.2,
        evaluate_onset=True,
        evaluate_offset=True,
        empty_system_output_handling="zero_score",
    )
    for f in files:
        m.evaluate(ref[ref.filename == f].to_dict("records"), est[est.filename == f].to_dict("records"))
    ours = M.event_based(ref, est, files)
    assert ours["f1_macro"] == pytest.approx(m.results_class_wise_average_metrics()["f_measure"]["f_measure"])
    assert ours["f1_micro"] == pytest.approx(m.results_overall_metrics()["f_measure"]["f_measure"])
    fast = M.event_based_fast(ref, est, files)
    assert fast["f1_macro"] == ours["f1_macro"] and fast["f1_micro"] == ours["f1_micro"]


def test_fast_event_f1_ambiguous_matching():
    # e1 hits r1 and r2, e2 hits r2 only: the optimal matching pairs both (a greedy one could pair e1-r2)
    ref = table([("a", 0.0, 1.0, "Dog"), ("a", 0.15, 1.15, "Dog")])
    est = table([("a", 0.1, 1.1, "Dog"), ("a", 0.3, 1.3, "Dog")])
    a, b = M.event_based(ref, est, ["a"]), M.event_based_fast(ref, est, ["a"])
    assert a["f1_macro"] == b["f1_macro"] == 1.0


def test_fast_event_f1_equals_sed_eval_on_decodings():
    from benchmarks.bench_postproc import synthetic_set

    preds, gt = synthetic_set(60, seed=7)
    ref = M.ground_truth_table(gt)
    dec = Decoder.prepare(preds, PostprocParams())
    for th in (0.05, 0.3, 0.6, 0.95):
        det = dec.events(th)
        a = M.event_based(ref, det, preds.filenames, classes=CLASSES)
        b = M.event_based_fast(ref, det, preds.filenames, classes=CLASSES)
        assert a["f1_macro"] == b["f1_macro"] and a["f1_micro"] == b["f1_micro"]
        for c in CLASSES:
            for k in ("f1", "precision", "recall"):
                x, y = a["per_class"][c][k], b["per_class"][c][k]
                assert (np.isnan(x) and np.isnan(y)) or x == y, (th, c, k, x, y)


def test_segment_based_hand_computed():
    ref = table([("a", 0.0, 2.0, "Dog")])
    est = table(
        [("a", 1.0, 3.0, "Dog")]
    )  # 1 s segments: ref [0,1],[1,2]; est [1,2],[2,3] -> TP 1, FP 1, FN 1
    r = M.segment_based(ref, est, ["a"], durations={"a": 10.0})
    assert r["per_class"]["Dog"]["f1"] == pytest.approx(0.5)
    assert r["f1_macro"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------- PSDS
def test_perfect_prediction_scores_one():
    preds, gt = perfect_set()
    res = M.evaluate(preds, gt, identity_params(), psds=True, n_thresholds=5)
    m = res.metrics
    assert m["event_f1_macro"] == pytest.approx(1.0) and m["event_f1_micro"] == pytest.approx(1.0)
    assert m["segment_f1_macro"] == pytest.approx(1.0)
    for k in (
        "psds",
        "psds_cross_trigger",
        "psds_macro",
        "psds_f_score",
        "psds_threshold_independent",
        "psds1",
        "psds2",
    ):
        assert m[k] == pytest.approx(1.0, abs=1e-6), k
    assert sorted(res.detections.itertuples(index=False, name=None)) == sorted(
        (f, on, off, lab) for f, evs in gt.items() for on, off, lab in evs
    )
    assert "psds_eval, 5 thresholds" in m["lines"]["psds"]
    assert "sed_scores_eval" in m["lines"]["psds1"]
    # switched off: the figures are None, not numbers
    m = M.evaluate(preds, gt, identity_params(), psds=False).metrics
    assert m["psds"] is None and m["psds1"] is None and m["event_f1_macro"] == pytest.approx(1.0)


def _noisy_set(seed=0, n=10):
    from benchmarks.bench_postproc import synthetic_set

    return synthetic_set(n, seed=seed)


def test_psds_eval_wrapper_equals_direct_calls():
    from psds_eval import PSDSEval

    preds, gt = _noisy_set(n=6)
    params = PostprocParams()
    ths = psds_thresholds(5)
    ops = decode_thresholds(preds, params, ths)
    ref = M.ground_truth_table(gt)
    durations = {f: 10.0 for f in preds.filenames}
    det = Decoder.prepare(preds, params).events()
    ours, curves = M.psds_eval_scores(ops, ref, durations, thresholds=ths, operating_point=det)

    ev = PSDSEval(
        0.5,
        0.5,
        0.3,
        ground_truth=ref,
        metadata=pd.DataFrame({"filename": list(durations), "duration": 10.0}),
    )
    for op in ops:
        ev.add_operating_point(op)
    assert ours["psds"] == pytest.approx(ev.psds(0.0, 0.0, 100).value, abs=1e-12)
    assert ours["psds_cross_trigger"] == pytest.approx(ev.psds(1.0, 0.0, 100).value, abs=1e-12)
    assert ours["psds_macro"] == pytest.approx(ev.psds(0.0, 1.0, 100).value, abs=1e-12)
    f, _ = PSDSEval(
        0.5,
        0.5,
        0.3,
        ground_truth=ref,
        metadata=pd.DataFrame({"filename": list(durations), "duration": 10.0}),
    ).compute_macro_f_score(det)
    assert ours["psds_f_score"] == pytest.approx(f, abs=1e-12)
    assert 0.0 < ours["psds"] < 1.0
    assert len(curves["psds"]["efpr"]) == len(curves["psds"]["etpr"])
    # the same in one process and in two
    for w in (1, 2):
        again, _ = M.psds_eval_scores(ops, ref, durations, thresholds=ths, operating_point=det, workers=w)
        assert {k: v for k, v in again.items() if k != "psds_f_per_class"} == {
            k: v for k, v in ours.items() if k != "psds_f_per_class"
        }
        np.testing.assert_equal(again["psds_f_per_class"], ours["psds_f_per_class"])


def test_sed_scores_wrapper_equals_direct_call():
    from sed_scores_eval import intersection_based

    preds, gt = _noisy_set(seed=2)
    dec = Decoder.prepare(preds, PostprocParams())
    scores = M.score_tables(dec)
    gt_ids = {M.audio_id(f): v for f, v in gt.items()}
    durs = {M.audio_id(f): 10.0 for f in preds.filenames}
    ours, _ = M.sed_scores_psds(scores, gt_ids, durs)
    direct = intersection_based.psds(
        scores=scores,
        ground_truth=gt_ids,
        audio_durations=durs,
        dtc_threshold=0.7,
        gtc_threshold=0.7,
        cttc_threshold=None,
        alpha_ct=0.0,
        alpha_st=1.0,
        max_efpr=100.0,
    )
    assert ours["psds1"] == pytest.approx(direct[0], abs=1e-12)
    direct = intersection_based.psds(
        scores=scores,
        ground_truth=gt_ids,
        audio_durations=durs,
        dtc_threshold=0.1,
        gtc_threshold=0.1,
        cttc_threshold=0.3,
        alpha_ct=0.5,
        alpha_st=1.0,
        max_efpr=100.0,
    )
    assert ours["psds2"] == pytest.approx(direct[0], abs=1e-12)
    # score tables: one row per frame within the clip, clipped to the 10 s duration
    s = scores["clip_00000"]
    assert list(s.columns) == ["onset", "offset", *CLASSES] and s["offset"].iloc[-1] == 10.0 and len(s) == 640


def test_threshold_independent_close_to_psds_eval():
    """sed_scores_eval (all thresholds) and psds_eval (50) agree to a few hundredths on the same scores."""
    preds, gt = _noisy_set(seed=3, n=40)
    m = M.evaluate(
        preds, gt, PostprocParams(), psds=True, n_thresholds=50, segment=False, f1_engine="fast"
    ).metrics
    assert abs(m["psds"] - m["psds_threshold_independent"]) < 0.06


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_give_clear_errors():
    preds, gt = perfect_set()
    p = identity_params()
    with pytest.raises(M.MetricsError, match="no prediction.*'e.wav'"):
        M.evaluate(preds, {**gt, "e.wav": [(0.0, 1.0, "Dog")]}, p, psds=False)
    with pytest.raises(M.MetricsError, match="absent from the ground truth.*'d.wav'"):
        M.evaluate(preds, {k: v for k, v in gt.items() if k != "d.wav"}, p, psds=False)
    with pytest.raises(M.MetricsError, match="class 'Bird'"):
        M.evaluate(preds, {**gt, "c.wav": [(0.0, 1.0, "Bird")]}, p, psds=False)
    with pytest.raises(M.MetricsError, match="empty"):
        M.evaluate(Predictions([], np.zeros((0, 640, 10)), np.zeros((0, 10)), CLASSES), gt, p, psds=False)
    # drop: scores the clips both hold
    m = M.evaluate(preds, {**gt, "e.wav": [(0.0, 1.0, "Dog")]}, p, psds=False, on_missing="drop").metrics
    assert m["n_clips"] == 4 and m["event_f1_macro"] == pytest.approx(1.0)
    # no ground-truth event at all: PSDS undefined -> None with a note, never a number
    m = M.evaluate(preds, {f: [] for f in gt}, p, psds=True, n_thresholds=3).metrics
    assert m["psds"] is None and m["psds1"] is None and m["notes"]


def test_overlapping_ground_truth_is_merged_for_psds_only():
    gt, n = M.merge_connected(
        {
            "a": [
                (5.515, 7.62, "Cat"),
                (6.343, 7.62, "Cat"),
                (1.0, 2.0, "Cat"),
                (2.0, 3.0, "Cat"),
                (1.5, 2.5, "Dog"),
            ]
        }
    )
    assert n == 2 and gt["a"] == [(1.0, 3.0, "Cat"), (5.515, 7.62, "Cat"), (1.5, 2.5, "Dog")]
    preds, truth = perfect_set()
    truth = {**truth, "b.wav": [*truth["b.wav"], (0.5, 1.0, "Cat")]}  # inside the existing Cat event
    m = M.evaluate(preds, truth, identity_params(), psds=True, n_thresholds=3).metrics
    assert m["psds"] == pytest.approx(1.0) and "merged" in m["notes"][0]
    assert m["per_class"]["Cat"]["n_ref"] == 2  # sed_eval scores the ground truth as given

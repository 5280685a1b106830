"""Exact per-class post-processing search (issue 10 part 3): sed.evaluation.tuning against the decoder and
sed_eval-rule metrics point by point, against a brute-force joint grid, and on hand-made cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sed.core.predictions import Predictions
from sed.evaluation.metrics import event_based, event_based_fast, ground_truth_table, segment_based
from sed.evaluation.tuning import TuneError, TuneGrid, match_counts, tune
from sed.postproc import Decoder, PostprocParams

CL3 = ("Cat", "Dog", "Speech")


def small_set(n=24, t=120, classes=CL3, seed=0, dt=0.1):
    """Clips with 0-2 events per class, frame probabilities high on them (noisy, jittered edges,
    false bumps), clip probabilities mostly right."""
    rng = np.random.default_rng(seed)
    c = len(classes)
    fp = rng.uniform(0, 0.25, (n, t, c)).astype(np.float32)
    cp = rng.uniform(0, 0.45, (n, c)).astype(np.float32)
    gt = {}
    names = [f"c{i:03d}.wav" for i in range(n)]
    for i, f in enumerate(names):
        evs = []
        for k, lab in enumerate(classes):
            for _ in range(rng.integers(0, 3)):
                a = int(rng.integers(0, t - 15))
                b = min(t, a + int(rng.integers(4, 40)))
                evs.append((round(a * dt, 3), round(b * dt, 3), lab))
                j = max(0, a + int(rng.integers(-2, 3)))
                fp[i, j : b + int(rng.integers(-2, 3)), k] += rng.uniform(0.3, 0.7)
                cp[i, k] = rng.uniform(0.3, 1.0)
            if rng.random() < 0.3:  # a false bump
                a = int(rng.integers(0, t - 5))
                fp[i, a : a + int(rng.integers(1, 8)), k] += rng.uniform(0.2, 0.6)
        gt[f] = evs
    fp = np.clip(fp, 0, 1)
    return Predictions(names, fp, cp, classes, dt, np.full(n, t * dt)), gt


def base_params(classes=CL3, **kw) -> PostprocParams:
    d = dict(
        frame_thresholds=dict.fromkeys(classes, 0.5),
        median_windows={k: (1, 1) for k in classes},
        tagging_threshold=0.5,
        hysteresis_low=0.08,
        min_duration=0.1,
        join_gap=0.2,
    )
    d.update(kw)
    return PostprocParams(**d)


def point_params(base, classes, th, w, tag, low=None):
    return PostprocParams(
        **{
            **base.to_dict(),
            "frame_thresholds": dict(zip(classes, th)),
            "median_windows": dict(zip(classes, w)),
            "tagging_threshold": dict(zip(classes, tag)),
            "hysteresis_low": base.hysteresis_low if low is None else low,
        }
    )


def direct_f1(preds, gt, params, segment=False):
    det = Decoder.prepare(preds, params).events()
    ref = ground_truth_table(gt)
    if segment:
        durations = dict(zip(preds.filenames, preds.durations))
        return segment_based(ref, det, preds.filenames, durations=durations, classes=preds.classes)
    return event_based_fast(ref, det, preds.filenames, classes=preds.classes)


GRID = TuneGrid(
    thresholds=(0.3, 0.5, 0.7),
    first_windows=(1, 5),
    second_windows=(1, 7),
    tagging_thresholds=(None, 0.4, 0.6),
)


@pytest.mark.parametrize("objective", ["event_f1", "segment_f1"])
def test_every_grid_point_equals_the_decoder_and_metrics(objective):
    """Each class's F1 at each grid point equals decode + event_based_fast (segment: sed_eval) per class."""
    preds, gt = small_set()
    base = base_params()
    res = tune(preds, gt, GRID, base, objective=objective)
    points = list(
        itertools.product(
            range(len(GRID.first_windows)),
            range(len(GRID.second_windows)),
            range(len(GRID.thresholds)),
            range(len(GRID.tagging_thresholds)),
        )
    )
    rng = np.random.default_rng(1)
    for i1, i2, it, ik in [points[j] for j in rng.choice(len(points), 12, replace=False)]:
        c = len(CL3)
        p = point_params(
            base,
            CL3,
            [GRID.thresholds[it]] * c,
            [(GRID.first_windows[i1], GRID.second_windows[i2])] * c,
            [GRID.tagging_thresholds[ik]] * c,
        )
        direct = direct_f1(preds, gt, p, segment=objective == "segment_f1")
        for cls in CL3:
            got = res.searches[cls].f1[0, i1, i2, it, ik]
            assert got == pytest.approx(direct["per_class"][cls]["f1"], abs=1e-12), (cls, i1, i2, it, ik)


def test_per_class_search_equals_brute_force_joint_grid():
    """3 classes, 8 settings each: the best of all 8^3 joint settings (decoder + event_based_fast) has the
    macro F1 the per-class search reports, and the fitted parameters reach it."""
    preds, gt = small_set(seed=3)
    base = base_params()
    grid = TuneGrid(thresholds=(0.4, 0.6), first_windows=(1, 5), second_windows=(3,),
                    tagging_thresholds=(None, 0.5))
    res = tune(preds, gt, grid, base)
    per = list(itertools.product(grid.thresholds, grid.first_windows, grid.second_windows,
                                 grid.tagging_thresholds))
    best = -1.0
    for combo in itertools.product(per, repeat=3):
        p = point_params(base, CL3, [s[0] for s in combo], [(s[1], s[2]) for s in combo],
                         [s[3] for s in combo])
        best = max(best, direct_f1(preds, gt, p)["f1_macro"])
    assert res.macro == pytest.approx(best, abs=1e-12)
    assert direct_f1(preds, gt, res.params)["f1_macro"] == pytest.approx(best, abs=1e-12)
    # and sed_eval itself agrees on the fitted parameters
    det = Decoder.prepare(preds, res.params).events()
    assert event_based(ground_truth_table(gt), det, preds.filenames,
                       classes=CL3)["f1_macro"] == pytest.approx(best)


def test_hysteresis_bound_search_is_exact_over_the_shared_bound():
    preds, gt = small_set(seed=5)
    base = base_params()
    grid = TuneGrid(
        thresholds=(0.3, 0.6), first_windows=(1, 3), second_windows=(1,), tagging_thresholds=(None, 0.5),
        hysteresis_lows=(None, 0.1, 0.25),
    )
    res = tune(preds, gt, grid, base)
    for low in grid.hysteresis_lows:
        sub = tune(preds, gt, TuneGrid(**{**grid.to_dict(), "hysteresis_lows": [low]}), base)
        assert res.macro_by_low[str(low)] == pytest.approx(sub.macro)
        assert res.macro >= sub.macro
    assert direct_f1(preds, gt, res.params)["f1_macro"] == pytest.approx(res.macro)


def test_hand_made_case_picks_the_only_working_settings():
    """One class, two clips. Clip a holds an event at 0.25-0.5 probability from 2 s to 5 s (dt 0.1 s),
    clip b none but a 0.45 bump at 1-2 s; clip probabilities a 0.3, b 0.2. Table 1-like settings
    (threshold 0.5, tagging 0.5) output nothing: F1 0. Thresholds {0.2, 0.5} x tagging {0.25, 0.5}:
    only threshold 0.2 + tagging 0.25 keeps a (0.3 > 0.25) and drops b (0.2 <= 0.25): F1 = 2*1/(1+1) = 1."""
    t = 80
    fp = np.zeros((2, t, 1), np.float32)
    fp[0, 20:50, 0] = 0.3
    fp[1, 10:20, 0] = 0.45
    preds = Predictions(["a.wav", "b.wav"], fp, np.array([[0.3], [0.2]], np.float32), ("Dog",), 0.1,
                        np.array([8.0, 8.0]))
    gt = {"a.wav": [(2.0, 5.0, "Dog")], "b.wav": []}
    base = base_params(("Dog",), hysteresis_low=None)
    grid = TuneGrid(thresholds=(0.2, 0.5), first_windows=(1,), second_windows=(1,),
                    tagging_thresholds=(0.25, 0.5))
    res = tune(preds, gt, grid, base, tuned_on="validation")
    f = res.searches["Dog"].f1[0, 0, 0]  # (threshold, tagging)
    # th 0.2: tag 0.25 -> a only: tp 1, sys 1 -> 1.0; tag 0.5 -> nothing -> 0; th 0.5 -> nothing
    # (0.3, 0.45 < 0.5)
    np.testing.assert_allclose(f, [[1.0, 0.0], [0.0, 0.0]])
    assert res.params.frame_thresholds == {"Dog": 0.2}
    assert res.params.tagging_threshold == {"Dog": 0.25}
    assert res.params.tuned_on == "validation"
    assert res.per_class["Dog"]["n_tp"] == 1 and res.per_class["Dog"]["n_sys"] == 1
    # tagging off (None): b's bump at 0.45 > 0.2 is a false positive: tp 1, sys 2, ref 1 -> 2/3
    res2 = tune(preds, gt, TuneGrid((0.2,), (1,), (1,), (None,)), base)
    assert res2.macro == pytest.approx(2 / 3)


def test_class_without_reference_keeps_base_values_and_is_left_out_of_the_mean():
    preds, gt = small_set(seed=2)
    gt = {f: [e for e in evs if e[2] != "Speech"] for f, evs in gt.items()}
    base = base_params(tagging_threshold=0.5)
    res = tune(preds, gt, GRID, base)
    assert res.per_class["Speech"]["tuned"] is False
    assert res.params.frame_thresholds["Speech"] == 0.5 and res.params.tagging_threshold["Speech"] == 0.5
    fs = [res.per_class[c]["event_f1"] for c in ("Cat", "Dog")]
    assert res.macro == pytest.approx(np.mean(fs))
    assert np.all(np.isnan(res.searches["Speech"].f1))


def test_match_counts_ambiguous_groups_use_maximum_matching():
    """Row 0: refs [0, 1] and [0.15, 1.1]; estimates [0.1, 1.05] hits both refs, [0.3, 1.2] only the second:
    maximum matching 2 (a greedy first-come match could give 1)."""
    ref_row = np.array([0, 0])
    tp = match_counts(
        ref_row, np.array([0.0, 0.15]), np.array([1.0, 1.1]),
        np.array([0, 0]), np.array([0.1, 0.3]), np.array([1.05, 1.2]), 1,
    )
    assert tp.tolist() == [2]
    ref = ground_truth_table({"a": [(0.0, 1.0, "Dog"), (0.15, 1.1, "Dog")]})
    est = ground_truth_table({"a": [(0.1, 1.05, "Dog"), (0.3, 1.2, "Dog")]})
    assert event_based(ref, est, ["a"])["per_class"]["Dog"]["f1"] == pytest.approx(1.0)


def test_grid_errors_are_one_clear_line():
    with pytest.raises(TuneError, match="thresholds holds 1.5"):
        TuneGrid((1.5,), (1,), (1,), (None,))
    with pytest.raises(TuneError, match="first_windows must hold distinct"):
        TuneGrid((0.5,), (3, 3), (1,), (None,))
    with pytest.raises(TuneError, match="unknown keys"):
        TuneGrid.from_cfg({"thresholds": [0.5], "first_windows": [1], "second_windows": [1],
                           "tagging_thresholds": [0.5], "windows": [3]})
    preds, gt = small_set(n=3)
    with pytest.raises(TuneError, match="not separable"):
        tune(preds, gt, GRID, base_params(), objective="psds1")


def test_per_class_tagging_params_round_trip_and_scalar_form():
    from omegaconf import OmegaConf

    from sed.postproc.files import params_yaml

    p = base_params(tagging_threshold={"Cat": 0.2, "Dog": None, "Speech": 0.7})
    assert PostprocParams.from_cfg(OmegaConf.create(params_yaml(p))) == p
    np.testing.assert_array_equal(p.tagging_for(CL3), [0.2, -np.inf, 0.7])
    assert PostprocParams().tagging_threshold == 0.5  # Table 1 default unchanged
    np.testing.assert_array_equal(PostprocParams().tagging_for(("Dog", "Cat")), [0.5, 0.5])
    # a class the per-class table lacks: the paper's 0.5 (issue 21: any label set)
    one = base_params(tagging_threshold={"Cat": 0.2})
    np.testing.assert_array_equal(one.tagging_for(CL3), [0.2, 0.5, 0.5])
    # per-class tagging in the decoder: Dog kept everywhere, Cat at 0.2, Speech at 0.7
    preds, _ = small_set(n=6)
    scores = Decoder.prepare(preds, p).scores
    kept = scores.max(axis=1) > 0
    cp = preds.clip_probs
    assert not np.any(kept[:, 0] & ~(cp[:, 0] > 0.2)) and not np.any(kept[:, 2] & ~(cp[:, 2] > 0.7))
    assert math.isinf(p.tagging_for(CL3)[1])

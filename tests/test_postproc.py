"""Post-processing (SPEC section 6) on hand-made probabilities with hand-computed events."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import median_filter

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS
from sed.core.predictions import Predictions
from sed.postproc import (
    TABLE1,
    Decoder,
    PostprocError,
    PostprocParams,
    decode,
    decode_thresholds,
    effective_window,
    hysteresis_scores,
    iterative_median,
    median_filter_frames,
    psds_thresholds,
)
from sed.postproc.decoder import clean_events, join_close, remove_short

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
ONE = ("Dog",)


def plain(**kw) -> PostprocParams:
    """One class (Dog), no tagging, no median filter, no hysteresis, no removal/joining unless given."""
    base = dict(
        frame_thresholds={"Dog": 0.5},
        median_windows={"Dog": [1, 1]},
        tagging_threshold=None,
        hysteresis_low=None,
        min_duration=0.0,
        join_gap=0.0,
    )
    base.update(kw)
    return PostprocParams(**base)


def one_clip(row, dt=1.0, clip_prob=1.0, duration=None) -> Predictions:
    x = np.asarray(row, dtype=np.float32)[None, :, None]
    return Predictions(
        ["a.wav"],
        x,
        np.array([[clip_prob]], np.float32),
        ONE,
        dt,
        None if duration is None else np.array([duration]),
    )


def events(df) -> list[tuple]:
    return [(r.filename, round(r.onset, 6), round(r.offset, 6), r.event_label) for r in df.itertuples()]


# ---------------------------------------------------------------------------- config
# Table 1 of the paper, copied here by hand as the check of its one home (conf/postproc/paper.yaml)
PAPER_TABLE1 = {"Speech": (0.3, 7, 15), "Dog": (0.3, 7, 15), "Cat": (0.3, 3, 6),
                "Alarm_bell_ringing": (0.4, 8, 21), "Dishes": (0.2, 3, 5), "Frying": (0.6, 24, 48),
                "Blender": (0.6, 3, 6), "Running_water": (0.6, 4, 13), "Vacuum_cleaner": (0.4, 24, 48),
                "Electric_shaver_toothbrush": (0.4, 48, 96)}


def test_default_yaml_is_table1():
    """Table 1 has one home (paper.yaml): default.yaml inherits it (as Hydra composes it and as the files
    reader does), and TABLE1 reads it."""
    from sed.postproc.files import read_postproc_file
    from sed.train import compose

    assert TABLE1 == PAPER_TABLE1
    assert "frame_thresholds" not in (ROOT / "conf/postproc/default.yaml").read_text()
    p = read_postproc_file(ROOT / "conf/postproc/default.yaml")
    assert p == PostprocParams() == read_postproc_file(ROOT / "conf/postproc/paper.yaml")
    assert PostprocParams.from_cfg(compose([]).postproc) == p
    assert set(p.frame_thresholds) == set(CLASSES)
    for c, (th, w1, w2) in PAPER_TABLE1.items():
        assert p.frame_thresholds[c] == th and p.median_windows[c] == (w1, w2)
    assert (p.tagging_threshold, p.hysteresis_low, p.min_duration, p.join_gap, p.order) == (
        0.5,
        0.08,
        0.1,
        0.2,
        "remove_then_join",
    )
    assert p.windows_for(["Electric_shaver_toothbrush", "Cat", "Dishes"]) == [(49, 97), (3, 7), (3, 5)]


def test_config_errors():
    with pytest.raises(PostprocError, match="unknown keys"):
        PostprocParams.from_cfg({"frame_threshold": {}})
    with pytest.raises(PostprocError, match="even_window"):
        PostprocParams(even_window="odd")
    # a class the table lacks gets the generic default (issue 21: any label set)
    assert PostprocParams(frame_thresholds={"Dog": 0.3}).thresholds_for(["Dog", "Cat"]).tolist() == [0.3, 0.5]
    with pytest.raises(PostprocError, match=r"not in \[0, 1\]"):
        PostprocParams(frame_thresholds={"Dog": 1.3})
    p = PostprocParams.from_cfg({**PostprocParams().to_dict(), "min_duration": None})
    assert p.min_duration == 0.0
    assert PostprocParams.from_cfg(p.to_dict()) == p


def test_psds_thresholds_are_the_dcase2020_baseline_ones():
    th = psds_thresholds(50)
    assert len(th) == 50 and th[0] == pytest.approx(0.01) and th[-1] == pytest.approx(0.99)
    assert np.allclose(np.diff(th), 0.02)
    assert np.allclose(psds_thresholds(5), [0.1, 0.3, 0.5, 0.7, 0.9])


# ---------------------------------------------------------------------------- median filter
def test_even_window_rules():
    assert [effective_window(w) for w in (1, 5, 6, 48, 96)] == [1, 5, 7, 49, 97]
    assert effective_window(6, "round_down") == 5
    assert effective_window(6, "as_is") == 6


def test_median_edges_hand_computed():
    x = np.array([[0, 1, 1, 0, 0, 0, 0]], np.float32)
    # reflect (d c b a | a b c d): first window is [x1, x0, x0, x1, x2] = [1, 0, 0, 1, 1] -> 1
    assert median_filter_frames(x, 5, edge="reflect").tolist() == [[1, 0, 0, 0, 0, 0, 0]]
    # nearest (a a | a b c): [0, 0, 0, 1, 1] -> 0; zeros: same here
    assert median_filter_frames(x, 5, edge="nearest").tolist() == [[0] * 7]
    assert median_filter_frames(x, 5, edge="constant").tolist() == [[0] * 7]
    # right edge
    y = np.array([[0, 0, 0, 0, 1, 1, 0]], np.float32)
    # last frame, reflect: [x4, x5, x6, x6, x5] = [1, 1, 0, 0, 1] -> 1; nearest: [1, 1, 0, 0, 0] -> 0
    assert median_filter_frames(y, 5, edge="reflect")[0, -1] == 1
    assert median_filter_frames(y, 5, edge="nearest")[0, -1] == 0
    # an even window rounds up: 4 -> 5
    assert np.array_equal(median_filter_frames(x, 4), median_filter_frames(x, 5))


def test_median_matches_scipy_everywhere():
    rng = np.random.default_rng(1)
    x = rng.random((40, 64)).astype(np.float32)
    for edge in ("reflect", "nearest", "constant", "mirror"):
        for w in (2, 3, 6, 15, 48, 97):
            got = median_filter_frames(x, w, even_window="as_is", edge=edge)
            assert np.array_equal(got, median_filter(x, size=(1, w), mode=edge)), (edge, w)


def test_iterative_median_two_passes_and_rows():
    x = np.array([0, 0, 1, 0, 1, 1, 0, 0, 0, 1], np.float32)
    # pass 1 (w 3, nearest): [0,0,0,1,1,1,0,0,0,1] (last window [0, 1, 1 | 1]);
    # pass 2 (w 5) on it:     [0,0,0,1,1,1,0,0,0,1]
    # one pass of w 5 alone:  [0,0,0,1,1,0,0,0,0,1] (frame 5: [0, 1, 1, 0, 0] -> 0)
    scores = np.stack([x, x])[:, :, None]
    out = iterative_median(scores, [(3, 5)], edge="nearest", rows=np.array([[True], [False]]))
    assert out[0, :, 0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1]
    once = iterative_median(scores, [(5,)], edge="nearest")
    assert once[0, :, 0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1]
    assert out[1, :, 0].tolist() == x.tolist()  # not tagged: untouched


# ---------------------------------------------------------------------------- hysteresis
def test_hysteresis_scores_hand_computed():
    row = np.array([[0.1, 0.5, 0.09, 0.05, 0.2, 0.07, 0.5, 0.6]], np.float32)
    h = hysteresis_scores(row, 0.08)
    assert np.allclose(h, [[0.5, 0.5, 0.5, 0.05, 0.2, 0.07, 0.6, 0.6]])
    assert np.array_equal(hysteresis_scores(row, None), row)


def test_hysteresis_extends_and_stops():
    row = [0.1, 0.5, 0.09, 0.05, 0.2, 0.07, 0.5, 0.6]
    p = plain(frame_thresholds={"Dog": 0.4})
    # without hysteresis: frames > 0.4 are 1 and 6-7
    assert events(decode(one_clip(row), p)) == [("a.wav", 1, 2, "Dog"), ("a.wav", 6, 8, "Dog")]
    # with it: frame 1's region of frames > 0.08 is 0-2 (extended); frame 3 (0.05) stops it; frame 4
    # (0.2 > low) is not next to an active region (frame 3 is below low) and holds nothing > 0.4
    p = plain(frame_thresholds={"Dog": 0.4}, hysteresis_low=0.08)
    assert events(decode(one_clip(row), p)) == [("a.wav", 0, 3, "Dog"), ("a.wav", 6, 8, "Dog")]
    # threshold under the lower bound: plain thresholding (frames > 0.06)
    dec = Decoder.prepare(one_clip(row), p)
    assert events(dec.events(0.06)) == [("a.wav", 0, 3, "Dog"), ("a.wav", 4, 8, "Dog")]


# ---------------------------------------------------------------------------- removal and joining
def _runs(dt=0.05):
    # A = frames 0-3 (0.2 s), B = frame 6 (0.05 s), C = frames 9-12 (0.2 s); gaps A-B and B-C 0.1 s,
    # A-C 0.25 s
    row = np.zeros(16, np.float32)
    row[0:4] = row[6] = row[9:13] = 0.9
    return one_clip(row, dt=dt)


def test_remove_then_join_vs_join_then_remove():
    base = dict(min_duration=0.1, join_gap=0.2)
    rj = decode(_runs(), plain(order="remove_then_join", **base))
    jr = decode(_runs(), plain(order="join_then_remove", **base))
    # removal first: B (0.05 s) goes, then A and C are 0.25 s apart: not joined
    assert events(rj) == [("a.wav", 0.0, 0.2, "Dog"), ("a.wav", 0.45, 0.65, "Dog")]
    # joining first: A+B+C (gaps 0.1 s) become one event 0-0.65 s, long enough to stay
    assert events(jr) == [("a.wav", 0.0, 0.65, "Dog")]


def test_boundaries_are_strict():
    row = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.1, 0.5]), np.array([0.1, 0.3, 0.7])
    # an event of exactly min_duration stays; shorter goes
    r, on, off = remove_short(*row, 0.1)
    assert on.tolist() == [0.0, 0.1, 0.5] and off.tolist() == [0.1, 0.3, 0.7]
    r, on, off = remove_short(*row, 0.15)
    assert on.tolist() == [0.1, 0.5]
    # gap of exactly join_gap (0.3 -> 0.5 = 0.2) is not joined; 0.1 -> 0.1 is (gap 0)
    r, on, off = join_close(*row, 0.2)
    assert on.tolist() == [0.0, 0.5] and off.tolist() == [0.3, 0.7]
    # events of different clips/classes are never joined
    r, on, off = join_close(np.array([0, 1]), np.array([0.0, 0.15]), np.array([0.1, 0.3]), 0.2)
    assert r.tolist() == [0, 1]
    p = plain(min_duration=0.1, join_gap=0.2, order="join_then_remove")
    r, on, off = clean_events(*row, p)
    assert on.tolist() == [0.0, 0.5]


# ---------------------------------------------------------------------------- frames to seconds
def test_frame_to_seconds_and_clipping():
    row = np.zeros(640, np.float32)
    row[64:128] = 0.9
    row[630:] = 0.9
    df = decode(one_clip(row, dt=FRAME_SECONDS), plain())
    dt = FRAME_SECONDS
    assert events(df) == [
        ("a.wav", round(64 * dt, 6), round(128 * dt, 6), "Dog"),
        ("a.wav", round(630 * dt, 6), 10.0, "Dog"),
    ]
    assert df["onset"].iloc[0] == pytest.approx(1.001361, abs=1e-6)
    # a 5 s clip: the event past its end is dropped, the one inside kept
    df = decode(one_clip(row, dt=FRAME_SECONDS, duration=5.0), plain())
    assert len(df) == 1 and df["offset"].iloc[0] == pytest.approx(128 * dt, abs=1e-6)


def test_tagging_is_strict_and_switchable():
    row = [0.9] * 4
    assert len(decode(one_clip(row, clip_prob=0.5), plain(tagging_threshold=0.5))) == 0
    assert len(decode(one_clip(row, clip_prob=0.51), plain(tagging_threshold=0.5))) == 1
    assert len(decode(one_clip(row, clip_prob=0.1), plain(tagging_threshold=None))) == 1


def test_two_call_forms_and_many_clips_classes():
    rng = np.random.default_rng(0)
    n, t = 5, 200
    frame = rng.random((n, t, 10)).astype(np.float32) ** 3
    clip = rng.random((n, 10)).astype(np.float32)
    names = [f"c{i}.wav" for i in range(n)]
    preds = Predictions(names, frame, clip, CLASSES)
    p = PostprocParams()
    a = decode(preds, p)
    b = decode(frame, clip, p, FRAME_SECONDS, names, classes=CLASSES)
    assert a.equals(b) and len(a) > 0
    assert list(a.columns) == ["filename", "onset", "offset", "event_label"]
    # decode_thresholds at one threshold = decode with that threshold for every class
    (c,) = decode_thresholds(preds, p, [0.3])
    assert c.equals(decode(preds, p.with_threshold(0.3)))


def test_matches_loop_reference():
    """The vectorised decoder equals a per-clip, per-class Python-loop decoder (the benchmark's reference)."""
    from benchmarks.bench_postproc import reference_decode, synthetic_set

    preds, _ = synthetic_set(12, seed=4)
    for order in ("remove_then_join", "join_then_remove"):
        p = PostprocParams(median_edge="constant", order=order)
        for th in (None, 0.05, 0.3, 0.7):
            ours = decode(preds, p) if th is None else Decoder.prepare(preds, p).events(th)
            ref = reference_decode(preds, p, th)
            key = ["filename", "event_label", "onset"]
            ours, ref = (
                ours.sort_values(key).reset_index(drop=True),
                ref.sort_values(key).reset_index(drop=True),
            )
            assert len(ours) == len(ref) > 0
            assert (ours[["filename", "event_label"]].values == ref[["filename", "event_label"]].values).all()
            assert np.allclose(
                ours[["onset", "offset"]].to_numpy(float), ref[["onset", "offset"]].to_numpy(float)
            )


# ---------------------------------------------------------------------------- bad input
def test_bad_predictions():
    p = PostprocParams()
    with pytest.raises(PostprocError, match="empty"):
        decode(Predictions([], np.zeros((0, 640, 10)), np.zeros((0, 10)), CLASSES), p)
    frame = np.full((1, 10, 10), np.nan, np.float32)
    with pytest.raises(PostprocError, match="NaN"):
        decode(Predictions(["a.wav"], frame, np.zeros((1, 10)), CLASSES), p)
    with pytest.raises(PostprocError, match="outside"):
        decode(Predictions(["a.wav"], np.full((1, 10, 10), 3.0), np.zeros((1, 10)), CLASSES), p)
    assert len(decode(one_clip([0.9] * 4), p)) == 1  # one class of Table 1's ten: its entry is used


def test_median_filter_long_rows_match_scipy_across_time_blocks():
    """Rows longer than one time block (an hour of frames in `sed detect`) give scipy's exact result."""
    from scipy.ndimage import median_filter

    from sed.postproc import median as median_mod

    x = np.random.default_rng(1).random((2, median_mod._TIME_BLOCK * 2 + 123)).astype(np.float32)
    for w in (7, 97):
        assert np.array_equal(median_mod.median_filter_frames(x, w),
                              median_filter(x, size=(1, w), mode="reflect"))

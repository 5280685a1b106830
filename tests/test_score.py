"""``sedx score``: every figure equals a direct call of sed_eval / psds_eval / sed_scores_eval; scenarios,
durations, bootstrap and paired comparison; each bad input gives one clear line naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sed.cli import main
from sed.core.errors import ConfigError, DataError
from sed.evaluation.scenarios import SCENARIOS, Scenario, parse_scenarios
from sed.evaluation.score import score
from tests import score_helpers as H

REAL = Path(__file__).resolve().parents[2] / "shared" / "desed-real" / "metadata" / "validation"
REAL = REAL if REAL.is_dir() else Path("/work/shared/desed-real/metadata/validation")
THS = (0.2, 0.4, 0.5, 0.6, 0.8)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    ev, du = H.make_truth(40, seed=3)
    sc = H.make_scores(ev, du, seed=4, noise=0.8)
    H.write_truth(d / "gt.tsv", ev)
    H.write_durations(d / "dur.tsv", du)
    H.write_detections(d / "det.tsv", H.detections_at(sc, du, 0.5))
    ops = H.write_operating_points(d / "ops", sc, du, THS)
    frames = H.write_score_folder(d / "scores", sc, du)
    return {"dir": d, "events": ev, "durations": du, "ops": ops, "frames": frames}


def _gt_table(events):
    rows = [(f, on, off, c) for f, evs in events.items() for on, off, c in evs]
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def _direct_sed_eval(events, det, durations, classes):
    import sed_eval

    evm = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(classes), t_collar=0.2, percentage_of_length=0.2,
        empty_system_output_handling="zero_score"
    )
    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(classes), time_resolution=1.0)
    seg.empty_system_output_handling = "zero_score"
    for f in events:
        ref = [{"filename": f, "onset": on, "offset": off, "event_label": c} for on, off, c in events[f]]
        est = [r._asdict() if hasattr(r, "_asdict") else r for r in det[det.filename == f].to_dict("records")]
        evm.evaluate(ref, est)
        seg.evaluate(ref, est, evaluated_length_seconds=durations[f])
    return (
        evm.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        evm.results_overall_metrics()["f_measure"]["f_measure"],
        seg.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        seg.results_overall_metrics()["f_measure"]["f_measure"],
    )


def _psds_eval(events, durations, scenario: Scenario):
    from psds_eval import PSDSEval

    from sed.evaluation.common import merge_connected

    gt = _gt_table(merge_connected(events)[0])
    meta = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    dtc, gtc, cttc = scenario.psds_eval_criteria()
    return PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta)


def _ss_psds(frames, events, durations, s: Scenario):
    """sed_scores_eval's psds on ``frames``: score DataFrames or the folder of score TSVs (read by the
    library)."""
    from sed_scores_eval import intersection_based

    from sed.evaluation.common import merge_connected

    gt = {Path(f).stem: v for f, v in merge_connected(events)[0].items()}
    dur = {Path(f).stem: d for f, d in durations.items()}
    return intersection_based.psds(
        scores=str(frames) if isinstance(frames, Path) else frames,
        ground_truth=gt,
        audio_durations=dur,
        dtc_threshold=s.dtc_threshold,
        gtc_threshold=s.gtc_threshold,
        cttc_threshold=s.cttc_threshold if s.alpha_ct > 0 else None,
        alpha_ct=s.alpha_ct,
        alpha_st=s.alpha_st,
        max_efpr=s.max_efpr,
    )[0]


# ---------------------------------------------------------------------------- equality with the libraries
def test_detections_equal_sed_eval_and_psds_eval(gen):
    d = gen["dir"]
    out = score(d / "det.tsv", d / "gt.tsv", durations=str(d / "dur.tsv"))
    f = out["systems"][0]["figures"]
    det = pd.read_csv(d / "det.tsv", sep="\t")
    e_ma, e_mi, s_ma, s_mi = _direct_sed_eval(gen["events"], det, gen["durations"], H.CLASSES)
    assert f["event_f1_macro"] == e_ma and f["event_f1_micro"] == e_mi
    assert f["segment_f1_macro"] == s_ma and f["segment_f1_micro"] == s_mi
    ev = _psds_eval(gen["events"], gen["durations"], SCENARIOS["psds"])
    assert f["psds_f_score"] == ev.compute_macro_f_score(det)[0]
    assert 0 < f["event_f1_macro"] < 1 and out["durations"] == str(d / "dur.tsv")
    assert set(out["systems"][0]["lines"]) >= {"event_f1_macro", "segment_f1_macro", "psds_f_score"}
    assert "sed_eval" in out["systems"][0]["lines"]["event_f1_macro"]


def test_operating_points_equal_psds_eval_for_every_scenario(gen):
    d = gen["dir"]
    out = score(d / "ops", d / "gt.tsv", durations=str(d / "dur.tsv"),
                scenarios=["dcase2020", "psds1", "psds2"])
    f = out["systems"][0]["figures"]
    for name in ("psds", "psds_cross_trigger", "psds_macro", "psds1", "psds2"):
        s = SCENARIOS[name]
        ev = _psds_eval(gen["events"], gen["durations"], s)
        for t in gen["ops"]:
            ev.add_operating_point(t)
        assert f[name] == ev.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st, max_efpr=s.max_efpr).value, name
    assert 0 < f["psds1"] < f["psds"] and "5 operating points" in out["systems"][0]["lines"]["psds1"]


def test_score_folder_equals_sed_scores_eval(gen):
    from sed_scores_eval import collar_based

    d = gen["dir"]
    out = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios="psds1,psds2")
    f = out["systems"][0]["figures"]
    for name in ("psds1", "psds2"):
        assert f[name] == _ss_psds(d / "scores", gen["events"], gen["durations"], SCENARIOS[name])
    gt = {Path(k).stem: v for k, v in gen["events"].items()}
    best = collar_based.best_fscore(
        scores=str(d / "scores"), ground_truth=gt, onset_collar=0.2, offset_collar=0.2, offset_collar_rate=0.2
    )[0]
    assert f["collar_f1_best_macro"] == best["macro_average"]
    assert 0 < f["psds1"] < 1


def test_each_scenario_parameter_reaches_the_library(gen, tmp_path):
    d = gen["dir"]
    base = dict(name="x", dtc=0.5, gtc=0.5, cttc=0.3, alpha_ct=0.5, alpha_st=0.5, max_efpr=100)
    variants = {"dtc": 0.2, "gtc": 0.9, "cttc": 0.9, "alpha_ct": 1.0, "alpha_st": 0.0, "max_efpr": 20}
    spec = lambda kv: ",".join(f"{k}={v}" for k, v in kv.items())  # noqa: E731
    ref = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios=spec(base))
    ref_ops = score(d / "ops", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios=spec(base))
    for k, v in variants.items():
        s = parse_scenarios(spec({**base, k: v}))[0]
        got = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"),
                    scenarios=[s])["systems"][0]["figures"]["x"]
        assert got == _ss_psds(d / "scores", gen["events"], gen["durations"], s)
        assert got != ref["systems"][0]["figures"]["x"], k
        if k != "cttc":  # psds_eval: every parameter changes the figure here but cttc (few cross-triggers)
            got_ops = score(d / "ops", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios=[s])
            assert got_ops["systems"][0]["figures"]["x"] != ref_ops["systems"][0]["figures"]["x"], k
    y = tmp_path / "sc.yaml"
    y.write_text("mine:\n  dtc: 0.7\n  gtc: 0.7\n  alpha_st: 1\n")
    (mine,) = parse_scenarios(str(y))
    assert (mine.name, mine.dtc_threshold, mine.alpha_st, mine.cttc_threshold) == ("mine", 0.7, 1.0, 0.3)
    a = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"),
              scenarios=str(y))["systems"][0]["figures"]["mine"]
    b = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"),
              scenarios="psds1")["systems"][0]["figures"]["psds1"]
    assert a == b  # psds1's settings under another name


def test_scenario_names_and_errors():
    assert [s.name for s in parse_scenarios("dcase2020")] == ["psds", "psds_cross_trigger", "psds_macro"]
    assert [s.name for s in parse_scenarios(None)] == ["psds1", "psds2"]
    assert SCENARIOS["psds2"].sed_scores_kwargs()["cttc_threshold"] == 0.3
    assert SCENARIOS["psds1"].sed_scores_kwargs()["cttc_threshold"] is None
    for bad, msg in (("psds3", "unknown scenario"), ("dtc=2", "dtc_threshold must be in"),
                     ("dtc=a", "not a number"), ("foo=1", "unknown scenario key"),
                     ("alpha_ct=0.5,cttc=none", "needs a cttc")):
        with pytest.raises(ConfigError, match=msg):
            parse_scenarios(bad)


def test_durations_change_the_figures_and_audio_durations(gen, tmp_path):
    import soundfile as sf

    d = gen["dir"]
    ev = {f: gen["events"][f] for f in list(gen["events"])[:4]}
    du = {f: gen["durations"][f] for f in ev}
    H.write_truth(tmp_path / "gt.tsv", ev)
    det = pd.read_csv(d / "det.tsv", sep="\t")
    H.write_detections(tmp_path / "det.tsv", det[det.filename.isin(ev)])
    (tmp_path / "audio").mkdir()
    for f, dur in du.items():
        sf.write(tmp_path / "audio" / f, np.zeros(int(dur * 8000), np.float32), 8000)
    H.write_durations(tmp_path / "dur.tsv", du)
    kw = dict(classes=H.CLASSES)
    a = score(tmp_path / "det.tsv", tmp_path / "gt.tsv", durations=str(tmp_path / "dur.tsv"), **kw)
    b = score(tmp_path / "det.tsv", tmp_path / "gt.tsv", audio_dir=str(tmp_path / "audio"), **kw)
    c = score(tmp_path / "det.tsv", tmp_path / "gt.tsv", **kw)
    assert a["systems"][0]["figures"] == b["systems"][0]["figures"]
    assert "audio headers" in b["durations"] and any("10 s long" in n for n in c["notes"])
    # the eFPR is per hour of audio: two 7 s clips change the PSDS (10 s assumed without durations)
    assert min(gen["durations"].values()) < 10
    x = score(d / "scores", d / "gt.tsv", durations=str(d / "dur.tsv"))["systems"][0]["figures"]
    y = score(d / "scores", d / "gt.tsv")["systems"][0]["figures"]
    assert x["psds1"] != y["psds1"] and x["psds2"] != y["psds2"]


@pytest.mark.skipif(not (REAL / "validation_durations.tsv").is_file(), reason="real DESED metadata absent")
def test_real_desed_validation_truth_equals_libraries(tmp_path):
    from sed.evaluation.score_inputs import read_truth

    truth = read_truth(REAL / "validation.tsv")
    dur = pd.read_csv(REAL / "validation_durations.tsv", sep="\t")
    du = dict(zip(dur.filename, dur.duration.astype(float)))
    assert len(truth.clips) == 1168 and sum(v < 10 for v in du.values()) == 102
    classes = tuple(truth.classes)
    sc = H.make_scores(truth.events, du, seed=5, noise=0.5, classes=classes)
    H.write_detections(tmp_path / "det.tsv", H.detections_at(sc, du, 0.5, classes))
    det = pd.read_csv(tmp_path / "det.tsv", sep="\t")
    out = score(tmp_path / "det.tsv", REAL / "validation.tsv",
                durations=str(REAL / "validation_durations.tsv"))
    f = out["systems"][0]["figures"]
    e_ma, e_mi, s_ma, s_mi = _direct_sed_eval(truth.events, det, du, classes)
    assert (f["event_f1_macro"], f["event_f1_micro"], f["segment_f1_macro"], f["segment_f1_micro"]) == (
        e_ma, e_mi, s_ma, s_mi
    )
    assert f["psds_f_score"] == _psds_eval(truth.events, du, SCENARIOS["psds"]).compute_macro_f_score(det)[0]
    frames = H.score_frames(sc, du, classes)
    from sed_scores_eval.base_modules.io import write_sed_scores

    write_sed_scores(frames, tmp_path / "scores")
    out = score(tmp_path / "scores", REAL / "validation.tsv",
                durations=str(REAL / "validation_durations.tsv"))
    for name in ("psds1", "psds2"):  # the same up to the summation order over clips
        direct = _ss_psds(tmp_path / "scores", truth.events, du, SCENARIOS[name])
        assert out["systems"][0]["figures"][name] == pytest.approx(direct, abs=1e-15, rel=0)


# ---------------------------------------------------------------------------- bootstrap
def test_bootstrap_deterministic_contains_point_and_self_comparison_is_zero(gen):
    d = gen["dir"]
    kw = dict(durations=str(d / "dur.tsv"), bootstrap_n=30, seed=7)
    a = score(d / "det.tsv", d / "gt.tsv", **kw)
    b = score(d / "det.tsv", d / "gt.tsv", **kw)
    assert a["systems"][0]["ci95"] == b["systems"][0]["ci95"]
    c = score(d / "det.tsv", d / "gt.tsv", **{**kw, "seed": 8})
    assert c["systems"][0]["ci95"] != a["systems"][0]["ci95"]
    for k, (lo, hi) in a["systems"][0]["ci95"].items():
        assert lo <= a["systems"][0]["figures"][k] <= hi, k
        assert lo < hi, k
    assert "percentile bootstrap over clips" in a["bootstrap"]["method"]
    s = score([d / "scores", d / "scores"], d / "gt.tsv", durations=str(d / "dur.tsv"), bootstrap_n=10)
    for k, c in s["comparison"].items():
        assert c["difference"] == 0 and c["ci95"] == [0.0, 0.0] and c["p_a_higher"] == 0, k
    for k, (lo, hi) in s["systems"][0]["ci95"].items():
        assert lo <= s["systems"][0]["figures"][k] <= hi, k


def test_paired_comparison_prefers_the_better_system(gen, tmp_path):
    d = gen["dir"]
    ops = sorted((d / "ops").glob("*.tsv"))
    good = H.detections_at(H.make_scores(gen["events"], gen["durations"], seed=4, noise=0.2),
                           gen["durations"], 0.5)
    H.write_detections(tmp_path / "good.tsv", good)
    out = score([tmp_path / "good.tsv", d / "det.tsv"], d / "gt.tsv", durations=str(d / "dur.tsv"),
                bootstrap_n=20)
    c = out["comparison"]["event_f1_macro"]
    assert c["difference"] > 0 and c["ci95"][0] > 0 and c["p_a_higher"] == 1.0
    assert ops  # the fixture's folder is untouched


def resample_plan(clips, idx):
    """Clip -> the names of its copies in a resample drawn as ``idx`` (the k-th copy is
    ``<stem>~k<suffix>``)."""
    counts = np.bincount(idx, minlength=len(clips))
    plan = {}
    for i in np.flatnonzero(counts):
        p = Path(clips[i])
        plan[clips[i]] = [clips[i]] + [f"{p.stem}~{k}{p.suffix}" for k in range(1, int(counts[i]))]
    return plan


def _expand(table, plan):
    """A table on a resampled clip set: each row once per copy of its clip, the copies renamed."""
    rows = [(n, *r[1:]) for r in table.itertuples(index=False) for n in plan.get(r[0], ())]
    return pd.DataFrame(rows, columns=table.columns)


def test_resamplers_equal_the_libraries_on_renamed_copies(gen):
    """A resample (weights) by per-clip statistics equals the library run on the resampled set itself."""
    from sed.evaluation import sed_eval_metrics as S
    from sed.evaluation.common import ground_truth_table, merge_connected
    from sed.evaluation.psds_eval_metrics import PsdsEvalResampler, psds_eval_scores, psds_f_score
    from sed.evaluation.sed_scores_metrics import SedScoresResampler, collar_best_f1, sed_scores_psds

    assert resample_plan(["a.wav", "b.wav", "c"], np.array([0, 0, 2])) == {"a.wav": ["a.wav", "a~1.wav"],
                                                                           "c": ["c"]}
    ev, du = gen["events"], gen["durations"]
    clips = list(ev)
    ref = ground_truth_table(ev)
    det = pd.read_csv(gen["dir"] / "det.tsv", sep="\t")
    sc = parse_scenarios("dcase2020,psds1,psds2")
    ev_c = S.clip_counts(ref, det, clips, kind="event", classes=H.CLASSES)
    seg_c = S.clip_counts(ref, det, clips, kind="segment", durations=du, classes=H.CLASSES)
    ops = PsdsEvalResampler(gen["ops"], ref, du, sc)
    assert ops.library_figures() == psds_eval_scores(gen["ops"], ref, du, scenarios=sc)  # figures and curves
    fsc = PsdsEvalResampler([det], ref, du, [SCENARIOS["psds"]])
    ss = SedScoresResampler(
        gen["frames"], {Path(f).stem: v for f, v in merge_connected(ev)[0].items()},
        {Path(f).stem: v for f, v in du.items()}, sc
    )
    for idx in (np.arange(len(clips)), np.random.default_rng(1).integers(0, len(clips), len(clips))):
        w = np.bincount(idx, minlength=len(clips)).astype(float)
        plan = resample_plan(clips, idx)
        ev_b = {n: ev[c] for c, names in plan.items() for n in names}
        du_b = {n: du[c] for c, names in plan.items() for n in names}
        ref_b, det_b = ground_truth_table(ev_b), _expand(det, plan)
        e = S.f1_from_counts(ev_c[0], np.tensordot(w, ev_c[1], axes=1), w @ ev_c[2])
        assert e == S.event_based(ref_b, det_b, list(ev_b), classes=H.CLASSES)
        g = S.f1_from_counts(seg_c[0], np.tensordot(w, seg_c[1], axes=1), w @ seg_c[2])
        assert g == S.segment_based(ref_b, det_b, list(ev_b), durations=du_b, classes=H.CLASSES)
        direct, _ = psds_eval_scores([_expand(t, plan) for t in gen["ops"]], ref_b, du_b, scenarios=sc)
        got = ops.psds(w)
        for k in got:  # the same sums in another order: equal to the last bits
            assert got[k] == pytest.approx(direct[k], rel=1e-12, abs=1e-15), k
        assert fsc.f_score(w) == pytest.approx(psds_f_score(det_b, ref_b, du_b)[0], rel=1e-12)
        assert 0 < got["psds1"] < got["psds"]
        # sed_scores_eval: the library on the renamed copies' score tables
        gt_b = {Path(n).stem: v for n, v in merge_connected(ev_b)[0].items()}
        du_ids = {Path(n).stem: v for n, v in du_b.items()}
        frames_b = {Path(n).stem: gen["frames"][Path(c).stem] for c, names in plan.items() for n in names}
        direct_ss, _ = sed_scores_psds(frames_b, gt_b, du_ids, sc)
        direct_ss["collar_f1_best_macro"] = collar_best_f1(frames_b, gt_b)["f1_macro"]
        assert ss.figures(w) == direct_ss
    # the eFPR-only PSDS step equals the library's psds() exactly on the same operating points
    from sed.evaluation.psds_eval_metrics import _psds_value

    for evl, group, _ in ops.groups:
        for s in group:
            assert _psds_value(evl, s) == evl.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st,
                                                   max_efpr=s.max_efpr).value


def test_bootstrap_operating_points(gen):
    d = gen["dir"]
    out = score(d / "ops", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios="psds1", bootstrap_n=20)
    plain = score(d / "ops", d / "gt.tsv", durations=str(d / "dur.tsv"), scenarios="psds1")
    assert out["systems"][0]["figures"] == plain["systems"][0]["figures"]
    lo, hi = out["systems"][0]["ci95"]["psds1"]
    assert 0 < lo <= out["systems"][0]["figures"]["psds1"] <= hi
    assert out["bootstrap"]["per_resample_s"] > 0 and out["bootstrap"]["setup_s"] > 0


# ---------------------------------------------------------------------------- outputs and CLI
def test_cli_report_json_and_plots(gen, tmp_path, capsys):
    d = gen["dir"]
    rc = main(["score", str(d / "ops"), "--truth", str(d / "gt.tsv"), "--durations", str(d / "dur.tsv"),
               "--scenario", "psds1", "--scenario", "dtc=0.3,gtc=0.3,name=loose",
               "--out", str(tmp_path / "o"), "--format", "json"])
    assert rc == 0
    js = json.loads(capsys.readouterr().out)
    assert set(js["systems"][0]["figures"]) == {"psds1", "loose"}
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["systems"][0]["figures"] == js["systems"][0]["figures"]
    report = (tmp_path / "o" / "report.md").read_text()
    assert ("psds_eval, 5 operating points, dtc 0.3 gtc 0.3" in report
            and (tmp_path / "o" / "plots" / "psd_roc.png").is_file())
    rc = main(["score", str(d / "det.tsv"), "--truth", str(d / "gt.tsv"), "--out", str(tmp_path / "p")])
    text = capsys.readouterr().out
    assert rc == 0 and "event-based F1 macro" in text and "every clip taken as 10 s" in text
    assert (tmp_path / "p" / "plots" / "per_class_f1.png").is_file()


def test_python_m_sed_cli_score(gen):
    import subprocess
    import sys

    d = gen["dir"]
    r = subprocess.run([sys.executable, "-m", "sed.cli", "score", str(d / "det.tsv"),
                        "--truth", str(d / "gt.tsv"), "--format", "json"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["systems"][0]["kind"] == "detections"


def test_predictions_npz(gen, tmp_path):
    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.predictions import Predictions

    rng = np.random.default_rng(0)
    names = list(gen["events"])[:6]
    p = Predictions(names, rng.uniform(size=(6, 156, 10)), rng.uniform(size=(6, 10)), CLASSES,
                    frame_seconds=0.064)
    p.save(tmp_path / "p.npz")

    ev = {f: [(on, off, "Dog" if c == "Dog" else "Cat") for on, off, c in gen["events"][f]] for f in names}
    H.write_truth(tmp_path / "gt.tsv", ev)
    out = score(tmp_path / "p.npz", tmp_path / "gt.tsv", classes=CLASSES)
    f = out["systems"][0]["figures"]
    assert out["systems"][0]["kind"] == "predictions"
    assert {"event_f1_macro", "psds1_threshold_independent", "collar_f1_best_macro"} <= set(f)
    assert out["durations"] == "the predictions file"


# ---------------------------------------------------------------------------- bad input
def _err(capsys, args):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "rows, msg",
    [
        ("clip0000.wav\t1.0\n", "det.tsv:2: 2 columns, expected 4"),
        ("clip0000.wav\tx\t2\tCat\n", "det.tsv:2: onset 'x' is not a non-negative number"),
        ("clip0000.wav\t1\t2\tCat\nclip0001.wav\t1\t2\tBird\n", "det.tsv:3: unknown class 'Bird'"),
        ("clip0000.wav\t2\t2\tCat\n", "det.tsv:2: onset 2 >= offset 2"),
        ("nope.wav\t1\t2\tCat\n", "det.tsv:2: clip 'nope.wav' is not in the ground truth"),
        ("clip0000.wav\t1\t3\tCat\nclip0001.wav\t1\t2\tDog\nclip0000.wav\t2\t4\tCat\n",
         "det.tsv:4: Cat detection overlaps the one at line 2"),
    ],
)
def test_bad_detections(gen, tmp_path, capsys, rows, msg):
    (tmp_path / "det.tsv").write_text("filename\tonset\toffset\tevent_label\n" + rows)
    err = _err(capsys, ["score", str(tmp_path / "det.tsv"), "--truth", str(gen["dir"] / "gt.tsv")])
    assert msg in err


def test_drop_merge_empty_and_classes(gen, tmp_path, capsys):
    gt = gen["dir"] / "gt.tsv"
    (tmp_path / "det.tsv").write_text(
        "filename\tonset\toffset\tevent_label\nnope.wav\t1\t2\tCat\nclip0000.wav\t1\t3\tCat\nclip0000.wav\t2\t4\tCat\n"
    )
    with pytest.raises(DataError):
        score(tmp_path / "det.tsv", gt, on_missing="drop")
    out = score(tmp_path / "det.tsv", gt, on_missing="drop", merge_overlaps=True)
    notes = " ".join(out["systems"][0]["notes"])
    assert "1 detection(s) of 1 clip(s) absent from the ground truth dropped" in notes
    assert "1 overlapping same-class detection(s) merged" in notes
    merged = pd.DataFrame({"filename": ["clip0000.wav"], "onset": [1.0], "offset": [4.0],
                           "event_label": ["Cat"]})
    (tmp_path / "m.tsv").write_text(merged.to_csv(sep="\t", index=False))
    assert score(tmp_path / "m.tsv", gt)["systems"][0]["figures"] == out["systems"][0]["figures"]
    (tmp_path / "empty.tsv").write_text("")
    out = score(tmp_path / "empty.tsv", gt, allow_empty=True)
    f = out["systems"][0]["figures"]
    assert (f["event_f1_macro"] == 0 and f["psds_f_score"] == 0
            and "no detection" in out["systems"][0]["notes"][0])
    assert "unknown class 'Speech' (not in --classes)" in _err(
        capsys, ["score", str(tmp_path / "empty.tsv"), "--truth", str(gt), "--classes", "Cat,Dog"]
    )


def test_bad_truth_scores_and_scenario(gen, tmp_path, capsys):
    d = gen["dir"]
    (tmp_path / "gt0.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t\t\t\n")
    assert "gt0.tsv: the ground truth has no event" in _err(
        capsys, ["score", str(d / "det.tsv"), "--truth", str(tmp_path / "gt0.tsv")]
    )
    (tmp_path / "gt1.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t3\t1\tCat\n")
    assert "gt1.tsv:2: onset 3 >= offset 1" in _err(
        capsys, ["score", str(d / "det.tsv"), "--truth", str(tmp_path / "gt1.tsv")]
    )
    for name, body, msg in (
        ("nan", "onset\toffset\tCat\tDog\tSpeech\n0\t0.5\t0.1\tnan\t0.2\n", "clip0000.tsv:2: Dog value"),
        ("neg", "onset\toffset\tCat\tDog\tSpeech\n0\t0.5\t0.1\t0.1\t0.2\n0.5\t1\t-0.1\t0.1\t0.2\n",
         "clip0000.tsv:3: negative score -0.1 for Cat"),
        ("time", "onset\toffset\tCat\tDog\tSpeech\n0\t0.5\t0.1\t0.1\t0.2\n0.5\t0.4\t0.1\t0.1\t0.2\n",
         "clip0000.tsv:3: frame offset 0.4 <= onset 0.5"),
        ("gap", "onset\toffset\tCat\tDog\tSpeech\n0\t0.5\t0.1\t0.1\t0.2\n0.7\t1\t0.1\t0.1\t0.2\n",
         "clip0000.tsv:3: frame onset 0.7 differs"),
        ("cls", "onset\toffset\tCat\tBird\n0\t0.5\t0.1\t0.1\n", "clip0000.tsv:1: unknown class 'Bird'"),
    ):
        f = tmp_path / name
        f.mkdir()
        for k in gen["frames"]:
            (f / f"{k}.tsv").write_text((d / "scores" / f"{k}.tsv").read_text())
        (f / "clip0000.tsv").write_text(body)
        assert msg in _err(capsys, ["score", str(f), "--truth", str(d / "gt.tsv")]), name
    (tmp_path / "dur.tsv").write_text("filename\tduration\nclip0000.wav\tten\n")
    assert "dur.tsv:2: duration 'ten' is not a number" in _err(
        capsys, ["score", str(d / "det.tsv"), "--truth", str(d / "gt.tsv"),
                 "--durations", str(tmp_path / "dur.tsv")]
    )
    assert "unknown scenario 'psds9'" in _err(
        capsys, ["score", str(d / "det.tsv"), "--truth", str(d / "gt.tsv"), "--scenario", "psds9"]
    )
    assert "not found" in _err(capsys, ["score", str(tmp_path / "nothing"), "--truth", str(d / "gt.tsv")])


def test_psds_eval_scores_refuses_overlapping_detections(gen):
    from sed.evaluation.common import MetricsError
    from sed.evaluation.psds_eval_metrics import psds_eval_scores

    t = pd.DataFrame({"filename": ["clip0000.wav"] * 2, "onset": [0.0, 0.5], "offset": [1.0, 2.0],
                      "event_label": ["Cat"] * 2})
    with pytest.raises(MetricsError, match="overlapping same-class"):
        psds_eval_scores([t], _gt_table(gen["events"]), gen["durations"])


def test_sed_eval_points_a_tsv_at_sed_score(tmp_path):
    from sed.core.predictions import Predictions, PredictionsError

    (tmp_path / "d.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    with pytest.raises(PredictionsError, match="sedx score"):
        Predictions.load(tmp_path / "d.tsv")
    with pytest.raises(PredictionsError, match="a folder.*sedx score"):
        Predictions.load(tmp_path)

"""``sedx score`` on the field's files as published (issue 22): every layout scores without rewriting
and equals the direct sed_eval / psds_eval calls on the same data; operating-point thresholds, the
settings options, error rates, PSD-ROC points, the PSDS-F's own criteria, class sets, empty input and
README's commands."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sed.cli import main
from sed.evaluation.common import merge_connected
from sed.evaluation.scenarios import SCENARIOS
from sed.evaluation.score import score, text_report
from tests import score_helpers as H

THS = (0.3, 0.5, 0.7)
ER = ("error_rate", "substitution_rate", "deletion_rate", "insertion_rate")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    ev, du = H.make_truth(16, seed=5)
    sc = H.make_scores(ev, du, seed=6, noise=0.8)
    H.write_truth(d / "gt.tsv", ev)
    H.write_durations(d / "dur.tsv", du)
    det = pd.read_csv(H.write_detections(d / "det.tsv", H.detections_at(sc, du, 0.5)), sep="\t")
    ops = [H.detections_at(sc, du, th) for th in THS]
    return {"dir": d, "events": ev, "durations": du, "scores": sc, "det": det, "ops": ops}


def _kw(small):
    return dict(durations=str(small["dir"] / "dur.tsv"))


def direct_sed_eval(events, det, durations, *, collar=0.2, pct=0.2, seg=1.0, lengths="durations"):
    """sed_eval's event- and segment-based figures, called directly (the keys ``sedx score`` reports)."""
    import sed_eval

    evm = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(H.CLASSES),
        t_collar=collar,
        percentage_of_length=pct,
        empty_system_output_handling="zero_score",
    )
    sgm = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(H.CLASSES), time_resolution=seg)
    sgm.empty_system_output_handling = "zero_score"
    for f in events:
        ref = [{"filename": f, "onset": on, "offset": off, "event_label": c} for on, off, c in events[f]]
        est = det[det.filename == f].to_dict("records")
        evm.evaluate(ref, est)
        sgm.evaluate(ref, est, evaluated_length_seconds=durations[f] if lengths == "durations" else None)
    out = {}
    for kind, m in (("event", evm), ("segment", sgm)):
        ov = m.results_overall_metrics()
        out[f"{kind}_f1_macro"] = m.results_class_wise_average_metrics()["f_measure"]["f_measure"]
        out[f"{kind}_f1_micro"] = ov["f_measure"]["f_measure"]
        out[f"{kind}_precision_micro"] = ov["f_measure"]["precision"]
        out[f"{kind}_recall_micro"] = ov["f_measure"]["recall"]
        out.update({f"{kind}_{k}": ov["error_rate"][k] for k in ER})
    return out


def psds_eval_for(events, durations, dtc=0.5, gtc=0.5, cttc=0.3):
    from psds_eval import PSDSEval

    gt = [(f, on, off, c) for f, evs in merge_connected(events)[0].items() for on, off, c in evs]
    gt = pd.DataFrame(gt, columns=["filename", "onset", "offset", "event_label"])
    meta = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    return PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt, metadata=meta)


def _err(capsys, args):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", H.LAYOUTS)
def test_detections_in_each_layout_equal_the_libraries(small, tmp_path, layout):
    path = H.write_layout(
        tmp_path / f"det.{'csv' if layout.endswith('csv') else 'tsv'}", small["det"], layout
    )
    out = score(path, small["dir"] / "gt.tsv", **_kw(small))
    f = out["systems"][0]["figures"]
    det = H.read_layout(path, layout)
    direct = direct_sed_eval(small["events"], det, small["durations"])
    for k, v in direct.items():
        assert f[k] == v, (layout, k)
    assert (
        f["psds_f_score"] == psds_eval_for(small["events"], small["durations"]).compute_macro_f_score(det)[0]
    )
    assert 0 < f["event_f1_macro"] < 1 and f["event_error_rate"] > 0 and 0 < f["segment_precision_micro"] < 1
    notes = " ".join(out["systems"][0]["notes"])
    assert ("read as" in notes) == (layout != "desed"), notes
    if layout == "desed_task_csv":
        assert "comma-separated, columns by header name; ignored: (unnamed)" in notes


@pytest.mark.parametrize("layout", ["dcase2020_ops", "desed_task_csv"])
def test_operating_points_in_published_layouts_equal_psds_eval(small, tmp_path, layout):
    ext = "csv" if layout.endswith("csv") else "tsv"
    folder = tmp_path / "ops"
    folder.mkdir()
    paths = [
        H.write_layout(folder / f"predictions_th_{th:.2f}.{ext}", t, layout)
        for th, t in zip(THS, small["ops"])
    ]
    out = score(
        folder, small["dir"] / "gt.tsv", scenarios="dcase2020,psds1", out_dir=tmp_path / "o", **_kw(small)
    )
    f = out["systems"][0]["figures"]
    for crit, names in (
        ((0.5, 0.5, 0.3), ("psds", "psds_cross_trigger", "psds_macro")),
        ((0.7, 0.7, 0.3), ("psds1",)),
    ):
        ev = psds_eval_for(small["events"], small["durations"], *crit)
        for th, p in zip(THS, paths):
            ev.add_operating_point(H.read_layout(p, layout), info={"threshold": th})
        for name in names:
            s = SCENARIOS[name]
            assert f[name] == ev.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st, max_efpr=s.max_efpr).value, (
                name
            )
    assert "3 operating-point file(s) read as" in " ".join(out["systems"][0]["notes"])
    # the per-class PSD-ROC points beside the PNG: psds_eval's own per operating point (psds1: alpha_ct 0)
    roc = pd.read_csv(tmp_path / "o" / "plots" / "psd_roc.csv", float_precision="round_trip")
    assert (tmp_path / "o" / "plots" / "psd_roc.png").is_file()
    assert list(roc.columns) == ["library", "scenario", "class", "threshold", "tpr", "efpr"]
    ops = ev.operating_points
    for i, c in enumerate(H.CLASSES):
        got = roc[(roc.scenario == "psds1") & (roc["class"] == c)]
        assert got.threshold.tolist() == ops.threshold.tolist() == list(THS)
        assert got.tpr.tolist() == [t[i] for t in ops.tpr] and got.efpr.tolist() == [x[i] for x in ops.fpr]


def test_cross_trigger_roc_points_and_score_folder_roc(small, tmp_path):
    """eFPR with alpha_ct > 0: psds_eval's FPR + alpha_ct x mean CT rate; score folders: sed_scores_eval's."""
    from sed_scores_eval import intersection_based

    folder = tmp_path / "ops"
    folder.mkdir()
    for th, t in zip(THS, small["ops"]):
        H.write_layout(folder / f"op_{th}.tsv", t, "desed")
    score(folder, small["dir"] / "gt.tsv", scenarios="psds2", out_dir=tmp_path / "o", **_kw(small))
    roc = pd.read_csv(tmp_path / "o" / "plots" / "psd_roc.csv", float_precision="round_trip")
    ev = psds_eval_for(small["events"], small["durations"], 0.1, 0.1, 0.3)
    for th, t in zip(THS, small["ops"]):
        ev.add_operating_point(t, info={"threshold": th})
    ops = ev.operating_points
    for i, c in enumerate(H.CLASSES):
        efpr = [fpr[i] + 0.5 * np.nanmean(ctr[i]) for fpr, ctr in zip(ops.fpr, ops.ctr)]
        assert roc[roc["class"] == c].efpr.tolist() == efpr
    H.write_score_folder(tmp_path / "scores", small["scores"], small["durations"])
    score(
        tmp_path / "scores", small["dir"] / "gt.tsv", scenarios="psds1", out_dir=tmp_path / "s", **_kw(small)
    )
    roc = pd.read_csv(tmp_path / "s" / "plots" / "psd_roc.csv", float_precision="round_trip")
    gt = {Path(f).stem: v for f, v in merge_connected(small["events"])[0].items()}
    dur = {Path(f).stem: d for f, d in small["durations"].items()}
    rocs = intersection_based.psds(
        scores=str(tmp_path / "scores"),
        ground_truth=gt,
        audio_durations=dur,
        **SCENARIOS["psds1"].sed_scores_kwargs(),
    )[3]
    for c, (tpr, efpr, th) in rocs.items():
        got = roc[(roc.library == "sed_scores_eval") & (roc["class"] == c)]
        assert (
            got.tpr.tolist() == list(tpr)
            and got.efpr.tolist() == list(efpr)
            and got.threshold.tolist() == list(th)
        )


@pytest.mark.parametrize(
    "body, msg",
    [
        (
            "a\tb\tc\td\nclip0000.wav\t1\t2\tCat\n",
            "det.tsv:1: header 'a<TAB>b<TAB>c<TAB>d' names no filename, onset, offset, event_label column",
        ),
        (
            "clip0000.wav\t1\t2\tCat\t7\n",
            "det.tsv:1: 5 columns, expected 4 (filename, onset, offset, event_label; "
            "other layouts need a header)",
        ),
        (
            "label,event_label,onset,offset,filename\nCat,Cat,1,2,clip0000.wav\n",
            "det.tsv:1: columns 'label' and 'event_label' both name event_label",
        ),
        ("file,start,end,label\nclip0000.wav,1,2\n", "det.tsv:2: 3 columns, expected 4 (as the header)"),
        ("start,end,label,file\nx,2,Cat,clip0000.wav\n", "det.tsv:2: onset 'x' is not a non-negative number"),
    ],
)
def test_layout_errors_are_one_line(small, tmp_path, capsys, body, msg):
    (tmp_path / "det.tsv").write_text(body)
    assert msg in _err(capsys, ["score", str(tmp_path / "det.tsv"), "--truth", str(small["dir"] / "gt.tsv")])


# ---------------------------------------------------------------------------- thresholds
def test_operating_point_thresholds_from_names_or_list(small, tmp_path, capsys):
    gt, kw = small["dir"] / "gt.tsv", _kw(small)
    named, plain = tmp_path / "named", tmp_path / "plain"
    named.mkdir()
    plain.mkdir()
    for th, name, t in zip(THS, "abc", small["ops"]):
        H.write_layout(named / f"predictions_th_{th:.2f}.tsv", t, "desed")
        H.write_layout(plain / f"{name}.tsv", t, "desed")
    ref = score(named, gt, scenarios="psds1", **kw)
    assert ref["systems"][0]["figures"]["psds1"] > 0
    err = _err(capsys, ["score", str(plain), "--truth", str(gt)])
    assert (
        "plain: 3 file(s) without a threshold in the name (a.tsv, b.tsv, c.tsv)" in err
        and "--thresholds" in err
    )
    got = score(plain, gt, scenarios="psds1", thresholds=list(THS), **kw)
    assert got["systems"][0]["figures"] == ref["systems"][0]["figures"]
    assert "2 threshold(s) given for 3 file(s)" in _err(
        capsys, ["score", str(plain), "--truth", str(gt), "--thresholds", "0.3,0.5"]
    )
    assert "threshold 0.3 in 2 files (a.tsv, b.tsv)" in _err(
        capsys, ["score", str(plain), "--truth", str(gt), "--thresholds", "0.3,0.3,0.5"]
    )
    (named / "best.tsv").write_text((named / "predictions_th_0.50.tsv").read_text())
    (named / "predictions_th_0.5.tsv").write_text((named / "predictions_th_0.50.tsv").read_text())
    err = _err(capsys, ["score", str(named), "--truth", str(gt)])
    assert "1 file(s) without a threshold in the name (best.tsv); threshold 0.5 in 2 files" in err
    assert "expected comma-separated numbers" in _err(
        capsys, ["score", str(plain), "--truth", str(gt), "--thresholds", "a,b"]
    )


# ---------------------------------------------------------------------------- settings
def test_settings_reach_sed_eval_and_evaluated_length(small, tmp_path):
    det = small["det"]
    det = det[~((det.filename == "clip0000.wav") & (det.event_label == "Dog"))]
    late = pd.DataFrame([["clip0000.wav", 5.5, 9.5, "Dog"]], columns=det.columns)  # the clip lasts 7 s
    det = pd.concat([det, late], ignore_index=True)
    H.write_detections(tmp_path / "det.tsv", det)
    det = pd.read_csv(tmp_path / "det.tsv", sep="\t")
    gt, ev, du = small["dir"] / "gt.tsv", small["events"], small["durations"]
    runs = {}
    for name, opts, direct in (
        ("default", {}, {}),
        ("last", {"evaluated_length": "last-offset"}, {"lengths": "last"}),
        (
            "other",
            {"collar": 0.5, "collar_percentage": 0.1, "segment_length": 0.5},
            {"collar": 0.5, "pct": 0.1, "seg": 0.5},
        ),
    ):
        out = score(tmp_path / "det.tsv", gt, **_kw(small), **opts)
        f = runs[name] = out["systems"][0]["figures"]
        for k, v in direct_sed_eval(ev, det, du, **direct).items():
            assert f[k] == v, (name, k)
        assert out["settings"]["evaluated_length"] == opts.get("evaluated_length", "durations")
    assert runs["last"]["segment_f1_micro"] != runs["default"]["segment_f1_micro"]
    assert runs["other"]["event_f1_macro"] != runs["default"]["event_f1_macro"]
    assert runs["other"]["segment_f1_macro"] != runs["default"]["segment_f1_macro"]
    text = score(tmp_path / "det.tsv", gt, evaluated_length="last-offset", **_kw(small))["systems"][0][
        "lines"
    ]
    assert "the last event's offset per clip (sed_eval's default)" in text["segment_f1_macro"]
    assert "(S " in text["event_error_rate"] and "precision" in text["event_f1_micro"]


def test_collar_settings_reach_sed_scores_eval(small, tmp_path):
    from sed_scores_eval import collar_based

    H.write_score_folder(tmp_path / "scores", small["scores"], small["durations"])
    out = score(
        tmp_path / "scores",
        small["dir"] / "gt.tsv",
        scenarios="psds1",
        collar=0.5,
        collar_percentage=0.1,
        **_kw(small),
    )
    gt = {Path(f).stem: v for f, v in small["events"].items()}
    best = collar_based.best_fscore(
        scores=str(tmp_path / "scores"),
        ground_truth=gt,
        onset_collar=0.5,
        offset_collar=0.5,
        offset_collar_rate=0.1,
    )[0]
    assert out["systems"][0]["figures"]["collar_f1_best_macro"] == best["macro_average"]


def test_bad_settings(small, capsys):
    args = ["score", str(small["dir"] / "det.tsv"), "--truth", str(small["dir"] / "gt.tsv")]
    assert "--segment-length must be > 0" in _err(capsys, [*args, "--segment-length", "0"])
    assert "--collar-percentage is a fraction" in _err(capsys, [*args, "--collar-percentage", "20"])
    assert "different criteria" in _err(capsys, [*args, "--psds-f", "psds1,psds2"])


def test_psds_f_has_its_own_criteria(small):
    gt, det, kw = small["dir"] / "gt.tsv", small["dir"] / "det.tsv", _kw(small)
    plain = score(det, gt, **kw)["systems"][0]["figures"]["psds_f_score"]
    written = score(det, gt, scenarios="psds1,psds2", **kw)["systems"][0]["figures"]["psds_f_score"]
    direct = psds_eval_for(small["events"], small["durations"]).compute_macro_f_score(small["det"])[0]
    assert plain == written == direct
    strict = score(det, gt, psds_f="dtc=0.7,gtc=0.7", **kw)
    direct7 = psds_eval_for(small["events"], small["durations"], 0.7, 0.7).compute_macro_f_score(
        small["det"]
    )[0]
    assert strict["systems"][0]["figures"]["psds_f_score"] == direct7 != direct
    assert "dtc 0.7 gtc 0.7" in strict["systems"][0]["lines"]["psds_f_score"]
    assert strict["psds_f_scenario"]["dtc_threshold"] == 0.7
    assert score(det, gt, psds_f="psds1", **kw)["systems"][0]["figures"]["psds_f_score"] == direct7


# ---------------------------------------------------------------------- class sets, empty input, intervals
def test_class_sets_name_what_each_average_covers(small, tmp_path, capsys):
    gt = small["dir"] / "gt.tsv"
    det = small["det"][small["det"].event_label != "Speech"]
    H.write_detections(tmp_path / "det.tsv", det)
    rc = main(
        [
            "score",
            str(tmp_path / "det.tsv"),
            "--truth",
            str(gt),
            "--durations",
            str(small["dir"] / "dur.tsv"),
            "--format",
            "json",
        ]
    )
    assert rc == 0
    r = json.loads(capsys.readouterr().out)["systems"][0]
    sets = r["class_sets"]
    assert sets["ground_truth"] == list(H.CLASSES) and sets["system"] == ["Cat", "Dog"]
    assert sets["averages"]["event_f1_macro"] == sets["averages"]["segment_f1_macro"] == list(H.CLASSES)
    assert sets["averages"]["psds_f_score"] == ["Cat", "Dog"]
    direct = direct_sed_eval(small["events"], det, small["durations"])
    assert r["figures"]["event_f1_macro"] == direct["event_f1_macro"]  # Speech counts, with F = 0
    assert (
        r["figures"]["psds_f_score"]
        == psds_eval_for(small["events"], small["durations"]).compute_macro_f_score(det)[0]
    )
    notes = " | ".join(r["notes"])
    assert "never output: Speech" in notes and "psds_f_score over 2 class(es) (left out: Speech)" in notes
    rc = main(["score", str(tmp_path / "det.tsv"), "--truth", str(gt)])
    assert (
        rc == 0
        and "note: classes: the ground truth has events of 3, the system outputs 2" in capsys.readouterr().out
    )
    full = score(small["dir"] / "det.tsv", gt, **_kw(small))["systems"][0]
    assert not any(n.startswith(("classes:", "averages:")) for n in full["notes"])


def test_empty_input_is_an_error_unless_allowed(small, tmp_path, capsys):
    gt = str(small["dir"] / "gt.tsv")
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "header.csv").write_text(",event_label,onset,offset,filename\n")
    (tmp_path / "absent.tsv").write_text("nope.wav\t1\t2\tCat\n")
    assert "empty.tsv: no detection (the file holds no row)" in _err(
        capsys, ["score", str(tmp_path / "empty.tsv"), "--truth", gt]
    )
    assert "header.csv: no detection (the file holds no row)" in _err(
        capsys, ["score", str(tmp_path / "header.csv"), "--truth", gt]
    )
    err = _err(capsys, ["score", str(tmp_path / "absent.tsv"), "--truth", gt, "--on-missing", "drop"])
    assert (
        "no detection left: all 1 row(s) are of clips absent from the ground truth" in err
        and "--allow-empty" in err
    )
    (tmp_path / "ops").mkdir()
    for th in THS:
        (tmp_path / "ops" / f"predictions_th_{th}.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    assert "no detection in any of the 3 operating-point files" in _err(
        capsys, ["score", str(tmp_path / "ops"), "--truth", gt]
    )
    assert main(["score", str(tmp_path / "empty.tsv"), "--truth", gt, "--allow-empty"]) == 0
    assert "no detection (every figure from it scores 0)" in capsys.readouterr().out


def test_intervals_for_micro_figures_and_error_rates(small):
    out = score(small["dir"] / "det.tsv", small["dir"] / "gt.tsv", bootstrap_n=20, **_kw(small))
    r = out["systems"][0]
    for k in (
        "event_f1_micro",
        "segment_f1_micro",
        "event_error_rate",
        "segment_error_rate",
        "event_f1_macro",
    ):
        lo, hi = r["ci95"][k]
        assert lo <= r["figures"][k] <= hi and lo < hi, k
    lines = text_report(out)
    assert any(line.strip().startswith("event-based error rate") and "[95 % CI" in line for line in lines)
    assert any(line.strip().startswith("segment-based F1 micro") and "[95 % CI" in line for line in lines)


# ---------------------------------------------------------------------------- README
def readme_commands() -> list[str]:
    """The ``sedx score`` commands of README's "Score your system" section, as written."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### Score your system", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("sedx score")]


def test_readme_score_your_system_runs_as_written(small, tmp_path, monkeypatch, capsys):
    cmds = readme_commands()
    assert len(cmds) == 3 and any("--bootstrap" in c for c in cmds)
    monkeypatch.chdir(tmp_path)
    H.write_truth(tmp_path / "validation.tsv", small["events"])
    H.write_durations(tmp_path / "validation_durations.tsv", small["durations"])
    H.write_layout(tmp_path / "my_detections.tsv", small["det"], "dcase2020_ops")
    H.write_layout(tmp_path / "other_detections.csv", small["ops"][0], "desed_task_csv")
    (tmp_path / "my_operating_points").mkdir()
    for th, t in zip(THS, small["ops"]):
        H.write_layout(tmp_path / "my_operating_points" / f"predictions_th_{th:.2f}.tsv", t, "dcase2020_ops")
    for cmd in cmds:
        args = shlex.split(cmd.split("#")[0])
        assert main(args[1:]) == 0, cmd
        out = capsys.readouterr().out
        assert "system:" in out, cmd
    assert (tmp_path / "report" / "plots" / "psd_roc.csv").is_file()
    assert "A - B (paired bootstrap" in out


def test_byte_order_mark_and_header_case(small, tmp_path):
    gt, kw = small["dir"] / "gt.tsv", _kw(small)
    H.write_layout(tmp_path / "d.tsv", small["det"], "aliases")
    text = (tmp_path / "d.tsv").read_text().replace("file\tstart\tend\tlabel", "File\tStart\tEnd\tLabel", 1)
    (tmp_path / "d.tsv").write_text("\ufeff" + text)
    got = score(tmp_path / "d.tsv", gt, **kw)["systems"][0]["figures"]
    assert got == score(small["dir"] / "det.tsv", gt, **kw)["systems"][0]["figures"]

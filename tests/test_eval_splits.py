"""Issue 10 parts 1, 4 and 5: tuning never reads the reported split; sed.eval reports validation and
public_eval with the fitted and Table 1 post-processing, line by line; the tuned postproc.yaml is the
default downstream (sed.eval, sed detect) and postproc=paper overrides it; zeros are explained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS
from sed.core.predictions import Predictions
from sed.eval import run as eval_run
from sed.evaluation.report import add_alpha_st0, zero_explanations
from sed.postproc import PostprocParams
from sed.tune import run as tune_run
from tests.test_eval import make_set, write_gt

ROOT = Path(__file__).resolve().parent.parent
SMALL_GRID = [
    "grid.thresholds=[0.3,0.5,0.8]",
    "grid.first_windows=[1,5]",
    "grid.second_windows=[1,9]",
    "grid.tagging_thresholds=[null,0.5]",
    "workers=1",
]


def compose_cfg(name, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        # the postproc choice is known
        return compose(name, overrides=list(overrides), return_hydra_config=True)


@pytest.fixture()
def dataset(tmp_path):
    """A DESED-layout folder with validation and public_eval truth, and predictions of each split."""
    root = tmp_path / "data"
    pv, gv = make_set(n=10, seed=1)
    pe, ge = make_set(n=10, seed=2)
    pe = Predictions([f"e{f}" for f in pe.filenames], pe.frame_probs, pe.clip_probs, CLASSES)
    ge = {f"e{f}": v for f, v in ge.items()}
    (root / "metadata" / "validation").mkdir(parents=True)
    (root / "metadata" / "eval").mkdir(parents=True)
    write_gt(root / "metadata" / "validation" / "validation.tsv", gv)
    write_gt(root / "metadata" / "eval" / "public.tsv", ge)
    pv.save(tmp_path / "run" / "predictions.npz")
    pe.save(tmp_path / "pe.npz")
    return root, tmp_path / "run" / "predictions.npz", tmp_path / "pe.npz", ge


def test_tuning_never_reads_the_reported_split(dataset, tmp_path):
    root, pv, _pe, ge = dataset
    cfg = compose_cfg("tune", f"data.root={root}", f"predictions={pv}", *SMALL_GRID)
    first = tune_run(cfg, tmp_path / "t1")["postproc"]
    # another public-eval truth (events moved and relabelled), then one that cannot even be parsed
    moved = {f: [(on + 1.0, off + 1.0, CLASSES[(CLASSES.index(lab) + 1) % 10]) for on, off, lab in v]
             for f, v in ge.items()}
    write_gt(root / "metadata" / "eval" / "public.tsv", moved)
    assert tune_run(cfg, tmp_path / "t2")["postproc"] == first
    (root / "metadata" / "eval" / "public.tsv").write_text("not\ta\tstrong\ttsv\nat all\n")
    assert tune_run(cfg, tmp_path / "t3")["postproc"] == first
    assert first["tuned_on"] == "validation"
    # the run folder (the predictions' folder) holds the tuned file with its header
    text = (pv.parent / "postproc.yaml").read_text()
    assert text.startswith("# post-processing fitted by sed.tune on split validation")
    assert "# grid: thresholds [0.3, 0.5, 0.8]" in text and "tune-split macro event f1" in text
    assert PostprocParams.from_cfg(OmegaConf.load(pv.parent / "postproc.yaml")).to_dict() == first


def test_eval_reports_both_splits_fitted_and_table1_line_by_line(dataset, tmp_path):
    root, pv, pe, _ = dataset
    tune_run(compose_cfg("tune", f"data.root={root}", f"predictions={pv}", *SMALL_GRID), tmp_path / "t")
    cfg = compose_cfg("eval", f"data.root={root}", f"predictions={pv}", f"+also_predictions.public_eval={pe}",
                      "psds=false", "segment=false", "report.logmel=false", "report.n_timelines=1")
    m = eval_run(cfg, tmp_path / "e")
    assert m["run"]["postproc_source"] == str(pv.parent / "postproc.yaml")  # the tuned file, by default
    assert m["run"]["postproc"]["tuned_on"] == "validation"
    rows = {(r["split"], r["postproc"]): r for r in m["splits"]}
    assert set(rows) == {("validation", "fitted"), ("validation", "Table 1"), ("public_eval", "fitted"),
                         ("public_eval", "Table 1")}
    assert rows[("validation", "fitted")]["line"].endswith(
        "[tuning split: optimistic (the post-processing was fitted on it)]"
    )
    assert "(tuned on validation)" in rows[("public_eval", "fitted")]["line"]
    assert rows[("public_eval", "fitted")]["line"].endswith("[reported split (never used for tuning)]")
    assert rows[("public_eval", "Table 1")]["tuned_on"] is None
    # the fitted validation figure is the main run's; the others equal a direct evaluation
    assert rows[("validation", "fitted")]["event_f1_macro"] == m["event_f1_macro"]
    from sed.datamodules.tsv import read_strong_tsv
    from sed.evaluation import metrics as M

    paper = PostprocParams.from_cfg(OmegaConf.load(ROOT / "conf" / "postproc" / "paper.yaml"))
    direct = M.evaluate(Predictions.load(pe), read_strong_tsv(root / "metadata" / "eval" / "public.tsv"),
                        paper, psds=False, segment=False)
    assert rows[("public_eval", "Table 1")]["event_f1_macro"] == pytest.approx(
        direct.metrics["event_f1_macro"]
    )
    report = (tmp_path / "e" / "report.md").read_text()
    assert "## Splits" in report and report.count("- validation, post-processing") == 2
    assert report.count("- public_eval, post-processing") == 2
    # postproc=paper overrides the tuned file: Table 1, said so
    m2 = eval_run(compose_cfg("eval", f"data.root={root}", f"predictions={pv}", "postproc=paper",
                              "psds=false", "segment=false", "report.enabled=false", "also_splits=[]"),
                  tmp_path / "e2")
    assert (m2["run"]["postproc"]["tuned_on"] is None
            and m2["run"]["postproc_source"] == "conf/postproc/paper.yaml")
    assert "splits" not in m2
    # postproc_file= wins
    m3 = eval_run(compose_cfg("eval", f"data.root={root}", f"predictions={pv}",
                              f"postproc_file={tmp_path / 't' / 'postproc.yaml'}",
                              "psds=false", "segment=false", "report.enabled=false", "also_splits=[]"),
                  tmp_path / "e3")
    assert m3["run"]["postproc_source"] == str(tmp_path / "t" / "postproc.yaml")


def test_a_dataset_without_public_eval_still_works_and_says_it_is_missing(dataset, tmp_path):
    root, pv, _pe, _ = dataset
    shutil.rmtree(root / "metadata" / "eval")
    cfg = compose_cfg("eval", f"data.root={root}", f"predictions={pv}", "psds=false", "segment=false",
                      "report.logmel=false", "report.n_timelines=0", "use_tuned=false", "compare_table1=true")
    # Table 1 only (no tuned file used): one row per split
    m = eval_run(cfg, tmp_path / "e")
    miss = [r for r in m["splits"] if r["split"] == "public_eval"]
    assert len(miss) == 1 and miss[0]["missing"].endswith("metadata/eval/public.tsv not found")
    assert miss[0]["line"].startswith("public_eval: missing (")
    assert "public_eval: missing" in (tmp_path / "e" / "report.md").read_text()
    assert m["event_f1_macro"] is not None


def test_eval_and_tune_from_a_checkpoint_on_both_splits(tiny_desed, tmp_path):
    """End to end with a model on a copy of the tiny dataset (with its generated eval/public);
    sed.tune ckpt=<run> writes <run>/postproc.yaml; sed.eval ckpt=<run> uses it and scores both splits."""
    from tests.detect_helpers import make_untrained_checkpoint

    root = tmp_path / "data"
    shutil.copytree(tiny_desed, root)
    assert (root / "metadata" / "eval" / "public.tsv").is_file()  # the generator writes eval/public
    run = tmp_path / "train" / "run1"
    make_untrained_checkpoint(run / "checkpoints" / "best.ckpt")
    common = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "device=cpu"]
    s = tune_run(compose_cfg("tune", *common, f"ckpt={run}", *SMALL_GRID), tmp_path / "t")
    assert (run / "postproc.yaml").is_file() and str(run / "postproc.yaml") in s["written"]
    m = eval_run(compose_cfg("eval", *common, f"ckpt={run}", "psds=false", "segment=false",
                             "report.logmel=false", "report.n_timelines=1"), tmp_path / "e")
    assert m["run"]["postproc_source"] == str(run / "postproc.yaml")
    splits = {(r["split"], r["postproc"]) for r in m["splits"] if not r["missing"]}
    assert splits == {("validation", "fitted"), ("validation", "Table 1"), ("public_eval", "fitted"),
                      ("public_eval", "Table 1")}
    assert (tmp_path / "e" / "splits" / "public_eval_fitted" / "metrics.json").is_file()
    # sedx detect then reads the run's tuned file, per-class tagging table and all (issue 23: every file
    # failed)
    from sed import cli

    tuned = PostprocParams.from_cfg(OmegaConf.load(run / "postproc.yaml"))
    assert isinstance(tuned.tagging_threshold, dict)
    wavs = sorted((root / "audio" / "validation").rglob("*.wav"))[:2]
    out = tmp_path / "events.tsv"
    assert cli.main(["detect", *map(str, wavs), "--ckpt", str(run), "--out", str(out), "--quiet"]) == 0
    assert out.read_text().startswith("filename\tonset\toffset\tevent_label")


def test_detect_uses_the_tuned_file_of_the_checkpoint_run_and_paper_overrides(tmp_path):
    """sedx detect asks the one resolver (sed.postproc.files.choose_postproc) and says its answer."""
    import io

    from sed.detect.run import DetectOptions, _postproc_for
    from sed.postproc.files import write_postproc_file

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(b"")
    stored = PostprocParams(tagging_threshold=0.3).to_dict()

    class Model:
        path, postproc_cfg = ckpt, stored

    note = io.StringIO()
    got = _postproc_for(Model(), DetectOptions(), CLASSES, note)  # no tuned file yet: the checkpoint's own
    assert got == PostprocParams(tagging_threshold=0.3)
    assert note.getvalue() == (f"sedx detect: post-processing: {ckpt} (stored at training) "
                               "(the run's own: no tuned postproc.yaml for this run)\n")
    tuned = PostprocParams(tagging_threshold=dict.fromkeys(CLASSES, 0.2), tuned_on="validation")
    write_postproc_file(tuned, str(run / "postproc.yaml"), header="tuned")
    note = io.StringIO()
    assert _postproc_for(Model(), DetectOptions(), CLASSES, note) == tuned
    assert ("tuned for this run by sed.tune" in note.getvalue()
            and str(run / "postproc.yaml") in note.getvalue())
    assert _postproc_for(Model(), DetectOptions(postproc="paper"), CLASSES, None) == PostprocParams()


# ---------------------------------------------------------------------------- zeros explained (part 5)
def one_class_preds(frame_max: float, clip: float) -> Predictions:
    fp = np.zeros((3, 100, 10), np.float32)
    fp[:, 20:60, 0] = frame_max
    cp = np.full((3, 10), 0.9, np.float32)
    cp[:, 0] = clip
    return Predictions(["a.wav", "b.wav", "c.wav"], fp, cp, CLASSES)


def test_class_below_its_threshold_or_never_tagged_is_explained():
    params = PostprocParams()  # Alarm_bell_ringing: threshold 0.4, tagging 0.5
    per = {c: {"n_sys": 0, "n_ref": 1} for c in CLASSES}
    m = {"per_class": {c: dict(v, n_sys=5) if c != "Alarm_bell_ringing" else v for c, v in per.items()}}
    lines = zero_explanations(one_class_preds(0.35, 0.9), params, m)
    assert lines == [
        "Alarm_bell_ringing: no event possible: largest frame probability 0.350 in the 3 tagged clips (of 3) "
        "<= its frame threshold 0.4"
    ]
    lines = zero_explanations(one_class_preds(0.95, 0.45), params, m)
    assert lines == [
        "Alarm_bell_ringing: no event possible: no clip passes tagging (largest clip probability 0.450 "
        "<= tagging threshold 0.5 over 3 clips)"
    ]
    assert zero_explanations(one_class_preds(0.95, 0.9), params,
                             {"per_class": {c: {"n_sys": 1} for c in CLASSES}}) == []


def test_psds_zero_from_the_cross_class_penalty_and_psds_f_over_all_classes():
    m = {"per_class": {}, "psds_macro": 0.0, "psds": 0.213, "alpha_st0": {}}
    add_alpha_st0(m, None, {})
    assert m["alpha_st0"] == {"psds_macro": 0.213}
    assert zero_explanations(None, None, m) == [
        "PSDS macro (psds_eval) = 0 because of the cross-class penalty (alpha_st 1 subtracts the spread of "
        "the per-class TPRs): with alpha_st = 0 it is 0.213"
    ]
    m = {"psds1": 0.0, "alpha_st0": {"psds1": 0.0}, "per_class": {}}
    assert zero_explanations(None, None, m) == [
        "PSDS1 = 0 with alpha_st = 0 too: no detection meets its criteria"
    ]
    per = {"Cat": {"n_ref": 2, "psds_f": 0.6}, "Dog": {"n_ref": 3, "psds_f": None},
           "Speech": {"n_ref": 0, "psds_f": None}}
    assert zero_explanations(None, None, {"per_class": per, "psds_f_score": 0.6}) == [
        "PSDS F-score 60.0 % averages only the 1 of 2 classes with detections "
        "(psds_eval leaves the others out); over all 2 classes: 30.0 %"
    ]


def test_psds1_alpha_st0_recomputed_on_a_constructed_case():
    """Two classes with ground truth: Cat detected perfectly, Dog never. PSDS1 with alpha_st 1 subtracts the
    standard deviation of the two TPRs (1 and 0): 0.5 - 0.5 = 0 at every eFPR; with alpha_st 0 the mean TPR
    0.5 stays (the figure is then > 0); the report line gives it."""
    from sed.evaluation import metrics as M

    n, t, dt = 4, 640, FRAME_SECONDS
    fp = np.zeros((n, t, 10), np.float32)
    cp = np.full((n, 10), 0.9, np.float32)
    gt = {}
    cat = CLASSES.index("Cat")
    for i in range(n):
        fp[i, 100:300, cat] = 0.9
        gt[f"c{i}.wav"] = [(100 * dt, 300 * dt, "Cat"), (400 * dt, 500 * dt, "Dog")]
    preds = Predictions([f"c{i}.wav" for i in range(n)], fp, cp, CLASSES)
    params = PostprocParams(median_windows={c: (1, 1) for c in CLASSES})
    res = M.evaluate(preds, gt, params, psds=True, n_thresholds=5, segment=False)
    metrics = dict(res.metrics)
    assert metrics["psds1"] == 0.0
    add_alpha_st0(metrics, res, gt)
    assert metrics["alpha_st0"]["psds1"] > 0.3
    lines = zero_explanations(preds, params, metrics)
    assert any(x.startswith("PSDS1 = 0 because of the cross-class penalty") for x in lines)
    assert any(x.startswith("Dog: no event possible: largest frame probability 0.000") for x in lines)
    json.dumps(metrics)  # JSON-ready


def test_sed_tune_console_command_and_its_errors(dataset, tmp_path, capsys, monkeypatch):
    from sed import cli

    root, pv, _pe, _ = dataset
    monkeypatch.chdir(tmp_path)
    grid = [x for o in SMALL_GRID for x in ("--set", o)]
    code = cli.main(["tune", str(pv), "--set", f"data.root={root}", *grid,
                     "--name", str(tmp_path / "mine.yaml")])
    assert code == 0, capsys.readouterr().err
    assert (pv.parent / "postproc.yaml").is_file() and (tmp_path / "mine.yaml").is_file()
    assert list((tmp_path / "outputs" / "tune").glob("*/tune.json"))
    assert cli.main(["tune", str(tmp_path / "nope.npz"), "--set", f"data.root={root}"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")
    assert cli.main(["tune", str(pv), "--set", f"data.root={root}", "--set", "grid.thresholds=[2.0]"]) == 1
    assert "thresholds holds 2.0, not in [0, 1]" in capsys.readouterr().err
    assert cli.main(["tune", str(pv), "--set", "nonsense=1"]) == 2


def test_python_m_sed_tune_is_a_hydra_app(dataset, tmp_path):
    import subprocess
    import sys

    root, pv, _pe, _ = dataset
    out = subprocess.run(
        [sys.executable, "-m", "sed.tune", f"predictions={pv}", f"data.root={root}", *SMALL_GRID,
         f"hydra.run.dir={tmp_path / 'h'}", "objective=segment_f1"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    s = json.loads((tmp_path / "h" / "tune.json").read_text())
    assert s["objective"] == "segment_f1" and s["fitted"]["segment_f1_macro"] == pytest.approx(
        s["fitted"]["check_by_decoder"]
    )
    bad = subprocess.run([sys.executable, "-m", "sed.tune", f"predictions={tmp_path / 'nope.npz'}",
                          f"hydra.run.dir={tmp_path / 'h2'}"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: ")


def test_ensemble_uses_the_fit_of_its_averaged_predictions_not_a_members(dataset, tmp_path):
    from sed.core.predictions import average

    root, pv, _pe, _ = dataset
    tune_run(compose_cfg("tune", f"data.root={root}", f"predictions={pv}", *SMALL_GRID), tmp_path / "t")
    other = Predictions.load(pv)
    other = Predictions(other.filenames, np.clip(other.frame_probs + 0.1, 0, 1), other.clip_probs, CLASSES)
    other.save(tmp_path / "m2" / "predictions.npz")
    quiet = ["psds=false", "segment=false", "report.enabled=false", "also_splits=[]", "compare_table1=false"]
    m = eval_run(compose_cfg("eval", f"data.root={root}",
                             f"predictions=[{pv},{tmp_path / 'm2' / 'predictions.npz'}]", *quiet),
                 tmp_path / "e")
    assert m["run"]["postproc"]["tuned_on"] is None and "no tuned postproc.yaml" in m["run"]["postproc_why"]
    # the ensemble's averaged predictions, tuned in their own folder, then evaluated: its fit is used
    avg = average([Predictions.load(pv), other]).save(tmp_path / "ens" / "predictions.npz")
    tune_run(compose_cfg("tune", f"data.root={root}", f"predictions={avg}", *SMALL_GRID), tmp_path / "t2")
    m2 = eval_run(compose_cfg("eval", f"data.root={root}", f"predictions={avg}", *quiet), tmp_path / "e2")
    assert m2["run"]["postproc_source"] == str(tmp_path / "ens" / "postproc.yaml")

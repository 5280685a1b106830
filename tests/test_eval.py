"""The evaluation app (``python -m sed.eval``) on saved predictions: outputs, ensembles, sweeps, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS
from sed.core.errors import ConfigError
from sed.core.predictions import Predictions, PredictionsError, average
from sed.eval import run
from sed.evaluation import metrics as M
from sed.evaluation.sweeps import summarize_sweep
from sed.postproc import PostprocParams, decode
from tests.score_helpers import truth_probs

ROOT = Path(__file__).resolve().parent.parent


def write_gt(path: Path, gt: dict) -> Path:
    with open(path, "w") as f:
        f.write("filename\tonset\toffset\tevent_label\n")
        for k, evs in gt.items():
            if not evs:
                f.write(f"{k}\t\t\t\n")
            for on, off, lab in evs:
                f.write(f"{k}\t{on}\t{off}\t{lab}\n")
    return path


def make_set(n=8, seed=0):
    """Noisy probabilities around hand-placed events, and their ground truth."""
    rng = np.random.default_rng(seed)
    names = [f"v{i:02d}.wav" for i in range(n)]
    frame = (rng.random((n, 640, 10)) * 0.15).astype(np.float32)
    clip = (rng.random((n, 10)) * 0.3).astype(np.float32)
    gt = {}
    for i, f in enumerate(names):
        gt[f] = []
        if i == n - 1:
            continue  # a clip without event
        for _ in range(2):
            k = int(rng.integers(10))
            s = int(rng.integers(0, 500))
            e = s + int(rng.integers(30, 140))
            if any(lab == CLASSES[k] for _, _, lab in gt[f]):
                continue
            frame[i, s:e, k] = rng.uniform(0.7, 0.95)
            clip[i, k] = 0.9
            gt[f].append((round(s * FRAME_SECONDS, 3), round(e * FRAME_SECONDS, 3), CLASSES[k]))
    return Predictions(names, frame, clip, CLASSES), gt


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    preds, gt = make_set()
    preds.save(d / "p.npz")
    # a second "model": the same clips, other noise, shuffled order
    p2, _ = make_set(seed=0)
    p2 = Predictions(p2.filenames[::-1], np.clip(p2.frame_probs[::-1] + 0.05, 0, 1), p2.clip_probs[::-1],
                     CLASSES)
    p2.save(d / "p2.npz")
    write_gt(d / "gt.tsv", gt)
    return d, preds, gt


def cfg_for(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("eval", overrides=list(overrides))


# ---------------------------------------------------------------------------- one run
def test_eval_writes_everything(files, tmp_path):
    d, preds, gt = files
    out = tmp_path / "run"
    cfg = cfg_for(
        f"predictions={d / 'p.npz'}",
        f"ground_truth={d / 'gt.tsv'}",
        "n_thresholds=3",
        "save_scores_tsv=true",
        f"write_postproc={tmp_path / 'tuned.yaml'}",
        "report.n_timelines=2",
    )
    m = run(cfg, out)
    for k in M.METRIC_KEYS:
        assert isinstance(m[k], float), k
    assert set(m["per_class"]) == set(CLASSES)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["event_f1_macro"] == m["event_f1_macro"] and saved["run"]["split"] == "validation"
    # detections.tsv: DCASE format, the decoder's events
    det = pd.read_csv(out / "detections.tsv", sep="\t")
    assert list(det.columns) == ["filename", "onset", "offset", "event_label"]
    expect = decode(preds, PostprocParams())
    assert len(det) == len(expect) > 0
    assert np.allclose(det[["onset", "offset"]].to_numpy(), expect[["onset", "offset"]].to_numpy())
    # the same figures as calling the metrics on the same inputs
    direct = M.evaluate(preds, gt, PostprocParams(), psds=True, n_thresholds=3).metrics
    for k in M.METRIC_KEYS:
        assert m[k] == pytest.approx(direct[k], abs=1e-12), k
    # report and plots
    report = (out / "report.md").read_text()
    assert "reported split: **validation**" in report and "psds_eval, 3 thresholds" in report
    assert "Table 1" in report
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert "per_class_f1.png" in plots and "psd_roc.png" in plots
    assert sum(p.startswith("timeline_") for p in plots) == 2
    # per-clip score TSVs in sed_scores_eval's format
    assert len(list((out / "scores").glob("*.tsv"))) == len(preds)
    s = pd.read_csv(out / "scores" / "v00.tsv", sep="\t")
    assert list(s.columns) == ["onset", "offset", *CLASSES]
    # no predictions.npz for a single predictions file (it exists already)
    assert not (out / "predictions.npz").exists()
    # the written post-processing reads back, tuned_on recorded
    tuned = PostprocParams.from_cfg(OmegaConf.load(tmp_path / "tuned.yaml"))
    assert tuned.tuned_on == "validation" and tuned.frame_thresholds == PostprocParams().frame_thresholds


def test_ensemble_averages_probabilities(files, tmp_path):
    d, preds, gt = files
    out = tmp_path / "ens"
    cfg = cfg_for(
        f"predictions=[{d / 'p.npz'},{d / 'p2.npz'}]",
        f"ground_truth={d / 'gt.tsv'}",
        "psds=false",
        "report.enabled=false",
    )
    m = run(cfg, out)
    avg = average([Predictions.load(d / "p.npz"), Predictions.load(d / "p2.npz")])
    saved = Predictions.load(out / "predictions.npz")
    assert saved.filenames == preds.filenames
    assert np.allclose(
        saved.frame_probs, (preds.frame_probs + np.clip(preds.frame_probs + 0.05, 0, 1)) / 2, atol=1e-6
    )
    assert m["event_f1_macro"] == M.evaluate(avg, gt, PostprocParams(), psds=False).metrics["event_f1_macro"]
    assert m["psds"] is None


def test_global_threshold_and_tune_split_kept_apart(files, tmp_path):
    d, _, _ = files
    cfg = cfg_for(
        f"predictions={d / 'p.npz'}",
        f"ground_truth={d / 'gt.tsv'}",
        "psds=false",
        "global_threshold=0.25",
        "tune_split=weak",
        f"tune_predictions={d / 'p2.npz'}",
        f"tune_ground_truth={d / 'gt.tsv'}",
        "postproc.tuned_on=validation",
    )
    m = run(cfg, tmp_path / "t")
    assert set(m["run"]["postproc"]["frame_thresholds"].values()) == {0.25}
    assert m["tune"]["split"] == "weak" and m["run"]["split"] == "validation"
    assert isinstance(m["tune"]["event_f1_macro"], float)
    report = (tmp_path / "t" / "report.md").read_text()
    assert "ranked on split **weak**" in report and "reported split: **validation**" in report
    # a setting tuned on the reported split is flagged
    assert "tuned on split **validation**" in report and "**warning**" in report


def test_checkpoint_path_calls_predict_split(files, tmp_path, monkeypatch):
    import sed.inference.inputs as inference

    d, preds, _ = files
    calls = []

    def fake_predict_split(ckpt, data_cfg, split="validation", **kw):
        calls.append((ckpt, split))
        return preds

    monkeypatch.setattr(inference, "predict_split", fake_predict_split)
    # also_splits=[]: only the asked split (a generated data/mini-desed in the checkout has a public_eval)
    cfg = cfg_for("ckpt=some/run", f"ground_truth={d / 'gt.tsv'}", "psds=false", "report.enabled=false",
                  "also_splits=[]")
    run(cfg, tmp_path / "c")
    assert calls == [("some/run", "validation")]
    # no predictions and no ckpt: the latest training run under train_runs
    for name in ("2026-01-01", "2026-01-02"):
        (tmp_path / "train" / "exp" / name / "checkpoints").mkdir(parents=True)
        (tmp_path / "train" / "exp" / name / "checkpoints" / "best.ckpt").write_bytes(b"")
    run(
        cfg_for(
            f"ground_truth={d / 'gt.tsv'}",
            "psds=false",
            "report.enabled=false",
            "also_splits=[]",
            f"train_runs={tmp_path / 'train'}",
        ),
        tmp_path / "c2",
    )
    assert calls[-1] == (str(tmp_path / "train" / "exp" / "2026-01-02"), "validation")
    assert Predictions.load(tmp_path / "c" / "predictions.npz").filenames == preds.filenames


# ---------------------------------------------------------------------------- sweeps
def test_multirun_sweep_summary_and_tuned_file(files, tmp_path):
    d, _, _ = files
    sweep = tmp_path / "sweep"
    tuned = tmp_path / "best.yaml"
    cmd = [
        sys.executable,
        "-m",
        "sed.eval",
        "-m",
        f"predictions={d / 'p.npz'}",
        f"ground_truth={d / 'gt.tsv'}",
        "global_threshold=0.2,0.5,0.97",
        f"hydra.sweep.dir={sweep}",
        f"write_postproc={tuned}",
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    points = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert points == ["0", "1", "2"]
    text = (sweep / "summary.md").read_text()
    assert "global_threshold=0.97" in text and "same split" in text
    summary = json.loads((sweep / "summary.json").read_text())
    f1 = [json.loads((sweep / p / "metrics.json").read_text())["event_f1_macro"] for p in points]
    assert summary["best_point"] == str(int(np.argmax(f1)))
    # sweep points skip the slow figures
    m0 = json.loads((sweep / "0" / "metrics.json").read_text())
    assert m0["psds"] is None and m0["f1_engine"] == "fast"
    best = PostprocParams.from_cfg(OmegaConf.load(tuned))
    assert best.tuned_on == "validation"
    assert set(best.frame_thresholds.values()) == {[0.2, 0.5, 0.97][int(np.argmax(f1))]}
    # summarize_sweep again (e.g. after adding points) gives the same choice
    assert summarize_sweep(sweep)["best_point"] == summary["best_point"]


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs(files, tmp_path):
    d, preds, gt = files
    base = [f"ground_truth={d / 'gt.tsv'}", "psds=false", "report.enabled=false"]
    # class list that does not match
    bad = Predictions(preds.filenames, preds.frame_probs, preds.clip_probs, tuple(reversed(CLASSES)))
    bad.save(tmp_path / "classes.npz")
    with pytest.raises(PredictionsError, match="class list"):
        run(cfg_for(f"predictions={tmp_path / 'classes.npz'}", *base), tmp_path / "o1")
    # frame length that does not match
    Predictions(preds.filenames, preds.frame_probs, preds.clip_probs, CLASSES, frame_seconds=0.02).save(
        tmp_path / "dt.npz"
    )
    with pytest.raises(PredictionsError, match="frame length"):
        run(cfg_for(f"predictions={tmp_path / 'dt.npz'}", *base), tmp_path / "o2")
    # ground truth naming a clip without prediction
    write_gt(tmp_path / "gt_more.tsv", {**gt, "extra.wav": [(1.0, 2.0, "Dog")]})
    with pytest.raises(M.MetricsError, match="'extra.wav'"):
        run(
            cfg_for(f"predictions={d / 'p.npz'}", f"ground_truth={tmp_path / 'gt_more.tsv'}", "psds=false"),
            tmp_path / "o3",
        )
    # nothing to evaluate
    with pytest.raises(ConfigError, match="predictions="):
        run(cfg_for(*base, f"train_runs={tmp_path / 'none'}"), tmp_path / "o4")
    with pytest.raises(ConfigError, match="no training run"):
        run(cfg_for(*base, "ckpt=latest", f"train_runs={tmp_path / 'none'}"), tmp_path / "o4")
    # a tuning split without its predictions
    with pytest.raises(ConfigError, match="tune_predictions"):
        run(cfg_for(f"predictions={d / 'p.npz'}", *base, "tune_split=weak"), tmp_path / "o7")
    # empty predictions
    Predictions([], np.zeros((0, 640, 10)), np.zeros((0, 10)), CLASSES).save(tmp_path / "empty.npz")
    with pytest.raises(M.MetricsError, match="empty"):
        run(cfg_for(f"predictions={tmp_path / 'empty.npz'}", *base), tmp_path / "o5")
    # the command line: one clear line and exit status 1, no traceback
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed.eval",
            f"predictions={tmp_path / 'dt.npz'}",
            *base,
            f"hydra.run.dir={tmp_path / 'o6'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "frame length" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- with a DESED-layout folder
def test_data_config_ground_truth_and_logmel(tiny_desed, tmp_path):
    from sed.datamodules.tsv import read_strong_tsv
    from sed.evaluation.report import clip_logmel

    gt = read_strong_tsv(tiny_desed / "metadata/validation/validation.tsv")
    names = list(gt)
    frame, clip = truth_probs(names, gt)
    Predictions(names, frame, clip, CLASSES).save(tmp_path / "p.npz")
    cfg = cfg_for(
        f"predictions={tmp_path / 'p.npz'}",
        f"data.root={tiny_desed}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "n_thresholds=3",
        "report.n_timelines=1",
    )
    m = run(cfg, tmp_path / "run")
    assert m["run"]["ground_truth"].endswith("validation.tsv")
    assert m["event_f1_macro"] > 0.8
    lm = clip_logmel(cfg.data, "validation", names[0])
    assert lm is not None and lm.shape == (640, 64)
    assert clip_logmel(cfg.data, "validation", "no_such_clip.wav") is None

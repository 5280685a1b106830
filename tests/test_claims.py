"""Issue 11 part 5: ``sed.claims`` -- the aggregation and claim rule on hand-made numbers, the claims section
of RESULTS.md, and the whole command end to end on a tiny generated dataset with 2 seeds (then resumed)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from sed.claims.aggregate import (
    FIGURES,
    aggregate,
    claim,
    claims_table,
    holdout_aggregate,
    holdout_claims,
    k_sd,
    mean_sd,
)
from sed.claims.cli import main, parse_args
from sed.claims.markdown import BEGIN, END, markers, replace_section
from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.errors import ConfigError
from sed.core.provenance import code_version, version_text


# ---------------------------------------------------------------------------- pure figures
def test_mean_sd_is_the_sample_sd():
    s = mean_sd([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.2)  # sqrt((0.04+0+0.04)/2)
    assert s["n"] == 3 and s["min"] == 0.5
    one = mean_sd([0.4, None])
    assert one["mean"] == 0.4 and one["sd"] is None and one["n"] == 1
    assert mean_sd([None])["mean"] is None


def test_k_sd_and_the_claim_rule_by_hand():
    a, b = {"mean": 50.0, "sd": 2.0}, {"mean": 40.0, "sd": 3.0}
    assert k_sd(a, b) == pytest.approx(10 / math.sqrt(6.5))  # 3.92
    assert k_sd(a, b) == pytest.approx(3.922, abs=1e-3)
    row = claim("A > B", "event_f1_fitted", a, b, 2.0)
    assert row["verdict"] == "holds" and row["difference"] == pytest.approx(10.0)
    # 44 vs 40, sd 2 and 3: k = 4 / 2.55 = 1.57 -> fails the 2-sd rule, holds the mean rule
    c = {"mean": 44.0, "sd": 2.0}
    assert claim("A > B", "psds", c, b, 2.0)["verdict"] == "fails"
    assert claim("A > B", "psds", c, b, None)["verdict"] == "holds"
    assert claim("A > B", "psds", b, c, None)["verdict"] == "fails"
    assert k_sd({"mean": 1.0, "sd": 0.0}, {"mean": 0.5, "sd": 0.0}) == math.inf
    assert claim("A > B", "psds", {"mean": 1.0, "sd": None}, b, 2.0)["verdict"].startswith("n/a")


def test_aggregate_and_claims_table_on_hand_made_numbers():
    def figs(f1, psds, cls_zero=None):
        pc = {c: (0.0 if c == cls_zero else 0.5) for c in CLASSES}
        return {"public_eval": {"event_f1_fitted": f1, "event_f1_table1": f1 / 2, "psds": psds, "psds1": 0.1,
                                "psds2": 0.2, "per_class_f1": pc}}

    per_seed = {
        "ps1": {0: figs(0.50, 0.60), 1: figs(0.52, 0.62), 2: figs(0.48, 0.58)},
        "ps2": {0: figs(0.45, 0.50), 1: figs(0.47, 0.70), 2: figs(0.49, 0.30)},
        "baseline": {0: figs(0.30, 0.40), 1: figs(0.32, 0.41), 2: figs(0.28, 0.39, cls_zero="Dog")},
        "ensemble": {0: figs(0.55, 0.65), 1: figs(0.53, 0.61), 2: figs(0.51, 0.63)},
    }
    agg = aggregate(per_seed)
    ps1 = agg["ps1"]["public_eval"]
    assert ps1["event_f1_fitted"]["mean"] == pytest.approx(0.50)
    assert ps1["event_f1_fitted"]["sd"] == pytest.approx(0.02)
    assert ps1["event_f1_table1"]["mean"] == pytest.approx(0.25)
    assert agg["baseline"]["public_eval"]["per_class_f1"]["Dog"]["min"] == 0.0
    table = claims_table(agg, "public_eval", ["ps1", "ps2", "baseline", "ensemble"])
    rows = {(r["claim"], r["figure"]): r for r in table}
    # PS1 vs baseline event F1: 0.50 +- 0.02 vs 0.30 +- 0.02 -> k = 10
    r = rows[("PS1 > baseline", "event_f1_fitted")]
    assert r["k_sd"] == pytest.approx(10.0) and r["verdict"] == "holds"
    # PS2 PSDS: 0.50 +- 0.2 vs 0.40 +- 0.01 -> k = 0.1 / sqrt((0.04 + 0.0001) / 2) = 0.706 -> fails
    r = rows[("PS2 > baseline", "psds")]
    assert r["k_sd"] == pytest.approx(0.1 / math.sqrt(0.0401 / 2)) and r["verdict"] == "fails"
    assert rows[("ensemble > PS1", "event_f1_fitted")]["verdict"] == "holds"  # 0.53 > 0.50
    assert rows[("ensemble > PS2", "psds")]["verdict"] == "holds"  # 0.63 > 0.50
    baseline_nonzero = ("Baseline (CRNN mean teacher): every class non-zero F1",
                        "per-class event F1 (fitted)")
    assert rows[baseline_nonzero]["verdict"] == "fails"
    assert "Dog" in rows[baseline_nonzero]["note"]
    assert rows[("PS1: every class non-zero F1", "per-class event F1 (fitted)")]["verdict"] == "holds"


def test_holdout_ap_aggregate_and_claims_on_hand_made_numbers():
    """Issue 20: per-class held-out frame AP over seeds; PS1/PS2 vs the baseline on Speech, Dog and Dishes."""
    def rec(system, seed, speech, dog):
        return {"system": system, "seed": seed,
                "holdout_ap": {"Speech": speech, "Dog": dog, "Dishes": 0.3, "Frying": 0.9}}

    trainings = {"ps1/seed0": rec("ps1", 0, 0.40, 0.10), "ps1/seed1": rec("ps1", 1, 0.50, 0.20),
                 "baseline/seed0": rec("baseline", 0, 0.30, 0.25),
                 "baseline/seed1": rec("baseline", 1, 0.40, 0.15),
                 "ps2/seed0": None, "ps2/seed1": {"system": "ps2", "seed": 1, "holdout_ap": None}}
    hagg = holdout_aggregate(trainings)
    assert sorted(hagg) == ["baseline", "ps1"]  # PS2 has no figure: left out
    assert hagg["ps1"]["Speech"]["mean"] == pytest.approx(0.45)
    assert hagg["ps1"]["Speech"]["sd"] == pytest.approx(math.sqrt(0.005))  # (0.05^2 * 2) / 1
    rows = {r["figure"]: r for r in holdout_claims(hagg)}
    assert sorted(rows) == [f"held-out frame AP, {c}" for c in ("Dishes", "Dog", "Speech")]
    assert rows["held-out frame AP, Speech"]["verdict"] == "holds"  # 0.45 vs 0.35
    assert rows["held-out frame AP, Dog"]["difference"] == pytest.approx(-0.05)  # 0.15 vs 0.20
    assert rows["held-out frame AP, Dog"]["verdict"] == "fails"
    assert rows["held-out frame AP, Dishes"]["verdict"] == "holds"  # equal means: not lower
    # a label set without Speech, Dog or Dishes: every class
    other = {u: {"Chime": {"mean": 0.5, "sd": 0.1}, "Hum": {"mean": m, "sd": 0.1}}
             for u, m in (("ps2", 0.2), ("baseline", 0.3))}
    assert [(r["figure"], r["verdict"]) for r in holdout_claims(other)] == [
        ("held-out frame AP, Chime", "holds"), ("held-out frame AP, Hum", "fails")]


def test_code_version_outside_git_and_its_text(tmp_path):
    assert code_version(tmp_path) == {"commit": None, "dirty": None}  # not a checkout: no commit claimed
    assert version_text(None) == version_text({"commit": None, "dirty": None}) == "unknown"
    assert version_text({"commit": "abc1234", "dirty": False}) == "abc1234"
    assert version_text({"commit": "abc1234", "dirty": True}) == "abc1234 + uncommitted changes"


def test_code_version_of_a_checkout_names_its_commit_and_changes(tmp_path):
    def git(*args):
        cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1\n")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD")
    (tmp_path / "new.txt").write_text("untracked\n")  # untracked files do not make a checkout dirty
    assert code_version(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("2\n")
    assert code_version(tmp_path) == {"commit": head, "dirty": True}


def test_replace_section_keeps_the_rest_of_the_file():
    text = "# Results\n\nold intro\n\n## Other section\nkept\n"
    once = replace_section(text, "## Claims\nfirst")
    assert once.startswith(f"# Results\n\n{BEGIN}\n## Claims\nfirst\n{END}\n\nold intro")
    assert once.endswith("## Other section\nkept\n")
    twice = replace_section(once, "## Claims\nsecond")
    assert "first" not in twice and twice.count(BEGIN) == 1 and twice.replace("second", "first") == once
    assert replace_section("", "x").startswith(f"{BEGIN}\nx\n{END}")
    # one section per claims dataset: a second dataset's is added, the first kept
    a = replace_section(text, "## Claims A", "claims-2026")
    both = replace_section(a, "## Claims B", "claims-7")
    assert "## Claims A" in both and "## Claims B" in both
    assert both.endswith(text[len("# Results\n"):].lstrip("\n"))
    assert replace_section(both, "## Claims A2", "claims-2026") == both.replace("## Claims A", "## Claims A2")
    assert markers("claims-7") == ("<!-- claims:claims-7:begin -->", "<!-- claims:claims-7:end -->")


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--systems"):
        parse_args(["--systems", "ps1,ps9"]).check()
    with pytest.raises(ConfigError, match="--seeds 0"):
        parse_args(["--seeds", "0"]).check()
    assert main(["--data-root", str(tmp_path / "nope"), "--results", "none"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --data-root {tmp_path / 'nope'}: no such folder"]
    # a bad training override fails before anything runs, naming it
    (tmp_path / "d" / "metadata").mkdir(parents=True)
    assert main(["--data-root", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--results", "none",
                 "--system-args", "baseline=schedule.n_cycles=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "schedule.n_cycles" in err[0] and "experiment=baseline" in err[0]


# ---------------------------------------------------------------------------- end to end
TINY_SMDM = ("schedule.n_cycles=1 model.sm.channels=[4,8] model.sm.freq_pools=[8,8] model.sm.head_units=8 "
             "model.sm.head_kernel=3 model.dm.channels=[4,8,8] model.dm.pools=[[4,4],[4,4],[2,2]] "
             "model.dm.hidden=8")
TINY_CRNN = ("schedule.max_epochs=1 model.crnn.channels=[4,4,8,8,8,8,8] model.crnn.rnn_cells=8 "
             "model.crnn.rnn_layers=1")
FAST = [
    "--seeds", "2", "--data-seed", "5", "--jobs", "2", "--gen-args", "--limit 8 --workers 1",
    "--train-args", "trainer=cpu datamodule.switch_epoch=0 datamodule.batch_size=8 "
                    "datamodule.iters_per_epoch=2 "
                    "callbacks.scorer.psds=false "
                    "callbacks.report.plots=false trainer.enable_model_summary=false",
    "--system-args", f"ps1={TINY_SMDM}", "--system-args", f"ps2={TINY_SMDM}",
    "--system-args", f"baseline={TINY_CRNN}",
    "--tune-args", "workers=1 grid.thresholds=[0.1,0.3,0.5] grid.first_windows=[1,5] "
                   "grid.second_windows=[1,9] "
                   "grid.tagging_thresholds=[null,0.5]",
    "--eval-args", "n_thresholds=3 report.enabled=false psds_workers=1 segment=false f1_engine=fast",
]


@pytest.fixture(scope="module")
def claims_run(tmp_path_factory):
    """``sed.claims`` on a tiny generated dataset (8 clips a split), 2 seeds, 1-epoch tiny models."""
    tmp = tmp_path_factory.mktemp("claims")
    results = tmp / "docs" / "RESULTS.md"
    results.parent.mkdir()
    results.write_text("# Results\n\n## Earlier figures\nkept as they are\n")
    argv = [*FAST, "--out", str(tmp / "out"), "--cache-dir", str(tmp / "cache"), "--results", str(results)]
    cwd = os.getcwd()
    os.chdir(tmp)  # the dataset goes to data/claims-5 under the working folder
    try:
        t0 = time.time()
        rc = main(argv)
        first = time.time() - t0
    finally:
        os.chdir(cwd)
    return {"tmp": tmp, "out": tmp / "out", "results": results, "argv": argv, "rc": rc, "seconds": first}


def test_claims_end_to_end_writes_everything(claims_run):
    out = claims_run["out"]
    assert claims_run["rc"] == 0
    assert (claims_run["tmp"] / "data" / "claims-5" / "generated.json").is_file()
    for name in ("claims.json", "claims.md", "claims_curves.png", "claims_per_class.png", "step_data.json",
                 "step_nmf.json"):
        assert (out / name).is_file(), name
    for unit in ("ps1", "ps2", "baseline", "ensemble"):
        for seed in (0, 1):
            d = out / unit / f"seed{seed}"
            assert (d / "step_eval.json").is_file() and (d / "postproc.yaml").is_file()
            assert (d / "predictions" / "validation.npz").is_file()
            assert (d / "predictions" / "public_eval.npz").is_file()
            assert "tuned_on: validation" in (d / "postproc.yaml").read_text()
            if unit != "ensemble":
                assert (d / "checkpoints" / "best.ckpt").is_file() and (d / "step_train.json").is_file()
                assert "logger=csv" in (d / "claims_train.log").read_text()
    text = claims_run["results"].read_text()
    assert text.startswith("# Results\n\n" + markers("claims-5")[0])
    assert text.rstrip().endswith("## Earlier figures\nkept as they are")
    assert "](figures/claims-5_claims_curves.png)" in text
    assert (claims_run["results"].parent / "figures" / "claims-5_claims_curves.png").is_file()
    md = (out / "claims.md").read_text()
    assert "report split; the post-processing was tuned on validation" in md and "tuning split" in md
    # provenance: the commit that ran the claims and each training's epochs (1: the tiny configs above)
    res = json.loads((out / "claims.json").read_text())
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    head = git.stdout.strip() if git.returncode == 0 else None
    assert res["code"]["commit"] == head
    assert all(rec["epochs"] == 1 and rec["code"]["commit"] == head for rec in res["trainings"].values())
    assert "Budget: 1 epoch, every system." in md and f"Code: commit {head or 'unknown'}" in md


def test_claims_aggregates_and_verdicts_recomputed_by_hand(claims_run):
    res = json.loads((claims_run["out"] / "claims.json").read_text())
    assert res["seeds"] == [0, 1] and res["units"] == ["ps1", "ps2", "baseline", "ensemble"]
    for unit in res["units"]:
        for split in ("validation", "public_eval"):
            seeds = res["per_seed"][unit]
            assert sorted(seeds) == ["0", "1"]
            for f in FIGURES:
                vals = [seeds[s][split][f] for s in ("0", "1")]
                assert all(isinstance(v, float) for v in vals), (unit, split, f)
                got = res["aggregate"][unit][split][f]
                assert got["mean"] == pytest.approx(statistics.mean(vals))
                assert got["sd"] == pytest.approx(statistics.stdev(vals))
            for c in CLASSES:
                vals = [seeds[s][split]["per_class_f1"][c] for s in ("0", "1")]
                got = res["aggregate"][unit][split]["per_class_f1"][c]
                known = [v for v in vals if v is not None]
                assert got["mean"] == (pytest.approx(statistics.mean(known)) if known else None)
    # the seed figures are those sed.eval wrote
    m = json.loads((claims_run["out"] / "ps1" / "seed1" / "eval" / "metrics.json").read_text())
    row = next(r for r in m["splits"] if r["split"] == "public_eval" and r["postproc"] == "fitted")
    assert res["per_seed"]["ps1"]["1"]["public_eval"]["event_f1_fitted"] == row["event_f1_macro"]
    # each training's per-class held-out AP is its last validation's (the run's metrics.json and CSV log)
    for key, rec in res["trainings"].items():
        run = claims_run["out"] / rec["system"] / f"seed{rec['seed']}"
        summary = json.loads((run / "metrics.json").read_text())
        assert rec["holdout_ap"] == summary["best"]["holdout_ap"]
        assert sorted(rec["holdout_ap"]) == sorted(CLASSES)
        logged = [ln.split(",") for ln in next(run.glob("csv/*/metrics.csv")).read_text().splitlines()]
        col = {name: i for i, name in enumerate(logged[0])}
        last = [r for r in logged[1:] if r[col["val/holdout_frame_map"]]][-1]
        for c, v in rec["holdout_ap"].items():
            cell = last[col[f"val/holdout_ap/{c}"]] if f"val/holdout_ap/{c}" in col else ""
            assert (v is None and cell == "") or v == pytest.approx(float(cell)), (key, c)
    for unit in ("ps1", "ps2", "baseline"):
        for c in CLASSES:
            vals = [res["trainings"][f"{unit}/seed{s}"]["holdout_ap"][c] for s in (0, 1)]
            got = res["holdout_ap"]["aggregate"][unit][c]
            known = [v for v in vals if v is not None]
            assert got["mean"] == (pytest.approx(statistics.mean(known)) if known else None)
    assert len(res["holdout_ap"]["claims"]) == 6  # PS1, PS2 x Speech, Dog, Dishes
    md = (claims_run["out"] / "claims.md").read_text()
    assert "Per-class frame AP on the held-out synthetic clips" in md
    # every claims row's verdict follows from its numbers
    rows = res["claims"]["public_eval"]
    assert len(rows) == 4 + 4 + 4
    for r in rows:
        a, b = r["a"], r["b"]
        if b is None:  # every class non-zero
            pc = res["aggregate"][r["unit"]]["public_eval"]["per_class_f1"]
            lowest = min(v["min"] for v in pc.values() if v["min"] is not None)
            assert r["verdict"] == ("holds" if lowest > 0 else "fails")
            continue
        spread = a["sd"] or b["sd"]
        k = (a["mean"] - b["mean"]) / math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2) if spread else None
        if r["rule"] == "mean higher":
            assert r["verdict"] == ("holds" if a["mean"] > b["mean"] else "fails")
        else:
            inf = 0.0 if a["mean"] == b["mean"] else math.copysign(math.inf, a["mean"] - b["mean"])
            kk = k if k is not None else inf
            assert r["k_sd"] == pytest.approx(kk)
            assert r["verdict"] == ("holds" if kk > 2 else "fails")


def test_claims_rerun_resumes_without_training(claims_run, capsys):
    out = claims_run["out"]
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_dir())
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/step_*.json")}
    cwd = os.getcwd()
    os.chdir(claims_run["tmp"])
    try:
        t0 = time.time()
        assert main(claims_run["argv"]) == 0
        second = time.time() - t0
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "6/6 trainings already done: skipped" in printed and "training ps1 seed" not in printed
    assert printed.count("(done earlier: skipped)") == 8
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_dir()) == before  # no new run folder
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/step_*.json")} == mtimes
    assert second < max(20.0, claims_run["seconds"] / 3), (second, claims_run["seconds"])


def test_a_crashed_training_loses_only_itself(claims_run, tmp_path, capsys):
    """A copy of the finished claims with one run to redo, whose training now crashes: the other runs' figures
    are kept, the crash is named (exit 1, one error line), and the claims needing its seed say so."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(claims_run["out"], out, symlinks=True)
    (out / "baseline" / "seed1" / "step_train.json").unlink()
    argv = [*claims_run["argv"], "--out", str(out), "--results", "none",
            "--system-args", "baseline=+trainer.no_such_option=1"]
    cwd = os.getcwd()
    os.chdir(claims_run["tmp"])
    try:
        rc = main(argv)
    finally:
        os.chdir(cwd)
    cap = capsys.readouterr()
    assert rc == 1
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error")]
    assert errors == ["error: 1 step(s) failed: training of baseline seed 1; rerun to retry them"]
    assert "baseline seed 1 FAILED (exit 1)" in cap.out
    assert "ckpt_path=" in (out / "baseline" / "seed1" / "claims_train.log").read_text()
    res = json.loads((out / "claims.json").read_text())
    assert res["failed"] == ["training of baseline seed 1"]
    assert sorted(res["per_seed"]["baseline"]) == ["0"] and sorted(res["per_seed"]["ps1"]) == ["0", "1"]
    assert not (out / "baseline" / "seed1" / "step_eval.json").exists()  # its old evaluation was cleared
    rows = {(r["claim"], r["figure"]): r for r in res["claims"]["public_eval"]}
    assert rows[("PS1 > baseline", "psds")]["verdict"] == "n/a (one seed: no sd)"
    assert "**Incomplete**: training of baseline seed 1 failed" in (out / "claims.md").read_text()


def test_last_checkpoint_reevaluates_every_unit_without_training(claims_run, tmp_path, capsys):
    """``--checkpoint last`` on a copy of the finished claims: no training, every unit (ensembles too)
    evaluated again from the runs' last.ckpt, and the records and the report say which checkpoint."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(claims_run["out"], out, symlinks=True)
    argv = [*claims_run["argv"], "--out", str(out), "--results", "none", "--checkpoint", "last"]
    cwd = os.getcwd()
    os.chdir(claims_run["tmp"])
    try:
        assert main(argv) == 0
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "training ps1 seed" not in printed and "(done earlier: skipped)" not in printed
    for unit in ("ps1", "ps2", "baseline", "ensemble"):
        for seed in (0, 1):
            rec = json.loads((out / unit / f"seed{seed}" / "step_eval.json").read_text())
            assert rec["checkpoint"] == "last"
    assert json.loads((out / "claims.json").read_text())["checkpoint"] == "last"
    assert "evaluated at its last epoch (`last.ckpt`" in (out / "claims.md").read_text()

"""Issue 14, section 1: a resumed run keeps its true best model; ``ckpt_path=last`` resumes only a run of
this configuration and names it (each test fails on the code before the fix)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from sed.core.errors import ConfigError
from sed.training.resume import INFO_FILE, continue_in, final_run_dir, find_resume, run_record
from tests._train_utils import fit, make_cfg, nmf_data_cfg

# selection by validation event F1 (not the default held-out frame AP): FryingEverywhere makes a known best
# by F1
OV = ["datamodule.switch_epoch=1", "schedule.t_i_epochs=1", "schedule.t_mult=2",
      "callbacks.report.plots=false", "torch_threads=1", "callbacks.summary.monitor=event_f1_macro"]


@pytest.fixture(scope="module")
def data_cfg(tiny_data_cfg, tmp_path_factory):
    """The tiny set, its validation truth with a Frying event over 0.14-9.84 s in one event-less clip (the
    weights-only model of FryingEverywhere then scores an F1 above 0, whatever the generator renders
    there)."""
    from omegaconf import OmegaConf

    from sed.datamodules.tsv import Event, read_strong_tsv, write_strong_tsv

    cfg = nmf_data_cfg(tiny_data_cfg, tmp_path_factory)
    truth = read_strong_tsv(Path(cfg.root) / cfg.splits.validation.tsv)
    empty = sorted(name for name, events in truth.items() if not events)
    assert empty, "the tiny validation split has no event-less clip"
    truth[empty[0]] = [Event(0.14, 9.84, "Frying")]
    tsv = tmp_path_factory.mktemp("valid") / "validation.tsv"
    write_strong_tsv(tsv, truth)
    return OmegaConf.merge(cfg, {"splits": {"validation": {"tsv": str(tsv)}}})


class FryingEverywhere(pl.Callback):
    """Before the validation of epoch ``at``, the weights become a model that detects Frying over every
    whole clip (a validation clip has Frying over 0.14-9.84 s, see ``data_cfg``): a known best epoch with an
    F1 above 0, held by the weights alone (so evaluating its checkpoint must reproduce it)."""

    def __init__(self, at: int) -> None:
        self.at = at

    @torch.no_grad()
    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.current_epoch != self.at:
            return
        from sed.core.constants import DESED_CLASSES as CLASSES

        k = CLASSES.index("Frying")
        for layer in (pl_module.sm.out, pl_module.dm.fc[-1]):
            layer.weight.zero_()
            layer.bias.fill_(-20.0)
            layer.bias[k] = 20.0


class Blind(pl.Callback):
    """After the resume the model predicts nothing: no later epoch can be the best."""

    def on_train_start(self, trainer, pl_module):
        real = pl_module.predict
        pl_module.predict = lambda x: tuple(torch.zeros_like(t) for t in real(x))


def test_resumed_run_keeps_the_pre_resume_best_and_best_ckpt_reproduces_its_score(tmp_path, data_cfg):
    from sed.inference.predictor import load_system, predict_split

    run = tmp_path / "run"
    fit(run, data_cfg, OV + ["trainer.max_epochs=2"], extra_callbacks=[FryingEverywhere(at=1)])
    before = json.loads((run / "metrics.json").read_text())
    assert before["best"]["event_f1_macro"] > 0 and before["best_epoch"] == 1
    again = tmp_path / "again"  # the new Hydra folder of the resuming invocation
    fit(again, data_cfg, OV + ["trainer.max_epochs=4", f"ckpt_path={run}"], extra_callbacks=[Blind()])
    m = json.loads((run / "metrics.json").read_text())
    assert m["epochs_done"] == 4 and m["last"]["event_f1_macro"] == 0.0
    assert m["best_epoch"] == before["best_epoch"] and m["best"] == before["best"]
    best = run / "checkpoints" / "best.ckpt"
    assert Path(m["best_ckpt"]) == best and not (again / "checkpoints").exists()
    assert torch.load(best, map_location="cpu", weights_only=False)["epoch"] == before["best_epoch"]
    # evaluating best.ckpt reproduces the recorded score
    pred = load_system(best, device="cpu")
    preds = predict_split(best, data_cfg, "validation", device="cpu", progress=False)
    from sed.datamodules.cache import labels_for
    from sed.training.callbacks import ValidationScorer

    scorer = ValidationScorer(pred.system.hparams["postproc"], psds=True, psds_thresholds=3)
    score = scorer.score(preds, labels_for(data_cfg, "validation")).metrics["event_f1_macro"]
    assert score == pytest.approx(m["best"]["event_f1_macro"], abs=1e-9)
    assert json.loads((again / "resumed.json").read_text())["run_dir"] == str(run)
    assert final_run_dir(again) == run and final_run_dir(run) == run
    assert len((run / "resumes.jsonl").read_text().splitlines()) == 1


def _fake_run(folder: Path, record: dict, age: float) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (folder / INFO_FILE).write_text(json.dumps(record))
    t = time.time() - age
    os.utime(folder / "checkpoints" / "last.ckpt", (t, t))
    return folder


def test_ckpt_path_last_resumes_only_a_matching_run_and_names_it(tmp_path, data_cfg, caplog):
    exp = tmp_path / "outputs" / "train" / "ps1"
    new = exp / "2026-01-03_00-00-00_3"  # this invocation's folder (a run killed before its first checkpoint)
    cfg = make_cfg(new, data_cfg, OV + ["ckpt_path=last"])
    rec = run_record(cfg)
    assert rec["data.root"] == os.path.realpath(data_cfg.root)
    same = _fake_run(exp / "2026-01-01_00-00-00_1", rec, age=100)
    other = _fake_run(exp / "2026-01-02_00-00-00_2", {**rec, "data.root": "/elsewhere/DESED"}, age=10)
    new.mkdir(parents=True)
    (new / INFO_FILE).write_text(json.dumps(rec))  # killed before its first checkpoint: no last.ckpt
    with caplog.at_level(logging.INFO):
        found = find_resume(cfg, new)
    assert found.run_dir == same and found.ckpt == same / "checkpoints" / "last.ckpt"
    assert f"resuming run {same}" in caplog.text
    # only a run on another dataset: a clear error naming it and what differs
    (same / INFO_FILE).write_text(json.dumps({**rec, "seed": 5}))
    with pytest.raises(ConfigError, match=rf"ckpt_path=last: no run of {exp} matches this configuration "
                                          rf"\({other.name}: data.root: /elsewhere/DESED -> "
                                          rf".*{same.name}: seed: 5 -> 0"):
        find_resume(cfg, new)
    # an explicit folder is resumed as asked, with a warning saying what differs
    caplog.clear()
    cfg2 = make_cfg(new, data_cfg, OV + [f"ckpt_path={other}"])
    assert find_resume(cfg2, new).run_dir == other
    assert "configuration differs: data.root: /elsewhere/DESED ->" in caplog.text


def test_continue_in_notes_the_resume_in_both_folders(tmp_path):
    from sed.train import link_latest
    from sed.training.resume import Resume

    run, inv = tmp_path / "exp" / "r1", tmp_path / "exp" / "r2"
    (run / "checkpoints").mkdir(parents=True)
    assert continue_in(Resume(run / "checkpoints" / "last.ckpt", run), inv, ["ckpt_path=last"]) == run
    link_latest(final_run_dir(inv))
    assert (tmp_path / "exp" / "latest").resolve() == run.resolve()


def test_resume_through_latest_another_experiment_or_a_corrupt_file(tmp_path, data_cfg):
    """Issue 23 (2, 4, 5): resuming through ``<experiment>/latest`` continues the run it names and
    ``latest`` still names it; a baseline checkpoint under PS1, or a damaged checkpoint, is one line
    before anything is written into the run folder."""
    from sed.train import link_latest

    BL = ["callbacks.report.plots=false", "torch_threads=1"]
    base = tmp_path / "baseline" / "r1"
    fit(base, data_cfg, BL + ["experiment=baseline", "trainer.max_epochs=1"])
    link_latest(base)
    latest = tmp_path / "baseline" / "latest"
    again = tmp_path / "baseline" / "r2"
    fit(again, data_cfg, BL + ["experiment=baseline", "trainer.max_epochs=2", f"ckpt_path={latest}"])
    assert final_run_dir(again) == base.resolve()
    link_latest(final_run_dir(again))
    assert latest.is_symlink() and latest.resolve() == base.resolve()  # not a link to itself
    assert (latest / "checkpoints" / "last.ckpt").is_file()

    before = {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"^ckpt_path=.*: the checkpoint holds another model \(trained as "
                                          r"experiment baseline\).*resume it with its own experiment"):
        fit(tmp_path / "ps1" / "r1", data_cfg, OV + ["trainer.max_epochs=3", f"ckpt_path={base}"])
    assert {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()} == before  # nothing written there

    bad = tmp_path / "bad" / "checkpoints" / "last.ckpt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes((base / "checkpoints" / "last.ckpt").read_bytes()[:5000])  # truncated by a full disk
    with pytest.raises(ConfigError,
                       match=r"cannot be read as a training checkpoint .*corrupt or truncated") as e:
        fit(tmp_path / "baseline" / "r3", data_cfg, BL + ["experiment=baseline", "trainer.max_epochs=3",
                                                           f"ckpt_path={bad}"])
    assert "\n" not in str(e.value) and not (bad.parent.parent / "resumes.jsonl").exists()

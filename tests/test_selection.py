"""Issue 10, part 2: held-out synthetic clips never trained on, the threshold-free criterion (frame-level
AP = sklearn's), checkpoint selection by it (not by a Table-1 F1 that is 0 everywhere), ties keep the
later epoch, and the one-line warnings (best = first epoch, a class never above chance)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import average_precision_score

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.errors import ConfigError
from sed.datamodules.holdout import holdout_count, split_rows
from sed.evaluation.frame_ap import chance_ap, frame_average_precision, macro
from sed.training.callbacks import BatchRecorder
from sed.training.selection import HoldoutScorer, selection_notes
from tests._train_utils import fit, nmf_data_cfg
from tests.test_datamodule import make_dm

FAST = ["callbacks.report.plots=false", "callbacks.scorer.psds=false", "torch_threads=1"]


@pytest.fixture(scope="module")
def data_cfg(tiny_data_cfg, tmp_path_factory):
    return nmf_data_cfg(tiny_data_cfg, tmp_path_factory)


# -- the criterion ------------------------------------------------------------------------------
def test_frame_ap_hand_computed_case():
    # ranking 0.9(+) 0.8(-) 0.7(+) 0.7(-) 0.1(-): thresholds 0.9 (P 1, R 1/2), 0.8 (P 1/2, R 1/2),
    # 0.7 (tie: P 2/4, R 1), 0.1 (P 2/5, R 1) -> AP = 1/2 * 1 + 1/2 * 1/2 = 0.75
    s = np.array([[0.9], [0.8], [0.7], [0.7], [0.1]])
    y = np.array([[1], [0], [1], [0], [0]])
    assert frame_average_precision(s, y)[0] == pytest.approx(0.75)
    assert chance_ap(y)[0] == pytest.approx(0.4)


def test_frame_ap_equals_sklearn_with_ties_and_empty_classes():
    rng = np.random.default_rng(0)
    for case in range(12):
        y = rng.random((3, 50, 4)) < rng.random(4) * 0.5  # (clips, frames, classes)
        y[..., 3] = False  # a class with no positive frame: NaN, left out of the macro mean
        s = rng.random((3, 50, 4)).astype(np.float32)
        if case % 2:
            s = np.round(s * 5) / 5  # many ties
        ap = frame_average_precision(s, y)
        for k in range(3):
            if y[..., k].any():
                assert ap[k] == pytest.approx(average_precision_score(y[..., k].ravel(), s[..., k].ravel()),
                                              abs=1e-12)
        assert np.isnan(ap[3]) and macro(ap) == pytest.approx(np.nanmean(ap[:3]))
    # a constant score is a random ranking: AP = prevalence (chance)
    y = rng.random((2, 40, 3)) < 0.3
    assert np.allclose(frame_average_precision(np.zeros(y.shape), y), chance_ap(y))


def test_selection_notes_one_line_each():
    assert selection_notes(3, "val/m") == []
    first = selection_notes(0, "val/m")
    assert len(first) == 1 and "first one (epoch 0)" in first[0] and "val/m" in first[0]
    # a above chance; b at it; c never scored; d no positive
    notes = selection_notes(2, "val/m", max_ap=[0.5, 0.1, np.nan, 0.2], chance=[0.1, 0.1, 0.2, np.nan],
                            classes=["a", "b", "c", "d"])
    assert len(notes) == 2 and "class b" in notes[0] and "class c" in notes[1]


# -- the held-out clips -------------------------------------------------------------------------
def test_holdout_split_is_fixed_by_names_and_seed():
    names = [f"clip{i:03d}.wav" for i in range(50)]
    train, held = split_rows(names, 0.2, 20200)
    assert len(held) == 10 and len(train) == 40 and not set(train) & set(held)
    shuffled = list(reversed(names))  # another TSV order: the same clips
    _, held2 = split_rows(shuffled, 0.2, 20200)
    assert {shuffled[i] for i in held2} == {names[i] for i in held}
    _, held3 = split_rows(names, 0.2, 1)
    assert set(held3) != set(held)
    assert holdout_count(12, 0.2) == 2 and holdout_count(3, 0.01) == 1 and holdout_count(10, 0.0) == 0
    with pytest.raises(ConfigError, match="share"):
        holdout_count(10, 1.0)


def test_datamodule_never_serves_held_out_clips(data_cfg):
    seen = set()
    for seed in (0, 5):  # the held-out clips do not depend on the training seed
        dm = make_dm(data_cfg, batch_size=8, switch_epoch=1,
                     post_switch={"synthetic": 0.5, "weak": 0.25, "unlabel": 0.25}, progress=False, seed=seed)
        dm.setup("fit")
        held = set(dm.holdout_rows.tolist())
        seen.add(frozenset(held))
        assert len(held) == 2 and dm.holdout_targets.shape == (2, 640, 10)
        assert set(dm.sources["synthetic"].rows.tolist()) == set(range(12)) - held
        used = set()
        loader = dm.train_dataloader()
        for epoch in range(6):
            loader.sampler.set_epoch(epoch)
            for b in loader:
                syn = b["source"] == 0
                used |= set(b["index"][syn].tolist())
        assert used == set(range(12)) - held  # every training clip served, no held-out one
    assert len(seen) == 1


def test_fit_never_trains_on_held_out_clips(tmp_path, data_cfg):
    rec = BatchRecorder(tmp_path / "rec")
    fit(tmp_path, data_cfg, ["trainer.max_epochs=3", "datamodule.switch_epoch=1", "experiment=ps2", *FAST],
        extra_callbacks=[rec])
    from sed.datamodules.cache import load_split

    names = load_split(data_cfg, "synthetic", progress=False).filenames
    _, held = split_rows(names, 0.2, 20200)
    pairs = json.loads((tmp_path / "rec" / "batches_rank0.json").read_text())
    syn = {r for ep in pairs.values() for s, r in ep if s == "synthetic"}
    assert syn and not syn & set(held.tolist())
    m = json.loads((tmp_path / "metrics.json").read_text())
    # the default selection is the last epoch; the held-out criterion is still scored and kept beside it
    assert m["criterion"] == "val/epoch" and m["best_epoch"] == 2 and 0 <= m["best"]["holdout_frame_map"] <= 1


# -- selection on a fit -------------------------------------------------------------------------
class Blind(pl.Callback):
    """Validation predicts nothing: event F1 at Table 1 is 0 at every epoch."""

    def on_train_start(self, trainer, pl_module):
        real = pl_module.predict
        pl_module.predict = lambda x: tuple(torch.zeros_like(t) for t in real(x))


class ScriptedHoldout(HoldoutScorer):
    """Held-out probabilities = truth + scale[epoch] x fixed noise: a known criterion per epoch
    (equal scales: equal AP).  ``dead``: a class whose scores are constant (AP = chance) every epoch."""

    def __init__(self, scales, dead: str | None = None) -> None:
        super().__init__()
        self.scales, self.dead = scales, dead

    def predict(self, trainer, pl_module):
        y = trainer.datamodule.holdout_targets.astype(np.float64)
        noise = np.random.default_rng(0).standard_normal(y.shape)
        s = y + self.scales[trainer.current_epoch] * noise
        if self.dead:
            s[..., CLASSES.index(self.dead)] = 0.0
        return s


def _scripted_fit(tmp_path, data_cfg, scales, dead=None):
    sc = ScriptedHoldout(scales, dead)
    best, log = fit(tmp_path, data_cfg, [f"trainer.max_epochs={len(scales)}", "datamodule.switch_epoch=1",
                                         "callbacks.holdout=null",
                                         "callbacks.summary.monitor=holdout_frame_map", *FAST],
                 extra_callbacks=[Blind(), sc])
    m = json.loads((tmp_path / "metrics.json").read_text())
    ck = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["epoch"]
    return m, log, ck, sc


def test_f1_zero_everywhere_selects_by_holdout_ap_not_epoch_0(tmp_path, data_cfg, caplog):
    with caplog.at_level(logging.WARNING):
        m, log, ck, _ = _scripted_fit(tmp_path, data_cfg, [2.0, 0.3, 1.0])
    f1 = log["val/event_f1_macro"].dropna()
    assert len(f1) == 3 and (f1 == 0).all()
    assert m["best_epoch"] == 1 and ck == 1 and m["best"]["event_f1_macro"] == 0.0
    crit = log["val/holdout_frame_map"].dropna().to_numpy()
    assert m["best"]["holdout_frame_map"] == pytest.approx(crit.max()) and crit.argmax() == 1
    assert m["notes"] == [] and "first one" not in caplog.text
    assert (tmp_path / "reports" / "selection.md").read_text().splitlines()[0].startswith(
        "checkpoint selection: best epoch 1"
    )


def test_first_epoch_best_and_dead_class_warn_in_log_and_report(tmp_path, data_cfg, caplog):
    dm = make_dm(data_cfg, progress=False)
    dm.setup("fit")
    # a class present in the held-out clips
    dead = CLASSES[int(np.argmax(dm.holdout_targets.mean(axis=(0, 1))))]
    with caplog.at_level(logging.WARNING):
        m, _, ck, _ = _scripted_fit(tmp_path, data_cfg, [0.3, 1.0, 2.0], dead=dead)
    assert m["best_epoch"] == 0 and ck == 0
    first = [n for n in m["notes"] if "first one (epoch 0)" in n]
    chance = [n for n in m["notes"] if f"class {dead}:" in n and "never rose above chance" in n]
    assert len(first) == 1 and len(chance) == 1 and len(m["notes"]) == 2
    report = (tmp_path / "reports" / "selection.md").read_text().splitlines()
    assert first[0] in report and chance[0] in report
    assert first[0] in caplog.text and chance[0] in caplog.text


def test_ties_keep_the_later_epoch(tmp_path, data_cfg):
    m, log, ck, _ = _scripted_fit(tmp_path, data_cfg, [1.0, 1.0, 1.0])
    crit = log["val/holdout_frame_map"].dropna().to_numpy()
    assert len(crit) == 3 and np.all(crit == crit[0])
    assert m["best_epoch"] == 2 and ck == 2 and m["notes"] == []


def test_no_held_out_clip_is_a_clear_error(tmp_path, data_cfg):
    with pytest.raises(ConfigError, match="no held-out synthetic clip"):
        fit(tmp_path, data_cfg, ["trainer.max_epochs=1", "datamodule.holdout.share=0", *FAST])

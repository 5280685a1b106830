"""End to end on the tiny generated dataset: fit lowers the loss and leaves a checkpoint that
sed.inference.predictor reads; same seed -> same metrics; resume keeps the schedule; the baseline fits."""

import json

import numpy as np
import pytest

from tests._train_utils import fit, nmf_data_cfg


@pytest.fixture(scope="module")
def data_cfg(tiny_data_cfg, tmp_path_factory):
    return nmf_data_cfg(tiny_data_cfg, tmp_path_factory)


def test_fit_lowers_loss_and_checkpoint_predicts(tmp_path, data_cfg):
    from sed.inference.predictor import load_system, predict_split

    # synthetic only, one long cosine cycle: the loss must fall
    best, log = fit(tmp_path, data_cfg, ["trainer.max_epochs=6", "datamodule.switch_epoch=10",
                                         "schedule.t_i_epochs=100", "schedule.t_mult=1"])
    loss = log["train/loss"].dropna().to_numpy()
    assert len(loss) == 12  # 6 epochs x ceil(12 synthetic / 8)
    assert loss[-3:].mean() < loss[:3].mean() - 0.05
    for col in ("train/l_f", "train/l_c", "train/l_con", "train/l_unlabel", "train/lr", "train/w", "train/T"):
        assert log[col].notna().sum() == 12, col
    assert ((tmp_path / "checkpoints" / "last.ckpt").is_file()
            and (tmp_path / "checkpoints" / "best.ckpt").is_file())
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["best"]["event_f1_macro"] is not None and "psds" in m["best"]
    assert ((tmp_path / "reports" / "per_class.csv").is_file()
            and (tmp_path / "reports" / "timeline.png").is_file())
    pred = load_system(tmp_path, device="cpu")
    assert pred.postproc_cfg["hysteresis_low"] == 0.08
    p = predict_split(tmp_path / "checkpoints" / "best.ckpt", data_cfg, "validation", device="cpu")
    assert p.frame_probs.shape == (8, 640, 10) and p.clip_probs.shape == (8, 10)
    ens = predict_split([tmp_path / "checkpoints" / "best.ckpt", tmp_path / "checkpoints" / "last.ckpt"],
                        data_cfg, "validation", device="cpu")
    assert ens.frame_probs.shape == (8, 640, 10)


def test_same_seed_same_metrics_and_gate_after_switch(tmp_path, data_cfg):
    ov = ["trainer.max_epochs=2", "datamodule.switch_epoch=1", "seed=7", "model.tau=0.0"]
    a, la = fit(tmp_path / "a", data_cfg, ov)
    b, lb = fit(tmp_path / "b", data_cfg, ov)
    assert a == b
    assert np.array_equal(la["train/loss"].dropna().to_numpy(), lb["train/loss"].dropna().to_numpy())
    # l_unlabel and the gate only after the switch (epoch 1); tau 0 lets every unlabelled clip pass
    e0, e1 = la[la["epoch"] == 0], la[la["epoch"] == 1]
    assert (e0["train/l_unlabel"].dropna() == 0).all() and e0["train/gate_pass"].isna().all()
    assert (e1["train/gate_pass"].dropna() == 1.0).all() and (e1["train/l_unlabel"].dropna() > 0).all()


def test_resume_continues_schedule(tmp_path, data_cfg):
    ov = ["datamodule.switch_epoch=1", "schedule.t_i_epochs=1", "schedule.t_mult=2"]
    _, full = fit(tmp_path / "full", data_cfg, ov + ["trainer.max_epochs=3"])
    fit(tmp_path / "part", data_cfg, ov + ["trainer.max_epochs=2"])
    _, res = fit(tmp_path / "res", data_cfg, ov + ["trainer.max_epochs=3", f"ckpt_path={tmp_path / 'part'}"])
    cols = ["step", "train/lr", "train/T", "train/w"]
    tail = full[full["epoch"] == 2][cols].dropna().reset_index(drop=True)
    got = res[cols].dropna().reset_index(drop=True)
    assert len(got) == len(tail) > 0 and got["step"].iloc[0] > 0
    assert np.allclose(got.to_numpy(), tail.to_numpy())


def test_mean_teacher_baseline_fits(tmp_path, data_cfg):
    from sed.inference.predictor import predict_split

    best, log = fit(tmp_path, data_cfg, ["experiment=baseline", "trainer.max_epochs=1"])
    assert "train/l_cons" in log and log["train/l_strong"].notna().any()
    p = predict_split(tmp_path, data_cfg, "validation", device="cpu")
    assert p.frame_probs.shape == (8, 640, 10)

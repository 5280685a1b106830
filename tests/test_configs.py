"""Every experiment composes with every trainer config, and Hydra builds its datamodule, model and
callbacks from the config alone (as the Lightning + Hydra template's test_configs); a schedule override
in conf/train.yaml reaches a PS1 run's LR (experiment files no longer shadow the defaults)."""

import math

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sed.train import compose

EXPERIMENTS = ["ps1", "ps2", "baseline", "baseline_dcase2020"]
TRAINERS = ["default", "cpu", "gpu", "ddp", "ddp_sim"]


def _cfg(tmp_path, *overrides):
    cfg = compose(["logger=csv", *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.run_dir, cfg.overrides = str(tmp_path), list(overrides)
    return cfg


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_x_trainer_instantiates(tmp_path, tiny_data_cfg, experiment, trainer):
    import pytorch_lightning as pl

    from sed.datamodules.desed import DesedDataModule
    from sed.training.callbacks import MeanTeacherRampup, SGDRSchedule, ValidationScorer
    from sed.training.systems import MeanTeacherSystem, SEDSystem

    cfg = _cfg(tmp_path, f"experiment={experiment}", f"trainer={trainer}")
    cfg.data = tiny_data_cfg
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg.experiment_name == experiment
    dm = instantiate(cfg.datamodule)
    model = instantiate(cfg.model)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] + [instantiate(cfg.schedule)]
    assert isinstance(dm, DesedDataModule)
    baseline = experiment.startswith("baseline")
    assert isinstance(model, MeanTeacherSystem if baseline else SEDSystem)
    assert any(isinstance(c, MeanTeacherRampup if baseline else SGDRSchedule) for c in callbacks)
    assert any(isinstance(c, ValidationScorer) for c in callbacks)
    assert model.hparams["_target_"] == cfg.model._target_
    assert cfg.trainer.max_epochs == cfg.schedule.max_epochs == 63
    if cfg.trainer.accelerator == "cpu":  # a GPU trainer is only checked, never started
        trainer_obj = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
        assert isinstance(trainer_obj, pl.Trainer) and trainer_obj.max_epochs == 63
    else:
        assert (cfg.trainer._target_ == "pytorch_lightning.Trainer"
                and cfg.trainer.accelerator in ("auto", "gpu"))


def test_experiments_state_only_what_differs(tmp_path):
    ps1, ps2, base = (_cfg(tmp_path, f"experiment={e}") for e in ("ps1", "ps2", "baseline"))
    assert ps1.datamodule.post_switch == {"weak": 0.5, "unlabel": 0.5}
    assert ps2.datamodule.post_switch == {"synthetic": 0.25, "weak": 0.25, "unlabel": 0.5}
    assert ps1.schedule == ps2.schedule and ps1.schedule.lr_max == 0.0012
    assert ps1.datamodule.switch_epoch == ps2.datamodule.switch_epoch == ps1.model.switch_epoch == 5
    # the baseline carries neither the SGDR schedule nor SM+DM's loss
    assert "t_i_epochs" not in base.schedule and "tau" not in base.model and base.schedule.lr == 0.001


@pytest.mark.parametrize("key,value,epochs", [("schedule.t_i_epochs", 2, 126), ("schedule.t_mult", 1, 6),
                                              ("schedule.n_cycles", 2, 3)])
def test_epoch_budget_follows_schedule(tmp_path, key, value, epochs):
    cfg = _cfg(tmp_path, "experiment=ps1", f"{key}={value}")
    assert cfg.trainer.max_epochs == epochs


def test_train_yaml_schedule_override_reaches_ps1_lr(tmp_path, tiny_data_cfg):
    """The shadowing bug: `schedule.t_i_epochs=2` must change a PS1 run's LR (it did nothing before)."""
    from tests._train_utils import fit

    data = tiny_data_cfg
    ov = ["trainer.max_epochs=2", "datamodule.switch_epoch=5", "seed=0"]
    _, one = fit(tmp_path / "a", data, ["experiment=ps1", "datamodule.weak_frame_labels=none", *ov])
    _, two = fit(tmp_path / "b", data, ["experiment=ps1", "datamodule.weak_frame_labels=none",
                                        "schedule.t_i_epochs=2", *ov])
    lr1, lr2 = one["train/lr"].dropna().to_numpy(), two["train/lr"].dropna().to_numpy()
    n = len(lr1) // 2  # iterations per epoch
    lr_max, lr_min = 0.0012, 1e-6
    # T_i 1 epoch: a restart at the second epoch; T_i 2 epochs: one cosine over both
    assert lr1[n] == pytest.approx(lr_max)
    assert lr2[n] == pytest.approx(lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * n / (2 * n))))
    assert lr2[n] < 0.6 * lr_max  # no restart: half-way down the cosine

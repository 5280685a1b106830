"""Issue 11's training budget: an epoch is a stated number of iterations on any dataset, so T_i (eq 9),
the curriculum switch and the ramp-up T of the baseline are the same number of iterations whatever the
size of the synthetic split (two sizes here: the tiny split with 0 % and 50 % of it held out)."""

import math
from types import SimpleNamespace

import pytest
import torch

from sed.training.callbacks import MeanTeacherRampup, SGDRSchedule
from tests.test_datamodule import make_dm


def _schedule_quantities(dm):
    """(iterations per epoch, SGDR T_i in iterations, first l_unlabel step, baseline ramp-up iterations)."""
    trainer = SimpleNamespace(optimizers=[torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])],
                              num_training_batches=dm.iters_per_epoch, global_step=0, max_epochs=15)
    module = SimpleNamespace(rampup_weight=None, consistency_weight=None, log_dict=lambda *a, **k: None)
    sgdr = SGDRSchedule(lr_max=0.0012, lr_min=1e-6, t_i_epochs=1, t_mult=2)
    sgdr.on_train_start(trainer, module)
    mt = MeanTeacherRampup(lr=0.001, rampup_epochs=3.75, max_consistency=2.0)
    mt.on_train_start(trainer, module)
    first_unlabel_step = next(e for e in range(20) if dm.counts_at(e).get("unlabel")) * dm.iters_per_epoch
    return dm.iters_per_epoch, sgdr.period, first_unlabel_step, mt.period


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_stated_epoch_length_fixes_every_schedule_quantity(tiny_data_cfg, share):
    dm = make_dm(tiny_data_cfg, iters_per_epoch=7, holdout={"share": share, "seed": 20200},
                 weak_frame_labels="none", progress=False)
    dm.setup("fit")
    # two sizes of the synthetic training split
    assert len(dm.sources["synthetic"]) == {0.0: 12, 0.5: 6}[share]
    # 7 iterations an epoch; T_i = 1 epoch = 7; l_unlabel from epoch 5 = step 35; ramp-up 3.75 x 7 = 26.25
    assert _schedule_quantities(dm) == (7, 7, 35, 26.25)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    assert sum(1 for _ in loader) == 7


def test_null_epoch_length_follows_the_synthetic_split(tiny_data_cfg):
    """The old rule (``iters_per_epoch: null``), kept as an option: the budget shrinks with the split."""
    got = {}
    for share in (0.0, 0.5):
        dm = make_dm(tiny_data_cfg, batch_size=4, holdout={"share": share, "seed": 20200},
                     weak_frame_labels="none", progress=False)
        dm.setup("fit")
        got[share] = _schedule_quantities(dm)
    assert got[0.0] == (3, 3, 15, 3 * 3.75) and got[1/2] == (2, 2, 10, 2 * 3.75)  # ceil(12/4), ceil(6/4)


def test_shipped_budget():
    """conf: 100 iterations an epoch, 6 SGDR cycles = 63 epochs = 6,300 steps for PS1/PS2 (issue 20: where
    the slowest learner plateaus); the baseline gets the same 63 epochs and ramps up over a quarter of them
    (the DCASE 2020 recipe's share)."""
    from sed.train import compose

    for exp in ("ps1", "ps2", "baseline"):
        cfg = compose([f"experiment={exp}"])
        assert cfg.datamodule.iters_per_epoch == 100 and cfg.trainer.max_epochs == 63
        if exp != "baseline":
            assert cfg.model.frame_pos_weight == 1.0
    base = compose(["experiment=baseline"])
    assert base.schedule.rampup_epochs == pytest.approx(63 / 4)
    assert math.isclose(compose([]).schedule.max_epochs, 1 + 2 + 4 + 8 + 16 + 32)

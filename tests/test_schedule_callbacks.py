"""The schedule callbacks drive the optimizer's LR and the system's ramp-up weight: SGDR (eqs 9, 10, 6)
across three restarts and a resume; the mean-teacher ramp-up.  Hand-computed values as
tests/test_schedules.py."""

import math
from types import SimpleNamespace

import pytest
import torch

from sed.training.callbacks import MeanTeacherRampup, SGDRSchedule


class _Module:
    """Just what the callbacks touch: the declared weight attributes and ``log_dict``."""

    def __init__(self):
        self.rampup_weight = self.consistency_weight = None
        self.logged = {}

    def log_dict(self, d, **kw):
        self.logged = dict(d)


def _trainer(iters_per_epoch):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    return SimpleNamespace(optimizers=[opt], num_training_batches=iters_per_epoch, global_step=0,
                           max_epochs=15)


def _drive(cb, trainer, module, steps):
    out = []
    for s in steps:
        trainer.global_step = s
        cb.on_train_batch_start(trainer, module, None, 0)
        out.append((trainer.optimizers[0].param_groups[0]["lr"], module.rampup_weight,
                    module.logged["train/T"]))
    return out


def _hand(step, lmax=0.0012, lmin=1e-6):
    """T_i 4 iterations (1 epoch of 4), T_mult 2: cycles [0..3] [4..11] [12..27] [28..59]."""
    for start, t_i in ((0, 4), (4, 8), (12, 16), (28, 32)):
        if step < start + t_i:
            t = (step - start) / t_i
            return lmin + 0.5 * (lmax - lmin) * (1 + math.cos(math.pi * t)), math.exp(-5 * (1 - t) ** 2), t
    raise AssertionError(step)


def test_sgdr_callback_three_restarts_and_resume():
    cb, tr, mod = SGDRSchedule(lr_max=0.0012, lr_min=1e-6, t_i_epochs=1, t_mult=2), _trainer(4), _Module()
    cb.on_train_start(tr, mod)
    assert cb.period == 4
    got = _drive(cb, tr, mod, range(20))
    for step, (lr, w, t) in enumerate(got):
        assert (lr, w, t) == pytest.approx(_hand(step), rel=1e-12), step
    for restart in (4, 12):  # LR back to LR_max, w back to exp(-5)
        assert got[restart][0] == 0.0012 and got[restart][1] == pytest.approx(math.exp(-5))
    assert mod.logged["train/cycle"] == 2.0

    # resume at step 20 from the checkpointed state: the cycle length stays 4 iterations even if the
    # epoch length changed, and the third restart (step 28) falls where the uninterrupted run puts it
    res = SGDRSchedule(lr_max=0.0012, lr_min=1e-6, t_i_epochs=1, t_mult=2)
    res.load_state_dict(cb.state_dict())
    tr2 = _trainer(7)
    res.on_train_start(tr2, mod)
    assert res.period == 4
    after = _drive(res, tr2, mod, range(20, 40))
    for step, (lr, w, t) in zip(range(20, 40), after):
        assert (lr, w, t) == pytest.approx(_hand(step), rel=1e-12), step
    assert after[28 - 20][0] == 0.0012 and mod.logged["train/cycle"] == 3.0


def test_sgdr_callback_t_i_in_epochs_converted_once():
    cb = SGDRSchedule(lr_max=1.0, lr_min=0.0, t_i_epochs=0.5, t_mult=1)
    cb.on_train_start(_trainer(10), _Module())
    assert cb.period == 5
    cb.on_train_start(_trainer(99), _Module())  # a second start (e.g. resumed fit) keeps it
    assert cb.period == 5


def test_mean_teacher_rampup_callback():
    cb, tr, mod = MeanTeacherRampup(lr=0.001, rampup_epochs=2.5, max_consistency=2.0), _trainer(4), _Module()
    cb.on_train_start(tr, mod)
    assert cb.period == 10.0
    for step, p in ((0, 0.0), (5, 0.5), (10, 1.0), (15, 1.0)):
        tr.global_step = step
        cb.on_train_batch_start(tr, mod, None, 0)
        r = math.exp(-5 * (1 - p) ** 2)
        assert tr.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.001 * r)
        assert mod.consistency_weight == pytest.approx(2.0 * r) == mod.logged["train/w_cons"]
    res = MeanTeacherRampup(lr=0.001, rampup_epochs=2.5, max_consistency=2.0)
    res.load_state_dict(cb.state_dict())
    res.on_train_start(_trainer(8), mod)
    assert res.period == 10.0

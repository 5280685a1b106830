"""SPEC eqs 6, 9, 10 against hand-computed values."""

import math

import pytest

from sed.training.schedules import (
    ScheduleError,
    SGDRTracker,
    cycle_progress,
    epochs_to_iterations,
    rampup,
    sgdr_epochs,
    sgdr_lr,
    sgdr_position,
)


def test_rampup_eq6():
    assert rampup(0.0) == pytest.approx(math.exp(-5))
    assert rampup(0.5) == pytest.approx(math.exp(-1.25))
    assert rampup(1.0) == 1.0
    assert rampup(-1.0) == pytest.approx(math.exp(-5)) and rampup(2.0) == 1.0


def test_lr_two_restarts_tmult2_by_hand():
    # T_i = 4 iterations, T_mult = 2: cycles [0..3], [4..11], [12..27]
    lmax, lmin = 0.0012, 1e-6
    half = 0.5 * (lmax - lmin)
    hand = {
        0: lmax,
        1: lmin + half * (1 + math.cos(math.pi * 1 / 4)),
        2: lmin + half,  # cos(pi/2) = 0
        3: lmin + half * (1 + math.cos(math.pi * 3 / 4)),
        4: lmax,  # first restart
        8: lmin + half,  # T_curr 4 of 8
        11: lmin + half * (1 + math.cos(math.pi * 7 / 8)),
        12: lmax,  # second restart, T_i = 16
        16: lmin + half * (1 + math.cos(math.pi * 4 / 16)),
        27: lmin + half * (1 + math.cos(math.pi * 15 / 16)),
        28: lmax,  # third restart
    }
    tr = SGDRTracker(t_i=4, t_mult=2, lr_max=lmax, lr_min=lmin)
    for step, want in hand.items():
        assert tr.at(step).lr == pytest.approx(want, rel=1e-12), step
    assert sgdr_position(11, 4, 2) == (1, 7, 8)
    assert sgdr_position(12, 4, 2) == (2, 0, 16)
    assert sgdr_position(7, 3, 1) == (2, 1, 3)


def test_progress_eq10_resets_at_restart():
    tr = SGDRTracker(t_i=4, t_mult=2, lr_max=0.0012, lr_min=1e-6)
    assert [tr.at(s).T for s in range(6)] == [0, 0.25, 0.5, 0.75, 0, 0.125]
    assert tr.at(3).w == pytest.approx(rampup(0.75))
    assert tr.at(4).w == pytest.approx(math.exp(-5))  # w back to its start
    assert cycle_progress(3, 4) == 0.75
    assert sgdr_lr(0, 10, 0.0012, 1e-6) == 0.0012


def test_tracker_state_roundtrip():
    tr = SGDRTracker(t_i=5, t_mult=2, lr_max=0.0012, lr_min=1e-6)
    tr.advance(13)
    s = tr.state_dict()
    tr2 = SGDRTracker(t_i=1, t_mult=1, lr_max=1.0, lr_min=0.0)
    tr2.load_state_dict(s)
    assert tr2.state() == tr.state() and tr2.state().t_curr == 8 and tr2.state().t_i == 10


def test_epochs_to_iterations_and_errors():
    assert epochs_to_iterations(1, 37) == 37
    assert epochs_to_iterations(0.5, 37) == 18
    with pytest.raises(ScheduleError):
        epochs_to_iterations(0, 10)
    with pytest.raises(ScheduleError):
        sgdr_position(0, 4, 0.5)


def test_sgdr_epochs_budget():
    assert sgdr_epochs(1, 2, 4) == 15  # 1 + 2 + 4 + 8
    assert sgdr_epochs(2, 2, 3) == 14  # 2 + 4 + 8
    assert sgdr_epochs(1, 1, 5) == 5
    with pytest.raises(ScheduleError):
        sgdr_epochs(1, 2, 0)

"""Learning rate and ramp-up schedules of SPEC section 5 (paper 2.3, eqs 6, 9, 10), pure functions.

SGDR (cosine annealing with warm restarts), per iteration.  ``t_i`` is the first cycle's length
T_i in iterations, one name everywhere: ``schedule.t_i_epochs`` in the config (in epochs;
:func:`epochs_to_iterations` converts), ``SGDRSchedule.t_i_epochs`` / ``.t_i`` in the callback,
``t_i`` here.  Each later cycle is ``t_mult`` times longer.  Within a cycle ``T_curr = 0 .. T_i - 1``;
when T_curr reaches T_i the iteration restarts at LR_max with T_curr = 0 and T_i <- T_i * T_mult.  So a cycle
holds exactly T_i iterations and, with T_i = 1 epoch and T_mult = 2, restarts fall on epoch
boundaries (epochs 1 | 2-3 | 4-7 | 8-15 ...).  (The paper says LR reaches LR_min "if T_curr is
equal to T_i" and restarts at the next iteration; an iteration at exactly T_curr = T_i would put
every cycle one iteration past the epoch boundary.  We follow SGDR [12] and PyTorch's
``CosineAnnealingWarmRestarts``: the cycle ends as T_curr reaches T_i.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


class ScheduleError(ValueError):
    """A schedule configuration that cannot work (non-positive lengths, T_mult < 1)."""


def epochs_to_iterations(epochs: float, iters_per_epoch: int) -> int:
    """T_i in iterations from T_i in epochs (at least 1)."""
    if epochs <= 0 or iters_per_epoch <= 0:
        raise ScheduleError(f"T_i = {epochs} epochs x {iters_per_epoch} iterations/epoch must be positive")
    return max(1, int(round(epochs * iters_per_epoch)))


def sgdr_position(step: int, t_i: int, t_mult: float = 1.0) -> tuple[int, int, int]:
    """Where iteration ``step`` (0-based) falls: ``(cycle, T_curr, T_i of that cycle)`` (cycle 0 is the
    first, of ``t_i`` iterations)."""
    if t_i < 1:
        raise ScheduleError(f"T_i = {t_i} iterations must be >= 1")
    if t_mult < 1:
        raise ScheduleError(f"T_mult = {t_mult} must be >= 1")
    if step < 0:
        raise ScheduleError(f"iteration {step} is negative")
    if t_mult == 1:
        return step // t_i, step % t_i, t_i
    cycle, length, start = 0, t_i, 0
    while step >= start + length:  # cycles grow geometrically: O(log step) iterations
        start += length
        length = max(1, int(round(length * t_mult)))
        cycle += 1
    return cycle, step - start, length


def sgdr_lr(t_curr: int, t_i: int, lr_max: float, lr_min: float) -> float:
    """Eq 9: LR = LR_min + 1/2 (LR_max - LR_min) (1 + cos(pi T_curr / T_i))."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * t_curr / t_i))


def cycle_progress(t_curr: int, t_i: int) -> float:
    """Eq 10: T = T_curr / T_i (0 at every restart, so the ramp-up w of eq 6 resets too)."""
    return t_curr / t_i


def sgdr_epochs(t_i_epochs: float, t_mult: float, n_cycles: int) -> int:
    """The epoch budget that ends with the ``n_cycles``-th LR cycle: T_i (1 + T_mult + ... + T_mult^(n-1)).

    Rounded like :func:`sgdr_position` rounds each cycle (1, 2, 4, 8 -> 15 epochs for T_i 1, T_mult 2,
    4 cycles).
    """
    if n_cycles < 1 or t_i_epochs <= 0 or t_mult < 1:
        raise ScheduleError(
            f"n_cycles {n_cycles}, T_i {t_i_epochs} epochs, T_mult {t_mult}: "
            "need n >= 1, T_i > 0, T_mult >= 1"
        )
    total, t_i = 0.0, float(t_i_epochs)
    for _ in range(int(n_cycles)):
        total += t_i
        t_i *= t_mult
    return max(1, int(round(total)))


def rampup(t: float) -> float:
    """Eq 6: w = exp(-5 (1 - T)^2) with T clipped to [0, 1]."""
    t = min(max(float(t), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


@dataclass
class ScheduleState:
    """The schedule at one iteration (what the training loop sets and logs)."""

    step: int
    cycle: int
    t_curr: int
    t_i: int
    lr: float
    T: float
    w: float


@dataclass
class SGDRTracker:
    """Stateful SGDR + ramp-up tracker: ``state()`` for the current iteration, ``advance()`` after it
    (the values come from the config, conf/callbacks/sgdr.yaml, through
    :class:`sed.training.callbacks.SGDRSchedule`).

    The state is just the iteration count (everything else is a pure function of it), so
    ``state_dict``/``load_state_dict`` restore the schedule exactly on resume.
    """

    t_i: int  # the first cycle's T_i, iterations
    t_mult: float
    lr_max: float
    lr_min: float
    step: int = 0

    def at(self, step: int) -> ScheduleState:
        cycle, t_curr, t_i = sgdr_position(step, self.t_i, self.t_mult)
        t = cycle_progress(t_curr, t_i)
        lr = sgdr_lr(t_curr, t_i, self.lr_max, self.lr_min)
        return ScheduleState(step, cycle, t_curr, t_i, lr, t, rampup(t))

    def state(self) -> ScheduleState:
        return self.at(self.step)

    def advance(self, n: int = 1) -> None:
        self.step += n

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, d: dict) -> None:
        for k, v in d.items():
            setattr(self, k, v)

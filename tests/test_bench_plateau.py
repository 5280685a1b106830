"""Issue 20, part 3: benchmarks/plateau.py's rule on hand-made curves; every benchmark module imports."""

import importlib
from pathlib import Path

import pytest

from benchmarks.plateau import budget_for, plateau_epoch, still_rising


def test_plateau_epoch_is_the_first_within_tol_of_the_best():
    # best 0.50 at epoch 5; the running max first reaches 0.49 at epoch 3 (0.495)
    assert plateau_epoch([0.1, 0.3, 0.45, 0.495, 0.48, 0.50, 0.47], tol=0.01) == 3
    assert plateau_epoch([0.1, 0.3, 0.45, 0.495, 0.48, 0.50, 0.47], tol=0.0) == 5
    # a dip after a restart does not move it: the running max is kept
    assert plateau_epoch([0.2, 0.4, 0.3, 0.41], tol=0.02) == 1


def test_still_rising_compares_the_last_two_cycle_ends():
    flat = [0.1, 0.2, 0.3, 0.40, 0.4, 0.4, 0.42] + [0.425] * 8  # 15 epochs: best 0.42 by 7, 0.425 by 15
    assert not still_rising(flat, tol=0.01)
    rising = flat[:14] + [0.45]
    assert still_rising(rising, tol=0.01)
    assert still_rising([0.1], tol=0.01)  # one cycle: nothing to compare


def test_budget_is_a_whole_number_of_sgdr_cycles():
    epochs = (0, 1, 2, 3, 6, 7, 14, 15, 30, 31, 57)
    assert [budget_for(e) for e in epochs] == [1, 3, 3, 7, 7, 15, 15, 31, 31, 63, 63]


BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__main__"))
def test_every_benchmark_module_imports(name):
    importlib.import_module(f"benchmarks.{name}")

"""The held-out part of the strongly-labelled synthetic clips (issue 10, part 2).

A fixed share of the synthetic clips never enters training: the datamodule serves them as a second
validation set on which the best epoch is chosen (threshold-free, :mod:`sed.training.selection`).
The choice depends only on the clip names and ``seed`` (not the training seed, not the TSV order):
the clips sorted by name, permuted by ``numpy.random.default_rng(seed)``, the first
``round(share x n)`` held out -- the DCASE 2020 baseline held out 20 % with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sed.core.errors import ConfigError


def holdout_count(n: int, share: float) -> int:
    """Clips held out of ``n``: ``round(share x n)``, at least 1 when ``share > 0``, leaving at least 1
    to train on."""
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"datamodule.holdout.share {share}: expected 0 <= share < 1")
    if share == 0.0 or n == 0:
        return 0
    k = max(1, int(round(share * n)))
    if k >= n:
        raise ConfigError(
            f"datamodule.holdout.share {share} holds out all {n} synthetic clips: nothing left to train on"
        )
    return k


def split_rows(filenames: Sequence[str], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_rows, holdout_rows)``: sorted row indices of ``filenames`` (see the module docstring)."""
    k = holdout_count(len(filenames), float(share))
    by_name = np.argsort(np.asarray(filenames, dtype=object), kind="stable")
    chosen = by_name[np.random.default_rng(int(seed)).permutation(len(filenames))[:k]]
    mask = np.zeros(len(filenames), bool)
    mask[chosen] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def holdout_settings(cfg: Mapping | None) -> tuple[float, int]:
    """``(share, seed)`` of the ``datamodule.holdout`` node (``None``: nothing held out)."""
    if not cfg:
        return 0.0, 0
    bad = set(cfg) - {"share", "seed"}
    if bad:
        raise ConfigError(f"datamodule.holdout: unknown key(s) {sorted(bad)}; expected share, seed")
    return float(cfg.get("share", 0.0)), int(cfg.get("seed", 0))

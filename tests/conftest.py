"""Shared fixtures: a tiny generated DESED-layout dataset and a `data` config node pointing at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]
TINY_SIZES = {"n_synthetic": 12, "n_weak": 8, "n_unlabel": 8, "n_validation": 8}


@pytest.fixture(scope="session")
def tiny_desed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated dataset: 12 synthetic, 8 weak, 8 unlabel and 8 validation clips (seed 0)."""
    from sed.generate import generate_dataset

    root = tmp_path_factory.mktemp("tiny-desed")
    return generate_dataset(root, **TINY_SIZES, seed=0, workers=1, plot=False)


def make_data_cfg(root: Path, cache_dir: Path):
    cfg = OmegaConf.load(REPO / "conf" / "data" / "mini_desed.yaml")
    cfg.root = str(root)
    cfg.cache_dir = str(cache_dir)
    return OmegaConf.create({"data": cfg}).data  # resolves ${data.*} interpolations


@pytest.fixture(scope="session")
def tiny_data_cfg(tiny_desed: Path, tmp_path_factory: pytest.TempPathFactory):
    """The `data` config node of conf/data/mini_desed.yaml, pointed at :func:`tiny_desed` (cache in a tmp
    folder)."""
    return make_data_cfg(tiny_desed, tmp_path_factory.mktemp("tiny-cache"))

"""A run says what it was trained on: ``sed.train`` writes the resolved data config into the run folder
(``data.yaml``, paths absolute), and ``sed.tune`` / ``sed.eval`` given that run read it back, so that a
run trained with ``data=desed data.root=...`` is tuned and evaluated on the same data without repeating
the overrides. Data given on the command line wins, and the console says so (and what the run used).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sed.core.runs import run_folder

log = logging.getLogger(__name__)

RUN_DATA = "data.yaml"
_PATH_KEYS = ("root", "cache_dir", "nmf_labels_tsv", "weak_truth_tsv")


def write_run_data(data_cfg: Any, run_dir: str | Path) -> Path:
    """``<run_dir>/data.yaml``: the data node resolved, its paths absolute (kept when a run resumes)."""
    path = Path(run_dir) / RUN_DATA
    if path.is_file():
        return path
    node = OmegaConf.to_container(data_cfg, resolve=True) if OmegaConf.is_config(data_cfg) else dict(data_cfg)
    for k in _PATH_KEYS:
        if node.get(k):
            node[k] = os.path.realpath(str(node[k]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{RUN_DATA}.{os.getpid()}.tmp")
    OmegaConf.save(OmegaConf.create(node), tmp)
    tmp.replace(path)
    return path


def recorded_data(run: str | Path) -> DictConfig | None:
    """The data config a run recorded (a run folder or one of its checkpoints), or None."""
    path = run_folder(run) / RUN_DATA
    try:
        return OmegaConf.load(path) if path.is_file() else None
    except Exception:  # noqa: BLE001 - an unreadable record is no record
        log.warning("%s: unreadable, the data config given is used", path)
        return None


def command_line_overrides(cfg: DictConfig | None = None) -> list[str]:
    """This invocation's overrides: Hydra's, or ``cfg.hydra`` when composed with ``return_hydra_config``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not under a Hydra app
        pass
    try:
        return list(cfg.hydra.overrides.task) if cfg is not None and "hydra" in cfg else []
    except Exception:  # noqa: BLE001
        return []


def data_given(cfg: DictConfig) -> bool:
    """Whether the command line sets the data (``data=...``, ``data.root=...``, ``+data.x=...``)."""
    return any(o.lstrip("+~").split("=")[0].split(".")[0] == "data" for o in command_line_overrides(cfg))


def use_run_data(cfg: DictConfig, runs: Sequence[str | Path]) -> str | None:
    """Point ``cfg.data`` at what the one run evaluated recorded, unless the command line gives the data;
    returns the line to print (None: nothing recorded, or several runs)."""
    if len(runs) != 1 or (rec := recorded_data(runs[0])) is None:
        return None
    run = run_folder(runs[0])
    if data_given(cfg):
        here = os.path.realpath(str(cfg.data.root))
        if here == str(rec.root):
            return None
        return (f"data: {here} (given on the command line; the run {run} trained on {rec.root}: "
                "the command line wins)")
    cfg.data = rec
    return f"data: {rec.root} (recorded by the run {run} in {RUN_DATA})"

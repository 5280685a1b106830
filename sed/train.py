"""``python -m sed.train``: train PS1, PS2 (SM+DM) or the mean-teacher CRNN baseline (conf/train.yaml).

A straight line: seed, datamodule, model, callbacks, loggers, trainer, fit, summary -- each object
built by ``hydra.utils.instantiate`` from its ``_target_`` in the config.  A run folder
``outputs/train/<experiment>/<timestamp>/`` holds ``checkpoints/{best,last}.ckpt``,
``metrics.json`` (the selected epoch's figures, :mod:`sed.training.selection`), ``reports/`` (per-class
table, plots), ``run_info.json`` and ``data.yaml`` (what it trains on) and the logger's files.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra import compose as _compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sed.core.errors import SedError, unwrapped_sed_errors
from sed.core.run_data import write_run_data
from sed.core.threads import set_torch_threads
from sed.core.warnings import quiet_loggers, quiet_third_party
from sed.evaluation.names import SUMMARY_KEYS
from sed.reporting.sweeps import sweep_points
from sed.reporting.tables import markdown_table, write_csv
from sed.training.callbacks import RunSummary
from sed.training.resume import (
    check_resumable,
    continue_in,
    final_run_dir,
    find_resume,
    resume_hint,
    write_record,
)
from sed.training.schedules import sgdr_epochs
from sed.training.speed import speed_callbacks

log = logging.getLogger(__name__)

OmegaConf.register_new_resolver("sgdr_epochs", sgdr_epochs, replace=True)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """conf/train.yaml with ``overrides``, outside a Hydra app (``run_dir``/``overrides`` left unset)."""

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return _compose("train", overrides=list(overrides))


def build_model(overrides: list[str] | tuple[str, ...] = ()):
    """The (untrained) system that conf/train.yaml with ``overrides`` trains, e.g.
    ``["experiment=baseline"]``."""

    return instantiate(compose(overrides).model)


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None,
        extra_callbacks: list | None = None) -> dict:
    """Train as ``cfg`` says, in ``run_dir``; returns the best validation figures."""


    cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.run_dir, cfg.overrides = str(run_dir), list(overrides or [])
    found = find_resume(cfg, run_dir)  # a resumed run continues in its own folder (sed/training/resume.py)
    resume = str(found.ckpt) if found else None
    set_torch_threads(cfg.get("torch_threads"))

    pl.seed_everything(int(cfg.seed), workers=True)
    with unwrapped_sed_errors():  # a constructor's one-line ConfigError, not Hydra's wrapper of it
        datamodule = instantiate(cfg.datamodule)
        model = instantiate(cfg.model)
    if found:  # checked before anything is written into the resumed run's folder
        check_resumable(found, model, cfg.get("ckpt_path"))
        run_dir = continue_in(found, run_dir, overrides) if _rank() == 0 else Path(found.run_dir)
        cfg.run_dir = str(run_dir)
    if _rank() == 0:
        write_record(cfg, run_dir)
        write_run_data(cfg.data, run_dir)  # what sed.tune / sed.eval read back (sed/core/run_data.py)
    if "wandb" in (cfg.get("logger") or {}) and cfg.logger.wandb.get("offline", True):
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    with unwrapped_sed_errors():
        callbacks = [instantiate(c) for c in cfg.callbacks.values() if c]
        callbacks += [instantiate(cfg.schedule), *speed_callbacks(cfg.get("speed")), *(extra_callbacks or [])]
        loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg]
    quiet_loggers(loggers)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into sys.exit(1) after its clean-up
        if trainer.interrupted and _rank() == 0:
            print(f"sed.train: {resume_hint(run_dir, overrides)}", file=sys.stderr, flush=True)
        raise

    summary = next(c for c in callbacks if isinstance(c, RunSummary))
    best = summary.best
    if trainer.is_global_zero:
        if best:
            summary.write(trainer)
        elif summary.path.is_file():  # ddp_spawn: the workers wrote it; this process saw no validation
            import json

            best = json.loads(summary.path.read_text()).get("best") or {}
        log.info("best checkpoint: %s (epoch %s by val/%s = %s; validation event F1 %s)",
                 trainer.checkpoint_callback.best_model_path, summary.best_epoch, summary.monitor,
                 best.get(summary.monitor), best.get("event_f1_macro"))
    return best


def summarize_sweep(sweep_dir: Path, config=None) -> str:
    """A multirun's ``summary.md`` and ``summary.csv``: one row per run (its overrides and best validation
    figures from ``metrics.json``), best event-F1 first (``hydra.callbacks.summary`` in conf/train.yaml)."""


    rows = []
    for p in sweep_points(sweep_dir, "metrics.json"):
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        best = m.get("best") or {}
        rows.append({"job": p.parent.name, "overrides": " ".join(m.get("overrides") or []),
                     **{k: best.get(k) for k in SUMMARY_KEYS},
                     "holdout_frame_map": best.get("holdout_frame_map"), "best_epoch": m.get("best_epoch")})
    cols = ["job", "overrides", *SUMMARY_KEYS, "holdout_frame_map", "best_epoch"]
    rows.sort(key=lambda r: -(r.get("event_f1_macro") or -math.inf))
    table = markdown_table(rows, cols) if rows else "(no finished run)"
    (sweep_dir / "summary.md").write_text(table + "\n")
    if rows:
        write_csv(rows, sweep_dir / "summary.csv", cols)
    return f"multirun summary ({len(rows)} runs, {sweep_dir}):\n{table}"


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


def link_latest(run_dir: Path) -> None:
    """``<run_dir>/../latest`` -> ``run_dir`` (so make eval finds
    outputs/train/<experiment>/latest/checkpoints/best.ckpt)."""
    run_dir = Path(os.path.realpath(run_dir))  # a run resumed through `latest` is its target, never the link
    link = run_dir.parent / "latest"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(run_dir.name, target_is_directory=True)
    except OSError as e:  # e.g. a file system without symlinks: not fatal
        log.warning("could not link %s -> %s: %s", link, run_dir, e)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:


    quiet_third_party()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        best = run(cfg, run_dir, overrides=list(hc.overrides.task))
        if not str(hc.mode).endswith("MULTIRUN"):
            link_latest(final_run_dir(run_dir))
    except SedError as e:
        print(f"error: {e}", file=sys.stderr)
        if hc.mode is not None and str(hc.mode).endswith("MULTIRUN"):
            raise
        sys.exit(1)
    return best.get("event_f1_macro")  # the objective for sweepers


if __name__ == "__main__":
    main()

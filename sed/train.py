"""``python -m sed.train``: train PS1, PS2 (SM+DM) or the mean-teacher CRNN baseline (conf/train.yaml).

Compose only: the datamodule (sed.datamodules.desed), the system (sed.training.systems), the callbacks
(sed.training.callbacks) and Lightning's Trainer, all from the Hydra config.  A run folder
``outputs/train/<experiment>/<timestamp>/`` holds ``checkpoints/{best,last}.ckpt``,
``metrics.json`` (best validation figures), ``reports/`` (per-class table, plots) and the logger's files.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sed.core.errors import ConfigError, SedError

log = logging.getLogger(__name__)


def build_system(cfg: DictConfig):
    """The LightningModule that ``cfg.model.system`` names."""
    from sed.training.systems import MeanTeacherSystem, SEDSystem

    m = cfg.model
    common = dict(postproc=cfg.postproc, val_psds=cfg.val.psds, val_psds_thresholds=cfg.val.psds_thresholds)
    if m.system == "sm_dm":
        return SEDSystem(sm=m.sm, dm=m.dm, schedule=cfg.schedule, loss=cfg.loss,
                         switch_epoch=cfg.datamodule.switch_epoch, **common)
    if m.system == "mean_teacher":
        return MeanTeacherSystem(crnn=m.crnn, **OmegaConf.to_container(m.mean_teacher, resolve=True), **common)
    raise ConfigError(f"model.system {m.system!r}: expected sm_dm or mean_teacher")


def build_datamodule(cfg: DictConfig):
    from sed.datamodules.desed import DesedDataModule

    kw = OmegaConf.to_container(cfg.datamodule, resolve=True)
    return DesedDataModule(data=cfg.data, seed=int(cfg.seed), **kw)


def resolve_resume(ckpt_path: str | None, run_dir: Path, experiment: str) -> str | None:
    """``null`` -> fresh; ``last`` -> this run folder's last.ckpt, else the newest run of this experiment
    that has one; a run folder -> its ``checkpoints/last.ckpt``; a file -> itself."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        own = run_dir / "checkpoints" / "last.ckpt"
        if own.is_file():
            return str(own)
        cands = sorted(Path("outputs/train", experiment).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not cands:
            raise ConfigError(f"ckpt_path=last: no outputs/train/{experiment}/*/checkpoints/last.ckpt to resume from")
        return str(cands[-1])
    p = Path(ckpt_path)
    if p.is_dir():
        p = p / "checkpoints" / "last.ckpt" if (p / "checkpoints").is_dir() else p / "last.ckpt"
    if not p.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: checkpoint {p} not found")
    return str(p)


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None, extra_callbacks: list | None = None) -> dict:
    """Train as ``cfg`` says, in ``run_dir``; returns the best validation figures."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from sed.training.callbacks import RunSummary, ValidationReport
    from sed.training.speed import speed_callbacks  # issue 15 hook: channels_last / torch.compile switches

    if "wandb" in (cfg.get("logger") or {}) and cfg.logger.wandb.get("offline", True):
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(int(cfg.seed), workers=True)
    resume = resolve_resume(cfg.get("ckpt_path"), run_dir, str(cfg.experiment_name))
    dm = build_datamodule(cfg)
    system = build_system(cfg)
    # best by validation event-F1, and the last epoch's (for resuming): two callbacks, because
    # Lightning's save_last only saves when a top-k checkpoint was saved in the same step
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/event_f1_macro",
                           mode="max", save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    summary = RunSummary(run_dir / "metrics.json", overrides=overrides, best_cb=ckpt, last_cb=last)
    callbacks = [ckpt, last, summary, ValidationReport(run_dir / "reports", plots=bool(cfg.val.plots)), *(extra_callbacks or [])]
    callbacks += speed_callbacks(cfg.get("speed"))
    loggers = [hydra.utils.instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(system, datamodule=dm, ckpt_path=resume)
    best = summary.best
    if trainer.is_global_zero:
        if best:
            summary.write(trainer)
        elif summary.path.is_file():  # ddp_spawn: the workers wrote it; this process saw no validation
            import json

            best = json.loads(summary.path.read_text()).get("best") or {}
        log.info("best checkpoint: %s (event F1 %s)", ckpt.best_model_path, best.get("event_f1_macro"))
    return best


def link_latest(run_dir: Path) -> None:
    """``<run_dir>/../latest`` -> ``run_dir`` (so make eval finds outputs/train/<experiment>/latest/checkpoints/best.ckpt)."""
    link = run_dir.parent / "latest"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(run_dir.name, target_is_directory=True)
    except OSError as e:  # e.g. a file system without symlinks: not fatal
        log.warning("could not link %s -> %s: %s", link, run_dir, e)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        best = run(cfg, run_dir, overrides=list(hc.overrides.task))
        if not str(hc.mode).endswith("MULTIRUN"):
            link_latest(run_dir)
    except SedError as e:
        print(f"error: {e}", file=sys.stderr)
        if hc.mode is not None and str(hc.mode).endswith("MULTIRUN"):
            raise
        sys.exit(1)
    return best.get("event_f1_macro")  # the objective for sweepers


if __name__ == "__main__":
    main()

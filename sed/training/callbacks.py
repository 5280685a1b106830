"""Training callbacks (configured in ``conf/callbacks/``, built by Hydra): the schedules, validation
scoring, validation reports and the run summary.

- :class:`SGDRSchedule` owns the LR of eq 9 (per iteration), T of eq 10 and the ramp-up w of eq 6
  (handed to the system as ``rampup_weight``); :class:`MeanTeacherRampup` does the same for the
  baseline (LR and ``consistency_weight``).  Both (:class:`IterationSchedule`) are pure functions of
  the iteration count, with the period in iterations fixed once and kept in the checkpoint, so a
  resumed run continues its schedule exactly.
- :class:`ValidationScorer` post-processes and scores the validation predictions the system returns
  (``sed.postproc``, ``sed.evaluation.metrics.evaluate``), logs ``val/*`` (learning curves; the best
  checkpoint is chosen on held-out synthetic clips, :mod:`sed.training.selection`) and keeps the result
  for :class:`ValidationReport` and :class:`RunSummary`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only

from sed.core.constants import FRAME_SECONDS
from sed.core.predictions import Predictions
from sed.datamodules.desed import SOURCES, validation_data
from sed.datamodules.targets import events_to_frame_targets
from sed.evaluation.frame_ap import frame_average_precision, macro
from sed.evaluation.metrics import evaluate
from sed.evaluation.names import SUMMARY_KEYS, VAL_LOG_KEYS
from sed.postproc import PostprocParams
from sed.reporting.plots import plot_psd_roc, plot_timeline
from sed.reporting.tables import per_class_rows, write_csv
from sed.training.schedules import SGDRTracker, epochs_to_iterations, rampup
from sed.training.selection import HoldoutScorer, selection_notes

log = logging.getLogger(__name__)


class IterationSchedule(pl.Callback):
    """Base of the schedule callbacks: before each iteration, the LR of every param group and one
    declared attribute of the system (``weight_attr``) are set from the iteration count alone, and logged.

    ``period_epochs`` (a length in epochs) is turned into iterations once, at the first start of
    training, from the trainer's epoch length; the result (``period``) is kept in the checkpoint,
    so a resumed run continues the schedule it started with.  ``max_epochs``: the epoch budget the
    config derived or chose for this schedule; a trainer whose budget differs is reported, not changed.
    """

    weight_attr = ""

    def __init__(self, period_epochs: float, max_epochs: int | None = None) -> None:
        self.period_epochs, self.max_epochs = float(period_epochs), max_epochs
        self.period: float | None = None

    def period_from(self, iters_per_epoch: int) -> float:
        raise NotImplementedError

    def at(self, step: int) -> tuple[float, float, dict[str, float]]:
        """``(lr, weight, logged values)`` at iteration ``step``."""
        raise NotImplementedError

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.period is None:
            self.period = self.period_from(int(trainer.num_training_batches))
        if self.max_epochs is not None and trainer.max_epochs != self.max_epochs:
            log.info("trainer.max_epochs %s: not the %s epochs of the schedule (%s)", trainer.max_epochs,
                     self.max_epochs, type(self).__name__)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        lr, weight, logs = self.at(int(trainer.global_step))
        for opt in trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = lr
        setattr(pl_module, self.weight_attr, weight)
        pl_module.log_dict(logs, on_step=True, on_epoch=False, batch_size=1)

    def state_dict(self) -> dict:
        return {"period": self.period}

    def load_state_dict(self, state: dict) -> None:
        self.period = state.get("period")


class SGDRSchedule(IterationSchedule):
    """Eq 9 (SGDR LR per iteration) and eqs 10, 6 (T and the ramp-up w, reset at every restart).

    ``t_i``: T_i of the first cycle in iterations (``t_i_epochs`` x iterations per epoch, once; the base
    class's ``period``);
    each later cycle ``t_mult`` times longer.  Sets ``pl_module.rampup_weight`` = w and logs
    ``train/lr``, ``train/w``, ``train/T``, ``train/cycle``.  ``n_cycles``: the cycles the epoch
    budget ``max_epochs`` holds (conf/callbacks/sgdr.yaml derives one from the other).
    """

    weight_attr = "rampup_weight"

    def __init__(self, lr_max: float, lr_min: float, t_i_epochs: float, t_mult: float,
                 n_cycles: int | None = None, max_epochs: int | None = None) -> None:
        super().__init__(t_i_epochs, max_epochs)
        self.t_i_epochs = float(t_i_epochs)
        self.lr_max, self.lr_min = float(lr_max), float(lr_min)
        self.t_mult, self.n_cycles = float(t_mult), n_cycles

    @property
    def t_i(self) -> int | None:
        """T_i of the first cycle in iterations (None before training starts)."""
        return None if self.period is None else int(self.period)

    def period_from(self, iters_per_epoch: int) -> int:
        return epochs_to_iterations(self.t_i_epochs, iters_per_epoch)

    def at(self, step: int) -> tuple[float, float, dict[str, float]]:
        st = SGDRTracker(self.t_i, self.t_mult, self.lr_max, self.lr_min, step=step).state()
        return st.lr, st.w, {"train/lr": st.lr, "train/w": st.w, "train/T": st.T,
                             "train/cycle": float(st.cycle)}


class MeanTeacherRampup(IterationSchedule):
    """The DCASE 2020 baseline's ramp-up: r = exp(-5 (1 - p)^2), p = iteration / ``period`` clipped to 1
    (``period`` = ``rampup_epochs`` x iterations per epoch, at least 1); LR = ``lr`` x r and
    ``pl_module.consistency_weight`` = ``max_consistency`` x r (logged as ``train/lr``, ``train/w_cons``)."""

    weight_attr = "consistency_weight"

    def __init__(self, lr: float, rampup_epochs: float, max_consistency: float,
                 max_epochs: int | None = None) -> None:
        super().__init__(rampup_epochs, max_epochs)
        self.lr, self.max_consistency = float(lr), float(max_consistency)

    def period_from(self, iters_per_epoch: int) -> float:
        return max(1.0, self.period_epochs * max(1, iters_per_epoch))

    def at(self, step: int) -> tuple[float, float, dict[str, float]]:
        r = rampup(step / self.period)
        lr, w = self.lr * r, self.max_consistency * r
        return lr, w, {"train/lr": lr, "train/w_cons": w}


def validation_frame_map(frame: np.ndarray, events: list, classes: Sequence[str]) -> float:
    """Macro frame-level AP of ``(clips, frames, classes)`` probabilities against each clip's strong
    events."""
    targets = np.stack([events_to_frame_targets(ev, classes, n_frames=frame.shape[1]) for ev in events])
    return macro(frame_average_precision(frame, targets))


class ValidationScorer(pl.Callback):
    """Collects the system's validation probabilities, post-processes and scores them at the epoch end.

    ``postproc``: the ``postproc`` config node (Table 1); ``psds``: PSDS every epoch with
    ``psds_thresholds`` thresholds (``make eval`` uses 50); if PSDS fails it is turned off for the
    rest of the run.  Logs ``val/<k>`` for every k of ``VAL_LOG_KEYS`` and keeps
    ``last = (Predictions, EvalResult)`` for the report callbacks (:meth:`of` finds it).
    """

    def __init__(self, postproc: Mapping, psds: bool, psds_thresholds: int) -> None:
        self.params = PostprocParams.from_cfg(postproc)
        self.psds, self.psds_thresholds = bool(psds), int(psds_thresholds)
        self._frame: list[torch.Tensor] = []
        self._clip: list[torch.Tensor] = []
        self._index: list[torch.Tensor] = []
        self.last = None

    @staticmethod
    def of(trainer: pl.Trainer) -> ValidationScorer | None:
        """The trainer's scorer (``None`` if it has none)."""
        return next((c for c in trainer.callbacks if isinstance(c, ValidationScorer)), None)

    @staticmethod
    def last_of(trainer: pl.Trainer):
        """The last ``(Predictions, EvalResult)`` of the trainer's scorer, or ``None``."""
        sc = ValidationScorer.of(trainer)
        return None if sc is None or trainer.sanity_checking else sc.last

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._frame, self._clip, self._index = [], [], []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._frame.append(outputs["frame"].float().cpu())
        self._clip.append(outputs["clip"].float().cpu())
        self._index.append(outputs["index"].cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._index or trainer.sanity_checking:
            return
        dm = validation_data(trainer)
        idx = torch.cat(self._index).numpy()
        order = np.argsort(idx)
        frame = torch.cat(self._frame).numpy()[order]
        clip = torch.cat(self._clip).numpy()[order]
        files = [dm.val_features.filenames[i] for i in idx[order]]
        preds = Predictions(files, frame, clip, dm.classes, FRAME_SECONDS)
        result = self.score(preds, dm.val_truth)
        self.last = (preds, result)
        logged = {}
        for k in VAL_LOG_KEYS:
            v = result.metrics.get(k)
            if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                logged[f"val/{k}"] = float(v)
        fmap = validation_frame_map(frame, [dm.val_truth.get(f, []) for f in files], dm.classes)
        # threshold-free on the real split: the learning curve beside holdout_frame_map
        if math.isfinite(fmap):
            logged["val/frame_map"] = fmap
        # monitor `epoch`: the last epoch is the selected one
        logged["val/epoch"] = float(trainer.current_epoch)
        # identical on every rank (validation is not sharded): no sync needed
        pl_module.log_dict(logged, on_epoch=True, prog_bar=False, sync_dist=False, rank_zero_only=False)
        if "val/event_f1_macro" in logged:
            pl_module.log("val_event_f1", logged["val/event_f1_macro"], prog_bar=True)

    def score(self, preds, truth: Mapping):
        gt = {f: list(truth.get(f, [])) for f in preds.filenames}
        if self.psds:
            try:
                return evaluate(preds, gt, self.params, psds=True, n_thresholds=self.psds_thresholds,
                                threshold_independent=False)
            except Exception as e:  # noqa: BLE001 - PSDS must not stop training
                log.warning("validation PSDS failed (%s); scoring event/segment F1 only from now on", e)
                self.psds = False
        return evaluate(preds, gt, self.params, psds=False, threshold_independent=False)


class ValidationReport(pl.Callback):
    """After each validation: per-class F1 table, PSD-ROC and timeline plots, to the logger and to disk.

    Files (overwritten each epoch, so the folder shows the latest state): ``<dir>/per_class.csv``,
    ``psd_roc.png``, ``timeline.png``, and ``val_history.jsonl`` (one line of figures per epoch).
    With a W&B logger they are logged as ``val/per_class_f1`` (a wandb.Table) and images.
    """

    def __init__(self, dirpath: str | Path = "reports", plots: bool = True) -> None:
        self.dir, self.plots = Path(dirpath), bool(plots)
        self._t0 = self._train_s = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        import time

        if self._t0 is not None:  # training seconds of this epoch so far (validation runs before epoch end)
            self._train_s = time.perf_counter() - self._t0

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = ValidationScorer.last_of(trainer)
        if last is None:
            return
        preds, result = last
        m = result.metrics
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = per_class_rows(m)
        if rows:
            write_csv(rows, self.dir / "per_class.csv")
        line = {"epoch": trainer.current_epoch, "step": trainer.global_step, "train_seconds": self._train_s,
                **{k: m.get(k) for k in SUMMARY_KEYS}}
        with open(self.dir / "val_history.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        images = {}
        if self.plots:
            try:
                p = plot_psd_roc(result.curves, m, self.dir / "psd_roc.png", title="PSD-ROC (validation)")
                if p:
                    images["val/psd_roc"] = p
                dm = validation_data(trainer)
                truth = dm.val_truth or {}
                n_cls = [len({e[2] for e in truth.get(f, [])}) for f in preds.filenames]
                # the first clip with the most distinct true classes
                k = int(np.argmax(n_cls)) if n_cls else 0
                f = preds.filenames[k]
                logmel = None
                feats = dm.val_features
                if feats is not None:
                    logmel = np.asarray(feats.logmel[feats.index_of(f)])
                det = result.detections[result.detections["filename"] == f]
                images["val/timeline"] = plot_timeline(
                    self.dir / "timeline.png", f, preds.frame_probs[k], preds.classes, preds.frame_seconds,
                    list(zip(det["onset"], det["offset"], det["event_label"])), truth=list(truth.get(f, [])),
                    logmel=logmel, clip_probs=preds.clip_probs[k], duration=float(preds.durations[k]))
            except Exception as e:  # noqa: BLE001 - a plot must never stop training
                log.warning("validation plots failed: %s", e)
        self._to_wandb(trainer, rows, images)

    @staticmethod
    def _to_wandb(trainer: pl.Trainer, rows: list[dict], images: dict[str, Path]) -> None:
        from pytorch_lightning.loggers import WandbLogger

        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                import wandb

                data = {}
                if rows:
                    cols = list(rows[0])
                    data["val/per_class_f1"] = wandb.Table(columns=cols,
                                                           data=[[r[c] for c in cols] for r in rows])
                for k, p in images.items():
                    data[k] = wandb.Image(str(p))
                if data:
                    lg.experiment.log({**data, "trainer/global_step": trainer.global_step})


class RunSummary(pl.Callback):
    """Keeps the figures of the best epoch by ``val/<monitor>`` and writes ``metrics.json`` in the run folder.

    ``monitor``: a key of the validation scores (``event_f1_macro``) or any logged ``val/<monitor>``
    (default ``holdout_frame_map``, :mod:`sed.training.selection`); ties keep the later epoch, as
    :class:`sed.training.selection.BestCheckpoint`.  ``metrics.json`` holds ``criterion``, ``best``
    (the Table-1 validation figures, the criterion and, with a :class:`HoldoutScorer`, the per-class
    ``holdout_ap`` at the best epoch), ``best_epoch``, ``last`` (the same at the last epoch),
    ``notes`` (the selection warnings, :func:`sed.training.selection.selection_notes`), the checkpoint
    paths (of the ``ModelCheckpoint`` monitoring ``val/<monitor>`` and of the one without a monitor) and
    ``overrides`` -- what the multirun summary table reads.  At the end of fit each note goes to the run
    log and, with ``report``, to that file (one line each).
    """

    def __init__(self, path: str | Path, monitor: str, overrides: list[str] | None = None,
                 report: str | Path | None = None) -> None:
        self.path, self.monitor, self.overrides = Path(path), monitor, list(overrides or [])
        self.report = Path(report) if report else None
        self.best: dict[str, Any] = {}
        self.best_epoch: int | None = None
        self.last: dict[str, Any] = {}

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best", {}), state.get("best_epoch")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = ValidationScorer.last_of(trainer)
        if last is None:
            return
        m = last[1].metrics
        self.last = {k: m.get(k) for k in SUMMARY_KEYS}
        for k in ("holdout_frame_map", "frame_map"):  # the threshold-free criteria, kept whichever selects
            if f"val/{k}" in trainer.callback_metrics:
                self.last[k] = float(trainer.callback_metrics[f"val/{k}"])
        hs = HoldoutScorer.of(trainer)
        if hs is not None and hs.last is not None:  # per class, this epoch (NaN: no event frame -> null)
            self.last["holdout_ap"] = {c: a if math.isfinite(a) else None
                                       for c, a in hs.last["holdout_ap"].items()}
        v = m.get(self.monitor)
        if v is None and f"val/{self.monitor}" in trainer.callback_metrics:
            v = float(trainer.callback_metrics[f"val/{self.monitor}"])
            self.last[self.monitor] = v
        b = self.best.get(self.monitor)
        if v is not None and not math.isnan(v) and (b is None or v >= b):  # ties: the later epoch
            self.best, self.best_epoch = dict(self.last), trainer.current_epoch
        self.write(trainer)

    def notes(self, trainer: pl.Trainer) -> list[str]:
        hs = HoldoutScorer.of(trainer)
        crit = f"val/{self.monitor}"
        return hs.notes(self.best_epoch, crit) if hs is not None else selection_notes(self.best_epoch, crit)

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_epoch is None:
            return
        notes = self.notes(trainer)
        for line in notes:
            log.warning(line)
        if self.report is not None:
            self.report.parent.mkdir(parents=True, exist_ok=True)
            head = (f"checkpoint selection: best epoch {self.best_epoch} by val/{self.monitor} = "
                    f"{self.best.get(self.monitor)}")
            self.report.write_text("\n".join([head, *notes]) + "\n")

    @rank_zero_only
    def write(self, trainer: pl.Trainer) -> None:
        from pytorch_lightning.callbacks import ModelCheckpoint

        cks = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
        best_path = next((c.best_model_path for c in cks if c.monitor == f"val/{self.monitor}"), None) or None
        last_path = next((c.best_model_path for c in cks if c.monitor is None), None) or None
        out = {"criterion": f"val/{self.monitor}", "best": self.best, "best_epoch": self.best_epoch,
               "last": self.last,
               "notes": self.notes(trainer),
               "epochs_done": min(trainer.current_epoch + 1, trainer.max_epochs or 10**9),
               "global_step": trainer.global_step,
               "best_ckpt": best_path, "last_ckpt": last_path, "overrides": self.overrides}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2))
        tmp.replace(self.path)


class BatchRecorder(pl.Callback):
    """Debug/test aid: records which clips (source, row) each rank trains on, per epoch, to
    ``<dirpath>/batches_rank<r>.json`` ({epoch: [[source, row], ...]}) -- checks the curriculum and
    its sharding under DDP."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dir = Path(dirpath)
        self.seen: dict[int, list] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        pairs = [[SOURCES[int(s)], int(i)] for s, i in zip(batch["source"].tolist(), batch["index"].tolist())]
        self.seen.setdefault(int(trainer.current_epoch), []).extend(pairs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"batches_rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))

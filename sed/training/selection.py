"""Checkpoint selection that cannot pick a dead model (issue 10, part 2).

- :class:`HoldoutScorer` scores, after every validation, the frame probabilities of the held-out
  synthetic clips (:mod:`sed.datamodules.holdout`, never trained on) with a threshold-free criterion:
  frame-level macro average precision (:mod:`sed.evaluation.frame_ap`).  It needs no post-processing
  setting, so the epoch it picks does not depend on thresholds that are tuned later, and it costs one
  forward pass plus a sort (< 1 s for 500 clips).  Logs ``val/holdout_frame_map`` (the ``best``
  checkpoint's and :class:`~sed.training.callbacks.RunSummary`'s monitor) and ``val/holdout_ap/<class>``.
- :class:`BestCheckpoint`: Lightning's ``ModelCheckpoint`` where a tie keeps the LATER epoch.
- :func:`selection_notes`: the one-line warnings (best = first epoch; a class never above chance).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from sed.core.errors import ConfigError
from sed.datamodules.desed import validation_data
from sed.evaluation.frame_ap import chance_ap, frame_average_precision, macro

log = logging.getLogger(__name__)
CRITERION = "holdout_frame_map"
#: an AP within this of the class's prevalence counts as "not above chance"
CHANCE_TOL = 1e-9


def selection_notes(best_epoch: int | None, criterion: str, max_ap: Sequence[float] | None = None,
                    chance: Sequence[float] | None = None, classes: Sequence[str] = ()) -> list[str]:
    """The warnings of a run's selection, one line each: the best epoch is the first (0), and each class
    whose best AP over the epochs (``max_ap``) never rose above chance (its prevalence, ``chance``)."""
    notes = []
    if best_epoch == 0:
        notes.append(f"warning: the best epoch by {criterion} is the first one (epoch 0): "
                     "training did not improve the model on the selection data")
    if max_ap is not None and chance is not None:
        for c, a, p in zip(classes, max_ap, chance):
            if np.isfinite(p) and (not np.isfinite(a) or a <= p + CHANCE_TOL):
                notes.append(f"warning: class {c}: held-out frame AP never rose above chance "
                             f"(best {a:.4f} <= frame prevalence {p:.4f}) at any epoch")
    return notes


class HoldoutScorer(pl.Callback):
    """Frame-level AP of the held-out synthetic clips after every validation (not during the sanity check).

    ``batch_size``: clips per forward pass.  Keeps ``max_ap`` (per class, over the epochs; saved in
    checkpoints so that a resumed run remembers), ``chance`` (frame prevalence) and ``last`` (this
    epoch's ``{"holdout_frame_map": .., "holdout_ap": {class: ..}}``).  Every rank scores every clip.
    """

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = int(batch_size)
        self.max_ap: np.ndarray | None = None
        self.chance: np.ndarray | None = None
        self.last: dict[str, Any] | None = None
        self.classes: tuple[str, ...] = ()  # the datamodule's, set at fit start

    @staticmethod
    def of(trainer: pl.Trainer) -> HoldoutScorer | None:
        return next((c for c in trainer.callbacks if isinstance(c, HoldoutScorer)), None)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = validation_data(trainer)
        if not len(dm.holdout_rows):
            raise ConfigError("callbacks.holdout: no held-out synthetic clip (datamodule.holdout.share is 0 "
                              "or there is no synthetic split); set callbacks.holdout=null "
                              "callbacks.summary.monitor=event_f1_macro")
        self.chance, self.classes = chance_ap(dm.holdout_targets), tuple(dm.classes)

    @torch.no_grad()
    def predict(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> np.ndarray:
        """``(clips, frames, classes)`` frame probabilities of the held-out clips."""
        dm = validation_data(trainer)
        rows, logmel, out = dm.holdout_rows, dm.holdout_features.logmel, []
        with trainer.precision_plugin.val_step_context():
            for i in range(0, len(rows), self.batch_size):
                x = torch.from_numpy(np.asarray(logmel[rows[i : i + self.batch_size]], dtype=np.float32))
                frame, _ = pl_module.predict(x.to(pl_module.device))
                out.append(frame.float().cpu().numpy())
        return np.concatenate(out)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        frame = self.predict(trainer, pl_module)
        ap = frame_average_precision(frame, validation_data(trainer).holdout_targets)
        self.max_ap = ap if self.max_ap is None else np.fmax(self.max_ap, ap)
        classes = validation_data(trainer).classes
        self.last = {CRITERION: macro(ap), "holdout_ap": {c: float(a) for c, a in zip(classes, ap)}}
        logged = {f"val/{CRITERION}": self.last[CRITERION]}
        logged.update({f"val/holdout_ap/{c}": float(a) for c, a in zip(classes, ap) if np.isfinite(a)})
        # identical on every rank (the held-out clips are not sharded): no sync needed
        pl_module.log_dict(logged, on_epoch=True, prog_bar=False, sync_dist=False, rank_zero_only=False)

    def notes(self, best_epoch: int | None, criterion: str) -> list[str]:
        return selection_notes(best_epoch, criterion, self.max_ap, self.chance, self.classes)

    def state_dict(self) -> dict:
        return {"max_ap": None if self.max_ap is None else self.max_ap.tolist()}

    def load_state_dict(self, state: dict) -> None:
        m = state.get("max_ap")
        self.max_ap = None if m is None else np.asarray(m, dtype=np.float64)


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ties keep the later epoch (Lightning keeps the first): a model that
    stays as good as an earlier one replaces it, so a flat criterion never pins epoch 0."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        op = {"min": torch.le, "max": torch.ge}[self.mode]
        better = op(current, self.best_k_models[self.kth_best_model_path])
        return trainer.strategy.reduce_boolean_decision(bool(better))

"""Lightning glue: the SM+DM system of the paper (SPEC sections 4-5) and the mean-teacher CRNN baseline.

Both systems share :class:`BaseSystem`: validation collects frame and clip probabilities of the whole
validation split, post-processes them (``sed.postproc``) and scores them (``sed.evaluation.metrics.evaluate``)
at the end of every epoch; ``val/event_f1_macro`` drives the best checkpoint.  The last evaluation
is kept on ``self.last_eval`` for the plotting callback.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from sed.core.constants import CLASSES, FRAME_SECONDS
from sed.evaluation.names import VAL_LOG_KEYS
from sed.evaluation.predictions import Predictions
from sed.models import CRNN, DM, SM
from sed.training.losses import total_loss
from sed.training.schedules import SGDRTracker, epochs_to_iterations, rampup

log = logging.getLogger(__name__)


def _plain(x: Any) -> Any:
    """OmegaConf node -> plain python (hparams must pickle and print cleanly)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def _model_kwargs(cfg: Mapping | None) -> dict:
    cfg = dict(_plain(cfg) or {})
    cfg.pop("_target_", None)
    cfg.pop("name", None)
    return cfg


class BaseSystem(pl.LightningModule):
    """Validation scoring shared by the two systems; subclasses implement ``predict`` and ``training_step``."""

    system_name = "base"

    def __init__(self, postproc: Mapping | None = None, val_psds: bool = True, val_psds_thresholds: int = 10) -> None:
        super().__init__()
        self.postproc_cfg = _plain(postproc)
        self.val_psds, self.val_psds_thresholds = bool(val_psds), int(val_psds_thresholds)
        self._val_frame: list[torch.Tensor] = []
        self._val_clip: list[torch.Tensor] = []
        self._val_index: list[torch.Tensor] = []
        self.last_eval = None  # (Predictions, EvalResult) of the last validation
        self.best_metrics: dict[str, float] = {}

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T, F) log-mel -> (frame_probs (B, T, C), clip_probs (B, C))."""
        raise NotImplementedError

    # -- validation ------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        frame, clip = self.predict(batch["x"])
        self._val_frame.append(frame.detach().float().cpu())
        self._val_clip.append(clip.detach().float().cpu())
        self._val_index.append(batch["index"].cpu())

    def on_validation_epoch_start(self) -> None:
        self._val_frame, self._val_clip, self._val_index = [], [], []

    def on_validation_epoch_end(self) -> None:
        if not self._val_index or self.trainer.sanity_checking:
            return
        dm = self.trainer.datamodule
        idx = torch.cat(self._val_index).numpy()
        order = np.argsort(idx)
        frame = torch.cat(self._val_frame).numpy()[order]
        clip = torch.cat(self._val_clip).numpy()[order]
        files = [dm.val_features.filenames[i] for i in idx[order]]
        preds = Predictions(files, frame, clip, CLASSES, FRAME_SECONDS)
        result = self.score(preds, dm.val_truth)
        self.last_eval = (preds, result)
        m = result.metrics
        logged = {}
        for k in VAL_LOG_KEYS:
            v = m.get(k)
            if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                logged[f"val/{k}"] = float(v)
        # identical on every rank (validation is not sharded): no sync needed
        self.log_dict(logged, on_epoch=True, prog_bar=False, sync_dist=False, rank_zero_only=False)
        if "val/event_f1_macro" in logged:
            self.log("val_event_f1", logged["val/event_f1_macro"], prog_bar=True)

    def score(self, preds: Predictions, truth: Mapping):
        from sed.evaluation.metrics import evaluate
        from sed.postproc import PostprocParams

        params = PostprocParams.from_cfg(self.postproc_cfg)
        gt = {f: list(truth.get(f, [])) for f in preds.filenames}
        if self.val_psds:
            try:
                return evaluate(preds, gt, params, psds=True, n_thresholds=self.val_psds_thresholds,
                                threshold_independent=False)
            except Exception as e:  # noqa: BLE001 - PSDS must not stop training; F1 still drives checkpoints
                log.warning("validation PSDS failed (%s); scoring event/segment F1 only from now on", e)
                self.val_psds = False
        return evaluate(preds, gt, params, psds=False, threshold_independent=False)


class SEDSystem(BaseSystem):
    """SM and DM trained jointly on l_total (eq 8) with one Adam, SGDR LR per iteration (eq 9).

    ``schedule``: ``lr_max``, ``lr_min``, ``t_i_epochs`` (T_i in epochs, turned into iterations from
    the datamodule's epoch length), ``t_mult``.  ``loss``: ``tau`` (eq 7), ``unlabel_denominator``
    (``all`` | ``passed``, see :func:`sed.training.losses.unlabel_mse`).  ``switch_epoch``: l_unlabel only from
    this 0-based epoch on (the paper's 6th epoch = index 5).  The ramp-up w(T) of eq 6 uses the
    SGDR progress T of eq 10, so it restarts from exp(-5) at every LR restart.  The MSE terms
    (eqs 4, 7) back-propagate into both SM and DM (the paper detaches neither; our reading).
    """

    system_name = "sm_dm"

    def __init__(
        self,
        sm: Mapping | None = None,
        dm: Mapping | None = None,
        schedule: Mapping | None = None,
        loss: Mapping | None = None,
        switch_epoch: int = 5,
        postproc: Mapping | None = None,
        val_psds: bool = True,
        val_psds_thresholds: int = 10,
    ) -> None:
        super().__init__(postproc, val_psds, val_psds_thresholds)
        self.save_hyperparameters({
            "system": self.system_name, "sm": _model_kwargs(sm), "dm": _model_kwargs(dm),
            "schedule": dict(_plain(schedule) or {}), "loss": dict(_plain(loss) or {}),
            "switch_epoch": int(switch_epoch), "postproc": self.postproc_cfg,
            "val_psds": bool(val_psds), "val_psds_thresholds": int(val_psds_thresholds),
        })
        self.sm = SM(**_model_kwargs(sm))
        self.dm = DM(**_model_kwargs(dm))
        s = dict(_plain(schedule) or {})
        self.lr_max, self.lr_min = float(s.get("lr_max", 0.0012)), float(s.get("lr_min", 1e-6))
        self.t_i_epochs, self.t_mult = float(s.get("t_i_epochs", 1.0)), float(s.get("t_mult", 2.0))
        lo = dict(_plain(loss) or {})
        self.tau = float(lo.get("tau", 0.9))
        self.denominator = str(lo.get("unlabel_denominator", "all"))
        self.switch_epoch = int(switch_epoch)
        self.tracker: SGDRTracker | None = None

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sm(x), self.dm(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predict(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr_max)  # default betas and eps (paper)

    def _iters_per_epoch(self) -> int:
        dm = getattr(self.trainer, "datamodule", None)
        n = getattr(dm, "iters_per_epoch", None) if dm is not None else None
        return int(n or self.trainer.num_training_batches)

    def on_train_start(self) -> None:
        t0 = epochs_to_iterations(self.t_i_epochs, self._iters_per_epoch())
        self.tracker = SGDRTracker(t0, self.t_mult, self.lr_max, self.lr_min, step=int(self.global_step))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.tracker.step = int(self.global_step)  # the schedule is a pure function of the iteration
        st = self.tracker.state()
        for opt in self.trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = st.lr
        self._sched = st

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        st = self._sched
        use_unlabel = self.current_epoch >= self.switch_epoch
        sm_f, dm_c = self.sm(batch["x"]), self.dm(batch["x"])
        terms = total_loss(sm_f, dm_c, batch["y_f"], batch["y_c"], batch["has_frame"], batch["has_clip"],
                           batch["is_unlabel"], w=st.w, tau=self.tau, use_unlabel=use_unlabel,
                           denominator=self.denominator)
        loss = terms.total
        n = batch["x"].shape[0]
        logs = {"train/loss": loss, "train/l_f": terms.frame, "train/l_c": terms.clip, "train/l_con": terms.con,
                "train/l_unlabel": terms.unlabel, "train/lr": st.lr, "train/w": st.w, "train/T": st.T,
                "train/cycle": float(st.cycle)}
        if not math.isnan(terms.gate_pass):
            logs["train/gate_pass"] = terms.gate_pass
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/loss_epoch", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.tracker is not None:
            checkpoint["sgdr"] = self.tracker.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "sgdr" in checkpoint:
            self.tracker = SGDRTracker(**checkpoint["sgdr"])


class MeanTeacherSystem(BaseSystem):
    """DCASE 2020 Task 4 baseline training: a CRNN student, an EMA teacher, consistency MSE.

    As the DCASE 2020 baseline: loss = BCE(strong student, y_f) on clips with frame targets +
    BCE(weak student, y_c) on clips with clip targets + w_cons x (MSE(strong student, strong
    teacher) + MSE(weak student, weak teacher)) on every clip of the batch, with
    w_cons = ``max_consistency`` (2) x exp(-5 (1 - p)^2), p = progress through ``rampup_epochs``;
    Adam (betas 0.9, 0.999) whose LR ramps up the same way to ``lr`` (0.001); teacher weights
    updated after each step as EMA with ``ema_decay`` 0.999 (``min(1 - 1/(step+1), decay)``).
    ``predict_with``: which network validation and inference use (``student`` default).
    """

    system_name = "mean_teacher"

    def __init__(
        self,
        crnn: Mapping | None = None,
        lr: float = 0.001,
        rampup_epochs: float = 2.5,
        max_consistency: float = 2.0,
        ema_decay: float = 0.999,
        predict_with: str = "student",
        postproc: Mapping | None = None,
        val_psds: bool = True,
        val_psds_thresholds: int = 10,
    ) -> None:
        super().__init__(postproc, val_psds, val_psds_thresholds)
        if predict_with not in ("student", "teacher"):
            raise ValueError(f"predict_with {predict_with!r}: expected 'student' or 'teacher'")
        self.save_hyperparameters({
            "system": self.system_name, "crnn": _model_kwargs(crnn), "lr": float(lr),
            "rampup_epochs": float(rampup_epochs), "max_consistency": float(max_consistency),
            "ema_decay": float(ema_decay), "predict_with": predict_with, "postproc": self.postproc_cfg,
            "val_psds": bool(val_psds), "val_psds_thresholds": int(val_psds_thresholds),
        })
        self.student = CRNN(**_model_kwargs(crnn))
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.lr, self.rampup_epochs = float(lr), float(rampup_epochs)
        self.max_consistency, self.ema_decay, self.predict_with = float(max_consistency), float(ema_decay), predict_with

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.teacher if self.predict_with == "teacher" else self.student)(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predict(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.lr, betas=(0.9, 0.999))

    def _rampup(self) -> float:
        n = max(1, int(self.trainer.num_training_batches))
        p = self.global_step / max(1.0, self.rampup_epochs * n)
        return rampup(p)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._r = self._rampup()
        for opt in self.trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = self.lr * self._r

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        from sed.training.losses import clip_bce, frame_bce

        x = batch["x"]
        s_f, s_c = self.student(x)
        with torch.no_grad():
            self.teacher.train(self.student.training)
            t_f, t_c = self.teacher(x)
        l_strong = frame_bce(s_f, batch["y_f"], batch["has_frame"])
        l_weak = clip_bce(s_c, batch["y_c"], batch["has_clip"])
        w = self.max_consistency * self._r
        l_cons = w * ((s_f - t_f).pow(2).mean() + (s_c - t_c).pow(2).mean())
        loss = l_strong + l_weak + l_cons
        self.log_dict({"train/loss": loss, "train/l_strong": l_strong, "train/l_weak": l_weak,
                       "train/l_cons": l_cons, "train/w_cons": w, "train/lr": self.lr * self._r},
                      on_step=True, on_epoch=False, batch_size=x.shape[0])
        self.log("train/loss_epoch", loss.detach(), on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        alpha = min(1.0 - 1.0 / (self.global_step + 1), self.ema_decay)
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
            for t, s in zip(self.teacher.buffers(), self.student.buffers()):
                t.copy_(s)


SYSTEMS = {SEDSystem.system_name: SEDSystem, MeanTeacherSystem.system_name: MeanTeacherSystem}


def system_from_hparams(hp: Mapping) -> BaseSystem:
    """Rebuild an (untrained) system from a checkpoint's ``hyper_parameters``."""
    hp = dict(hp)
    name = hp.pop("system", SEDSystem.system_name)
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r} in checkpoint (known: {sorted(SYSTEMS)})")
    return SYSTEMS[name](**hp)

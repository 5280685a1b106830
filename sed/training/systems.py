"""LightningModules: the SM+DM system of the paper (SPEC sections 4-5) and the mean-teacher CRNN baseline.

A system holds its networks, its losses and ``training_step``; nothing else.  The per-iteration LR
and ramp-up weight are set by a schedule callback (:class:`sed.training.callbacks.SGDRSchedule`,
:class:`sed.training.callbacks.MeanTeacherRampup`) through a declared attribute (``rampup_weight``,
``consistency_weight``); validation steps return probabilities that
:class:`sed.training.callbacks.ValidationScorer` post-processes and scores.  Built by Hydra from
``conf/model/*.yaml`` (``_target_``); the class path is stored in the hyper-parameters so that
:func:`system_from_hparams` rebuilds any system from a checkpoint without a registry.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from sed.core.constants import DESED_CLASSES
from sed.models import CRNN, DM, SM
from sed.training.losses import clip_bce, frame_bce, total_loss
from sed.training.schedules import rampup


def _plain(x: Any) -> Any:
    """OmegaConf node -> plain python (hparams must pickle and print cleanly)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(x, (DictConfig, ListConfig)):
        return OmegaConf.to_container(x, resolve=True)
    return x


def _model_kwargs(cfg: Mapping | None, classes: Sequence[str]) -> dict:
    """A network's keyword arguments from its config node, with ``n_classes`` from the class list."""
    cfg = dict(_plain(cfg) or {})
    cfg.pop("_target_", None)
    cfg.pop("name", None)
    return {**cfg, "n_classes": len(classes)}


def _class_list(classes: Sequence[str] | None) -> tuple[str, ...]:
    """The system's output classes (``data.classes``); a checkpoint of an older sed has none: DESED's ten."""
    out = tuple(str(c) for c in (_plain(classes) if classes is not None else DESED_CLASSES))
    if not out or len(set(out)) != len(out):
        raise ValueError(f"classes {list(out)}: expected a non-empty list of distinct names (data.classes)")
    return out


class BaseSystem(pl.LightningModule):
    """What every system shares: ``predict`` for validation and inference, and the post-processing
    setting it carries into its checkpoints (``postproc_cfg``, read by ``sed.inference.predictor``), and
    the names of its output columns (``classes``, from ``data.classes``)."""

    def __init__(self, postproc: Mapping | None = None, classes: Sequence[str] | None = None) -> None:
        super().__init__()
        self.postproc_cfg = _plain(postproc)
        self.classes: tuple[str, ...] = _class_list(classes)

    def _save_hparams(self, **hp: Any) -> None:
        """Save ``hp`` plus the class path (``_target_``) that :func:`system_from_hparams` rebuilds from."""
        cls = type(self)
        self.save_hyperparameters({"_target_": f"{cls.__module__}.{cls.__qualname__}", **hp,
                                   "classes": list(self.classes), "postproc": self.postproc_cfg})

    #: half-width in frames of the frame output's receptive field, when it is local (SM); None when a
    #: frame depends on the whole clip (the CRNN's bidirectional GRU)
    frame_context: int | None = None

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T, F) log-mel -> (frame_probs (B, T, C), clip_probs (B, C))."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predict(x)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Probabilities of a validation batch (scored by ``ValidationScorer`` at the epoch end)."""
        frame, clip = self.predict(batch["x"])
        return {"frame": frame.detach(), "clip": clip.detach(), "index": batch["index"]}


class SEDSystem(BaseSystem):
    """SM and DM trained jointly on l_total (eq 8) with one Adam (default betas and eps, as the paper).

    ``tau``: eq 7's confidence gate; ``unlabel_denominator``: ``all`` | ``passed`` (see
    :func:`sed.training.losses.unlabel_mse`); ``switch_epoch``: l_unlabel only from this 0-based
    epoch on (the paper's 6th epoch = index 5).  The LR of eq 9 and ``rampup_weight`` (w of eq 6,
    which restarts with T of eq 10 at every LR restart) are set before each iteration by
    :class:`sed.training.callbacks.SGDRSchedule`.  The MSE terms (eqs 4, 7) back-propagate into
    both SM and DM (the paper detaches neither; our reading).
    """

    def __init__(self, sm: Mapping, dm: Mapping, tau: float, unlabel_denominator: str, switch_epoch: int,
                 postproc: Mapping | None = None, frame_pos_weight: float = 1.0,
                 classes: Sequence[str] | None = None) -> None:
        super().__init__(postproc, classes)
        sm, dm = _model_kwargs(sm, self.classes), _model_kwargs(dm, self.classes)
        self._save_hparams(sm=sm, dm=dm, tau=float(tau),
                           unlabel_denominator=str(unlabel_denominator), switch_epoch=int(switch_epoch),
                           frame_pos_weight=float(frame_pos_weight))
        self.frame_pos_weight = float(frame_pos_weight)
        self.sm = SM(**sm)
        self.dm = DM(**dm)
        self.tau, self.denominator = float(tau), str(unlabel_denominator)
        self.switch_epoch = int(switch_epoch)
        self.rampup_weight: float = rampup(0.0)  #: w of eq 6 for the current iteration (set by the schedule)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sm(x), self.dm(x)

    @property
    def frame_context(self) -> int:
        """SM's receptive field half-width in frames: its frame probabilities are local (see
        :attr:`sed.models.sm.SM.context_frames`), so ``sed detect`` may reuse them across overlapping
        windows."""
        return self.sm.context_frames

    def predict_frames(self, x: torch.Tensor) -> torch.Tensor:
        """SM_f alone: ``x`` (B, T, F) -> (B, T, C); any T (SM never pools time)."""
        return self.sm(x)

    def predict_clips(self, x: torch.Tensor) -> torch.Tensor:
        """DM_c alone: ``x`` (B, T, F) -> (B, C)."""
        return self.dm(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters())  # LR: eq 9, set per iteration by SGDRSchedule

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        use_unlabel = self.current_epoch >= self.switch_epoch
        sm_f, dm_c = self.sm(batch["x"]), self.dm(batch["x"])
        terms = total_loss(sm_f, dm_c, batch["y_f"], batch["y_c"], batch["has_frame"], batch["has_clip"],
                           batch["is_unlabel"], w=self.rampup_weight, tau=self.tau, use_unlabel=use_unlabel,
                           denominator=self.denominator, frame_pos_weight=self.frame_pos_weight)
        loss = terms.total
        n = batch["x"].shape[0]
        logs = {"train/loss": loss, "train/l_f": terms.frame, "train/l_c": terms.clip,
                "train/l_con": terms.con, "train/l_unlabel": terms.unlabel}
        if not math.isnan(terms.gate_pass):
            logs["train/gate_pass"] = terms.gate_pass
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/loss_epoch", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        return loss


class MeanTeacherSystem(BaseSystem):
    """DCASE 2020 Task 4 baseline training: a CRNN student, an EMA teacher, consistency MSE.

    As the DCASE 2020 baseline: loss = BCE(strong student, y_f) on clips with frame targets +
    BCE(weak student, y_c) on clips with clip targets + ``consistency_weight`` x (MSE(strong
    student, strong teacher) + MSE(weak student, weak teacher)) on every clip of the batch;
    Adam (betas 0.9, 0.999); the LR and ``consistency_weight`` ramp up together, set before each
    iteration by :class:`sed.training.callbacks.MeanTeacherRampup`; teacher weights updated after
    each step as EMA with ``ema_decay`` (``min(1 - 1/(step+1), decay)``).
    ``predict_with``: ``student`` | ``teacher``, the network validation and inference use.
    """

    def __init__(
        self, crnn: Mapping, ema_decay: float, predict_with: str, postproc: Mapping | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(postproc, classes)
        if predict_with not in ("student", "teacher"):
            raise ValueError(f"predict_with {predict_with!r}: expected 'student' or 'teacher'")
        crnn = _model_kwargs(crnn, self.classes)
        self._save_hparams(crnn=crnn, ema_decay=float(ema_decay), predict_with=predict_with)
        self.student = CRNN(**crnn)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.ema_decay, self.predict_with = float(ema_decay), predict_with
        self.consistency_weight: float = 0.0  #: w_cons of the current iteration (set by the ramp-up callback)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.teacher if self.predict_with == "teacher" else self.student)(x)

    def configure_optimizers(self):
        # LR: ramped up per iteration by MeanTeacherRampup
        return torch.optim.Adam(self.student.parameters(), betas=(0.9, 0.999))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = batch["x"]
        s_f, s_c = self.student(x)
        with torch.no_grad():
            self.teacher.train(self.student.training)
            t_f, t_c = self.teacher(x)
        l_strong = frame_bce(s_f, batch["y_f"], batch["has_frame"])
        l_weak = clip_bce(s_c, batch["y_c"], batch["has_clip"])
        l_cons = self.consistency_weight * ((s_f - t_f).pow(2).mean() + (s_c - t_c).pow(2).mean())
        loss = l_strong + l_weak + l_cons
        self.log_dict({"train/loss": loss, "train/l_strong": l_strong, "train/l_weak": l_weak,
                       "train/l_cons": l_cons}, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self.log("train/loss_epoch", loss.detach(), on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        alpha = min(1.0 - 1.0 / (self.global_step + 1), self.ema_decay)
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
            for t, s in zip(self.teacher.buffers(), self.student.buffers()):
                t.copy_(s)


def system_from_hparams(hp: Mapping) -> BaseSystem:
    """Rebuild an (untrained) system from a checkpoint's ``hyper_parameters`` (its ``_target_`` class)."""
    from hydra.utils import get_class

    hp = dict(hp)
    target = hp.pop("_target_", None)
    if not target:
        raise ValueError("no _target_ in the checkpoint's hyper_parameters (a checkpoint of an older sed)")
    try:
        cls = get_class(target)
    except Exception as e:  # noqa: BLE001 - hydra raises ImportError or its own error
        raise ValueError(f"system class {target!r} cannot be imported ({e})") from e
    if not (isinstance(cls, type) and issubclass(cls, BaseSystem)):
        raise ValueError(f"{target!r} is not a sed system (a subclass of {BaseSystem.__qualname__})")
    return cls(**hp)

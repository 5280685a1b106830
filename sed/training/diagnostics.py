"""Where SM's frame probabilities sit, per class and per source, epoch after epoch (issue 11's diagnosis).

:func:`frame_probability_stats` is the pure measure: for each class, the mean SM frame probability on
the frames the targets mark as the event and on the others, and the share of event frames at or
above a threshold.  :class:`FrameProbabilityDiagnostics` applies it after every validation to a
fixed sample of clips of each source that has frame truth:

* ``synthetic``: the held-out synthetic clips (strong truth, never trained on);
* ``weak_nmf``: weak training clips against their NMF frame labels (what the frame loss sees);
* ``weak_true``: the same clips against their true strong labels (generated data only:
  ``data.weak_truth_tsv``);
* ``validation``: the real validation clips (strong truth);

and writes one JSON line per epoch to ``<run>/reports/frame_probs.jsonl`` plus a figure at the end
(``frame_probs.png``): event vs background probability per class and source across epochs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from sed.datamodules.desed import validation_data
from sed.datamodules.targets import events_to_frame_targets
from sed.datamodules.tsv import read_strong_tsv
from sed.evaluation.frame_ap import frame_average_precision
from sed.reporting.plots import plot_frame_probability_history


def frame_probability_stats(
    probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5
) -> dict[str, list[float]]:
    """``probs``, ``targets``: ``(clips, frames, classes)``.  Per class: ``p_event`` mean probability on
    target frames, ``p_background`` on the others, ``hit`` share of target frames with p >= threshold,
    ``ap`` frame-level average precision (threshold-free: how well SM ranks the frames),
    ``n_event`` target frames (NaN statistics where a class has no such frame)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1, probs.shape[-1])
    y = np.asarray(targets, dtype=bool).reshape(-1, targets.shape[-1])
    n_ev, n_bg = y.sum(0), (~y).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_event = np.where(y, p, 0).sum(0) / n_ev
        p_background = np.where(~y, p, 0).sum(0) / n_bg
        hit = (y & (p >= threshold)).sum(0) / n_ev
    return {"p_event": p_event.tolist(), "p_background": p_background.tolist(), "hit": hit.tolist(),
            "ap": frame_average_precision(p, y).tolist(), "n_event": n_ev.astype(int).tolist()}


class FrameProbabilityDiagnostics(pl.Callback):
    """SM frame-probability statistics per class and source after every validation (not the sanity check).

    ``max_clips``: clips per source (the first ones, a fixed sample); ``threshold``: for ``hit``;
    ``dirpath``: where ``frame_probs.jsonl`` and ``frame_probs.png`` go."""

    def __init__(
        self, dirpath: str, max_clips: int = 64, threshold: float = 0.5, batch_size: int = 32
    ) -> None:
        self.dirpath, self.max_clips = Path(dirpath), int(max_clips)
        self.threshold, self.batch_size = float(threshold), int(batch_size)
        self.samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.history: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm, k = validation_data(trainer), self.max_clips
        if len(dm.holdout_rows):
            rows = dm.holdout_rows[:k]
            self.samples["synthetic"] = (np.array(dm.holdout_features.logmel[rows], np.float32),
                                         dm.holdout_targets[:k])
        weak = dm.sources.get("weak")
        if weak is not None and weak.frame:
            rows = np.array(sorted(weak.frame)[:k])
            x = np.array(weak.feats.logmel[rows], np.float32)
            self.samples["weak_nmf"] = (x, np.stack([weak.frame[int(r)] for r in rows]))
            truth = Path(str(dm.data_cfg.get("weak_truth_tsv") or ""))
            if truth.is_file():
                true = read_strong_tsv(truth, dm.classes)
                self.samples["weak_true"] = (x, np.stack(
                    [events_to_frame_targets(true.get(weak.feats.filenames[r], []), dm.classes) for r in rows]
                ))
        if dm.val_features is not None and len(dm.val_features):
            names = dm.val_features.filenames[:k]
            self.samples["validation"] = (
                np.array(dm.val_features.logmel[:len(names)], np.float32),
                np.stack([events_to_frame_targets(dm.val_truth.get(f, []), dm.classes) for f in names]),
            )

    @torch.no_grad()
    def _predict(self, pl_module: pl.LightningModule, x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch_size):
            frame, _ = pl_module.predict(torch.from_numpy(x[i:i + self.batch_size]).to(pl_module.device))
            out.append(frame.float().cpu().numpy())
        return np.concatenate(out)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.samples or trainer.global_rank != 0:
            return
        was_training = pl_module.training
        pl_module.eval()
        row: dict[str, Any] = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        for source, (x, y) in self.samples.items():
            row[source] = frame_probability_stats(self._predict(pl_module, x), y, self.threshold)
        pl_module.train(was_training)
        self.history.append(row)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with open(self.dirpath / "frame_probs.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        logged = {}
        for source in self.samples:
            for key in ("p_event", "p_background", "ap"):
                v = np.asarray(row[source][key], dtype=np.float64)
                if np.isfinite(v).any():
                    logged[f"diag/{source}/{key}"] = float(np.nanmean(v))
        if logged and trainer.loggers:
            for lg in trainer.loggers:
                lg.log_metrics(logged, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.history and trainer.global_rank == 0:
            plot_frame_probability_history(self.history, self.dirpath / "frame_probs.png",
                                           validation_data(trainer).classes)


def read_history(path: str | Path) -> list[Mapping[str, Any]]:
    """The rows :class:`FrameProbabilityDiagnostics` wrote (``frame_probs.jsonl``)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


__all__ = ["FrameProbabilityDiagnostics", "frame_probability_stats", "read_history"]

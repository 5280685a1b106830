"""Training callbacks: validation reports (tables, PSD-ROC and timeline plots), the run summary, and the
Hydra multirun summary table.

The LR (eq 9) and ramp-up (eqs 6, 10) are set every iteration inside the LightningModule
(:meth:`sed.training.systems.SEDSystem.on_train_batch_start`), from the iteration count alone, so a resumed run
continues its schedule exactly; best-by-event-F1 checkpointing is Lightning's ``ModelCheckpoint``
(built in :mod:`sed.train`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from sed.evaluation.names import SUMMARY_KEYS

log = logging.getLogger(__name__)


def per_class_rows(metrics: Mapping) -> list[dict[str, Any]]:
    """The per-class table of an evaluation: class, event F1/P/R, segment F1, counts."""
    rows = []
    for c, v in (metrics.get("per_class") or {}).items():
        rows.append({"class": c, **{k: v.get(k) for k in ("event_f1", "event_precision", "event_recall",
                                                            "segment_f1", "psds_f", "n_ref", "n_sys")}})
    return rows


def plot_psd_roc(curves: Mapping, path: Path) -> Path | None:
    """The PSD-ROC curves (eTPR against eFPR) of the three PSDS settings, if the evaluation computed them."""
    cv = (curves or {}).get("psds_eval")
    if not cv:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for key in ("psds", "psds_cross_trigger", "psds_macro"):
        if key in cv:
            ax.step(cv[key]["efpr"], cv[key]["etpr"], where="post", label=key)
    ax.set_xlabel("eFPR (per hour)")
    ax.set_ylabel("eTPR")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("PSD-ROC (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_timeline(preds, detections, truth: Mapping, logmel: np.ndarray | None, path: Path, clip: int | None = None) -> Path:
    """One validation clip: log-mel, the frame probabilities of its true and detected classes, and
    the true (top lane) and detected (bottom lane) events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sed.reporting.plots import CLASS_COLORS, draw_events, draw_logmel

    if clip is None:  # the first clip with the most distinct true classes
        n_cls = [len({e[2] for e in truth.get(f, [])}) for f in preds.filenames]
        clip = int(np.argmax(n_cls)) if n_cls else 0
    f = preds.filenames[clip]
    true = [(float(e[0]), float(e[1]), str(e[2])) for e in truth.get(f, [])]
    det = detections[detections["filename"] == f]
    det = [(float(r.onset), float(r.offset), str(r.event_label)) for r in det.itertuples()]
    shown = sorted({e[2] for e in true} | {e[2] for e in det})
    t = np.arange(preds.frame_probs.shape[1]) * preds.frame_seconds
    rows = 3 if logmel is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 1.9 * rows), sharex=True)
    i = 0
    if logmel is not None:
        draw_logmel(axes[0], logmel, preds.frame_seconds)
        i = 1
    ax = axes[i]
    for c in shown:
        j = preds.classes.index(c)
        ax.plot(t, preds.frame_probs[clip, :, j], color=CLASS_COLORS.get(c), lw=1,
                label=f"{c} (clip {preds.clip_probs[clip, j]:.2f})")
    ax.set_ylim(0, 1)
    ax.set_ylabel("SM_f")
    if shown:
        ax.legend(fontsize=6, loc="upper right")
    ax = axes[i + 1]
    draw_events(ax, true, 0.52, 0.46)
    draw_events(ax, det, 0.02, 0.46)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.75], ["detected", "truth"])
    ax.set_xlim(0, t[-1] if len(t) else 10)
    ax.set_xlabel("time (s)")
    fig.suptitle(f, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
        if trainer.sanity_checking or getattr(pl_module, "last_eval", None) is None:
            return
        preds, result = pl_module.last_eval
        m = result.metrics
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = per_class_rows(m)
        if rows:
            with open(self.dir / "per_class.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        line = {"epoch": trainer.current_epoch, "step": trainer.global_step, "train_seconds": self._train_s,
                **{k: m.get(k) for k in SUMMARY_KEYS}}
        with open(self.dir / "val_history.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        images = {}
        if self.plots:
            try:
                p = plot_psd_roc(result.curves, self.dir / "psd_roc.png")
                if p:
                    images["val/psd_roc"] = p
                dm = trainer.datamodule
                truth = getattr(dm, "val_truth", {}) or {}
                n_cls = [len({e[2] for e in truth.get(f, [])}) for f in preds.filenames]
                k = int(np.argmax(n_cls)) if n_cls else 0
                logmel = None
                feats = getattr(dm, "val_features", None)
                if feats is not None:
                    logmel = np.asarray(feats.logmel[feats.index_of(preds.filenames[k])])
                images["val/timeline"] = plot_timeline(preds, result.detections, truth, logmel,
                                                       self.dir / "timeline.png", clip=k)
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
                    data["val/per_class_f1"] = wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows])
                for k, p in images.items():
                    data[k] = wandb.Image(str(p))
                if data:
                    lg.experiment.log({**data, "trainer/global_step": trainer.global_step})


class RunSummary(pl.Callback):
    """Keeps the best validation figures (by event-F1) and writes ``metrics.json`` in the run folder.

    ``metrics.json`` holds ``best`` (figures at the best epoch), ``best_epoch``, ``last``, the
    checkpoint paths and ``overrides`` -- what the multirun summary table reads.
    """

    def __init__(self, path: str | Path = "metrics.json", monitor: str = "event_f1_macro",
                 overrides: list[str] | None = None, best_cb=None, last_cb=None) -> None:
        self.path, self.monitor, self.overrides = Path(path), monitor, list(overrides or [])
        self.best_cb, self.last_cb = best_cb, last_cb
        self.best: dict[str, Any] = {}
        self.best_epoch: int | None = None
        self.last: dict[str, Any] = {}

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best", {}), state.get("best_epoch")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or getattr(pl_module, "last_eval", None) is None:
            return
        m = pl_module.last_eval[1].metrics
        self.last = {k: m.get(k) for k in SUMMARY_KEYS}
        v = m.get(self.monitor)
        b = self.best.get(self.monitor)
        if v is not None and (b is None or v > b):
            self.best, self.best_epoch = dict(self.last), trainer.current_epoch
        self.write(trainer)

    @rank_zero_only
    def write(self, trainer: pl.Trainer) -> None:
        best_path = getattr(self.best_cb, "best_model_path", None) or None
        last_path = getattr(self.last_cb, "best_model_path", None) or None
        out = {"best": self.best, "best_epoch": self.best_epoch, "last": self.last,
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

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        from sed.datamodules.desed import SOURCES

        pairs = [[SOURCES[int(s)], int(i)] for s, i in zip(batch["source"].tolist(), batch["index"].tolist())]
        self.seen.setdefault(int(trainer.current_epoch), []).extend(pairs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"batches_rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))


# ---------------------------------------------------------------------------- Hydra multirun


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job folder of a sweep that has a ``metrics.json``: overrides + best figures."""
    rows = []
    for p in sorted(Path(sweep_dir).glob("*/metrics.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        row = {"job": p.parent.name, "overrides": " ".join(m.get("overrides") or [])}
        row.update({k: (m.get("best") or {}).get(k) for k in SUMMARY_KEYS})
        row["best_epoch"] = m.get("best_epoch")
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the runs, best event-F1 first."""
    if not rows:
        return "(no finished run)"
    rows = sorted(rows, key=lambda r: -(r.get("event_f1_macro") or -math.inf))
    cols = ["job", "overrides", *SUMMARY_KEYS, "best_epoch"]

    def fmt(v):
        return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


class MultirunSummary(_HydraCallback):
    """Hydra callback: at the end of a multirun, write ``summary.md`` and ``summary.csv`` in the sweep
    folder (one row per run: its overrides and best validation figures) and print the table."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        rows = collect_runs(sweep)
        table = format_table(rows)
        (sweep / "summary.md").write_text(table + "\n")
        if rows:
            with open(sweep / "summary.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        print(f"\nmultirun summary ({len(rows)} runs, {sweep}):\n{table}")

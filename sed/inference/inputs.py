"""What ``sed.eval`` and ``sed.tune`` score: the predictions of a split (saved files, or the model run on
it) and its ground truth, with the clips whose audio is missing left out and real clip durations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from sed.core.classes import classes_of
from sed.core.constants import FRAME_SECONDS
from sed.core.errors import ConfigError, DataError
from sed.core.predictions import Predictions, average
from sed.core.runs import CheckpointError, latest_run, resolve_checkpoint
from sed.datamodules.layout import DesedLayout
from sed.datamodules.tsv import read_strong_tsv
from sed.evaluation.coverage import apply_real_durations, leave_out_missing_audio
from sed.inference.predictor import predict_split

log = logging.getLogger(__name__)

_PRED_CACHE: dict[tuple, Predictions] = {}
_GT_CACHE: dict[tuple, dict] = {}  # (path, mtime) -> strong labels, shared by the points of a sweep


def as_list(x: Any) -> list[str]:
    """A config value that may be one item or a list, as a list of strings (None: empty)."""
    if x is None:
        return []
    if isinstance(x, (list, tuple, ListConfig)):
        return [str(v) for v in x]
    return [str(x)]


def load_predictions_files(paths: Sequence[str]) -> Predictions:
    """Load one predictions file, or several and average them (ensemble, SPEC section 6); cached per
    process."""
    key = tuple((p, Path(p).stat().st_mtime_ns if Path(p).is_file() else 0) for p in paths)
    if key not in _PRED_CACHE:
        preds = [Predictions.load(p) for p in paths]
        _PRED_CACHE.clear()
        _PRED_CACHE[key] = preds[0] if len(preds) == 1 else average(preds)
    return _PRED_CACHE[key]


def checkpoints_of(cfg: DictConfig) -> list[str]:
    """The checkpoints ``cfg.ckpt`` names (``latest``: the newest run); none given and no predictions:
    the newest training run under ``cfg.train_runs`` (``make eval`` with no argument)."""
    ckpts = [str(latest_run(cfg.train_runs)) if c == "latest" else c for c in as_list(cfg.ckpt)]
    if not as_list(cfg.predictions) and not ckpts and (latest := latest_run(cfg.train_runs, required=False)):
        ckpts = [str(latest)]
    return ckpts


def _say_checkpoints(cfg: DictConfig, ckpts: list[str]) -> None:
    def name(c: str) -> str:
        try:
            return str(resolve_checkpoint(c))
        except CheckpointError:  # reported when it is loaded
            return c

    how = (f" (the newest training run under {cfg.train_runs}; ckpt=... picks another)"
           if not as_list(cfg.ckpt) or "latest" in as_list(cfg.ckpt) else "")
    log.info("evaluating %s%s", " + ".join(name(c) for c in ckpts), how)


def get_predictions(cfg: DictConfig, split: str, files: Any) -> tuple[Predictions, str]:
    """Predictions of ``split``: from ``files`` (saved predictions) or by running the checkpoints."""
    paths = as_list(files)
    ckpts = checkpoints_of(cfg) if not paths else []
    if paths:
        preds, source = load_predictions_files(paths), " + ".join(paths)
    elif ckpts:
        _say_checkpoints(cfg, ckpts)
        preds = predict_split(ckpts if len(ckpts) > 1 else ckpts[0], cfg.data, split,
                              batch_size=int(cfg.batch_size), device=str(cfg.device), progress=True)
        source = "model " + " + ".join(ckpts)
    else:
        raise ConfigError("give predictions=<predictions.npz> (or a list) or ckpt=<checkpoint or run folder> "
                          f"(or a list); no training run found under {cfg.train_runs}")
    preds.check_compatible(classes_of(cfg.data), FRAME_SECONDS, source=source)
    return preds, source


def get_ground_truth(cfg: DictConfig, split: str, path: Any) -> tuple[dict, str]:
    """Strong labels of ``split``: ``path`` when given, else the data config's TSV for the split."""
    if path:
        return read_strong(str(path), classes_of(cfg.data)), str(path)
    s = DesedLayout.from_cfg(cfg.data).split(split)
    if s.kind != "strong":
        raise ConfigError(f"split {split!r} has {s.kind} labels; scoring needs a strong-label split")
    return read_strong(str(s.tsv), classes_of(cfg.data)), str(s.tsv)


def read_strong(path: str, classes: Sequence[str]) -> dict:
    """``read_strong_tsv`` (a label outside ``classes`` is an error), cached per process while the file is
    unchanged (sweep points share it)."""
    p = Path(path)
    key = (path, p.stat().st_mtime_ns if p.is_file() else 0, tuple(classes))
    if key not in _GT_CACHE:
        _GT_CACHE[key] = read_strong_tsv(path, classes)
    return {f: list(v) for f, v in _GT_CACHE[key].items()}


def prepare_split(cfg: DictConfig, split: str, preds: Predictions, gt: dict, source: str, gt_source: str,
                  gt_given: Any, out_dir: Path) -> tuple[Predictions, dict, dict]:
    """A ground truth with no clip is an error; clips of the data config's split whose audio is missing
    are left out (reported; not with an explicit ground-truth TSV, whose audio is not known); real clip
    durations. Returns ``(preds, ground truth, info)``."""
    if not gt:
        raise DataError(f"{gt_source}: the ground truth lists no clip (a header-only TSV?)")
    info: dict[str, Any] = {}
    if str(cfg.on_missing) == "error" and not gt_given:
        gt, info["left_out"] = leave_out_missing_audio(gt, preds.filenames, data_cfg=cfg.data, split=split,
                                                       source=source, out_dir=out_dir)
    preds, info["durations"] = apply_real_durations(preds, cfg.data, split)
    return preds, gt, info

"""The evaluation of one unit (a run, or a seed's PS1+PS2 ensemble): predictions of both splits, the
post-processing fitted on the tuning split (``sed.tune``), ``sed.eval`` on both splits, and its figures."""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from sed.claims.configs import compose_config
from sed.claims.console import say
from sed.claims.plan import ENSEMBLE, REPORT_SPLIT, SPLITS, TUNE_SPLIT, Settings, data_overrides
from sed.claims.records import read_json
from sed.core.errors import ConfigError, SedError
from sed.core.predictions import Predictions, PredictionsError, average
from sed.eval import run as eval_run
from sed.inference.predictor import predict_split
from sed.scoring.splits import split_status
from sed.tune import run as tune_run

EVAL_OUTPUTS = ("step_eval.json", "postproc.yaml", "tune.json", "predictions", "tune", "eval")

MakePredictions = Callable[[str, Path], None]  # (split, path): write the unit's predictions of the split


def clear_evaluation(unit_dir: Path) -> None:
    """Remove a unit's evaluation outputs (its model is being trained again: they would be stale)."""
    for name in EVAL_OUTPUTS:
        p = unit_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def finished_evaluation(s: Settings, unit_dir: Path) -> dict | None:
    """The unit's ``step_eval.json`` when it was evaluated from ``--checkpoint``; else None (an evaluation
    from the other checkpoint is cleared)."""
    rec = read_json(unit_dir / "step_eval.json")
    if rec is not None and rec.get("checkpoint", "best") != s.checkpoint:
        clear_evaluation(unit_dir)  # evaluated from the other checkpoint of the run
        rec = None
    return rec


def prediction_maker(s: Settings, unit: str, seed: int, unit_dir: Path) -> MakePredictions:
    """How the unit's predictions are made: its seed's PS1 and PS2 averaged (the ensemble), else its model."""
    if unit == ENSEMBLE:
        return _ensemble_maker([s.out_dir / m / f"seed{seed}" / "predictions" for m in ("ps1", "ps2")])
    ecfg = compose_config("eval", [*data_overrides(s), *s.eval_args])
    src = unit_dir if s.checkpoint == "best" else unit_dir / "checkpoints" / "last.ckpt"
    return _model_maker(src, ecfg)


def _ensemble_maker(members: list[Path]) -> MakePredictions:
    """The average of the members' saved predictions of a split."""
    def make(split: str, path: Path) -> None:
        average([Predictions.load(m / f"{split}.npz") for m in members]).save(path)

    return make


def _model_maker(src: Path, ecfg: DictConfig) -> MakePredictions:
    """The predictions of the run (or checkpoint) ``src`` on a split, as ``sed.eval``'s config says."""
    def make(split: str, path: Path) -> None:
        predict_split(src, ecfg.data, split, batch_size=int(ecfg.batch_size),
                      device=str(ecfg.device), progress=False).save(path)

    return make


def report_failure(unit: str, seed: int, unit_dir: Path, e: Exception) -> None:
    """Write the traceback being handled to ``claims_eval_error.log``; say why the evaluation failed."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / "claims_eval_error.log").write_text(traceback.format_exc())
    why = str(e) if isinstance(e, (SedError, PredictionsError, OSError)) else f"{type(e).__name__}: {e}"
    say(f"evaluation of {unit} seed {seed} FAILED: {why} (traceback: {unit_dir / 'claims_eval_error.log'})")


def split_available(data_cfg: Any, split: str) -> bool:
    """Whether ``split`` is a strong-label split of the dataset with its labels on disk."""
    return split_status(data_cfg, split) is None


def evaluate_unit(s: Settings, unit_dir: Path, make_predictions: MakePredictions) -> dict[str, Any]:
    """Predictions of both splits (``make_predictions(split, path)`` when missing), post-processing fitted on
    validation, ``sed.eval`` with the fitted and Table 1 post-processing on both splits; returns the
    figures."""
    t0 = time.time()
    ecfg = compose_config("eval", [*data_overrides(s), *s.eval_args])
    paths = _predictions(s, ecfg, unit_dir, make_predictions)
    if not (read_json(unit_dir / "tune.json") and (unit_dir / "postproc.yaml").is_file()):
        _tune(s, unit_dir, paths[TUNE_SPLIT])
    with open_dict(ecfg):
        ecfg.predictions, ecfg.split = str(paths[TUNE_SPLIT]), TUNE_SPLIT
        ecfg.postproc_file = str(unit_dir / "postproc.yaml")
        ecfg.also_splits = [REPORT_SPLIT]
        ecfg.also_predictions = {k: str(v) for k, v in paths.items() if k != TUNE_SPLIT}
        ecfg.compare_table1 = True
    metrics = eval_run(ecfg, unit_dir / "eval")
    return {"figures": figures_of(metrics, unit_dir / "eval"), "seconds": round(time.time() - t0, 1)}


def _predictions(s: Settings, ecfg: DictConfig, unit_dir: Path,
                 make_predictions: MakePredictions) -> dict[str, Path]:
    """``{split: predictions file}`` of the dataset's splits, each made when missing (the tuning split must
    exist)."""
    paths = {}
    for split in SPLITS:
        if not split_available(ecfg.data, split):
            if split == TUNE_SPLIT:
                raise ConfigError(f"{s.root}: no strong-label {TUNE_SPLIT} split to tune on")
            continue
        p = unit_dir / "predictions" / f"{split}.npz"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            make_predictions(split, p)
        paths[split] = p
    return paths


def _tune(s: Settings, unit_dir: Path, predictions: Path) -> None:
    """``sed.tune`` on the tuning split's predictions: ``<unit>/postproc.yaml`` and ``tune.json``."""
    tcfg = compose_config("tune", [*data_overrides(s), *s.tune_args])
    with open_dict(tcfg):
        tcfg.predictions, tcfg.split, tcfg.run_dir = str(predictions), TUNE_SPLIT, str(unit_dir)
    tune_run(tcfg, unit_dir / "tune")


def figures_of(metrics: Mapping[str, Any], eval_dir: Path) -> dict[str, Any]:
    """``{split: {figure: v, "per_class_f1": {class: v}}}`` from a ``sed.eval`` metrics dict (its ``splits``
    rows; per-class figures from the main metrics or ``splits/<split>_fitted/metrics.json``)."""
    out: dict[str, Any] = {}
    for row in metrics.get("splits") or []:
        if row.get("missing"):
            continue
        d = out.setdefault(row["split"], {})
        if row["postproc"] == "Table 1":
            d["event_f1_table1"] = row.get("event_f1_macro")
            continue
        d["event_f1_fitted"] = row.get("event_f1_macro")
        for k in ("psds", "psds1", "psds2"):
            d[k] = row.get(k)
        sub = metrics if row["split"] == metrics["run"]["split"] else read_json(
            eval_dir / "splits" / f"{row['split']}_fitted" / "metrics.json") or {}
        d["per_class_f1"] = {c: v.get("event_f1") for c, v in (sub.get("per_class") or {}).items()}
    return out

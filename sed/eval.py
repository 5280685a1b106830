"""``python -m sed.eval`` (``make eval``): score a model on a DESED-layout split (issue 4).

Given saved predictions (``predictions=<file.npz>``, a list: ensemble average) or checkpoints
(``ckpt=<path or run folder>``, a list: ensemble), post-processes with ``conf/postproc/<name>`` and writes
into the run folder (``outputs/eval/<timestamp>``): ``detections.tsv`` (DCASE submission format),
``metrics.json``, ``report.md`` with plots, ``predictions.npz`` (when computed from checkpoints or
averaged), and on request ``scores/<clip>.tsv`` (sed_scores_eval format).

Sweeps run post-processing and metrics only: ``python -m sed.eval -m predictions=p.npz
postproc.hysteresis_low=0.05,0.08,0.1``; each point writes its ``metrics.json`` and
the sweep-summary callback (``sed.reporting.sweeps``, :func:`sed.evaluation.sweeps.sweep_summary`) prints
and writes ``summary.md``/``summary.csv`` in the sweep folder (``multirun/eval/<timestamp>``), ranked by
``select_metric`` on ``tune_split``, and with ``write_postproc=<name>`` writes the best setting as
``conf/postproc/<name>.yaml`` (``tuned_on`` records
the split). The split tuned on and the split reported are kept apart: with ``tune_split`` set, points are
ranked on it and reported on ``split``; the report says which split tuned the post-processing.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from sed_scores_eval.base_modules.io import write_sed_scores

from sed.core.classes import classes_of
from sed.core.errors import ConfigError, SedError
from sed.core.memory import keep_freed_memory
from sed.core.predictions import Predictions, PredictionsError
from sed.core.run_data import use_run_data
from sed.core.threads import set_torch_threads
from sed.core.warnings import quiet_third_party
from sed.evaluation.metrics import default_workers, evaluate, score_tables
from sed.evaluation.names import METRIC_KEYS, PSDS_EVAL_KEYS, SED_SCORES_KEYS
from sed.evaluation.report import add_alpha_st0, write_report, zero_explanations
from sed.inference.inputs import as_list, checkpoints_of, get_ground_truth, get_predictions, prepare_split
from sed.inference.predictor import stored_postproc
from sed.postproc import Decoder, PostprocParams
from sed.postproc.files import Choice, choose_postproc, tuned_postproc_file, write_postproc_file
from sed.scoring.splits import compare_table1, split_rows

log = logging.getLogger(__name__)

_DECODERS: dict[int, Any] = {}  # id(predictions) -> Decoder, reused across sweep points (steps 1-4 done once)


# ---------------------------------------------------------------------------- inputs
def _auto(v: Any, multirun: bool) -> bool:
    """``auto`` config values: on in a single run, off in a sweep (sweeps must take seconds)."""
    if isinstance(v, str) and v == "auto":
        return not multirun
    return bool(v)


def postproc_name(cfg: DictConfig | None = None) -> str | None:
    """The ``postproc`` config choice (``default``, ``paper``, ...): from Hydra, or from ``cfg.hydra`` when
    composed with ``return_hydra_config=True`` (tests); None when unknown."""
    try:
        return HydraConfig.get().runtime.choices.get("postproc")
    except Exception:  # noqa: BLE001 - not under Hydra (tests call run() directly)
        try:
            return str(cfg.hydra.runtime.choices.postproc) if cfg is not None and "hydra" in cfg else None
        except Exception:  # noqa: BLE001
            return None


def _decoder_for(preds: Predictions, params: PostprocParams):

    dec = _DECODERS.get(id(preds))
    if dec is None or not dec.reusable_for(preds, params):
        _DECODERS.clear()
        dec = _DECODERS[id(preds)] = Decoder.prepare(preds, params)
    return dec


def _postproc_overridden() -> bool:
    """True when the command line sets post-processing values (``postproc.x=`` or ``global_threshold=``)."""
    return any(o.lstrip("+~").startswith(("postproc.", "global_threshold=")) for o in _overrides())


def resolve_postproc(cfg: DictConfig, multirun: bool = False) -> Choice:
    """The post-processing to use and where it comes from (said on the console):
    :func:`sed.postproc.files.choose_postproc` (a sweep and ``use_tuned=false`` take the composed
    ``postproc`` config as given)."""
    name = postproc_name(cfg)
    fixed = multirun or _postproc_overridden() or not cfg.get("use_tuned", True)
    tuned = recorded = None
    runs = checkpoints_of(cfg) if not as_list(cfg.predictions) else []
    if not cfg.get("postproc_file") and name in (None, "default") and not fixed:
        tuned = tuned_postproc_file(runs, as_list(cfg.predictions))
        recorded = stored_postproc(runs[0]) if len(runs) == 1 and tuned is None else None
    choice = choose_postproc(file=cfg.get("postproc_file"), name=name if not fixed else (name or "default"),
                             node=cfg.postproc, overridden=_postproc_overridden(), tuned=tuned,
                             recorded=recorded, recorded_from=str(runs[0]) if recorded else "")
    if not multirun:
        log.info("%s", choice.line())
    return choice


def tuned_elsewhere(params: PostprocParams, cfg: DictConfig) -> str | None:
    """A line when ``params`` were tuned on another dataset than the one evaluated now, else None."""
    if not params.tuned_data or cfg.get("ground_truth"):
        return None
    here = os.path.realpath(str(cfg.data.root))
    there = params.tuned_data
    if here == there or Path(there).is_file() and Path(there).is_relative_to(here):
        return None
    return (f"this post-processing was tuned on {there}, not on the data evaluated now ({here}); tune it on "
            f"this data (python -m sed.tune data.root={cfg.data.root} ...) or pass postproc=paper "
            "for Table 1")


# ---------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Switches:
    """What one evaluation computes (``auto`` values resolved: on in a single run, off in a sweep)."""

    psds: bool
    threshold_independent: bool
    segment: bool
    n_thresholds: int
    engine: str
    select_metric: str
    tune_split: str | None

    def eval_kw(self, on_missing: str) -> dict[str, Any]:
        return dict(psds=self.psds, n_thresholds=self.n_thresholds,
                    threshold_independent=self.threshold_independent, on_missing=on_missing,
                    f1_engine=self.engine, segment=self.segment)


def switches(cfg: DictConfig, multirun: bool) -> Switches:
    """The figures to compute; the ranked figure is always computed on the split it is ranked on."""
    psds = _auto(cfg.psds, multirun)
    ti = _auto(cfg.threshold_independent, multirun) and psds
    segment = _auto(cfg.segment, multirun)
    tune_split = str(cfg.tune_split) if cfg.get("tune_split") else None
    sel = str(cfg.select_metric)
    if sel not in (*METRIC_KEYS, "segment_f1_micro"):
        raise ConfigError(f"select_metric: {sel!r} is not one of {list(METRIC_KEYS)}")
    if not tune_split or tune_split == str(cfg.split):  # the points are ranked on this split
        ti = ti or sel in SED_SCORES_KEYS
        psds = psds or ti or sel in PSDS_EVAL_KEYS
        segment = segment or sel.startswith("segment")
    engine = str(cfg.f1_engine) if str(cfg.f1_engine) != "auto" else ("fast" if multirun else "sed_eval")
    return Switches(psds, ti, segment, int(cfg.n_thresholds), engine, sel, tune_split)


def _setup(cfg: DictConfig, multirun: bool) -> tuple[DictConfig, Choice, PostprocParams]:
    """Threads, the run's own data, the post-processing (said), the device and class checks."""
    set_torch_threads(cfg.get("torch_threads"))
    cfg = copy.deepcopy(cfg)
    if (line := use_run_data(cfg, checkpoints_of(cfg) if not as_list(cfg.predictions) else [])) is not None:
        log.info("%s", line)
    choice = resolve_postproc(cfg, multirun)
    params = choice.params
    if not multirun and (other := tuned_elsewhere(params, cfg)):
        log.warning("%s: %s", choice.source, other)
    if cfg.get("global_threshold") is not None:
        params = params.with_threshold(_unit_float("global_threshold", cfg.global_threshold))
    dev = str(cfg.get("device", "auto"))
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={dev}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
                          "use device=cpu or auto")
    params = params.for_classes(classes_of(cfg.data), "data.classes")
    return cfg, choice, params


def _tune_split_figures(cfg: DictConfig, sw: Switches, params: PostprocParams, out_dir: Path,
                        multirun: bool) -> dict[str, Any]:
    """The ``tune`` block: the figures of the split a sweep ranks its points on."""
    if not as_list(cfg.tune_predictions) and as_list(cfg.predictions) and not as_list(cfg.ckpt):
        raise ConfigError(f"sed.eval: tune_split={sw.tune_split} needs tune_predictions=<its "
                          "predictions.npz> (predictions= holds the reported split only) or "
                          "ckpt=<checkpoint>")
    tpreds, tsource = get_predictions(cfg, sw.tune_split, cfg.tune_predictions)
    tgt, tgt_source = get_ground_truth(cfg, sw.tune_split, cfg.tune_ground_truth)
    tpreds, tgt, _ = prepare_split(cfg, sw.tune_split, tpreds, tgt, tsource, tgt_source,
                                   cfg.tune_ground_truth, out_dir)
    sel = sw.select_metric
    tres = evaluate(tpreds, tgt, params, psds=sel in PSDS_EVAL_KEYS, n_thresholds=sw.n_thresholds,
                    threshold_independent=sel in SED_SCORES_KEYS, on_missing=str(cfg.on_missing),
                    f1_engine=sw.engine, segment=sel.startswith("segment"),
                    decoder=_decoder_for(tpreds, params) if multirun else None)
    return {"split": sw.tune_split, "predictions": tsource, "ground_truth": tgt_source,
            **{k: tres.metrics.get(k) for k in METRIC_KEYS}}


def _run_record(cfg: DictConfig, sw: Switches, choice: Choice, params: PostprocParams, source: str,
                gt_source: str, coverage: dict) -> dict[str, Any]:
    """``metrics["run"]``: what was scored, with which post-processing, and the library versions."""
    return {
        "split": str(cfg.split), "tune_split": sw.tune_split, "postproc_tuned_on": params.tuned_on,
        "predictions": source, "ground_truth": gt_source, "postproc_name": postproc_name(),
        "postproc_source": choice.source, "postproc_why": choice.why, "postproc": params.to_dict(),
        "overrides": _overrides(), "libraries": dict(_library_versions()), **coverage,
    }


def _write_outputs(cfg: DictConfig, out_dir: Path, res, metrics: dict, preds, params: PostprocParams,
                   sw: Switches, multirun: bool) -> None:
    """detections.tsv, metrics.json, predictions.npz (computed or averaged), score TSVs, a written
    post-processing."""
    res.detections.to_csv(out_dir / "detections.tsv", sep="\t", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    computed = not as_list(cfg.predictions) or len(as_list(cfg.predictions)) > 1  # by the model, or averaged
    if cfg.save_predictions is True or (cfg.save_predictions == "auto" and computed):
        preds.save(out_dir / "predictions.npz")
    if cfg.save_scores_tsv:
        write_sed_scores(score_tables(res.decoder), out_dir / "scores")
    if cfg.write_postproc and not multirun:
        split = sw.tune_split or str(cfg.split)
        p = write_postproc_file(PostprocParams.from_cfg({**params.to_dict(), "tuned_on": split}),
                                str(cfg.write_postproc),
                                header=f"written by sed.eval from {out_dir}; tuned on split {split}")
        log.info("wrote %s", p)


def _all_splits(cfg: DictConfig, out_dir: Path, metrics: dict, res, preds, gt, params: PostprocParams,
                source: str, sw: Switches) -> None:
    """``metrics["splits"]``: every split with the fitted and Table 1 post-processing, one line each."""
    metrics["splits"] = split_rows(cfg, out_dir, params, source, res, preds, gt,
                                   sw.eval_kw(str(cfg.on_missing)),
                                   main_explanations=metrics.get("explanations"))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for row in metrics["splits"]:
        log.info(row["line"])
        if row.get("explanations") is not metrics.get("explanations"):
            for x in row.get("explanations") or []:
                log.info("  why zero: %s", x)


def _say(metrics: dict, out_dir: Path) -> None:
    for line in metrics["lines"].values():
        if "n/a" not in line:
            log.info(line)
    for line in metrics.get("explanations") or []:
        log.info("why zero: %s", line)
    log.info("outputs in %s", out_dir)


def run(cfg: DictConfig, out_dir: str | Path, *, multirun: bool = False) -> dict[str, Any]:
    """Evaluate as configured and write the outputs into ``out_dir``; returns the metrics dict written."""
    cfg, choice, params = _setup(cfg, multirun)
    sw = switches(cfg, multirun)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = str(cfg.split)
    preds, source = get_predictions(cfg, split, cfg.predictions)
    gt, gt_source = get_ground_truth(cfg, split, cfg.ground_truth)
    preds, gt, coverage = prepare_split(cfg, split, preds, gt, source, gt_source, cfg.ground_truth, out_dir)
    workers = int(cfg.psds_workers) if cfg.get("psds_workers") else default_workers()
    res = evaluate(preds, gt, params, **sw.eval_kw(str(cfg.on_missing)), workers=workers,
                   decoder=_decoder_for(preds, params) if multirun else None)
    metrics: dict[str, Any] = dict(res.metrics)
    if not multirun:  # issue 10 part 5: the zeros explained
        add_alpha_st0(metrics, res, gt)
        decoded = res.decoder.preds if res.decoder else preds
        metrics["explanations"] = zero_explanations(decoded, params, metrics)
    metrics["select_metric"] = sw.select_metric
    if sw.tune_split and sw.tune_split != split:
        metrics["tune"] = _tune_split_figures(cfg, sw, params, out_dir, multirun)
    metrics["run"] = _run_record(cfg, sw, choice, params, source, gt_source, coverage)
    _write_outputs(cfg, out_dir, res, metrics, preds, params, sw, multirun)
    if not multirun and (cfg.get("also_splits") or compare_table1(cfg, params)):
        _all_splits(cfg, out_dir, metrics, res, preds, gt, params, choice.source, sw)
    if _auto(cfg.report.enabled, multirun):
        write_report(out_dir, res, metrics, preds, gt, data_cfg=cfg.data, split=split,
                     n_timelines=int(cfg.report.n_timelines), logmel=bool(cfg.report.logmel))
    _say(metrics, out_dir)
    return metrics


def _unit_float(key: str, value: Any) -> float:
    """A number in [0, 1] from the config, else a ConfigError naming the key."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r}: expected a number in [0, 1]") from None
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{key}={value}: expected a number in [0, 1]")
    return v


# ---------------------------------------------------------------------------- both splits (issue 10 part 1)


def _overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not under Hydra
        return []


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:

    out = {}
    for name in ("sed_eval", "psds_eval", "sed_scores_eval", "numpy", "pandas", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


# ---------------------------------------------------------------------------- sweeps
# ---------------------------------------------------------------------------- entry point
@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:

    quiet_third_party()
    keep_freed_memory()  # batches of predictions reuse the heap: about 2x faster forward passes on CPU
    hc = HydraConfig.get()
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    try:
        metrics = run(cfg, hc.runtime.output_dir, multirun=multirun)
    except (SedError, PredictionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        if multirun:
            raise
        sys.exit(1)
    v = metrics.get(str(cfg.select_metric))
    return float(v) if isinstance(v, (int, float, np.floating)) else None


if __name__ == "__main__":
    main()

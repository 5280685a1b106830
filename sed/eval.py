"""``python -m sed.eval`` (``make eval``): score a model on a DESED-layout split (issue 4).

Given saved predictions (``predictions=<file.npz>``, a list: ensemble average) or checkpoints
(``ckpt=<path or run folder>``, a list: ensemble), post-processes with ``conf/postproc/<name>`` and writes
into the run folder (``outputs/eval/<timestamp>``): ``detections.tsv`` (DCASE submission format),
``metrics.json``, ``report.md`` with plots, ``predictions.npz`` (when computed from checkpoints or
averaged), and on request ``scores/<clip>.tsv`` (sed_scores_eval format).

Sweeps run post-processing and metrics only: ``python -m sed.eval -m predictions=p.npz
postproc.hysteresis_low=0.05,0.08,0.1``; each point writes its ``metrics.json`` and
the sweep-summary callback (``sed.reporting.sweeps``, :func:`sweep_summary`) prints and writes ``summary.md``/``summary.csv`` in the sweep folder
(``multirun/eval/<timestamp>``), ranked by ``select_metric`` on ``tune_split``, and with
``write_postproc=<name>`` writes the best setting as ``conf/postproc/<name>.yaml`` (``tuned_on`` records
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sed.core.constants import CLASSES
from sed.core.errors import ConfigError, SedError
from sed.core.paths import CONF_DIR
from sed.core.predictions import Predictions, PredictionsError
from sed.core.run_data import use_run_data
from sed.evaluation.names import PSDS_EVAL_KEYS, SED_SCORES_KEYS
from sed.inference.inputs import as_list, checkpoints_of, get_ground_truth, get_predictions, prepare_split
from sed.inference.predictor import stored_postproc
from sed.postproc import PostprocParams
from sed.postproc.files import Choice, choose_postproc, tuned_postproc_file, write_postproc_file
from sed.reporting.tables import markdown_table

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
    from sed.postproc import Decoder

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
    if not cfg.get("postproc_file") and name in (None, "default") and not fixed:
        runs = [c for c in checkpoints_of(cfg)] if not as_list(cfg.predictions) else []
        tuned = tuned_postproc_file(runs, as_list(cfg.predictions))
        recorded = stored_postproc(runs[0]) if len(runs) == 1 and tuned is None else None
    choice = choose_postproc(file=cfg.get("postproc_file"), name=name if not fixed else (name or "default"),
                             node=cfg.postproc, overridden=_postproc_overridden(), tuned=tuned, recorded=recorded,
                             recorded_from=str(runs[0]) if recorded else "")
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
            f"this data (python -m sed.tune data.root={cfg.data.root} ...) or pass postproc=paper for Table 1")


# ---------------------------------------------------------------------------- one run
def run(cfg: DictConfig, out_dir: str | Path, *, multirun: bool = False) -> dict[str, Any]:
    """Evaluate as configured and write the outputs into ``out_dir``; returns the metrics dict written."""
    from sed.core.threads import set_torch_threads
    from sed.evaluation import metrics as M

    set_torch_threads(cfg.get("torch_threads"))
    cfg = copy.deepcopy(cfg)
    if (line := use_run_data(cfg, checkpoints_of(cfg) if not as_list(cfg.predictions) else [])) is not None:
        log.info("%s", line)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    choice = resolve_postproc(cfg, multirun)
    params, pp_source = choice.params, choice.source
    if not multirun:
        other = tuned_elsewhere(params, cfg)
        if other:
            log.warning("%s: %s", pp_source, other)
    if cfg.get("global_threshold") is not None:
        params = params.with_threshold(_unit_float("global_threshold", cfg.global_threshold))
    dev = str(cfg.get("device", "auto"))
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device={dev}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
                              "use device=cpu or auto")
    params.check_classes(CLASSES, source="the class list (sed.core.constants.CLASSES)")
    psds = _auto(cfg.psds, multirun)
    ti = _auto(cfg.threshold_independent, multirun) and psds
    segment = _auto(cfg.segment, multirun)
    n_th = int(cfg.n_thresholds)
    tune_split = cfg.get("tune_split") or None
    sel = str(cfg.select_metric)
    if sel not in (*M.METRIC_KEYS, "segment_f1_micro"):
        raise ConfigError(f"select_metric: {sel!r} is not one of {list(M.METRIC_KEYS)}")
    if not tune_split or str(tune_split) == str(cfg.split):  # the points are ranked on this split
        ti = ti or sel in SED_SCORES_KEYS
        psds = psds or ti or sel in PSDS_EVAL_KEYS
        segment = segment or sel.startswith("segment")

    preds, source = get_predictions(cfg, str(cfg.split), cfg.predictions)
    gt, gt_source = get_ground_truth(cfg, str(cfg.split), cfg.ground_truth)
    preds, gt, coverage = prepare_split(cfg, str(cfg.split), preds, gt, source, gt_source, cfg.ground_truth, out_dir)
    engine = str(cfg.f1_engine) if str(cfg.f1_engine) != "auto" else ("fast" if multirun else "sed_eval")
    res = M.evaluate(
        preds,
        gt,
        params,
        psds=psds,
        n_thresholds=n_th,
        threshold_independent=ti,
        on_missing=str(cfg.on_missing),
        f1_engine=engine,
        segment=segment,
        decoder=_decoder_for(preds, params) if multirun else None,
        workers=int(cfg.psds_workers) if cfg.get("psds_workers") else M.default_workers(),
    )

    tuned_on = params.tuned_on
    metrics: dict[str, Any] = dict(res.metrics)
    if not multirun:  # issue 10 part 5: the zeros explained
        from sed.evaluation.report import add_alpha_st0, zero_explanations

        add_alpha_st0(metrics, res, gt)
        metrics["explanations"] = zero_explanations(res.decoder.preds if res.decoder else preds, params, metrics)
    metrics["select_metric"] = str(cfg.select_metric)
    if tune_split and str(tune_split) != str(cfg.split):
        need_psds = sel in PSDS_EVAL_KEYS
        if not as_list(cfg.tune_predictions) and as_list(cfg.predictions) and not as_list(cfg.ckpt):
            raise ConfigError(
                f"sed.eval: tune_split={tune_split} needs tune_predictions=<its predictions.npz> "
                "(predictions= holds the reported split only) or ckpt=<checkpoint>"
            )
        tpreds, tsource = get_predictions(cfg, str(tune_split), cfg.tune_predictions)
        tgt, tgt_source = get_ground_truth(cfg, str(tune_split), cfg.tune_ground_truth)
        tpreds, tgt, _ = prepare_split(cfg, str(tune_split), tpreds, tgt, tsource, tgt_source, cfg.tune_ground_truth,
                                   out_dir)
        tres = M.evaluate(
            tpreds,
            tgt,
            params,
            psds=need_psds,
            n_thresholds=n_th,
            threshold_independent=sel in SED_SCORES_KEYS,
            on_missing=str(cfg.on_missing),
            f1_engine=engine,
            segment=sel.startswith("segment"),
            decoder=_decoder_for(tpreds, params) if multirun else None,
        )
        metrics["tune"] = {
            "split": str(tune_split),
            "predictions": tsource,
            "ground_truth": tgt_source,
            **{k: tres.metrics.get(k) for k in M.METRIC_KEYS},
        }
    metrics["run"] = {
        "split": str(cfg.split),
        "tune_split": str(tune_split) if tune_split else None,
        "postproc_tuned_on": tuned_on,
        "predictions": source,
        "ground_truth": gt_source,
        "postproc_name": postproc_name(),
        "postproc_source": pp_source,
        "postproc_why": choice.why,
        "postproc": params.to_dict(),
        "overrides": _overrides(),
        "libraries": dict(_library_versions()),
        **coverage,
    }

    # outputs
    res.detections.to_csv(out_dir / "detections.tsv", sep="\t", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    computed = (
        not as_list(cfg.predictions) or len(as_list(cfg.predictions)) > 1
    )  # by the model, or averaged
    if cfg.save_predictions is True or (cfg.save_predictions == "auto" and computed):
        preds.save(out_dir / "predictions.npz")
    if cfg.save_scores_tsv:
        from sed_scores_eval.base_modules.io import write_sed_scores

        write_sed_scores(M.score_tables(res.decoder), out_dir / "scores")
    if cfg.write_postproc and not multirun:
        p = write_postproc_file(
            PostprocParams.from_cfg({**params.to_dict(), "tuned_on": str(tune_split or cfg.split)}),
            str(cfg.write_postproc),
            header=f"written by sed.eval from {out_dir}; tuned on split {tune_split or cfg.split}",
        )
        log.info("wrote %s", p)
    if not multirun and (cfg.get("also_splits") or _compare_table1(cfg, params)):
        eval_kw = dict(psds=psds, n_thresholds=n_th, threshold_independent=ti, on_missing=str(cfg.on_missing),
                       f1_engine=engine, segment=segment)
        metrics["splits"] = split_rows(cfg, out_dir, params, pp_source, res, preds, gt, eval_kw,
                                       main_explanations=metrics.get("explanations"))
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        for row in metrics["splits"]:
            log.info(row["line"])
            if row.get("explanations") is not metrics.get("explanations"):
                for x in row.get("explanations") or []:
                    log.info("  why zero: %s", x)
    if _auto(cfg.report.enabled, multirun):
        from sed.evaluation.report import write_report

        write_report(
            out_dir,
            res,
            metrics,
            preds,
            gt,
            data_cfg=cfg.data,
            split=str(cfg.split),
            n_timelines=int(cfg.report.n_timelines),
            logmel=bool(cfg.report.logmel),
        )
    for line in metrics["lines"].values():
        if "n/a" not in line:
            log.info(line)
    for line in metrics.get("explanations") or []:
        log.info("why zero: %s", line)
    log.info("outputs in %s", out_dir)
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
SPLIT_FIGURES = ("event_f1_macro", "segment_f1_macro", "psds", "psds_macro", "psds1", "psds2")


def _compare_table1(cfg: DictConfig, params: PostprocParams) -> bool:
    return bool(cfg.get("compare_table1", True)) and params.tuned_on is not None


def split_status(data_cfg: Any, split: str) -> str | None:
    """None when ``split`` is a strong-label split of the dataset with its TSV on disk, else why not."""
    from sed.datamodules.layout import DesedLayout

    try:
        s = DesedLayout.from_cfg(data_cfg).split(split)
    except ConfigError:
        return f"the data config has no split {split!r}"
    if s.kind != "strong":
        return f"split {split!r} has {s.kind} labels (scoring needs strong labels)"
    if not Path(s.tsv).is_file():
        return f"{s.tsv} not found"
    return None


def split_line(split: str, variant: str, tuned_on: str | None, m: Mapping[str, Any] | None, missing: str | None) -> str:
    """One report line: the split, the post-processing and its tuning split, the role of the split, figures."""
    pp = f"post-processing {variant}" + (f" (tuned on {tuned_on})" if tuned_on else "")
    if missing:
        return f"{split}: missing ({missing}); not reported"
    role = (
        "tuning split: optimistic (the post-processing was fitted on it)"
        if tuned_on == split
        else "reported split (never used for tuning)"
    )
    figs = ", ".join(
        f"{k} {100 * m[k]:.1f} %" if k.endswith("f1_macro") else f"{k} {m[k]:.3f}"
        for k in SPLIT_FIGURES
        if m.get(k) is not None
    )
    return f"{split}, {pp}: {figs} [{role}]"


def split_rows(
    cfg: DictConfig, out_dir: Path, params: PostprocParams, pp_source: str, res, preds, gt, eval_kw: dict,
    main_explanations: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Figures of every split (``split`` + ``also_splits``) with the configured post-processing and, when it was
    tuned, with Table 1 beside: one row (and one report line) each; extra evaluations under ``splits/``."""
    from sed.evaluation import metrics as M
    from sed.evaluation.report import add_alpha_st0, zero_explanations

    variants = [("as configured" if params.tuned_on is None else "fitted", params, pp_source)]
    if _compare_table1(cfg, params):
        paper = PostprocParams.from_cfg(OmegaConf.load(CONF_DIR / "postproc" / "paper.yaml"))
        variants.append(("Table 1", paper, "conf/postproc/paper.yaml"))
    splits = list(dict.fromkeys([str(cfg.split), *as_list(cfg.get("also_splits"))]))
    extra_preds = dict(cfg.get("also_predictions") or {})
    metrics_expl = main_explanations or []
    rows = []
    for split in splits:
        missing = None if split == str(cfg.split) else split_status(cfg.data, split)
        sp, sg = (preds, gt) if split == str(cfg.split) else (None, None)
        if missing is None and sp is None:
            files = extra_preds.get(split)
            if as_list(cfg.predictions) and not files and not as_list(cfg.ckpt):
                missing = f"predictions= holds split {cfg.split} only; give also_predictions.{split}=<its .npz> or ckpt="
            else:
                try:
                    sp, psrc = get_predictions(cfg, split, files)
                    sg, gsrc = get_ground_truth(cfg, split, None)
                    sp, sg, _ = prepare_split(cfg, split, sp, sg, psrc, gsrc, None, out_dir)  # missing audio left out
                except (SedError, PredictionsError, OSError) as e:
                    missing = f"cannot score it: {e}"
        for variant, p, source in variants[:1] if missing else variants:  # a missing split: one line
            row: dict[str, Any] = {"split": split, "postproc": variant, "postproc_source": source,
                                   "tuned_on": p.tuned_on, "missing": missing}
            if missing is None:
                if split == str(cfg.split) and p is params:
                    r = res
                else:
                    r = M.evaluate(sp, sg, p, **eval_kw)
                    add_alpha_st0(r.metrics, r, sg)
                    sub = out_dir / "splits" / f"{split}_{variant.replace(' ', '_').lower()}"
                    sub.mkdir(parents=True, exist_ok=True)
                    r.detections.to_csv(sub / "detections.tsv", sep="\t", index=False)
                    (sub / "metrics.json").write_text(json.dumps(r.metrics, indent=2) + "\n")
                row.update({k: r.metrics.get(k) for k in SPLIT_FIGURES})
                row["n_clips"] = r.metrics.get("n_clips")
                row["role"] = "tuning" if p.tuned_on == split else "reported"
                row["explanations"] = (
                    metrics_expl if r is res else zero_explanations(r.decoder.preds if r.decoder else sp, p, r.metrics)
                )
            row["line"] = split_line(split, variant, p.tuned_on, row, missing)
            rows.append(row)
    return rows


def _overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not under Hydra
        return []


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("sed_eval", "psds_eval", "sed_scores_eval", "numpy", "pandas", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


# ---------------------------------------------------------------------------- sweeps
def collect_sweep(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every point's ``metrics.json`` under ``sweep_dir`` (numeric subfolders), in job order."""
    from sed.reporting.sweeps import sweep_points

    return [{**json.loads(p.read_text()), "_dir": str(p.parent)} for p in sweep_points(sweep_dir, "metrics.json")]


def summarize_sweep(
    sweep_dir: str | Path, select_metric: str = "event_f1_macro", write_postproc: str | None = None
) -> dict:
    """Table of all points (printed and written as summary.md/.csv/.json), the best point by ``select_metric``
    on the tuning split (``tune`` block when present, else the reported split, flagged)."""
    import pandas as pd

    from sed.evaluation import metrics as M

    sweep_dir = Path(sweep_dir)
    rows = collect_sweep(sweep_dir)
    if not rows:
        log.warning("sweep summary: no metrics.json under %s", sweep_dir)
        return {}
    # the swept settings: overrides whose value differs between points
    ov = [dict(o.split("=", 1) for o in m["run"].get("overrides", []) if "=" in o) for m in rows]
    keys = sorted({k for o in ov for k in o})
    swept = [k for k in keys if len({o.get(k) for o in ov}) > 1] or keys
    table = []
    for m, o in zip(rows, ov):
        tune = m.get("tune") or {}
        r = {"point": Path(m["_dir"]).name, "overrides": " ".join(f"{k}={o[k]}" for k in swept if k in o)}
        r[f"tune:{select_metric}"] = tune.get(select_metric, m.get(select_metric))
        for k in M.METRIC_KEYS:
            r[k] = m.get(k)
        table.append(r)
    df = pd.DataFrame(table)
    score = pd.to_numeric(df[f"tune:{select_metric}"], errors="coerce")
    best_i = int(score.idxmax()) if score.notna().any() else None
    tune_split = rows[0]["run"].get("tune_split") or rows[0]["run"]["split"]
    report_split = rows[0]["run"]["split"]
    same = tune_split == report_split
    df.to_csv(sweep_dir / "summary.csv", index=False)
    shown = df.dropna(axis=1, how="all")
    lines = [
        f"# Sweep summary ({len(df)} points)",
        "",
        f"Ranked by `{select_metric}` on split **{tune_split}**; figures reported on split **{report_split}**."
        + (" Tuned and reported on the same split: the best point's figures are optimistic." if same else ""),
        "",
        markdown_table(shown.to_dict("records"), list(shown.columns)),
    ]
    out = {
        "n_points": len(df),
        "select_metric": select_metric,
        "tune_split": tune_split,
        "report_split": report_split,
    }
    if best_i is not None:
        best = rows[best_i]
        lines += [
            "",
            f"Best point: {df.loc[best_i, 'point']} ({df.loc[best_i, 'overrides']}), "
            f"{select_metric} = {score[best_i]:.4f} on {tune_split}.",
        ]
        out.update(
            best_point=df.loc[best_i, "point"],
            best_overrides=df.loc[best_i, "overrides"],
            best_score=float(score[best_i]),
            best_postproc=best["run"]["postproc"],
        )
        if write_postproc:
            params = PostprocParams.from_cfg({**best["run"]["postproc"], "tuned_on": tune_split})
            p = write_postproc_file(
                params,
                write_postproc,
                header=f"best of sweep {sweep_dir} by {select_metric} on split {tune_split}",
            )
            lines.append(f"Written as `{p}` (tuned_on: {tune_split}).")
            out["written"] = str(p)
    text = "\n".join(lines) + "\n"
    (sweep_dir / "summary.md").write_text(text)
    (sweep_dir / "summary.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(text)
    return out


def sweep_summary(sweep_dir: Path, config: DictConfig) -> None:
    """``hydra.callbacks.summary`` of conf/eval.yaml: :func:`summarize_sweep` with the sweep's settings."""
    summarize_sweep(sweep_dir, str(config.select_metric), config.get("write_postproc") or None)


# ---------------------------------------------------------------------------- entry point
@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from sed.core.memory import keep_freed_memory
    from sed.core.warnings import quiet_third_party

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

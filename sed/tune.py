"""``python -m sed.tune`` / ``sedx tune``: fit the post-processing of one model (or ensemble) per class
(issue 10).

From saved predictions (``predictions=<file.npz>``, a list: ensemble average) or a checkpoint
(``ckpt=<file or run folder>`` or ``latest``: the model runs on the split) and the split's strong ground
truth, :func:`sed.evaluation.tuning.tune` searches every class's frame threshold, median windows and tagging
threshold (and the shared hysteresis bound when ``grid.hysteresis_lows`` is a list) exactly, maximising the
macro event F1 (``objective=segment_f1``: segment F1). It writes ``postproc.yaml`` (grid, fitted values and
tune-split figures in its header) and ``tune.json`` into its own folder (``outputs/tune/<timestamp>``) and
into the run folder (the checkpoint's training run, else the folder of the predictions file, or
``run_dir=``), where ``sed.eval`` and ``sed detect`` then find it; ``name=<name>`` also writes
``conf/postproc/<name>.yaml``. Only ``split`` (default ``validation``) is read: never the reported split.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sed.core.classes import classes_of
from sed.core.errors import SedError
from sed.core.memory import keep_freed_memory
from sed.core.paths import CONF_DIR
from sed.core.predictions import PredictionsError
from sed.core.run_data import use_run_data
from sed.core.runs import run_folder
from sed.core.threads import set_torch_threads
from sed.evaluation.metrics import evaluate
from sed.evaluation.tuning import TuneGrid, tune
from sed.inference.inputs import as_list, checkpoints_of, get_ground_truth, get_predictions, prepare_split
from sed.postproc import PostprocParams
from sed.postproc.files import TUNED_FILE, write_postproc_file

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- the app
def header_lines(res, before: float | None, split: str, pred_source: str, gt_source: str) -> list[str]:
    """The header of a tuned postproc.yaml: provenance, grid, figures and the per-class choice."""
    g = res.grid
    obj = res.objective
    lines = [
        f"post-processing fitted by sed.tune on split {split} (predictions: {pred_source}; "
        f"ground truth: {gt_source})",
        f"objective: macro {obj.replace('_', ' ')}; exact per-class search over "
        f"{g.settings_per_class()} settings per class x {len(g.lows(res.params))} hysteresis bound(s)",
        f"grid: thresholds {list(g.thresholds)}; first windows {list(g.first_windows)}; "
        f"second windows {list(g.second_windows)}; tagging thresholds "
        f"{['off' if v is None else v for v in g.tagging_thresholds]}; "
        f"hysteresis_low {list(g.lows(res.params)) if g.hysteresis_lows is not None else 'not searched'}",
        f"tune-split macro {obj.replace('_', ' ')}: {100 * res.macro:.2f} % fitted"
        + (f", {100 * before:.2f} % with the base post-processing" if before is not None else "")
        + " (tuned and measured on the same split: optimistic)",
    ]
    for c, r in res.per_class.items():
        if r.get("tuned"):
            lines.append(
                f"  {c}: threshold {r['frame_threshold']}, windows {r['median_windows']}, tagging "
                f"{'off' if r['tagging_threshold'] is None else r['tagging_threshold']}: {obj} "
                f"{100 * r[obj]:.1f} % ({r['n_tp']} tp / {r['n_sys']} sys / {r['n_ref']} ref)"
            )
        else:
            lines.append(f"  {c}: not tuned ({r['reason']}): base values kept")
    return lines


def tuned_data_of(cfg: DictConfig) -> str:
    """Where the tuning split came from: the resolved data root, or the explicit ground-truth file."""
    if cfg.get("ground_truth"):
        return os.path.realpath(str(cfg.ground_truth))
    return os.path.realpath(str(cfg.data.root))


def _inputs(cfg: DictConfig, split: str, out_dir: Path) -> tuple[Any, dict, str, str, dict]:
    """The tuning split's predictions and ground truth (missing audio left out, as in sed.eval)."""
    preds, source = get_predictions(cfg, split, as_list(cfg.predictions))
    gt, gt_source = get_ground_truth(cfg, split, cfg.ground_truth)
    preds, gt, coverage = prepare_split(cfg, split, preds, gt, source, gt_source, cfg.ground_truth, out_dir)
    if not as_list(cfg.predictions):
        preds.save(out_dir / "predictions.npz")
    return preds, gt, source, gt_source, coverage


def _figures(preds, gt, params: PostprocParams, objective: str, on_missing: str) -> dict[str, Any]:
    """The tuning objective's figures of ``params`` on the tuning split (fast engine, no PSDS)."""
    return evaluate(preds, gt, params, psds=False, f1_engine="fast", segment=objective == "segment_f1",
                    on_missing=on_missing).metrics


def _target(cfg: DictConfig, out_dir: Path) -> Path | None:
    """Where the fit goes besides ``out_dir``: ``run_dir``, the predictions file's folder, or the run's."""
    files, ckpts = as_list(cfg.predictions), checkpoints_of(cfg)
    if cfg.get("run_dir"):
        target = Path(str(cfg.run_dir))
    elif len(files) == 1:
        target = Path(files[0]).parent
    elif len(ckpts) == 1 and not files:
        target = run_folder(ckpts[0])
    else:
        return None
    return None if target.resolve() == out_dir.resolve() else target


def _summary(cfg: DictConfig, res, grid: TuneGrid, base_m: dict, fitted_m: dict, source: str, gt_source: str,
             coverage: dict, written: list[Path]) -> dict[str, Any]:
    """tune.json: the fit, its grid, the base and fitted figures, per class."""
    key = "event_f1_macro" if res.objective == "event_f1" else "segment_f1_macro"
    per = "event_f1" if key.startswith("event") else "segment_f1"
    return {
        "split": str(cfg.split), "predictions": source, "ground_truth": gt_source, "objective": res.objective,
        "grid": grid.to_dict(), "fitted": {key: res.macro, "check_by_decoder": fitted_m.get(key)},
        "base": {key: base_m.get(key), "per_class": {c: v.get(per) for c, v in base_m["per_class"].items()}},
        "hysteresis_low": res.low, "left_out": coverage.get("left_out"),
        "macro_by_hysteresis_low": res.macro_by_low,
        "per_class": res.per_class, "seconds": res.seconds, "postproc": res.params.to_dict(),
        "written": [str(p) for p in written],
    }


def run(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Tune as configured; write postproc.yaml and tune.json into ``out_dir`` and the run folder."""
    set_torch_threads(cfg.get("torch_threads"))
    cfg = copy.deepcopy(cfg)
    if (line := use_run_data(cfg, checkpoints_of(cfg) if not as_list(cfg.predictions) else [])) is not None:
        log.info("%s", line)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = str(cfg.split)
    base = PostprocParams.from_cfg(cfg.postproc).for_classes(classes_of(cfg.data), "data.classes")
    grid = TuneGrid.from_cfg(cfg.grid)
    preds, gt, source, gt_source, coverage = _inputs(cfg, split, out_dir)
    workers = None if cfg.get("workers") in (None, "auto") else int(cfg.workers)
    res = tune(preds, gt, grid, base, objective=str(cfg.objective), tuned_on=split,
               on_missing=str(cfg.on_missing), workers=workers)
    res.params = replace(res.params, tuned_data=tuned_data_of(cfg))
    base_m = _figures(preds, gt, base, res.objective, str(cfg.on_missing))
    fitted_m = _figures(preds, gt, res.params, res.objective, str(cfg.on_missing))
    key = "event_f1_macro" if res.objective == "event_f1" else "segment_f1_macro"
    header = "\n# ".join(lines := header_lines(res, base_m.get(key), split, source, gt_source))
    target = _target(cfg, out_dir)
    places = [out_dir / TUNED_FILE, *([target / TUNED_FILE] if target else []),
              *([str(cfg.name)] if cfg.get("name") else [])]
    written = [write_postproc_file(res.params, str(p), header=header) for p in places]
    summary = _summary(cfg, res, grid, base_m, fitted_m, source, gt_source, coverage, written)
    for folder in (out_dir, *([target] if target else [])):
        (folder / "tune.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for line in lines:
        log.info(line)
    for p in written:
        log.info("wrote %s", p)
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="tune")
def main(cfg: DictConfig) -> float | None:
    keep_freed_memory()  # batches of predictions reuse the heap: about 2x faster forward passes on CPU
    try:
        s = run(cfg, HydraConfig.get().runtime.output_dir)
    except (SedError, PredictionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return float(next(iter(s["fitted"].values())))


# ---------------------------------------------------------------------------- `sed tune`
def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``tune`` subcommand of the ``sed`` console script (sed/cli.py registers it)."""
    p = sub.add_parser(
        "tune",
        help="fit the post-processing per class on a tuning split",
        description="Fit each class's frame threshold, median windows and tagging threshold on saved "
        "predictions (or a checkpoint) of a strongly-labelled split; writes postproc.yaml into the run "
        "folder.",
    )
    p.add_argument("predictions", nargs="*",
                   help="predictions .npz of the tuning split (several: ensemble average)")
    p.add_argument("--ckpt", default=None,
                   help="checkpoint, run folder or `latest` (when no predictions are given)")
    p.add_argument("--split", default="validation", help="the tuning split (default validation)")
    p.add_argument("--ground-truth", default=None,
                   help="strong-label TSV of the split (default: the data config's)")
    p.add_argument("--objective", default="event_f1", choices=("event_f1", "segment_f1"))
    p.add_argument("--name", default=None, help="also write conf/postproc/<name>.yaml")
    p.add_argument("--run-dir", default=None, help="where postproc.yaml goes (default: the run folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a Hydra override of conf/tune.yaml, e.g. --set data=desed "
                   "--set grid.hysteresis_lows=[null,0.1]")

    def run_cli(a: argparse.Namespace) -> int:
        ov = list(a.overrides)
        if a.predictions:
            ov.append("predictions=[" + ",".join(a.predictions) + "]")
        for k, v in (("ckpt", a.ckpt), ("split", a.split), ("ground_truth", a.ground_truth),
                     ("objective", a.objective), ("name", a.name), ("run_dir", a.run_dir)):
            if v is not None:
                ov.append(f"{k}={v}")
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose("tune", overrides=ov)
            run(cfg, Path("outputs/tune") / time.strftime("%Y-%m-%d_%H-%M-%S"))
        except (SedError, PredictionsError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # noqa: BLE001 - a bad override: one line, usage error
            if type(e).__module__.startswith(("hydra", "omegaconf")):
                print(f"error: {e}", file=sys.stderr)
                return 2
            raise
        return 0

    p.set_defaults(func=run_cli)


if __name__ == "__main__":
    main()

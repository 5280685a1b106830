"""Issue 20, part 2: the A/B of SM choices (conf/model/sm/) on tuning data, gathered from run folders.

Each choice was trained with the shipped PS1 budget on the bundled mini-DESED (dataset seed 0), one run
per training seed::

    python -m sed.train experiment=ps1 model/sm=<choice> seed=<s> torch_threads=1 logger=csv \\
        experiment_name=ab_<choice>_s<s>

This script reads ``outputs/train/ab_<choice>_s<s>/<newest run>/``: the per-epoch held-out frame AP per class
(``val/holdout_ap/<class>``, sed/training/selection.py) and validation frame mAP (``val/frame_map``) from
``csv/version_0/metrics.csv``, and the selected epoch from ``metrics.json`` (the shipped selection: the
last epoch).  The per-class validation frame AP is not logged, so it is computed here from
``checkpoints/best.ckpt`` (the selected epoch) over the whole validation split, as
sed.training.callbacks.validation_frame_map does (its macro mean is checked against the logged one).
Parameters and context come from the configs; step-cost ratios from ``benchmarks/results/train_sm.json``
(``python -m benchmarks.bench_train --sm ...``).  Writes ``benchmarks/results/sm_ab.json`` and prints
the markdown table of docs/sm_ab.md.

    python -m benchmarks.sm_ab [--choices gated_head,dilated_head,tcn] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS_DIR, _commit
from sed.core.constants import DESED_CLASSES as CLASSES  # the bundled mini-DESED's labels
from sed.core.constants import FRAME_SECONDS
from sed.models import count_parameters

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("Speech", "Dog", "Dishes")  # the short classes of part 1 (docs/RESULTS.md)


def run_dir(choice: str, seed: int) -> Path | None:
    """The newest finished run folder of ``choice`` and ``seed`` (None if there is none)."""
    runs = sorted((ROOT / "outputs" / "train" / f"ab_{choice}_s{seed}").glob("*/metrics.json"))
    done = [p.parent for p in runs if not p.parent.is_symlink()  # not the `latest` link
            and (p.parent / "checkpoints" / "best.ckpt").is_file()
            and json.loads(p.read_text()).get("epochs_done") == 15]
    return done[-1] if done else None


def epoch_rows(run: Path) -> dict[int, dict[str, float]]:
    """Validation-time figures by epoch from the CSV log (rows holding ``val/holdout_frame_map``)."""
    out: dict[int, dict[str, float]] = {}
    with open(run / "csv" / "version_0" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            if row.get("val/holdout_frame_map"):
                vals = {k: float(v) for k, v in row.items() if k.startswith("val/") and v}
                out.setdefault(int(row["epoch"]), {}).update(vals)
    return out


def validation_ap(ckpt: Path) -> np.ndarray:
    """Per-class frame AP of ``ckpt`` over the whole validation split (as the training callback)."""
    from sed.datamodules.cache import labels_for
    from sed.datamodules.targets import events_to_frame_targets
    from sed.evaluation.frame_ap import frame_average_precision
    from sed.inference.predictor import predict_split
    from sed.train import compose

    data = compose().data
    pred = predict_split(ckpt, data, "validation", device="cpu")
    truth = labels_for(data, "validation")
    y = np.stack([events_to_frame_targets(truth.get(f, []), n_frames=pred.frame_probs.shape[1])
                  for f in pred.filenames])
    return frame_average_precision(pred.frame_probs, y)


def run_figures(run: Path) -> dict:
    """One run: best held-out epoch and its AP; held-out and validation AP at the selected epoch."""
    rows, summary = epoch_rows(run), json.loads((run / "metrics.json").read_text())
    best = max(sorted(rows), key=lambda e: rows[e]["val/holdout_frame_map"])  # ties: the earlier epoch
    sel = int(summary["best_epoch"])
    from sed.evaluation.frame_ap import macro

    val = validation_ap(run / "checkpoints" / "best.ckpt")
    logged, val_map = rows[sel].get("val/frame_map"), macro(val)
    if logged is not None and abs(val_map - logged) > 1e-3:
        raise RuntimeError(f"{run}: recomputed validation frame mAP {val_map:.4f} != logged {logged:.4f}")
    return {
        "run": str(run.relative_to(ROOT)), "best_holdout_epoch": best, "selected_epoch": sel,
        "best_holdout_map": rows[best]["val/holdout_frame_map"],
        "best_holdout_ap": {c: rows[best][f"val/holdout_ap/{c}"] for c in CLASSES},
        "selected_holdout_map": rows[sel]["val/holdout_frame_map"],
        "selected_holdout_ap": {c: rows[sel][f"val/holdout_ap/{c}"] for c in CLASSES},
        "selected_val_map": float(val_map),
        "selected_val_ap": {c: float(a) for c, a in zip(CLASSES, val)},
    }


def mean_sd(xs: list[float]) -> dict:
    return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else float("nan"),
            "values": xs}


def choice_figures(choice: str, runs: list[dict], cost: dict) -> dict:
    """Mean and sd over seeds of each figure, with the choice's size, context and step cost."""
    from sed.train import build_model

    sm = build_model([f"model/sm={choice}"]).sm
    out = {"choice": choice, "seeds": len(runs), "sm_params": count_parameters(sm),
           "conv_layers": sm.conv_layers, "context_frames": sm.context_frames,
           "context_s": round(sm.context_frames * FRAME_SECONDS, 3),
           "step_cost_ratio_1thr": cost.get(f"sm_dm[{choice}]_step_cost_over_sm_dm_1thr", {}).get("value"),
           "runs": runs}
    if choice == "gated_head":
        out["step_cost_ratio_1thr"] = 1.0
    for key in ("best_holdout_map", "selected_holdout_map", "selected_val_map"):
        out[key] = mean_sd([r[key] for r in runs])
    for key in ("best_holdout_ap", "selected_holdout_ap", "selected_val_ap"):
        out[key] = {c: mean_sd([r[key][c] for r in runs]) for c in CLASSES}
    return out


def _ms(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['sd']:.3f}"


def table(figs: list[dict]) -> str:
    """The markdown table of docs/sm_ab.md."""
    head = (["SM choice", "best held-out mAP"] + [f"held-out {c}" for c in SHOWN]
            + ["held-out mAP, selected epoch", "val mAP"] + [f"val {c}" for c in SHOWN]
            + ["SM params", "step cost", "context"])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for f in figs:
        cells = ([f"`{f['choice']}`", _ms(f["best_holdout_map"])]
                 + [_ms(f["best_holdout_ap"][c]) for c in SHOWN]
                 + [_ms(f["selected_holdout_map"]), _ms(f["selected_val_map"])]
                 + [_ms(f["selected_val_ap"][c]) for c in SHOWN]
                 + [f"{f['sm_params']:,}", f"{f['step_cost_ratio_1thr']:.2f}x" if f["step_cost_ratio_1thr"]
                    else "n/a", f"±{f['context_frames']} frames (±{f['context_s']:.2f} s)"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--choices", default="gated_head,dilated_head,gentle_dilated,tcn,tcn_pooled")
    ap.add_argument("--seeds", default="0,1")
    a = ap.parse_args()
    cost_file = RESULTS_DIR / "train_sm.json"
    cost = json.loads(cost_file.read_text())["figures"] if cost_file.is_file() else {}
    figs = []
    for choice in a.choices.split(","):
        runs = [run_dir(choice, int(s)) for s in a.seeds.split(",")]
        if any(r is None for r in runs):
            print(f"{choice}: missing finished runs, skipped")
            continue
        figs.append(choice_figures(choice, [run_figures(r) for r in runs], cost))
    out = {"commit": _commit(), "data": "bundled mini-DESED, dataset seed 0 (tuning data)",
           "seeds": a.seeds, "choices": figs}
    (RESULTS_DIR / "sm_ab.json").write_text(json.dumps(out, indent=2) + "\n")
    print(table(figs))


if __name__ == "__main__":
    main()

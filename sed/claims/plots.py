"""The claims figures: learning curves (mean over seeds with a ±sd band) and per-class F1 bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sed.claims.plan import NAMES, REPORT_SPLIT, TUNE_SPLIT, Settings
from sed.claims.training import Training
from sed.reporting.plots import plot_claims_curves, plot_per_class_bars


def read_curves(run_dir: Path) -> pd.DataFrame | None:
    """Per-epoch learning curves of a run from its CSV logs (a resumed run's later versions win):
    ``train/<term>`` means over the epoch's steps, ``val/holdout_frame_map`` (and per class
    ``val/holdout_ap/<class>``), ``val/frame_map`` and ``val/event_f1_macro``."""
    logs = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"),
                  key=lambda p: int(p.parent.name.split("_")[-1]))
    frames = []
    for i, p in enumerate(logs):
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError):
            continue
        if "epoch" in df:
            frames.append(df.assign(_v=i))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    df = df[df["_v"] == df.groupby("epoch")["_v"].transform("max")]  # a resumed epoch: its last log
    cols = [c for c in df.columns if c.startswith(("train/l_", "val/holdout_ap/")) or c == "train/loss"
            or c in ("val/holdout_frame_map", "val/frame_map", "val/event_f1_macro")]
    return df.groupby("epoch")[cols].mean().sort_index()


def write_figures(s: Settings, result: Mapping[str, Any], trainings: Sequence[Training]) -> dict[str, Path]:
    """Learning curves (mean over seeds with a +-sd band) and per-class F1 bars; ``{title: path}``."""
    out = s.out_dir
    figs: dict[str, Path] = {}
    curves: dict[str, list] = {}
    for t in trainings:
        if result["trainings"].get(f"{t.system}/seed{t.seed}"):
            c = read_curves(t.run_dir)
            if c is not None and len(c):
                curves.setdefault(NAMES[t.system], []).append(c)
    if curves:
        figs["learning curves (mean ± sd over seeds)"] = plot_claims_curves(curves, out / "claims_curves.png")
    agg = result["aggregate"]
    split = REPORT_SPLIT if any(REPORT_SPLIT in (agg.get(u) or {}) for u in result["units"]) else TUNE_SPLIT
    bars = {NAMES[u]: {c: (v["mean"], v["sd"]) for c, v in (((agg.get(u) or {}).get(split) or {})
                                                            .get("per_class_f1") or {}).items()}
            for u in result["units"]}
    if any(bars.values()):
        title = (f"Per-class event F1 on {split} (post-processing fitted on {TUNE_SPLIT}; mean ± sd over "
                 f"{len(result['seeds'])} seeds)")
        figs[f"per-class event F1 on {split} (fitted, mean ± sd)"] = plot_per_class_bars(
            bars, out / "claims_per_class.png", title=title)
    return figs

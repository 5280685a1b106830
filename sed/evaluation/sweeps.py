"""Summaries of ``sed.eval`` sweeps (``hydra.callbacks.summary`` of conf/eval.yaml): every point's figures,
the best point by ``select_metric`` on the tuning split, and on request its post-processing written out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from sed.evaluation.names import METRIC_KEYS
from sed.postproc import PostprocParams
from sed.postproc.files import write_postproc_file
from sed.reporting.sweeps import sweep_points
from sed.reporting.tables import markdown_table

log = logging.getLogger(__name__)


def collect_sweep(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every point's ``metrics.json`` under ``sweep_dir`` (numeric subfolders), in job order."""
    return [{**json.loads(p.read_text()), "_dir": str(p.parent)}
            for p in sweep_points(sweep_dir, "metrics.json")]


def points_table(rows: list[dict[str, Any]], select_metric: str) -> pd.DataFrame:
    """One row per point: its swept overrides (those whose value differs between points), its score on the
    tuning split (``tune:<metric>``) and its reported figures."""
    ov = [dict(o.split("=", 1) for o in m["run"].get("overrides", []) if "=" in o) for m in rows]
    keys = sorted({k for o in ov for k in o})
    swept = [k for k in keys if len({o.get(k) for o in ov}) > 1] or keys
    table = []
    for m, o in zip(rows, ov):
        tune = m.get("tune") or {}
        r = {"point": Path(m["_dir"]).name, "overrides": " ".join(f"{k}={o[k]}" for k in swept if k in o)}
        r[f"tune:{select_metric}"] = tune.get(select_metric, m.get(select_metric))
        r.update({k: m.get(k) for k in METRIC_KEYS})
        table.append(r)
    return pd.DataFrame(table)


def _best(sweep_dir: Path, rows: list[dict], df: pd.DataFrame, score: pd.Series, best_i: int,
          select_metric: str, tune_split: str,
          write_postproc: str | None) -> tuple[list[str], dict[str, Any]]:
    """The best point's lines and summary entries; its post-processing written when asked."""
    best = rows[best_i]
    lines = ["", f"Best point: {df.loc[best_i, 'point']} ({df.loc[best_i, 'overrides']}), "
                 f"{select_metric} = {score[best_i]:.4f} on {tune_split}."]
    out = dict(best_point=df.loc[best_i, "point"], best_overrides=df.loc[best_i, "overrides"],
               best_score=float(score[best_i]), best_postproc=best["run"]["postproc"])
    if write_postproc:
        params = PostprocParams.from_cfg({**best["run"]["postproc"], "tuned_on": tune_split})
        p = write_postproc_file(params, write_postproc,
                                header=f"best of sweep {sweep_dir} by {select_metric} on split {tune_split}")
        lines.append(f"Written as `{p}` (tuned_on: {tune_split}).")
        out["written"] = str(p)
    return lines, out


def summarize_sweep(
    sweep_dir: str | Path, select_metric: str = "event_f1_macro", write_postproc: str | None = None
) -> dict:
    """Table of all points (printed and written as summary.md/.csv/.json), the best point by ``select_metric``
    on the tuning split (``tune`` block when present, else the reported split, flagged)."""
    sweep_dir = Path(sweep_dir)
    rows = collect_sweep(sweep_dir)
    if not rows:
        log.warning("sweep summary: no metrics.json under %s", sweep_dir)
        return {}
    df = points_table(rows, select_metric)
    score = pd.to_numeric(df[f"tune:{select_metric}"], errors="coerce")
    tune_split = rows[0]["run"].get("tune_split") or rows[0]["run"]["split"]
    report_split = rows[0]["run"]["split"]
    df.to_csv(sweep_dir / "summary.csv", index=False)
    shown = df.dropna(axis=1, how="all")
    lines = [
        f"# Sweep summary ({len(df)} points)",
        "",
        f"Ranked by `{select_metric}` on split **{tune_split}**; "
        f"figures reported on split **{report_split}**."
        + (" Tuned and reported on the same split: the best point's figures are optimistic."
           if tune_split == report_split else ""),
        "",
        markdown_table(shown.to_dict("records"), list(shown.columns)),
    ]
    out = {"n_points": len(df), "select_metric": select_metric, "tune_split": tune_split,
           "report_split": report_split}
    if score.notna().any():
        more, best = _best(sweep_dir, rows, df, score, int(score.idxmax()), select_metric, tune_split,
                           write_postproc)
        lines += more
        out.update(best)
    text = "\n".join(lines) + "\n"
    (sweep_dir / "summary.md").write_text(text)
    (sweep_dir / "summary.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(text)
    return out


def sweep_summary(sweep_dir: Path, config: DictConfig) -> None:
    """``hydra.callbacks.summary`` of conf/eval.yaml: :func:`summarize_sweep` with the sweep's settings."""
    summarize_sweep(sweep_dir, str(config.select_metric), config.get("write_postproc") or None)



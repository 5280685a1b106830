"""The claims result (``claims.json``) and its reports: ``claims.md`` with the figures, the claims section of
``--results`` (docs/RESULTS.md), and the verdicts on the console."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sed.claims.aggregate import K_BASELINE, aggregate, claims_table, holdout_aggregate, holdout_claims
from sed.claims.console import say
from sed.claims.formats import k_text
from sed.claims.markdown import render_markdown, replace_section
from sed.claims.plan import REPORT_SPLIT, SPLITS, TUNE_SPLIT, Settings
from sed.claims.plots import write_figures
from sed.claims.records import read_json, write_json
from sed.claims.training import Training
from sed.core.provenance import code_version

K_RULE = ("k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2), sample sd (ddof=1) over seeds; "
          f"'> baseline' holds when k > {K_BASELINE:g}, 'ensemble >' when the mean is higher")


def overrides_text(s: Settings) -> str:
    """The training overrides every run shares, then each system's own."""
    shared = " ".join(["experiment=<system>", "seed=<seed>", "logger=csv", "torch_threads=1", *s.train_args])
    return shared + "".join(f"; {k}: {' '.join(v)}" for k, v in s.system_args.items() if v)


def holdout_ap_of(run_dir: Path, checkpoint: str) -> dict[str, float | None] | None:
    """A run's per-class held-out frame AP at the epoch of its ``checkpoint`` (best | last), from its
    ``metrics.json`` (sed.training.callbacks.RunSummary); None for a run from before issue 20."""
    m = read_json(run_dir / "metrics.json") or {}
    return (m.get(checkpoint) or {}).get("holdout_ap")


def claims_result(s: Settings, data: Mapping[str, Any], per_seed: Mapping[str, Any],
                  trainings: Mapping[str, Any], failed: list[str], t_start: float) -> dict[str, Any]:
    """The claims dict of ``claims.json``: the setup, every per-seed figure, the aggregates and the claims."""
    units = s.units
    trainings = {k: {**rec, "holdout_ap": holdout_ap_of(Path(rec["run_dir"]), s.checkpoint)} if rec else rec
                 for k, rec in trainings.items()}
    agg, hagg = aggregate(per_seed), holdout_aggregate(trainings)
    return {
        "code": code_version(), "data": data, "seeds": list(range(s.seeds)), "systems": list(s.systems),
        "units": units,
        "tune_split": TUNE_SPLIT, "report_split": REPORT_SPLIT, "checkpoint": s.checkpoint,
        "train_overrides": [*s.train_args], "system_args": s.system_args,
        "train_overrides_text": overrides_text(s), "k_rule": K_RULE,
        "trainings": trainings, "per_seed": per_seed, "aggregate": agg,
        "claims": {sp: claims_table(agg, sp, units) for sp in SPLITS
                   if any(sp in (agg.get(u) or {}) for u in units)},
        "holdout_ap": {"aggregate": hagg, "claims": holdout_claims(hagg)},
        "failed": failed, "command": s.command, "seconds": round(time.time() - t_start, 1),
    }


def write_reports(s: Settings, result: Mapping[str, Any], trainings: Sequence[Training]) -> None:
    """``claims.json``, the figures, ``claims.md``, the ``--results`` section; the verdicts on the console."""
    out = s.out_dir
    write_json(out / "claims.json", result)
    figures = write_figures(s, result, trainings)
    md = render_markdown(result, {k: os.path.relpath(v, out) for k, v in figures.items()})
    (out / "claims.md").write_text(md)
    if s.results:
        write_results_section(Path(s.results), result, figures)
    holdout_rows = (result.get("holdout_ap") or {}).get("claims", [])
    for r in [*(result["claims"].get(REPORT_SPLIT) or []), *holdout_rows]:
        where = "" if r["figure"].startswith("held-out") else f" on {REPORT_SPLIT}"
        say(f"claim{where}: {r['claim']} [{r['figure']}]: {r['verdict']}"
            + (f", k = {k_text(r['k_sd'])} sd" if r["k_sd"] is not None else "")
            + (f" ({r['note']})" if r.get("note") else ""))
    say(f"claims: {out / 'claims.md'}, {out / 'claims.json'} ({result['seconds']} s)")


def write_results_section(res_path: Path, result: Mapping[str, Any], figures: Mapping[str, Path]) -> None:
    """Copy the figures to ``<results folder>/figures/<dataset>_<figure>`` and rewrite the dataset's claims
    section of ``res_path`` (one section per claims dataset)."""
    links, name = {}, result["data"]["name"]
    for title, p in figures.items():
        dest = res_path.parent / "figures" / f"{name}_{Path(p).name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
        links[title] = os.path.relpath(dest, res_path.parent)
    old = res_path.read_text() if res_path.is_file() else ""
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.write_text(replace_section(old, render_markdown(result, links), name))
    say(f"wrote the claims section of {res_path}")

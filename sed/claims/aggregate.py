"""Figures over seeds: mean and sample sd per unit, split and figure; the claims table (the claim rule)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sed.claims.plan import ENSEMBLE, NAMES

#: The figures aggregated over seeds (fitted post-processing unless named Table 1).
FIGURES = ("event_f1_fitted", "event_f1_table1", "psds", "psds1", "psds2")
K_BASELINE = 2.0  # "beats the baseline" needs a margin of more than this many sd
#: Issue 20's short classes, which the SM could not hear: its held-out frame AP must reach the CRNN's on each
#: (every class when the label set has none of them).
HELDOUT_CLASSES = ("Speech", "Dog", "Dishes")


def mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample sd (ddof=1; None with fewer than 2 values) of the values that are not None."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "sd": None, "n": 0, "min": None, "values": list(values)}
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return {"mean": m, "sd": sd, "n": len(v), "min": min(v), "values": list(values)}


def k_sd(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """(mean_a - mean_b) / sqrt((sd_a^2 + sd_b^2) / 2): the margin in pooled sd; +-inf when both sd are 0
    (0 for equal means); None when a mean or sd is unknown."""
    if a.get("mean") is None or b.get("mean") is None or a.get("sd") is None or b.get("sd") is None:
        return None
    diff = a["mean"] - b["mean"]
    pooled = math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def claim(name: str, figure: str, a: Mapping[str, Any], b: Mapping[str, Any],
          min_k: float | None, ties_hold: bool = False) -> dict[str, Any]:
    """One claims-table row: A > B on ``figure``; holds when k > ``min_k`` (None: when mean_A > mean_B, or
    mean_A >= mean_B with ``ties_hold``)."""
    k = k_sd(a, b)
    if a.get("mean") is None or b.get("mean") is None:
        verdict = "n/a (missing figures)"
    elif min_k is None:
        verdict = "holds" if a["mean"] > b["mean"] or (ties_hold and a["mean"] == b["mean"]) else "fails"
    elif k is None:
        verdict = "n/a (one seed: no sd)"
    else:
        verdict = "holds" if k > min_k else "fails"
    return {"claim": name, "figure": figure, "a": _ms(a), "b": _ms(b),
            "difference": None if a.get("mean") is None or b.get("mean") is None else a["mean"] - b["mean"],
            "k_sd": k, "rule": f"k > {min_k:g} sd" if min_k is not None else
            "mean not lower" if ties_hold else "mean higher",
            "verdict": verdict}


def _ms(s: Mapping[str, Any]) -> dict[str, Any]:
    """Mean, sd and n of a :func:`mean_sd` dict."""
    return {"mean": s.get("mean"), "sd": s.get("sd"), "n": s.get("n", 0)}


def aggregate(per_seed: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    """``{unit: {seed: {split: {figure: v, "per_class_f1": {class: v}}}}}`` -> ``{unit: {split: {figure:
    mean_sd, "per_class_f1": {class: mean_sd}}}}`` over the seeds (a split absent for a seed counts as
    None)."""
    out: dict[str, Any] = {}
    for unit, seeds in per_seed.items():
        out[unit] = {}
        splits = list(dict.fromkeys(s for figs in seeds.values() for s in figs))
        for split in splits:
            rows = [figs.get(split) or {} for figs in seeds.values()]
            agg = {f: mean_sd([r.get(f) for r in rows]) for f in FIGURES}
            classes = list(dict.fromkeys(c for r in rows for c in (r.get("per_class_f1") or {})))
            agg["per_class_f1"] = {c: mean_sd([(r.get("per_class_f1") or {}).get(c) for r in rows])
                                   for c in classes}
            out[unit][split] = agg
    return out


def _figure(agg: Mapping[str, Any], unit: str, split: str, f: str) -> Mapping[str, Any]:
    """``agg[unit][split][f]``; ``{}`` when any is missing."""
    return ((agg.get(unit) or {}).get(split) or {}).get(f) or {}


def claims_table(agg: Mapping[str, Any], split: str, units: Sequence[str]) -> list[dict[str, Any]]:
    """The claims on ``split``: PS1/PS2 > baseline on event F1 (fitted) and PSDS (2020) by more than 2 sd;
    the ensemble > each member (mean); every class a non-zero event F1 (fitted; min over seeds) per unit."""
    rows = []
    for sysname in ("ps1", "ps2"):
        if sysname in units and "baseline" in units:
            for f in ("event_f1_fitted", "psds"):
                rows.append(claim(f"{NAMES[sysname]} > baseline", f, _figure(agg, sysname, split, f),
                                  _figure(agg, "baseline", split, f), K_BASELINE))
    if ENSEMBLE in units:
        for member in ("ps1", "ps2"):
            for f in ("event_f1_fitted", "psds"):
                rows.append(claim(f"ensemble > {NAMES[member]}", f, _figure(agg, ENSEMBLE, split, f),
                                  _figure(agg, member, split, f), None))
    classes = list(dict.fromkeys(c for u in units for c in _figure(agg, u, split, "per_class_f1")))
    rows += [nonzero_claim(unit, _figure(agg, unit, split, "per_class_f1"), classes) for unit in units]
    return rows


def nonzero_claim(unit: str, pc: Mapping[str, Mapping[str, Any]],
                  classes: Sequence[str] = ()) -> dict[str, Any]:
    """The row "every class a non-zero event F1" of a unit from its per-class ``{class: mean_sd}``;
    ``classes``: every class some unit has a figure for (one this unit lacks is named)."""
    zero = [c for c, s in pc.items() if s.get("min") is not None and s["min"] <= 0]
    unknown = [c for c in dict.fromkeys([*classes, *pc]) if c not in pc or pc[c].get("min") is None]
    verdict = "n/a (missing figures)" if not pc else ("fails" if zero else "holds")
    note = (f"zero for {', '.join(zero)}" if zero else "") + ("; " if zero and unknown else "") + (
        f"no figure for {', '.join(unknown)}" if unknown and pc else "")
    lowest = min((s["min"] for s in pc.values() if s.get("min") is not None), default=None)
    return {"claim": f"{NAMES[unit]}: every class non-zero F1", "unit": unit,
            "figure": "per-class event F1 (fitted)", "a": {"mean": lowest, "sd": None, "n": None}, "b": None,
            "difference": None, "k_sd": None, "rule": "min over classes and seeds > 0", "verdict": verdict,
            "note": note}


def holdout_aggregate(trainings: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """``{"<system>/seed<s>": step record}`` -> ``{system: {class: mean_sd}}`` of the per-class held-out frame
    AP (``holdout_ap``, at the evaluated epoch) over the seeds; a record without it is left out."""
    by_system: dict[str, list[Mapping[str, float | None]]] = {}
    for rec in trainings.values():
        if rec and rec.get("holdout_ap"):
            by_system.setdefault(rec["system"], []).append(rec["holdout_ap"])
    return {sysname: {c: mean_sd([r.get(c) for r in recs]) for c in dict.fromkeys(c for r in recs for c in r)}
            for sysname, recs in by_system.items()}


def holdout_claims(hagg: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """PS1's and PS2's held-out frame AP not below the baseline's (mean), one row per class of
    :data:`HELDOUT_CLASSES` (every class when the label set has none of them)."""
    base = hagg.get("baseline") or {}
    classes = [c for c in HELDOUT_CLASSES if c in base] or list(base)
    rows = []
    for sysname in ("ps1", "ps2"):
        if sysname in hagg:
            for c in classes:
                rows.append(claim(f"{NAMES[sysname]} held-out AP ≥ baseline", f"held-out frame AP, {c}",
                                  hagg[sysname].get(c) or {}, base.get(c) or {}, None, ties_hold=True))
    return rows

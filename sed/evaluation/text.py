"""Report text: one line per figure naming the library and its settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def report_lines(metrics: Mapping[str, Any]) -> dict[str, str]:
    """One line per figure, naming the library and the number of thresholds it used."""
    n = metrics.get("n_thresholds") or 0

    def fmt(v, pct=False):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "n/a"
        return f"{100 * v:.1f} %" if pct else f"{v:.3f}"

    lib = (
        "sed_eval"
        if metrics.get("f1_engine", "sed_eval") == "sed_eval"
        else "sed_eval rules, sed.evaluation.metrics.event_based_fast"
    )
    lines = {
        "event_f1_macro": f"event-based F1 macro: {fmt(metrics.get('event_f1_macro'), True)} "
        f"({lib}, collar 0.2 s / 20 %, 1 operating point)",
        "event_f1_micro": f"event-based F1 micro: {fmt(metrics.get('event_f1_micro'), True)} "
        f"({lib}, collar 0.2 s / 20 %, 1 operating point)",
        "segment_f1_macro": f"segment-based F1 macro: {fmt(metrics.get('segment_f1_macro'), True)} "
        "(sed_eval, 1 s segments, 1 operating point)",
        "psds_f_score": f"PSDS F-score: {fmt(metrics.get('psds_f_score'), True)} "
        "(psds_eval compute_macro_f_score, dtc 0.5 gtc 0.5 cttc 0.3, 1 operating point)",
        "psds": f"PSDS: {fmt(metrics.get('psds'))} "
        f"(psds_eval, {n} thresholds, dtc 0.5 gtc 0.5 cttc 0.3, alpha_ct 0 alpha_st 0, max_efpr 100)",
        "psds_cross_trigger": f"PSDS cross-trigger: {fmt(metrics.get('psds_cross_trigger'))} "
        f"(psds_eval, {n} thresholds, alpha_ct 1 alpha_st 0)",
        "psds_macro": f"PSDS macro: {fmt(metrics.get('psds_macro'))} "
        f"(psds_eval, {n} thresholds, alpha_ct 0 alpha_st 1)",
        "psds_threshold_independent": "PSDS threshold-independent: "
        f"{fmt(metrics.get('psds_threshold_independent'))} (sed_scores_eval, all thresholds, "
        "dtc 0.5 gtc 0.5 cttc 0.3, alpha_ct 0 alpha_st 0, max_efpr 100)",
        "psds1": f"PSDS1: {fmt(metrics.get('psds1'))} "
        "(sed_scores_eval, all thresholds, dtc 0.7 gtc 0.7, alpha_st 1, max_efpr 100)",
        "psds2": f"PSDS2: {fmt(metrics.get('psds2'))} "
        "(sed_scores_eval, all thresholds, dtc 0.1 gtc 0.1 cttc 0.3, alpha_ct 0.5 alpha_st 1, max_efpr 100)",
    }
    return lines

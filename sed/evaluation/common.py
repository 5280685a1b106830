"""Shared helpers of the metric wrappers: the error type, event tables, the libraries' chatter muted."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.core.errors import SedError
from sed.postproc import empty_detections


class MetricsError(SedError, ValueError):
    """Inputs that would give a wrong number (clips without prediction, unknown classes, no clips)."""


def ground_truth_table(ground_truth: Mapping[str, Sequence]) -> pd.DataFrame:
    """``{filename: [(onset, offset, label), ...]}`` -> DataFrame ``filename, onset, offset, event_label``
    (events only)."""
    rows = [(f, float(e[0]), float(e[1]), str(e[2])) for f, evs in ground_truth.items() for e in evs]
    if not rows:
        return empty_detections()
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def by_file(table: pd.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f, on, off, lab in zip(table["filename"], table["onset"], table["offset"], table["event_label"]):
        out.setdefault(f, []).append(
            {"filename": f, "onset": float(on), "offset": float(off), "event_label": lab}
        )
    return out


def nan_to_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def check_table(table: pd.DataFrame, name: str) -> None:
    missing = {"filename", "onset", "offset", "event_label"} - set(table.columns)
    if missing:
        raise MetricsError(f"{name}: missing columns {sorted(missing)}")


def label_list(
    reference: pd.DataFrame, estimated: pd.DataFrame, classes: Sequence[str] | None = None
) -> list[str]:
    labels = (
        set(reference["event_label"].dropna()) | set(estimated["event_label"].dropna()) | set(classes or [])
    )
    return sorted(labels)


def quiet():
    """sed_eval/dcase_util and psds_eval print and warn; keep their chatter out of our logs."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(np.errstate(all="ignore"))
    return stack


def audio_id(filename: str) -> str:
    """sed_scores_eval's key of a clip: its filename without the extension."""
    return Path(filename).stem if Path(filename).suffix else filename



def merge_connected(ground_truth: Mapping[str, Sequence]) -> tuple[dict[str, list], int]:
    """Same-class events of a clip that overlap or touch, merged into their union.

    psds_eval and sed_scores_eval refuse such ground truth (the generated set and some annotations
    hold it); sed_eval takes it as is. Returns the merged ground truth and how many events were merged away.
    """
    out, n_merged = {}, 0
    for f, evs in ground_truth.items():
        merged: list[list] = []
        for on, off, lab in sorted(
            ((float(e[0]), float(e[1]), str(e[2])) for e in evs), key=lambda e: (e[2], e[0])
        ):
            if merged and merged[-1][2] == lab and on <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], off)
                n_merged += 1
            else:
                merged.append([on, off, lab])
        out[f] = [(on, off, lab) for on, off, lab in merged]
    return out, n_merged



def count_overlaps(table: pd.DataFrame) -> tuple[int, str]:
    """How many detections overlap an earlier same-class detection of the same clip (psds_eval refuses
    them), and the first such pair in words; vectorised over the table."""
    if len(table) < 2:
        return 0, ""
    t = table[["filename", "event_label", "onset", "offset"]].sort_values(
        ["filename", "event_label", "onset"], kind="stable"
    )
    same = (t["filename"].to_numpy() == np.roll(t["filename"].to_numpy(), 1)) & (
        t["event_label"].to_numpy() == np.roll(t["event_label"].to_numpy(), 1)
    )
    same[0] = False
    prev_end = t.groupby(["filename", "event_label"], sort=False)["offset"].cummax().shift(1).to_numpy()
    bad = same & (t["onset"].to_numpy() < np.where(same, prev_end, np.inf))
    n = int(bad.sum())
    if not n:
        return 0, ""
    row = t.iloc[int(np.argmax(bad))]
    return n, f"{row['filename']} {row['event_label']} at {float(row['onset']):g} s"


def merged_note(n_merged: int) -> str:
    """The note when :func:`merge_connected` merged overlapping same-class ground-truth events."""
    return (f"{n_merged} overlapping same-class ground-truth event(s) merged into their union for psds_eval "
            "and sed_scores_eval (sed_eval scores them as given)")

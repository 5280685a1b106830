"""The one table writer: Markdown (reports, sweep summaries) and CSV, from a list of row dicts."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def cell(v: Any) -> str:
    """Default cell text: floats with 4 decimals, missing values (None, NaN) empty, anything else ``str``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of the rows, in first-seen order."""
    return list(dict.fromkeys(k for r in rows for k in r))


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   fmt: Callable[[str, Any], str] | None = None,
                   notes: Mapping[int, str] | None = None) -> str:
    """A Markdown table of ``rows`` (one dict per row) over ``columns`` (default: every key).

    ``fmt(column, value) -> str`` formats a cell (default :func:`cell`; strings pass through it
    unchanged); ``notes[i]`` is appended after row ``i`` (e.g. ``<- best``).
    """
    cols = list(columns) if columns is not None else columns_of(rows)
    f = fmt or (lambda _c, v: cell(v))
    notes = notes or {}
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(f(c, r.get(c)) for c in cols) + " |" + notes.get(i, ""))
    return "\n".join(lines)


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None
) -> Path:
    """``rows`` as a CSV file with a header (missing cells empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(columns) if columns is not None else columns_of(rows)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


#: The per-class figures of an evaluation, as the report and the training callbacks show them.
PER_CLASS_KEYS = ("event_f1", "event_precision", "event_recall", "segment_f1", "psds_f", "n_ref", "n_sys")


def per_class_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-class table of an evaluation (``metrics["per_class"]``): class, event F1/P/R, segment F1,
    PSDS F, counts."""
    return [{"class": c, **{k: v.get(k) for k in PER_CLASS_KEYS}}
            for c, v in (metrics.get("per_class") or {}).items()]

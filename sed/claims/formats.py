"""Figures as text ("–" when missing): percentages, 3 decimals, mean ± sd, margins in sd."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def pct_text(v: float | None) -> str:
    """A fraction in % with 1 decimal."""
    return "–" if v is None else f"{100 * v:.1f}"


def f3_text(v: float | None) -> str:
    """A value with 3 decimals."""
    return "–" if v is None else f"{v:.3f}"


def k_text(v: float | None) -> str:
    """A margin in sd, signed (``+∞``/``-∞`` when both sd are 0)."""
    if v is None:
        return "–"
    text = "∞" if math.isinf(v) and v > 0 else "-∞" if math.isinf(v) else f"{v:.2f}"
    return ("+" if v > 0 else "") + text


def fmt_ms(s: Mapping[str, Any] | None, pct: bool) -> str:
    """``mean ± sd`` (F1 in %, PSDS with 3 decimals); ``–`` when missing."""
    if not s or s.get("mean") is None:
        return "–"
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    return f(s["mean"]) + (f" ± {f(s['sd'])}" if s.get("sd") is not None else "")

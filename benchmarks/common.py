"""Shared helpers for benchmarks: timing, a printed table and JSON results under benchmarks/results/."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sed.core.provenance import code_version

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` (seconds): the least disturbed run."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _commit() -> str:
    """The checkout's short commit hash (sed.core.provenance), ``unknown`` outside git."""
    return code_version()["commit"] or "unknown"


def write_result(name: str, figures: dict[str, dict], *, quick: bool = False, notes: str = "") -> Path:
    """Write ``figures`` (each ``{"value", "unit"}`` plus optional ``"ratio"``/``"reference"``) as JSON and
    print a table.

    The file is ``benchmarks/results/<name>.json`` (``<name>.quick.json`` for a quick run), holding the
    commit, the machine and the figures, so that runs compare across commits.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "commit": _commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version()},
        "quick": quick,
        "notes": notes,
        "figures": figures,
    }
    try:
        import torch

        payload["machine"]["torch"] = torch.__version__
        payload["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    path = RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print_table(name, figures)
    root = RESULTS_DIR.parent.parent
    print(f"  -> {path.relative_to(root) if path.is_relative_to(root) else path}")
    return path


def print_table(name: str, figures: dict[str, dict]) -> None:
    print(f"\n== {name} ==")
    w = max((len(k) for k in figures), default=10)
    for key, fig in figures.items():
        line = f"  {key:<{w}}  {fig['value']:>12.4g} {fig.get('unit', '')}"
        if "ratio" in fig:
            line += f"   ({fig['ratio']:.1f}x {fig.get('reference', 'reference')})"
        print(line)

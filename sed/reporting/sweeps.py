"""The one Hydra sweep-summary callback, shared by ``sed.train``, ``sed.eval`` and ``sed.nmf_labels``.

Each app names, in its config, the function that summarises its sweep folder
(``hydra.callbacks.summary.summarize``: ``fn(sweep_dir: Path, config) -> str | None``, writing its
``summary.md`` and friends); the callback runs it once the multirun ends and prints what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency; the callback is unused without it
    _HydraCallback = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)


def sweep_points(sweep_dir: str | Path, filename: str) -> Iterator[Path]:
    """``<job>/<filename>`` of every job folder of a sweep that wrote it, in job order (0, 1, ..., 10)."""
    files = Path(sweep_dir).glob(f"*/{filename}")
    yield from sorted(files, key=lambda p: (not p.parent.name.isdigit(), len(p.parent.name), p.parent.name))


class SweepSummary(_HydraCallback):  # type: ignore[misc]
    """Hydra callback: at the end of a multirun, ``summarize(sweep_dir, config)`` (a dotted function path)."""

    def __init__(self, summarize: str) -> None:
        self.summarize = summarize

    def on_multirun_end(self, config, **kwargs) -> None:  # noqa: ANN001
        from hydra.utils import get_method

        sweep = Path(str(config.hydra.sweep.dir))
        try:
            text = get_method(self.summarize)(sweep, config)
        except Exception as e:  # noqa: BLE001 - a summary failure must not hide the points' results
            log.error("sweep summary (%s) failed: %s", self.summarize, e)
            return
        if text:
            print(f"\n{text}\n")

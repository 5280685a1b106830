"""``torch_threads``: the one setting of torch's intra-op threads, read by every entry point
(``sed.train``, ``sed.eval``, ``sed.tune``: ``torch_threads=N``; ``sedx detect``: ``--threads N``)."""

from __future__ import annotations

from typing import Any

from sed.core.errors import ConfigError


def set_torch_threads(value: Any, key: str = "torch_threads") -> int | None:
    """Set torch's thread count to ``value`` (null/None: torch's default, one per core); returns it."""
    if value in (None, "", "null"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or str(n) != str(value).strip():
        raise ConfigError(f"{key}={value!r}: expected a whole number of threads >= 1 (or null: one per core)")
    import torch

    torch.set_num_threads(n)
    return n

"""The label set of a run: ``data.classes`` (default DESED's ten, :data:`sed.core.constants.DESED_CLASSES`).

A run's classes are the column order of its targets, outputs and predictions.  They come from the data
config at training, are recorded in the run (``<run>/data.yaml`` and each checkpoint's hyper-parameters)
and every later command reads them from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sed.core.constants import DESED_CLASSES
from sed.core.errors import ConfigError

#: characters a class name may not hold: the weak TSV separates labels by commas, every TSV by tabs
_FORBIDDEN = (",", "\t", "\n", "\r")


def check_classes(names: Iterable[Any], source: str = "data.classes") -> tuple[str, ...]:
    """``names`` as a tuple of distinct, non-empty class names, or one ConfigError naming ``source``."""
    if isinstance(names, str):
        raise ConfigError(f"{source}: {names!r} is one name; expected a list of class names")
    out = tuple(str(c).strip() for c in names)
    if not out:
        raise ConfigError(f"{source}: empty class list")
    bad = [c for c in out if not c or any(ch in c for ch in _FORBIDDEN)]
    if bad:
        raise ConfigError(f"{source}: class name {bad[0]!r} is empty or holds a comma, tab or newline")
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ConfigError(f"{source}: class {dup[0]!r} is listed twice")
    return out


def classes_of(data_cfg: Mapping | None) -> tuple[str, ...]:
    """The classes of a data config (``data.classes``); a config without the key (a run recorded before it
    existed) has DESED's ten."""
    names = data_cfg.get("classes") if data_cfg is not None else None
    if names is None:
        return DESED_CLASSES
    return check_classes(names)


def class_index(classes: Sequence[str]) -> dict[str, int]:
    """``{name: column}`` for a class list."""
    return {c: i for i, c in enumerate(classes)}


def describe(classes: Sequence[str], limit: int = 12) -> str:
    """``"3 classes: a, b, c"`` for messages (long lists shortened)."""
    more = f", ... ({len(classes) - limit} more)" if len(classes) > limit else ""
    names = ", ".join(classes[:limit]) + more
    return f"{len(classes)} classes: {names}"

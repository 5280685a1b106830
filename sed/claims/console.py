"""The command's progress lines: printed to the stdout of the run's start (evaluations silence third-party
prints by redirecting ``sys.stdout``)."""

from __future__ import annotations

import sys

_CONSOLE: list = []  # the stdout bound by bind_console()


def bind_console() -> None:
    """Remember the current ``sys.stdout`` as the console."""
    _CONSOLE[:] = [sys.stdout]


def say(msg: str) -> None:
    """Print one line to the console (flushed)."""
    print(msg, file=_CONSOLE[-1] if _CONSOLE else sys.stdout, flush=True)

"""Which code produced a result: the git commit of the ``sed`` package, and whether it had uncommitted
changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

_PKG_ROOT = Path(__file__).resolve().parents[2]


def code_version(root: Path = _PKG_ROOT) -> dict[str, str | bool | None]:
    """``{"commit": short hash, "dirty": tracked files changed}`` of the checkout at ``root``; both None
    outside a git checkout (an installed wheel) or without git."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def version_text(v: dict[str, str | bool | None] | None) -> str:
    """``abc1234``, ``abc1234 + uncommitted changes`` or ``unknown``."""
    if not v or not v.get("commit"):
        return "unknown"
    return f"{v['commit']}{' + uncommitted changes' if v.get('dirty') else ''}"

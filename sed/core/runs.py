"""Run folders and checkpoints: the one place that turns what a user typed (a run folder, a file,
``latest``, ``last``) into a checkpoint path, for ``sed.train`` (resume), ``sed.eval`` and inference.

A training run folder holds ``checkpoints/{best,last}.ckpt`` (``sed.train``); older layouts with the
checkpoints directly in the folder are read too.
"""

from __future__ import annotations

from pathlib import Path

from sed.core.errors import ConfigError, SedError


class CheckpointError(SedError, ValueError):
    """A checkpoint that cannot be found or loaded as a trained system."""


def run_checkpoint(run: str | Path, names: tuple[str, ...] = ("best.ckpt", "last.ckpt")) -> Path | None:
    """The first of ``names`` in run folder ``run`` (``checkpoints/<name>``, else ``<name>``), or None."""
    run = Path(run)
    for name in names:
        for p in (run / "checkpoints" / name, run / name):
            if p.is_file():
                return p
    return None


def resolve_checkpoint(path: str | Path, names: tuple[str, ...] = ("best.ckpt", "last.ckpt")) -> Path:
    """A checkpoint file, or a run folder (its first checkpoint of ``names``: best, else last)."""
    p = Path(path)
    if p.is_dir():
        found = run_checkpoint(p, names)
        if found is None:
            raise CheckpointError(f"{p}: no checkpoints/{' or '.join(names)} in this run folder")
        return found
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    return p


def latest_run(root: str | Path, names: tuple[str, ...] = ("best.ckpt", "last.ckpt"), required: bool = True) -> Path | None:
    """The newest run folder under ``root`` (any depth) holding one of ``names``, by the folder's
    modification time; None (or ConfigError when ``required``) if there is none."""
    root = Path(root)
    found = {
        p.parent.parent if p.parent.name == "checkpoints" else p.parent
        for name in names
        for p in (root.glob(f"**/{name}") if root.is_dir() else [])
    }
    if not found:
        if required:
            raise ConfigError(f"no training run with a checkpoint ({' or '.join(names)}) under {root}")
        return None
    return max(found, key=lambda d: (d.stat().st_mtime, str(d)))


def resolve_resume(ckpt_path: str | None, run_dir: Path, experiment: str, runs_root: str | Path = "outputs/train") -> str | None:
    """``sed.train``'s ``ckpt_path``: ``null`` -> fresh; ``last`` -> this run folder's last.ckpt, else the
    newest run of this experiment (under ``runs_root``) that has one; a run folder -> its last.ckpt;
    a file -> itself."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        own = run_checkpoint(run_dir, ("last.ckpt",))
        if own is not None:
            return str(own)
        cands = sorted(Path(runs_root, experiment).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not cands:
            raise ConfigError(f"ckpt_path=last: no {runs_root}/{experiment}/*/checkpoints/last.ckpt to resume from")
        return str(cands[-1])
    try:
        return str(resolve_checkpoint(ckpt_path, ("last.ckpt",)))
    except CheckpointError as e:
        raise ConfigError(f"ckpt_path={ckpt_path}: {e}") from e

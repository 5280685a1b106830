"""Run folders and checkpoints: the one place that turns what a user typed (a run folder, a file,
``latest``) into a checkpoint path, for ``sed.train`` (resume, see ``sed.training.resume``),
``sed.eval``, ``sed detect`` and inference.

A training run folder holds ``checkpoints/{best,last}.ckpt`` (``sed.train``); older layouts with the
checkpoints directly in the folder are read too.
"""

from __future__ import annotations

from pathlib import Path

from sed.core.errors import ConfigError, SedError

TRAIN_RUNS = "outputs/train"
CKPT_NAMES = ("best.ckpt", "last.ckpt")


class CheckpointError(SedError, ValueError):
    """A checkpoint that cannot be found or loaded as a trained system."""


def run_folder(ckpt: str | Path) -> Path:
    """The run folder of a checkpoint (``<run>/checkpoints/x.ckpt``, or ``<run>/x.ckpt`` in older layouts)
    or of a run folder itself: the one place for this rule."""
    p = Path(ckpt)
    if p.is_dir():
        return p
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def run_checkpoint(run: str | Path, names: tuple[str, ...] = CKPT_NAMES) -> Path | None:
    """The first of ``names`` in run folder ``run`` (``checkpoints/<name>``, else ``<name>``), or None."""
    run = Path(run)
    for name in names:
        for p in (run / "checkpoints" / name, run / name):
            if p.is_file():
                return p
    return None


def resolve_checkpoint(path: str | Path, names: tuple[str, ...] = CKPT_NAMES) -> Path:
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


def run_folders(root: str | Path = TRAIN_RUNS, names: tuple[str, ...] = CKPT_NAMES) -> list[Path]:
    """Run folders under ``root`` (any depth) holding one of ``names``, oldest first (by folder
    modification time, then name); ``latest`` links are not counted twice."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: dict[Path, Path] = {}
    for name in names:
        for p in root.glob(f"**/{name}"):
            run = run_folder(p)
            if run.is_symlink() or run.name == "latest":
                continue
            found.setdefault(run.resolve(), run)
    return sorted(found.values(), key=lambda d: (d.stat().st_mtime, str(d)))


def latest_run(
    root: str | Path = TRAIN_RUNS, names: tuple[str, ...] = CKPT_NAMES, required: bool = True
) -> Path | None:
    """The newest run folder under ``root`` holding one of ``names``; None (or ConfigError when
    ``required``) if there is none."""
    runs = run_folders(root, names)
    if not runs:
        if required:
            raise ConfigError(f"no training run with a checkpoint ({' or '.join(names)}) under {root}")
        return None
    return runs[-1]


def newest_best_checkpoint(root: str | Path = TRAIN_RUNS) -> Path:
    """``checkpoints/best.ckpt`` of the newest run under ``root`` (any experiment)."""
    run = latest_run(root, ("best.ckpt",), required=False)
    if run is None:
        raise ConfigError(f"no training run with checkpoints/best.ckpt under {root}: pass --ckpt FILE "
                          "(or train one: make train)")
    return run_checkpoint(run, ("best.ckpt",))

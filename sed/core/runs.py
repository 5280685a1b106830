"""Finding training runs on disk: the newest run's best checkpoint (``make eval``, ``make detect``)."""

from __future__ import annotations

from pathlib import Path

from sed.core.errors import ConfigError

TRAIN_RUNS = "outputs/train"


def run_folders(root: str | Path = TRAIN_RUNS, names: tuple[str, ...] = ("best.ckpt", "last.ckpt")) -> list[Path]:
    """Run folders under ``root`` holding ``checkpoints/<one of names>``, oldest first (by folder
    modification time, then name); ``latest`` links are not counted twice."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: dict[Path, Path] = {}
    for name in names:
        for p in root.glob(f"**/checkpoints/{name}"):
            run = p.parent.parent
            if run.is_symlink() or run.name == "latest":
                continue
            found.setdefault(run.resolve(), run)
    return sorted(found.values(), key=lambda d: (d.stat().st_mtime, str(d)))


def newest_best_checkpoint(root: str | Path = TRAIN_RUNS) -> Path:
    """``checkpoints/best.ckpt`` of the newest run under ``root`` (any experiment)."""
    runs = run_folders(root, ("best.ckpt",))
    if not runs:
        raise ConfigError(f"no training run with checkpoints/best.ckpt under {root}: pass --ckpt FILE "
                          "(or train one: make train)")
    return runs[-1] / "checkpoints" / "best.ckpt"

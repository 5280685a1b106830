"""What a claims run does: the systems and units, the splits, the settings (the command line) and their
checks, the dataset and output folders, and the Hydra overrides of each ``sed.train`` run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sed.core.errors import ConfigError

SYSTEMS = ("ps1", "ps2", "baseline")
ENSEMBLE = "ensemble"
NAMES = {"ps1": "PS1", "ps2": "PS2", "baseline": "Baseline (CRNN mean teacher)", ENSEMBLE: "Ensemble PS1+PS2"}
TUNE_SPLIT, REPORT_SPLIT = "validation", "public_eval"
SPLITS = (TUNE_SPLIT, REPORT_SPLIT)
DEFAULT_DATA_SEED = 2026


@dataclass
class Settings:
    """What :func:`sed.claims.workflow.run` does (the command line, parsed)."""

    seeds: int = 3
    systems: tuple[str, ...] = SYSTEMS
    data_seed: int = DEFAULT_DATA_SEED
    data_root: str | None = None
    data_name: str | None = None
    cache_dir: str | None = None
    out: str | None = None
    train_args: list[str] = field(default_factory=list)
    system_args: dict[str, list[str]] = field(default_factory=dict)
    tune_args: list[str] = field(default_factory=list)
    eval_args: list[str] = field(default_factory=list)
    gen_args: list[str] = field(default_factory=list)
    jobs: int = 1
    results: str | None = "docs/RESULTS.md"
    checkpoint: str = "best"
    command: str = "python -m sed.claims"

    def check(self) -> None:
        """Raise a one-line :class:`ConfigError` naming the first bad option."""
        if self.checkpoint not in ("best", "last"):
            raise ConfigError(f"--checkpoint {self.checkpoint}: expected best or last")
        if self.seeds < 1:
            raise ConfigError(f"--seeds {self.seeds}: expected at least 1")
        if self.jobs < 1:
            raise ConfigError(f"--jobs {self.jobs}: expected at least 1")
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise ConfigError(f"--systems {','.join(self.systems)}: expected a comma-separated subset of "
                              f"{','.join(SYSTEMS)}")
        bad = [s for s in self.system_args if s not in SYSTEMS]
        if bad:
            raise ConfigError(f"--system-args {bad[0]}: not a system ({','.join(SYSTEMS)})")
        if self.data_root is not None:
            root = Path(self.data_root)
            if not root.is_dir():
                raise ConfigError(f"--data-root {root}: no such folder")
            if not (root / "metadata").is_dir():
                raise ConfigError(f"--data-root {root}: not a DESED-layout dataset (no metadata/ folder)")

    @property
    def name(self) -> str:
        """The dataset's ``data.name``."""
        return self.data_name or (Path(self.data_root).name if self.data_root else f"claims-{self.data_seed}")

    @property
    def root(self) -> Path:
        """The dataset's folder (``data/<name>`` when generated)."""
        return Path(self.data_root) if self.data_root else Path("data") / self.name

    @property
    def out_dir(self) -> Path:
        """``--out``, default ``outputs/claims/<data seed or name>``."""
        if self.out:
            return Path(self.out)
        return Path("outputs/claims") / (self.name if self.data_root else str(self.data_seed))

    @property
    def units(self) -> list[str]:
        """What is evaluated: the systems, and the PS1+PS2 ensemble when both are trained."""
        return [*self.systems, *([ENSEMBLE] if {"ps1", "ps2"} <= set(self.systems) else [])]


_SAFE = re.compile(r"^[\w./@:+~-]+$")


def hq(v: Any) -> str:
    """A value as a Hydra override accepts it (quoted when it holds other characters)."""
    s = str(v)
    return s if _SAFE.match(s) else "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def data_overrides(s: Settings) -> list[str]:
    """The ``data.*`` overrides every entry point gets."""
    ov = [f"data.root={hq(s.root.resolve())}", f"data.name={hq(s.name)}"]
    return ov + ([f"data.cache_dir={hq(Path(s.cache_dir).resolve())}"] if s.cache_dir else [])


def train_overrides(s: Settings, system: str, seed: int, run_dir: Path, resume: bool) -> list[str]:
    """The ``sed.train`` command line of one run (``ckpt_path=<run>`` resumes it)."""
    return [f"experiment={system}", f"seed={seed}", *data_overrides(s), "logger=csv", "torch_threads=1",
            "datamodule.progress=false", "trainer.enable_progress_bar=false", *s.train_args,
            *s.system_args.get(system, []), f"hydra.run.dir={hq(run_dir.resolve())}",
            *([f"ckpt_path={hq(run_dir.resolve())}"] if resume else [])]

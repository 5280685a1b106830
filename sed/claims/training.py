"""One training run: ``sed.train`` as a subprocess (resumed from its ``last.ckpt``) and its step record."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sed.claims.console import say
from sed.claims.evaluation import clear_evaluation
from sed.claims.plan import ENSEMBLE, Settings, train_overrides
from sed.claims.records import read_json, write_json
from sed.core.provenance import code_version


@dataclass
class Training:
    """A system trained on a seed in ``run_dir``; its subprocess and log while it runs."""

    system: str
    seed: int
    run_dir: Path
    proc: subprocess.Popen | None = None
    log: Any = None
    started: float = 0.0


def train_done(run_dir: Path) -> dict | None:
    """The step record of a finished training; None when it has not finished."""
    return read_json(run_dir / "step_train.json")


def _train_env() -> dict[str, str]:
    """The subprocess's environment: this very ``sed`` package first on its path, wandb offline."""
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])  # the same sed package in the subprocess
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("WANDB_MODE", "offline")
    return env


def start_training(s: Settings, t: Training) -> None:
    """``sed.train`` as a subprocess logging to ``<run>/claims_train.log``; resumes from last.ckpt. The run's
    evaluation (and its seed's ensemble) is cleared first: it belongs to the model before this training."""
    resume = (t.run_dir / "checkpoints" / "last.ckpt").is_file()
    t.run_dir.mkdir(parents=True, exist_ok=True)
    clear_evaluation(t.run_dir)
    if t.system in ("ps1", "ps2"):
        clear_evaluation(t.run_dir.parent.parent / ENSEMBLE / t.run_dir.name)
    cmd = [sys.executable, "-m", "sed.train", *train_overrides(s, t.system, t.seed, t.run_dir, resume)]
    env = _train_env()
    t.log = open(t.run_dir / "claims_train.log", "a")
    t.log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(cmd)}\n")
    t.log.flush()
    t.started = time.time()
    t.proc = subprocess.Popen(cmd, stdout=t.log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
    say(f"training {t.system} seed {t.seed}{' (resuming from last.ckpt)' if resume else ''}: "
        f"log {t.run_dir / 'claims_train.log'}")


def finish_training(t: Training, rc: int) -> dict | None:
    """The step record of a finished subprocess (None when it failed)."""
    t.log.close()
    secs = round(time.time() - t.started, 1)
    best = t.run_dir / "checkpoints" / "best.ckpt"
    if rc != 0 or not best.is_file():
        return None
    m = read_json(t.run_dir / "metrics.json") or {}
    b = m.get("best") or {}
    rec = {"system": t.system, "seed": t.seed, "run_dir": str(t.run_dir), "seconds": secs,
           "best_epoch": m.get("best_epoch"), "epochs": m.get("epochs_done"),
           "holdout_frame_map": b.get("holdout_frame_map"), "val_event_f1_table1": b.get("event_f1_macro"),
           "code": code_version()}
    write_json(t.run_dir / "step_train.json", rec)
    return rec

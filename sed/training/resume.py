"""Resuming a training run (``ckpt_path=``) without losing its best model (issue 14).

A resumed run continues in the run folder of the checkpoint it resumes, not in the new Hydra
folder: Lightning's ``ModelCheckpoint`` restores its best score and path only when its folder is
unchanged, so ``best.ckpt`` stays the best over the whole run (before and after the resume), and
``RunSummary`` (whose state is in the checkpoint) reports the same epoch. ``<experiment>/latest``
then points at that folder. The new Hydra folder keeps this invocation's logs and a
``resumed.json`` naming the run it continued; the run folder's ``resumes.jsonl`` lists every resume.

Each run records what it trains on in ``run_info.json`` (the resolved data root, the dataset name,
the experiment, the seed and the model / schedule / datamodule settings). ``ckpt_path=last``
resumes the newest run next to this one (same experiment folder) whose record matches the current
configuration, naming it; none matching is a :class:`~sed.core.errors.ConfigError` that says what
differs. An explicit run folder or checkpoint is resumed as asked, with a warning listing what
differs (``trainer.max_epochs`` and other trainer, logger and progress settings may change freely).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sed.core.errors import ConfigError
from sed.core.runs import run_folder

log = logging.getLogger(__name__)

INFO_FILE = "run_info.json"
#: Config sections that define what a run learns; a resume must keep them (others may change).
TRACKED = ("experiment_name", "seed", "model", "schedule", "datamodule")
#: Keys inside them that do not change what is learnt.
IGNORED = {"datamodule.progress", "datamodule.num_workers", "datamodule.val_batch_size",
           "schedule.n_cycles", "schedule.max_epochs"}  # the epoch budget may grow on resume


@dataclass(frozen=True)
class Resume:
    ckpt: Path  # the checkpoint Lightning resumes from
    run_dir: Path  # the run folder training continues in


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def run_record(cfg: DictConfig) -> dict[str, Any]:
    """What the run trains on: flat ``{key: value}`` (``data.root`` resolved to an absolute path)."""
    rec: dict[str, Any] = {"data.root": os.path.realpath(str(cfg.data.root)),
                           "data.name": str(cfg.data.get("name"))}
    nmf = cfg.data.get("nmf_labels_tsv")
    if nmf:
        rec["data.nmf_labels_tsv"] = os.path.realpath(str(nmf))
    for key in TRACKED:
        if key in cfg:
            node = cfg[key]
            val = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            rec.update(_flat(val, f"{key}.") if isinstance(val, Mapping) else {key: val})
    return {k: v for k, v in rec.items() if k not in IGNORED}


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: recorded -> current"`` for every tracked key that differs (keys in one only count)."""
    out = []
    for k in sorted(set(recorded) | set(current)):
        a, b = recorded.get(k, "<absent>"), current.get(k, "<absent>")
        if a != b:
            out.append(f"{k}: {a} -> {b}")
    return out


def write_record(cfg: DictConfig, run_dir: Path) -> None:
    """``run_info.json`` in ``run_dir`` (kept when resuming: the record of the run's start)."""
    path = Path(run_dir) / INFO_FILE
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{INFO_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(run_record(cfg), indent=1, default=str))
    tmp.replace(path)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def _run_dir_of(ckpt: Path) -> Path | None:
    """The run folder of a checkpoint inside one (``checkpoints/``), else None."""
    return run_folder(ckpt) if ckpt.parent.name == "checkpoints" else None


def _mismatch(run_dir: Path, current: Mapping[str, Any]) -> list[str]:
    rec = read_record(run_dir)
    if rec is None:
        return [f"records no configuration ({INFO_FILE} missing: an older or foreign run)"]
    return differences(rec, current)


def find_resume(cfg: DictConfig, run_dir: Path) -> Resume | None:
    """The checkpoint and run folder ``cfg.ckpt_path`` asks for (see the module docstring), or None."""
    spec = cfg.get("ckpt_path")
    if spec in (None, "", "null"):
        return None
    current = run_record(cfg)
    run_dir = Path(run_dir)
    if spec == "last":
        own_last = run_dir / "checkpoints" / "last.ckpt"
        cands = [own_last] if own_last.is_file() else []
        others = sorted(run_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime,
                        reverse=True)
        cands += [p for p in others if run_folder(p).name != "latest" and p not in cands]
        if not cands:
            raise ConfigError(f"ckpt_path=last: no {run_dir.parent}/*/checkpoints/last.ckpt to resume from")
        rejected = []
        for c in cands:
            diff = _mismatch(run_folder(c), current)
            if not diff:
                log.info("ckpt_path=last: resuming run %s (%s), the newest matching this configuration",
                         run_folder(c), c)
                return Resume(c, run_folder(c))
            rejected.append(f"{run_folder(c).name}: {'; '.join(diff[:3])}{' ...' if len(diff) > 3 else ''}")
        raise ConfigError("ckpt_path=last: no run of " + str(run_dir.parent) + " matches this configuration ("
                          + " | ".join(rejected[:3]) + "); pass ckpt_path=<run folder> to resume one anyway")
    p = Path(str(spec))
    if p.is_dir():
        p = p / "checkpoints" / "last.ckpt" if (p / "checkpoints").is_dir() else p / "last.ckpt"
    if not p.is_file():
        raise ConfigError(f"ckpt_path={spec}: checkpoint {p} not found")
    p = Path(os.path.realpath(p))  # through <experiment>/latest: the run folder it names, never the link
    folder = _run_dir_of(p)
    if folder is None:
        log.warning("ckpt_path=%s: not inside a run folder's checkpoints/: continuing in %s "
                    "(best.ckpt covers only the epochs from here)", spec, run_dir)
        return Resume(p, run_dir)
    diff = _mismatch(folder, current)
    if diff:
        log.warning("ckpt_path=%s: resuming a run whose configuration differs: %s", spec, "; ".join(diff))
    return Resume(p, folder)


def check_resumable(resume: Resume, model: Any, spec: Any = None) -> None:
    """Raise a one-line :class:`ConfigError` before anything is written when ``resume.ckpt`` cannot be
    read (corrupt, truncated) or holds another model's weights (e.g. the baseline's for PS1)."""
    import torch

    name = spec if spec is not None else resume.ckpt
    try:
        state = torch.load(resume.ckpt, map_location="cpu", weights_only=False, mmap=True)
        weights = state["state_dict"]
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(f"ckpt_path={name}: {resume.ckpt} cannot be read as a training checkpoint ({why}); "
                          "it is corrupt or truncated: resume from another checkpoint of the run "
                          f"(e.g. {Path(resume.ckpt).with_name('best.ckpt')}) or start afresh") from None
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    reshaped = sorted(k for k in set(own) & set(theirs) if own[k] != theirs[k])
    if missing or unexpected or reshaped:
        rec = read_record(resume.run_dir) or {}
        was = f" (trained as experiment {rec['experiment_name']})" if rec.get("experiment_name") else ""
        first = (missing or unexpected or reshaped)[0]
        raise ConfigError(f"ckpt_path={name}: the checkpoint holds another model{was}: {len(missing)} "
                          f"of this model's {len(own)} weights missing, {len(unexpected)} unknown, "
                          f"{len(reshaped)} of another shape (first: {first}); resume it with its own "
                          "experiment, or start afresh")


def continue_in(resume: Resume, hydra_dir: Path, overrides: list[str] | None = None) -> Path:
    """Note the resume in both folders; returns the folder training continues in."""
    hydra_dir, run_dir = Path(hydra_dir), Path(resume.run_dir)
    entry = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "ckpt": str(resume.ckpt), "run_dir": str(run_dir),
             "invocation_dir": str(hydra_dir), "overrides": list(overrides or [])}
    if hydra_dir.resolve() != run_dir.resolve():
        hydra_dir.mkdir(parents=True, exist_ok=True)
        (hydra_dir / "resumed.json").write_text(json.dumps(entry, indent=1))
        log.info("resuming in the run folder %s (this invocation's logs stay in %s)", run_dir, hydra_dir)
    with open(run_dir / "resumes.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    return run_dir


def final_run_dir(hydra_dir: Path) -> Path:
    """The run folder an invocation trained in: its own, or the one it resumed (``resumed.json``)."""
    try:
        return Path(json.loads((Path(hydra_dir) / "resumed.json").read_text())["run_dir"])
    except (OSError, ValueError, KeyError):
        return Path(hydra_dir)


def resume_hint(run_dir: Path, overrides: list[str] | None = None) -> str:
    """The line printed when training is interrupted: how to continue it, or that nothing was saved."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return f"interrupted before the first epoch ended: nothing to resume in {run_dir}"
    kept = [o for o in (overrides or []) if not o.startswith(("ckpt_path=", "hydra."))]
    return ("interrupted: the last finished epoch is in " + str(last)
            + "; continue with: python -m sed.train " + " ".join([*kept, f"ckpt_path={run_dir}"]))


"""Which ground-truth clips an evaluation can score, and their real lengths (a real DESED copy).

A real DESED copy always lacks clips (YouTube videos disappear), so its predictions lack them too.
:func:`leave_out_missing_audio` drops from the ground truth the clips with no prediction whose audio
is missing (or was skipped as undecodable by the feature cache), writes their list into the run
folder and returns what was left out, so the report can say how many clips and events and why. A
clip with no prediction whose audio exists stays an error naming the predictions and the option.

:func:`apply_real_durations` reads the split's ``durations`` TSV (``filename  duration``, DESED's
``validation_durations.tsv``) when the data config names one that exists, and sets each predicted
clip's length from it (events are clipped to it; PSDS counts it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sed.core.errors import ConfigError, DataError
from sed.datamodules.layout import DesedLayout

log = logging.getLogger(__name__)


def _split_audio_dir(data_cfg: Mapping, split: str) -> Path | None:
    try:
        return DesedLayout.from_cfg(data_cfg).split(split).audio_dir
    except Exception:  # noqa: BLE001 - no such split in the data config: nothing is known about audio
        return None


def leave_out_missing_audio(
    gt: Mapping[str, list], pred_names: list[str], *, data_cfg: Mapping, split: str, source: str,
    out_dir: str | Path,
) -> tuple[dict[str, list], dict[str, Any] | None]:
    """``(ground truth to score, what was left out or None)``; see the module docstring."""
    have = set(pred_names)
    no_pred = [f for f in gt if f not in have]
    if not no_pred:
        return dict(gt), None
    audio_dir = _split_audio_dir(data_cfg, split)
    out_dir = Path(out_dir)
    bad_list = out_dir / f"bad_{split}.txt"  # the feature cache's undecodable clips of this run
    bad = set(bad_list.read_text().split()) if bad_list.is_file() else set()
    reasons = {}
    for f in no_pred:
        if f in bad:
            reasons[f] = "undecodable audio"
        elif audio_dir is None or not (audio_dir / f).is_file():
            reasons[f] = "audio missing"
    with_audio = [f for f in no_pred if f not in reasons]
    if with_audio:
        raise ConfigError(
            f"{source}: no prediction for {len(with_audio)} ground-truth clip(s) whose audio exists in "
            f"{audio_dir}, e.g. {with_audio[0]!r}; predict them again (ckpt=...), or pass on_missing=drop "
            "to score only the predicted clips")
    keep = {f: list(v) for f, v in gt.items() if f in have}
    if not keep:
        raise ConfigError(f"{source}: none of the {len(gt)} ground-truth clips of split {split!r} has a "
                          f"prediction (their audio is missing from {audio_dir})")
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = out_dir / f"left_out_{split}.tsv"
    listing.write_text("filename\treason\tn_events\n"
                       + "".join(f"{f}\t{reasons[f]}\t{len(gt[f])}\n" for f in no_pred))
    info = {"n_clips": len(no_pred), "n_events": int(sum(len(gt[f]) for f in no_pred)),
            "of_clips": len(gt), "of_events": int(sum(len(v) for v in gt.values())),
            "reason": "audio missing or undecodable", "list": str(listing), "audio_dir": str(audio_dir)}
    log.warning("%s: %d of %d ground-truth clips (%d of %d events) left out: their audio is missing or "
                "undecodable under %s (list: %s)", split, info["n_clips"], info["of_clips"], info["n_events"],
                info["of_events"], audio_dir, listing)
    return keep, info


def read_durations(path: str | Path) -> dict[str, float]:
    """``filename -> seconds`` from a ``filename  duration`` TSV; a bad line is a DataError naming it."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t")[:2] != ["filename", "duration"]:
        raise DataError(f"{path}:1: expected the header 'filename<TAB>duration'")
    out = {}
    for i, ln in enumerate(lines[1:], start=2):
        if not ln.strip():
            continue
        parts = ln.split("\t")
        try:
            d = float(parts[1])
        except (IndexError, ValueError):
            raise DataError(
                f"{path}:{i}: expected a filename and a duration in seconds, got {ln!r}"
            ) from None
        if not (d > 0 and np.isfinite(d)):
            raise DataError(f"{path}:{i}: duration {parts[1]!r} is not a positive number of seconds")
        out[parts[0]] = d
    return out


def durations_tsv(data_cfg: Mapping, split: str) -> Path | None:
    """The split's ``durations`` TSV named in the data config, when it exists."""
    s = (data_cfg.get("splits") or {}).get(split) or {}
    rel = s.get("durations") if hasattr(s, "get") else None
    if not rel:
        return None
    p = Path(data_cfg["root"]) / str(rel)
    return p if p.is_file() else None


_MEMO: dict[tuple, tuple] = {}


def apply_real_durations(preds, data_cfg: Mapping, split: str):
    """``(preds with each clip's duration from the split's durations TSV, info or None)``; the same
    object for the same inputs (a sweep's decoder cache is keyed by it)."""
    p = durations_tsv(data_cfg, split)
    if p is None:
        return preds, None
    key = (id(preds), str(p), p.stat().st_mtime_ns)
    if key in _MEMO and _MEMO[key][2] is preds:
        return _MEMO[key][:2]
    table = read_durations(p)
    listed = [f for f in preds.filenames if f in table]
    preds.check_coverage([table[f] for f in listed], f"predictions of {split} (clip durations from {p})",
                         listed)
    dur = np.array([min(table.get(f, d), float(preds.frame_probs.shape[1] * preds.frame_seconds))
                    for f, d in zip(preds.filenames, preds.durations)], dtype=np.float64)
    n = int(sum(f in table for f in preds.filenames))
    out = (dataclasses.replace(preds, durations=dur), {"file": str(p), "n_clips": n})
    _MEMO.clear()
    _MEMO[key] = (*out, preds)
    return out

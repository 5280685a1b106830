"""The NMF labelling job (SPEC section 3): templates -> dictionaries -> activations -> strong TSV.

Written as it goes and resumable: the two long stages (template extraction over the synthetic events,
activations over the weak clips) run in batches, and every batch is saved at once as a part file
(``part_00012.npz``, written to a temporary name then renamed) under
``<data.cache_dir>/nmf/{templates,activations}/<key>/``. The key hashes everything the stage's result
depends on (the feature cache index, the metadata, the NMF settings, the batch size), so an interrupted
run picks up the parts already done, and a run with other settings starts its own parts. Thresholding
the activations into events is cheap and done at the end; the TSV is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sed.audio.features import logmel_to_mel
from sed.core.classes import classes_of
from sed.core.constants import DEFAULT_FEATURES, FRAME_SECONDS
from sed.core.devices import resolve_device
from sed.core.errors import ConfigError
from sed.datamodules.cache import labels_for, load_split
from sed.datamodules.tsv import Event, read_strong_tsv, write_strong_tsv
from sed.nmf.core import NMFInputError
from sed.nmf.labels import (
    Activations,
    NMFLabelError,
    label_events,
    make_problems,
    normalize_activations,
    solve_activations,
)
from sed.nmf.templates import (
    Dictionary,
    TemplateSet,
    build_dictionary,
    event_masks,
    event_refs,
    extract_templates,
)

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    labels: dict[str, list[tuple[float, float, str]]]
    filenames: list[str]
    tags: dict[str, list[str]]
    dictionary: Dictionary
    activations: Activations
    whole_clip: list[tuple[int, str]]
    tsv: Path | None
    info: dict[str, Any] = field(default_factory=dict)


def _key(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _index_stamp(data_cfg: Mapping, split: str) -> str:
    p = Path(data_cfg["cache_dir"]) / "features" / split / "index.json"
    return hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "none"


def _save_part(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # per process: parallel jobs never share it
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_part(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001 - a torn or foreign file: recompute that part
        log.warning("%s: unreadable part file, recomputed", path)
        return None


def _mel_batch(logmel, rows: Sequence[int] | slice, device: torch.device) -> torch.Tensor:
    """Cached log-mel rows -> mel power ``(b, mels, frames)`` (SPEC section 2: NMF before the log)."""
    x = np.array(logmel[rows] if isinstance(rows, slice) else logmel[np.asarray(rows)], dtype=np.float32)
    return logmel_to_mel(torch.from_numpy(x).to(device)).transpose(1, 2).contiguous()


def _nan_error(err: NMFInputError, names: Sequence[str], split: str) -> NMFLabelError:
    name = names[err.bad[0]] if err.bad else "?"
    return NMFLabelError(f"{name}: the {split} clip's cached mel spectrogram is unusable for NMF ({err}); "
                         f"delete its feature cache to rebuild it")


def compute_templates(
    data_cfg: Mapping, ncfg: Mapping, device: torch.device, progress: bool = True
) -> TemplateSet:
    """SPEC section 3 step 1 over the synthetic split, batch by batch, resumable (see the module
    docstring)."""
    feats = load_split(data_cfg, "synthetic", progress=progress)
    events = labels_for(data_cfg, "synthetic")
    n_frames = feats.logmel.shape[1] if len(feats) else DEFAULT_FEATURES.n_frames
    refs = event_refs(feats.filenames, events, n_frames, FRAME_SECONDS)
    tcfg = ncfg["templates"]
    masks = event_masks(refs, n_frames, bool(tcfg.get("exclude_overlap", False)))
    bs = int(ncfg["batch_size"])
    key = _key({"stage": "templates", "index": _index_stamp(data_cfg, "synthetic"),
                "beta": float(ncfg["beta"]), "t": dict(tcfg),
                "refs": [tuple(r.__dict__.values()) for r in refs], "bs": bs, "v": 2})
    folder = Path(data_cfg["cache_dir"]) / "nmf" / "templates" / key
    folder.mkdir(parents=True, exist_ok=True)
    n_parts = (len(refs) + bs - 1) // bs
    temps, oks = [], []
    for p in tqdm(range(n_parts), desc="NMF templates", unit="batch", disable=not progress,
                  dynamic_ncols=True):
        path = folder / f"part_{p:05d}.npz"
        part = _load_part(path) if path.is_file() else None
        if part is None:
            sl = range(p * bs, min((p + 1) * bs, len(refs)))
            clips = [refs[i].clip for i in sl]
            V = _mel_batch(feats.logmel, clips, device)
            try:
                W, ok = extract_templates(
                    V, torch.from_numpy(masks[p * bs:p * bs + len(sl)]).to(device), beta=float(ncfg["beta"]),
                    max_iter=int(tcfg["max_iter"]), tol=float(tcfg["tol"]),
                    seeds=[int(tcfg["seed"]) + i for i in sl], norm=str(tcfg["norm"]))
            except NMFInputError as e:
                raise _nan_error(e, [feats.filenames[c] for c in clips], "synthetic") from None
            part = {"templates": W.float().cpu().numpy(), "ok": ok.cpu().numpy()}
            _save_part(path, **part)
        temps.append(part["templates"])
        oks.append(part["ok"])
    m = DEFAULT_FEATURES.n_mels
    T = np.concatenate(temps) if temps else np.zeros((0, m), np.float32)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    labels = [r.label for r, o in zip(refs, ok) if o]
    if (~ok).any():
        log.warning("%d synthetic events have no energy in their frames: no template from them",
                    int((~ok).sum()))
    return TemplateSet(T[ok], labels, dropped=int((~ok).sum()))


def compute_activations(data_cfg: Mapping, ncfg: Mapping, dictionary: Dictionary, device: torch.device,
                        progress: bool = True):
    """SPEC section 3 step 2 over the weak split, batch by batch, resumable. Returns
    (activations, filenames, tags, whole-clip pairs, skipped pairs)."""
    feats = load_split(data_cfg, "weak", progress=progress)
    all_tags = labels_for(data_cfg, "weak")
    names = list(feats.filenames)
    tags = {f: list(all_tags[f]) for f in names}
    acfg = ncfg["activation"]
    missing_mode = str(ncfg.get("missing_template", "whole_clip"))
    problems, missing = make_problems([tags[f] for f in names], dictionary, str(acfg["mode"]), missing_mode,
                                      names)
    if missing:
        order = {c: i for i, c in enumerate(dictionary.order)}
        classes = sorted({c for _, c in missing}, key=lambda c: (order.get(c, len(order)), c))
        log.warning("%d weak tags of classes %s have no template: %s", len(missing), classes,
                    "labelled over the whole clip" if missing_mode == "whole_clip" else "left without label")
    bs = int(ncfg["batch_size"])
    dict_hash = hashlib.sha1(b"".join(np.ascontiguousarray(dictionary.W[c]).tobytes() + c.encode()
                                      for c in dictionary.classes)).hexdigest()
    key = _key({"stage": "activations", "index": _index_stamp(data_cfg, "weak"), "dict": dict_hash,
                "beta": float(ncfg["beta"]), "a": dict(acfg), "tags": tags, "bs": bs, "v": 2})
    folder = Path(data_cfg["cache_dir"]) / "nmf" / "activations" / key
    folder.mkdir(parents=True, exist_ok=True)
    by_clip: dict[int, list] = {}
    for pr in problems:
        by_clip.setdefault(pr.clip, []).append(pr)
    n_parts = (len(names) + bs - 1) // bs
    parts = []
    for p in tqdm(range(n_parts), desc="NMF activations", unit="batch", disable=not progress,
                  dynamic_ncols=True):
        path = folder / f"part_{p:05d}.npz"
        part = _load_part(path) if path.is_file() else None
        if part is None:
            lo, hi = p * bs, min((p + 1) * bs, len(names))
            local = [type(pr)(pr.clip - lo, pr.classes) for i in range(lo, hi) for pr in by_clip.get(i, [])]
            V = _mel_batch(feats.logmel, slice(lo, hi), device)
            try:
                a = solve_activations(V, local, dictionary, beta=float(ncfg["beta"]),
                                      max_iter=int(acfg["max_iter"]), tol=float(acfg["tol"]),
                                      combine=str(acfg["combine"]))
            except NMFInputError as e:
                bad = [names[lo + local[i].clip] for i in e.bad] if e.bad else names[lo:hi]
                raise NMFLabelError(f"{bad[0]}: the weak clip's cached mel spectrogram is unusable for NMF "
                                    f"({e}); delete its feature cache to rebuild it") from None
            part = {"clip": a.clip + lo, "cls": a.cls, "act": a.act, "recon": a.recon, "energy": a.energy}
            _save_part(path, **part)
        parts.append(Activations(part["clip"].astype(np.int64), part["cls"].astype(np.int64), part["act"],
                                 part["recon"], part["energy"]))
    acts = Activations.concat(parts)
    whole = missing if missing_mode == "whole_clip" else []
    return acts, names, tags, whole, missing


#: Replacing published labels with fewer than this share of their events needs ``force``.
MIN_EVENT_SHARE = 0.5


def check_settings(ncfg: Mapping) -> None:
    """Refuse NMF settings outside their range (:class:`ConfigError` naming the key and the range)."""
    def num(key: str, value, lo: float, hi: float | None = None, integer: bool = False) -> None:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"nmf.{key} is {value!r}; expected a number") from None
        bad = v != v or v < lo or (hi is not None and v > hi) or (integer and v != int(v))
        if bad:
            rng = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
            raise ConfigError(f"nmf.{key} is {value}; expected {'an integer ' if integer else ''}{rng}")

    normalize = str(ncfg["normalize"])
    # every normalisation but `absolute` maps the curves into [0, 1]: a threshold above 1 keeps no frame
    num("threshold", ncfg["threshold"], 0.0, None if normalize == "absolute" else 1.0)
    num("median_window", ncfg["median_window"], 1, integer=True)
    num("min_duration", ncfg["min_duration"], 0.0)
    num("join_gap", ncfg["join_gap"], 0.0)
    num("batch_size", ncfg["batch_size"], 1, integer=True)
    num("beta", ncfg["beta"], 0.0)
    for stage in ("templates", "activation"):
        num(f"{stage}.max_iter", ncfg[stage]["max_iter"], 1, integer=True)
        num(f"{stage}.tol", ncfg[stage]["tol"], 0.0)
    num("dictionary.k", ncfg["dictionary"]["k"], 1, integer=True)


def count_events(path: str | Path) -> int | None:
    """Events (rows with a label) of a strong TSV, None when it does not exist or cannot be read."""
    try:
        return int(sum(len(v) for v in read_strong_tsv(path).values()))
    except (OSError, ValueError):
        return None


def guard_replacement(path: str | Path, n_new: int, *, force: bool = False, kept: Path | None = None) -> None:
    """Refuse (without ``force``) to replace the labels at ``path`` by ``n_new`` events when that is fewer
    than :data:`MIN_EVENT_SHARE` of the events it holds: a nonsensical setting must not silently
    replace the labels training reads."""
    n_old = count_events(path) if Path(path).is_file() else None
    if not n_old or n_new >= MIN_EVENT_SHARE * n_old:
        return
    where = f"; the new labels are in {kept}" if kept is not None else ""
    if force:
        log.warning("%s: replacing %d events by %d (force=true)", path, n_old, n_new)
        return
    raise ConfigError(f"{path}: refusing to replace its {n_old} events by {n_new} "
                      f"(fewer than {MIN_EVENT_SHARE:.0%}){where}; check the nmf settings, "
                      "or pass force=true")


def run_job(data_cfg: Mapping, ncfg: Mapping, *, output_tsv: str | Path | None,
            out_dir: str | Path | None = None, progress: bool = True, force: bool = False) -> JobResult:
    """The whole job; writes ``output_tsv`` (soundscapes.tsv format) and, with ``out_dir``, a copy there
    plus ``dictionary.npz``. Settings are range-checked first; replacing an existing ``output_tsv`` by
    far fewer events needs ``force`` (:func:`guard_replacement`)."""
    check_settings(ncfg)
    device = resolve_device(str(ncfg.get("device", "auto")))
    ts = compute_templates(data_cfg, ncfg, device, progress)
    dcfg = ncfg["dictionary"]
    dictionary = build_dictionary(ts, str(dcfg["kind"]), k=int(dcfg["k"]),
                                  max_columns=dcfg.get("max_columns"), seed=int(dcfg["seed"]),
                                  norm=str(ncfg["templates"]["norm"]), classes=classes_of(data_cfg))
    acts, names, tags, whole, missing = compute_activations(data_cfg, ncfg, dictionary, device, progress)
    labels = label_events(acts, names, classes=dictionary.order, normalize=str(ncfg["normalize"]),
                          threshold=float(ncfg["threshold"]),
                          frame_seconds=FRAME_SECONDS, clip_seconds=DEFAULT_FEATURES.clip_seconds,
                          median_window=int(ncfg["median_window"]), min_duration=float(ncfg["min_duration"]),
                          join_gap=float(ncfg["join_gap"]), whole_clip=whole)
    rows = {f: [Event(on, off, c) for on, off, c in evs] for f, evs in labels.items()}
    tsv = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_strong_tsv(out_dir / "weak_nmf.tsv", rows)
        np.savez(out_dir / "dictionary.npz", **{c: dictionary.W[c] for c in dictionary.classes})
    if output_tsv is not None:
        n_new = int(sum(len(v) for v in rows.values()))
        guard_replacement(output_tsv, n_new, force=force,
                          kept=(Path(out_dir) / "weak_nmf.tsv") if out_dir is not None else None)
        tsv = write_strong_tsv(output_tsv, rows)
    info = {"n_templates": {c: int(sum(1 for lab in ts.labels if lab == c)) for c in dictionary.order},
            "templates_dropped": ts.dropped,
            "dictionary_ranks": {c: dictionary.rank(c) for c in dictionary.classes},
            "n_weak_clips": len(names), "n_activations": int(len(acts.act)),
            "tags_without_template": [[names[i], c] for i, c in missing],
            "n_events": int(sum(len(v) for v in labels.values()))}
    return JobResult(labels, names, tags, dictionary, acts, whole, tsv, info)


def curves_for_plot(res: JobResult, ncfg: Mapping, names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """The normalised activation curve of each tagged class of each named clip."""
    curves = normalize_activations(res.activations, str(ncfg["normalize"]))
    row_of = {n: i for i, n in enumerate(res.filenames)}
    out = []
    for n in names:
        i = row_of[n]
        sel = np.flatnonzero(res.activations.clip == i)
        out.append({res.dictionary.order[res.activations.cls[j]]: curves[j] for j in sel})
    return out


def read_truth(data_cfg: Mapping) -> dict[str, list[Event]] | None:
    p = data_cfg.get("weak_truth_tsv")
    if not p or not Path(p).is_file():
        return None
    return read_strong_tsv(p, classes_of(data_cfg))

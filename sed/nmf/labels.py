"""Activations of the tagged classes in weak clips, and strong labels from them (SPEC section 3 steps 2-3).

For a weak clip tagged c1, c2 ..., its mel power ``V`` (m x n) is factorised with ``W`` fixed to a
dictionary and only ``H`` solved (:func:`sed.nmf.core.nmf`, fixed-W mode). Two modes (config
``activation.mode``):

- ``separate`` (the paper): one factorisation per tag, with ``W = W_c`` alone;
- ``joint``: one factorisation per clip with ``W = [W_c1 | W_c2 | ...]`` (all tagged classes' columns),
  so that tagged classes compete for the energy of each frame.

Only tagged classes can be activated. With ``r_c > 1`` columns for class c, its activation curve is
the **sum** (default; the summed gains of c's columns, i.e. the weight of c in the reconstruction since the
columns have unit norm) or the **max** of the H rows of its columns (``activation.combine``).

Normalisation before the threshold (paper: silent; ``normalize``):

- ``max``: ``a / max_t a`` per clip and class (default), threshold in [0, 1];
- ``minmax``: ``(a - min) / (max - min)``;
- ``absolute``: the raw activation;
- ``explained``: the share of the frame's energy that class c's part of the reconstruction explains,
  ``sum_mels (W_c H_c)[:, t] / sum_mels V[:, t]`` clipped to [0, 1].

Then an optional median filter (``median_window`` frames, odd), the threshold (frames with a value
strictly above it are active), removal of events shorter than ``min_duration`` and joining of gaps shorter
than ``join_gap`` (seconds; removal first, as SPEC section 6). Frame i spans ``[i dt, (i + 1) dt)``
(SPEC section 2): active frames ``s .. e - 1`` give the event ``[s dt, e dt)``, the offset capped at the
clip length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import median_filter

from sed.core.classes import class_index
from sed.core.constants import FRAME_SECONDS
from sed.core.errors import SedError
from sed.nmf.core import EPS, nmf
from sed.nmf.templates import Dictionary

NORMALIZATIONS = ("max", "minmax", "absolute", "explained")
MISSING_TEMPLATE = ("whole_clip", "skip", "error")


class NMFLabelError(SedError, ValueError):
    """A weak clip that cannot be labelled as asked (e.g. a tag with no template under
    ``missing_template=error``)."""


@dataclass
class Problem:
    """One fixed-W factorisation: clip row ``clip`` with the columns of ``classes`` (one in ``separate``
    mode)."""

    clip: int
    classes: list[str]


@dataclass
class Activations:
    """Per (clip, tagged class) curves over frames.

    ``clip`` (P,), ``cls`` (P,) class index, ``act`` (P, n) the combined H rows, ``recon`` (P, n) the
    mel-summed reconstruction of that class, ``energy`` (P, n) the mel-summed V of the clip.
    """

    clip: np.ndarray
    cls: np.ndarray
    act: np.ndarray
    recon: np.ndarray
    energy: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Activations]) -> Activations:
        if not parts:
            z = np.zeros((0, 0), np.float32)
            return Activations(np.zeros(0, np.int64), np.zeros(0, np.int64), z, z, z)
        return Activations(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                              ("clip", "cls", "act", "recon", "energy")))


def make_problems(
    clip_tags: Sequence[Sequence[str]],
    dictionary: Dictionary,
    mode: str = "separate",
    missing_template: str = "whole_clip",
    filenames: Sequence[str] | None = None,
) -> tuple[list[Problem], list[tuple[int, str]]]:
    """The factorisations to run, and the (clip, tag) pairs that have no template.

    ``missing_template``: ``whole_clip`` (the tag is returned in the second list; the caller labels it
    active over the whole clip, the trivial label), ``skip`` (likewise returned, the caller drops it) or
    ``error`` (raise :class:`NMFLabelError` naming the clip and the class).
    """
    if mode not in ("separate", "joint"):
        raise NMFLabelError(f"nmf.activation.mode is {mode!r}; expected separate or joint")
    if missing_template not in MISSING_TEMPLATE:
        raise NMFLabelError(
            f"nmf.missing_template is {missing_template!r}; expected one of {MISSING_TEMPLATE}"
        )
    problems: list[Problem] = []
    missing: list[tuple[int, str]] = []
    for i, tags in enumerate(clip_tags):
        have = [t for t in dict.fromkeys(tags) if t in dictionary.W]
        for t in dict.fromkeys(tags):
            if t not in dictionary.W:
                if missing_template == "error":
                    name = filenames[i] if filenames is not None else f"clip {i}"
                    raise NMFLabelError(
                        f"{name}: tag {t} has no NMF template (no strongly-labelled event of that class); "
                        "set nmf.missing_template=whole_clip or skip to label it anyway"
                    )
                missing.append((i, t))
        if not have:
            continue
        if mode == "separate":
            problems += [Problem(i, [t]) for t in have]
        else:
            problems.append(Problem(i, have))
    return problems, missing


def solve_activations(
    V: torch.Tensor,
    problems: Sequence[Problem],
    dictionary: Dictionary,
    *,
    beta: float = 2.0,
    max_iter: int = 200,
    tol: float = 1e-4,
    combine: str = "sum",
) -> Activations:
    """Fixed-W NMF of every problem in one batch; ``V`` ``(B, m, n)`` holds the clips ``problems`` index.

    Each problem's ``W`` is the concatenation of its classes' dictionaries, zero-padded to the largest
    rank of its group (a zero column gets zero activation and does not change ``WH``); the problems with
    a one-column ``W`` form a group of their own, solved on the rank-1 fast path of :func:`nmf`.
    """
    if combine not in ("sum", "max"):
        raise NMFLabelError(f"nmf.activation.combine is {combine!r}; expected sum or max")
    P = len(problems)
    m, n = V.shape[1], V.shape[2]
    if P == 0:
        z = np.zeros((0, n), np.float32)
        return Activations(np.zeros(0, np.int64), np.zeros(0, np.int64), z, z, z)
    W, slot, ranks = _stacked_dictionaries(problems, dictionary, m)
    dev, dt = V.device, V.dtype
    clip_idx = torch.as_tensor([p.clip for p in problems], device=dev)
    Vp = V[clip_idx]
    Wt = torch.from_numpy(W).to(dev, dt)
    H = _solve_groups(Vp, Wt, problems, ranks, beta=beta, max_iter=max_iter, tol=tol)
    return _class_activations(problems, Vp, Wt, H, torch.from_numpy(slot).to(dev), clip_idx, combine,
                              dictionary)


def _stacked_dictionaries(
    problems: Sequence[Problem], dictionary: Dictionary, m: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(W (P, m, R), slot (P, R), ranks)``: each problem's classes' dictionaries side by side, zero-padded
    to the largest rank ``R``; ``slot``: the class index of each column (-1: padding)."""
    ranks = [sum(dictionary.rank(c) for c in p.classes) for p in problems]
    R = max(ranks)
    W = np.zeros((len(problems), m, R), np.float32)
    slot = np.full((len(problems), R), -1, np.int64)  # class index of each column
    for j, p in enumerate(problems):
        o = 0
        for c in p.classes:
            Wc = dictionary.W[c]
            W[j, :, o:o + Wc.shape[1]] = Wc
            slot[j, o:o + Wc.shape[1]] = dictionary.index(c)
            o += Wc.shape[1]
    return W, slot, ranks


def _solve_groups(
    Vp: torch.Tensor, Wt: torch.Tensor, problems: Sequence[Problem], ranks: Sequence[int], *, beta: float,
    max_iter: int, tol: float,
) -> torch.Tensor:
    """Activations ``H`` ``(P, R, n)`` of the fixed-W NMF of every problem, one batch per rank group."""
    P, R, n = Wt.shape[0], Wt.shape[2], Vp.shape[2]
    dev, dt = Vp.device, Vp.dtype
    # problems with a one-column dictionary (the paper's r = 1: every problem of mode=separate with mean
    # dictionaries, single-tag clips in joint mode) are solved apart, on the rank-1 fast path of nmf
    H = torch.zeros(P, R, n, dtype=dt, device=dev)
    ranks_t = torch.as_tensor(ranks)
    for group in (ranks_t == 1, ranks_t > 1):
        members = torch.nonzero(group).flatten()
        if members.numel() == 0:
            continue
        Rg, idx = int(ranks_t[members].max()), members.to(dev)
        Wg = Wt[idx, :, :Rg]
        if len({(tuple(problems[i].classes), ranks[i]) for i in members.tolist()}) == 1:
            Wg = Wg[0]  # one shared dictionary: cheaper matmuls
        H[idx, :Rg] = nmf(Vp[idx], W=Wg, fixed_W=True, beta=beta, max_iter=max_iter, tol=tol).H
    return H


def _class_activations(
    problems: Sequence[Problem], Vp: torch.Tensor, Wt: torch.Tensor, H: torch.Tensor, slot_t: torch.Tensor,
    clip_idx: torch.Tensor, combine: str, dictionary: Dictionary,
) -> Activations:
    """One row per (clip, class) of the problems, in clip then class order: the class's activation
    (its columns' ``combine``), the sum over mels of its part of ``WH`` and the clip's energy."""
    dt = H.dtype
    energy = Vp.sum(dim=1)  # (P, n)
    colsum = Wt.sum(dim=1)  # (P, R): sum over mels of each column
    rows_clip, rows_cls, acts, recons, energies = [], [], [], [], []
    for c in sorted({c for p in problems for c in p.classes}, key=dictionary.index):  # loop over classes only
        ci = dictionary.index(c)
        sel = slot_t == ci  # (P, R)
        has = sel.any(dim=1)
        if not bool(has.any()):
            continue
        selH = sel[:, :, None].to(dt)
        if combine == "sum":
            a = (H * selH).sum(dim=1)
        else:
            a = torch.where(sel[:, :, None], H, torch.full_like(H, -1.0)).amax(dim=1).clamp_min(0)
        rec = ((colsum * sel.to(dt))[:, :, None] * H).sum(dim=1)  # sum over mels of W_c H_c
        rows = torch.nonzero(has).flatten()
        rows_clip.append(clip_idx[rows].cpu().numpy())
        rows_cls.append(np.full(len(rows), ci, np.int64))
        acts.append(a[rows].float().cpu().numpy())
        recons.append(rec[rows].float().cpu().numpy())
        energies.append(energy[rows].float().cpu().numpy())
    out = Activations(np.concatenate(rows_clip), np.concatenate(rows_cls), np.concatenate(acts),
                      np.concatenate(recons), np.concatenate(energies))
    order = np.lexsort((out.cls, out.clip))  # clip, then class order
    return Activations(out.clip[order], out.cls[order], out.act[order], out.recon[order], out.energy[order])


def normalize_activations(acts: Activations, how: str = "max") -> np.ndarray:
    """``(P, n)`` curves to threshold (see the module docstring); an all-zero curve stays zero."""
    if how not in NORMALIZATIONS:
        raise NMFLabelError(f"nmf.normalize is {how!r}; expected one of {NORMALIZATIONS}")
    a = acts.act.astype(np.float64)
    if how == "absolute":
        return a
    if how == "max":
        mx = a.max(axis=1, keepdims=True) if a.size else np.zeros((len(a), 1))
        return np.divide(a, mx, out=np.zeros_like(a), where=mx > EPS)
    if how == "minmax":
        if not a.size:
            return a
        lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
        return np.divide(a - lo, hi - lo, out=np.zeros_like(a), where=(hi - lo) > EPS)
    e = acts.energy.astype(np.float64)
    r = np.divide(acts.recon.astype(np.float64), e, out=np.zeros_like(e), where=e > EPS)
    return np.clip(r, 0.0, 1.0)


def smooth(curves: np.ndarray, window: int) -> np.ndarray:
    """Median filter along frames (``window`` frames, rounded up to odd; 1 = none), vectorised over rows."""
    if window <= 1 or curves.size == 0:
        return curves
    w = window + 1 - window % 2
    return median_filter(curves, size=(1, w), mode="nearest")


def activity_to_segments(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True in each row of ``active`` ``(P, n)``: (row, start frame, exclusive end frame),
    row-major order."""
    P, n = active.shape
    padded = np.zeros((P, n + 2), np.int8)
    padded[:, 1:-1] = active
    d = np.diff(padded, axis=1)
    r_on, s = np.nonzero(d == 1)
    r_off, e = np.nonzero(d == -1)  # same row-major order as the starts: runs pair up one to one
    return r_on, s, e


def clean_segments(
    row: np.ndarray, start: np.ndarray, end: np.ndarray, frame_seconds: float, min_duration: float = 0.0,
    join_gap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop runs shorter than ``min_duration`` s, then join runs of a row separated by less than
    ``join_gap`` s."""
    if min_duration > 0:
        keep = (end - start) * frame_seconds >= min_duration - 1e-9
        row, start, end = row[keep], start[keep], end[keep]
    if join_gap > 0 and len(row) > 1:
        gap = (start[1:] - end[:-1]) * frame_seconds
        join = (row[1:] == row[:-1]) & (gap < join_gap - 1e-9)
        first = np.concatenate([[True], ~join])  # a run that starts a new event
        group = np.cumsum(first) - 1
        last_of_group = np.concatenate([first[1:], [True]])
        row, start, end = row[first], start[first], end[last_of_group]
        assert len(group) >= len(row)
    return row, start, end


def curves_to_events(
    curves: np.ndarray,
    threshold: float,
    *,
    frame_seconds: float = FRAME_SECONDS,
    clip_seconds: float = 10.0,
    median_window: int = 1,
    min_duration: float = 0.0,
    join_gap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curves ``(P, n)`` -> events as (row, onset s, offset s): frames strictly above ``threshold``."""
    active = smooth(curves, median_window) > threshold
    row, s, e = activity_to_segments(active)
    row, s, e = clean_segments(row, s, e, frame_seconds, min_duration, join_gap)
    onset = s * frame_seconds
    offset = np.minimum(e * frame_seconds, clip_seconds)
    return row, onset, offset


def label_events(
    acts: Activations,
    filenames: Sequence[str],
    *,
    classes: Sequence[str],
    normalize: str = "max",
    threshold: float = 0.5,
    frame_seconds: float = FRAME_SECONDS,
    clip_seconds: float = 10.0,
    median_window: int = 1,
    min_duration: float = 0.0,
    join_gap: float = 0.0,
    whole_clip: Sequence[tuple[int, str]] = (),
) -> dict[str, list[tuple[float, float, str]]]:
    """Strong labels ``{filename: [(onset, offset, label)]}`` for every clip in ``filenames`` (SPEC step 3).

    ``classes``: the label set the activations' ``cls`` index (the dictionary's ``order``).
    ``whole_clip``: (clip row, class) pairs labelled active over the whole clip (tags with no template).
    Clips with no event map to ``[]``.
    """
    out: dict[str, list[tuple[float, float, str]]] = {f: [] for f in filenames}
    index = class_index(classes)
    curves = normalize_activations(acts, normalize)
    row, on, off = curves_to_events(curves, threshold, frame_seconds=frame_seconds, clip_seconds=clip_seconds,
                                    median_window=median_window, min_duration=min_duration, join_gap=join_gap)
    for r, a, b in zip(row.tolist(), on.tolist(), off.tolist()):
        out[filenames[acts.clip[r]]].append((a, b, classes[acts.cls[r]]))
    for i, c in whole_clip:
        out[filenames[i]].append((0.0, clip_seconds, c))
    for f in out:
        out[f].sort(key=lambda e: (e[0], index[e[2]], e[1]))
    return out

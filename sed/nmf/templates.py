"""Class templates and dictionaries from strongly-labelled clips (SPEC section 3 step 1, paper 2.2).

For every event of every strongly-labelled (synthetic) clip, the clip's mel power spectrogram
``V`` (64 mels x 640 frames) is masked to the event's frames and factorised with r = 1: the single
column of ``W`` is a template of the event's class. All events are factorised together in batches
(:func:`sed.nmf.core.nmf` with a frame mask). Templates are scaled to unit norm (``norm``), so that
the activations of different classes are on one scale.

A class's dictionary is built from its templates (paper: silent; a config option):

- ``all``: every template a column (``r_c`` = number of templates, optionally subsampled to
  ``max_columns``);
- ``mean``: the normalised mean template (``r_c = 1``, the paper's "r set as 1" for the activations);
- ``kmeans``: ``k`` spherical k-means centres of the normalised templates (``r_c = min(k, n)``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sed.core.constants import FRAME_SECONDS, seconds_to_frame, seconds_to_frame_end
from sed.core.errors import ConfigError
from sed.nmf.core import EPS, nmf, normalize_columns

log = logging.getLogger(__name__)

DICTIONARY_KINDS = ("all", "mean", "kmeans")


@dataclass(frozen=True)
class EventRef:
    """One event of a strongly-labelled clip: the clip's row in the feature cache and its frame span."""

    clip: int
    label: str
    start: int  # first frame
    end: int  # exclusive end frame


@dataclass
class TemplateSet:
    """Templates ``(E, m)`` with their class labels (one per event that gave a usable template)."""

    templates: np.ndarray
    labels: list[str]
    dropped: int = 0  # events whose masked spectrogram was all zero (no template)

    def of(self, label: str) -> np.ndarray:
        idx = [i for i, lab in enumerate(self.labels) if lab == label]
        return self.templates[idx]


@dataclass
class Dictionary:
    """Per-class dictionaries ``W_c`` ``(m, r_c)``, unit-norm columns; classes without templates are
    absent.  ``order``: the label set (``data.classes``); activations index classes by their place in it
    (default: the order of ``W``)."""

    W: dict[str, np.ndarray]
    kind: str = "mean"
    meta: dict = field(default_factory=dict)
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.order = tuple(self.order) or tuple(self.W)
        unknown = [c for c in self.W if c not in self.order]
        if unknown:
            raise ConfigError(f"NMF dictionary: classes {unknown} are not in the label set "
                              f"{list(self.order)}")

    @property
    def classes(self) -> list[str]:
        """The classes with a dictionary, in label-set order."""
        return [c for c in self.order if c in self.W]

    def index(self, label: str) -> int:
        """The class's place in the label set (the ``cls`` of its activations)."""
        return self.order.index(label)

    def rank(self, label: str) -> int:
        return self.W[label].shape[1]


def event_refs(
    clips: Sequence[str],
    events: Mapping[str, Sequence],
    n_frames: int,
    frame_seconds: float = FRAME_SECONDS,
) -> list[EventRef]:
    """Events of the listed clips (in cache order) as frame spans: frames
    ``floor(on/dt) .. ceil(off/dt) - 1``.

    Events entirely past the last frame are left out; a zero-length event keeps its onset frame.
    """
    refs: list[EventRef] = []
    for i, name in enumerate(clips):
        for ev in events.get(name, []):
            start = int(seconds_to_frame(ev[0], frame_seconds))
            end = max(int(seconds_to_frame_end(ev[1], frame_seconds)), start + 1)
            end = min(end, n_frames)
            if start >= n_frames:
                continue
            refs.append(EventRef(i, ev[2], start, end))
    return refs


def event_masks(refs: Sequence[EventRef], n_frames: int, exclude_overlap: bool = False) -> np.ndarray:
    """``(E, n_frames)`` bool: each event's frames (SPEC section 3 step 1: other frames are masked out).

    ``exclude_overlap``: also mask out frames where an event of another class of the same clip is
    active (paper: silent, it keeps them; default False).
    """
    frames = np.arange(n_frames)
    start = np.array([r.start for r in refs])[:, None]
    end = np.array([r.end for r in refs])[:, None]
    masks = (frames >= start) & (frames < end)
    if exclude_overlap and len(refs):
        clip = np.array([r.clip for r in refs])
        lab = np.array([r.label for r in refs])
        other = (clip[:, None] == clip[None, :]) & (lab[:, None] != lab[None, :])  # (E, E)
        covered_by_other = (other.astype(np.int64) @ masks.astype(np.int64)) > 0
        reduced = masks & ~covered_by_other
        # an event entirely under another class keeps its own frames (else it would give no template)
        empty = ~reduced.any(axis=1)
        masks = np.where(empty[:, None], masks, reduced)
    return masks


def extract_templates(
    V: torch.Tensor,
    masks: torch.Tensor,
    *,
    beta: float = 2.0,
    max_iter: int = 200,
    tol: float = 1e-4,
    seeds: int | Sequence[int] = 0,
    norm: str = "l2",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-1 NMF of each masked ``V[e]`` ``(E, m, n)``: returns (templates ``(E, m)``, usable ``(E,)`` bool).

    A template is unusable (all zero) when the event's frames hold no energy.
    """
    res = nmf(V, 1, mask=masks, beta=beta, max_iter=max_iter, tol=tol, seeds=seeds)
    W = normalize_columns(res.W, norm)[:, :, 0]
    ok = W.abs().sum(dim=1) > EPS
    return W, ok


def build_dictionary(
    ts: TemplateSet,
    kind: str = "mean",
    *,
    k: int = 4,
    max_columns: int | None = None,
    seed: int = 0,
    norm: str = "l2",
    classes: Sequence[str] | None = None,
) -> Dictionary:
    """Per-class dictionaries from templates (``all`` | ``mean`` | ``kmeans``), unit-norm columns;
    ``classes``: the label set (default: the templates' labels in order of appearance)."""
    if kind not in DICTIONARY_KINDS:
        raise ConfigError(f"nmf.dictionary.kind is {kind!r}; expected one of {DICTIONARY_KINDS}")
    classes = tuple(classes) if classes is not None else tuple(dict.fromkeys(ts.labels))
    out: dict[str, np.ndarray] = {}
    for c in classes:
        T = ts.of(c)
        if len(T) == 0:
            continue
        T = _normalize_rows(T, norm)
        if kind == "mean":
            cols = T.mean(axis=0, keepdims=True)
        elif kind == "kmeans":
            cols = spherical_kmeans(T, min(k, len(T)), seed=seed)
        else:
            cols = T
            if max_columns is not None and len(T) > max_columns:
                rng = np.random.default_rng(seed)
                cols = T[np.sort(rng.choice(len(T), max_columns, replace=False))]
        out[c] = _normalize_rows(cols, norm).T.astype(np.float32)  # (m, r_c)
    return Dictionary(out, kind, {"k": k, "max_columns": max_columns, "seed": seed, "norm": norm}, classes)


def _normalize_rows(T: np.ndarray, norm: str) -> np.ndarray:
    return normalize_columns(torch.from_numpy(np.ascontiguousarray(T.T, dtype=np.float64)), norm).numpy().T


def spherical_kmeans(X: np.ndarray, k: int, *, seed: int = 0, n_iter: int = 50) -> np.ndarray:
    """``k`` centres of the unit rows of ``X`` ``(n, m)`` by cosine similarity (k-means++ start, Lloyd steps).

    Deterministic for a seed; an empty cluster keeps its previous centre.
    """
    n = len(X)
    if k >= n:
        return X.copy()
    rng = np.random.default_rng(seed)
    centres = [X[rng.integers(n)]]
    for _ in range(1, k):  # k-means++ on the cosine distance
        d = np.clip(1 - np.max(X @ np.stack(centres).T, axis=1), 0, None)
        p = d / d.sum() if d.sum() > 0 else np.full(n, 1 / n)
        centres.append(X[rng.choice(n, p=p)])
    C = np.stack(centres)
    assign = np.full(n, -1)
    for _ in range(n_iter):
        new = np.argmax(X @ C.T, axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        sums = np.zeros_like(C)
        np.add.at(sums, assign, X)
        counts = np.bincount(assign, minlength=k)
        nz = counts > 0
        C[nz] = sums[nz] / np.linalg.norm(sums[nz], axis=1, keepdims=True).clip(1e-12)
    return C

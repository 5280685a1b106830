"""Post-processing parameters (SPEC section 6, paper section 2.4 and Table 1).

The config group ``conf/postproc/`` holds them (key ``postproc``); :meth:`PostprocParams.from_cfg`
reads one. Choices where the paper is silent are config options whose defaults are stated here:

- ``even_window`` (Table 1 has even windows: 6, 48, 96): ``round_up`` (default) uses the next odd
  length (6 -> 7), so the filter stays centred; ``round_down`` uses the previous odd length;
  ``as_is`` passes the even length to scipy, whose window is then one frame longer on the left
  (``size // 2`` frames before the centre, ``size // 2 - 1`` after).
- ``median_edge``: how the median filter sees beyond the clip's edges. Default ``reflect``
  (scipy.ndimage's default, ``d c b a | a b c d``, the filter the DCASE 2020 baseline used);
  ``nearest`` repeats the edge frame, ``constant`` pads with zeros (scipy.signal.medfilt's rule,
  which shortens events touching the clip edges).
- ``hysteresis_low`` (0.08, paper): ``null`` switches hysteresis off.
- ``min_duration`` (0.1 s) and ``join_gap`` (0.2 s): an event is removed when strictly shorter
  than ``min_duration``; two same-class events are joined when the gap between them is
  strictly shorter than ``join_gap`` (equality keeps them apart); both compare seconds
  after the frame-to-second conversion.
- ``order``: ``remove_then_join`` (paper's finding, default) or ``join_then_remove``.
- ``tagging_threshold`` (0.5, paper): a class is kept in a clip when its clip probability is
  strictly greater; ``null`` switches audio tagging off. A mapping ``class -> value`` (value or
  ``null``) gives each class its own (``sed.tune`` fits them); every class must be listed.
- ``tuned_on``: optional provenance, the split a tuned setting was selected on (written by
  ``sed.eval`` when it writes a tuned ``conf/postproc/<name>.yaml``); ``null`` for Table 1.
- ``tuned_data``: optional provenance, the dataset root (resolved) or ground-truth file the tuning
  split came from (``sed.tune``); ``sed.eval`` says so when it applies the file to other data.
- ``generic_threshold`` (0.5) and ``generic_windows`` ([7, 15]): what a class without an entry gets (a
  label set other than DESED's, ``data.classes``) until ``sed.tune`` fits it: the tagging threshold's
  0.5 as frame threshold and Table 1's most common window pair (Dog's and Speech's). A per-class tagging
  table without the class gives it :data:`GENERIC_TAGGING` (0.5, the paper's). Said once per run on the
  console (:meth:`PostprocParams.for_classes`); entries of classes the run does not have are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from sed.core.errors import SedError
from sed.core.paths import CONF_DIR

log = logging.getLogger(__name__)
EVEN_WINDOW_RULES = ("round_up", "round_down", "as_is")
#: the tagging threshold of a class a per-class tagging table lacks (the paper's single value)
GENERIC_TAGGING = 0.5
EDGE_MODES = ("reflect", "nearest", "constant", "mirror")
ORDERS = ("remove_then_join", "join_then_remove")


class PostprocError(SedError, ValueError):
    """Post-processing parameters that cannot be used as given."""


TABLE1_FILE = CONF_DIR / "postproc" / "paper.yaml"


def _table1() -> dict[str, tuple[float, int, int]]:
    """Table 1 of the paper (SPEC section 6): per class, the frame threshold and the first and second median
    window (frames), read from its one home, conf/postproc/paper.yaml."""
    node = OmegaConf.load(TABLE1_FILE)
    return {str(c): (float(t), int(node.median_windows[c][0]), int(node.median_windows[c][1]))
            for c, t in node.frame_thresholds.items()}


TABLE1: dict[str, tuple[float, int, int]] = _table1()


def _windows_tuple(v: Any, cls: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        v = [int(v)]
    try:
        ws = tuple(int(w) for w in v)
    except (TypeError, ValueError) as e:
        raise PostprocError(
            f"postproc.median_windows.{cls}: expected a list of window lengths, got {v!r}"
        ) from e
    if any(w < 1 for w in ws):
        raise PostprocError(f"postproc.median_windows.{cls}: window lengths must be >= 1, got {list(ws)}")
    return ws


@dataclass(frozen=True)
class PostprocParams:
    """All post-processing settings; class-keyed mappings are in class-name order of the config."""

    frame_thresholds: Mapping[str, float] = field(
        default_factory=lambda: {c: t for c, (t, _, _) in TABLE1.items()}
    )
    median_windows: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: {c: (w1, w2) for c, (_, w1, w2) in TABLE1.items()}
    )
    tagging_threshold: float | None | Mapping[str, float | None] = 0.5
    even_window: str = "round_up"
    median_edge: str = "reflect"
    hysteresis_low: float | None = 0.08
    min_duration: float = 0.1
    join_gap: float = 0.2
    order: str = "remove_then_join"
    tuned_on: str | None = None
    tuned_data: str | None = None
    generic_threshold: float = 0.5
    generic_windows: tuple[int, ...] = (7, 15)

    def __post_init__(self) -> None:
        th = {str(k): float(v) for k, v in dict(self.frame_thresholds).items()}
        mw = {str(k): _windows_tuple(v, str(k)) for k, v in dict(self.median_windows).items()}
        object.__setattr__(self, "frame_thresholds", th)
        object.__setattr__(self, "median_windows", mw)
        object.__setattr__(self, "generic_windows", _windows_tuple(self.generic_windows, "generic_windows"))
        if not 0.0 <= float(self.generic_threshold) <= 1.0:
            raise PostprocError(f"postproc.generic_threshold: {self.generic_threshold} is not in [0, 1]")
        for name in ("min_duration", "join_gap", "generic_threshold"):
            object.__setattr__(self, name, float(getattr(self, name)))
        tag = self.tagging_threshold
        if isinstance(tag, Mapping):
            tag = {str(k): (None if v is None else float(v)) for k, v in dict(tag).items()}
            object.__setattr__(self, "tagging_threshold", tag)
            for c, v in tag.items():
                if v is not None and not 0.0 <= v <= 1.0:
                    raise PostprocError(f"postproc.tagging_threshold.{c}: {v} is not in [0, 1]")
        for name in ("tagging_threshold", "hysteresis_low"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Mapping):
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.even_window not in EVEN_WINDOW_RULES:
            raise PostprocError(
                f"postproc.even_window: {self.even_window!r} is not one of {EVEN_WINDOW_RULES}"
            )
        if self.median_edge not in EDGE_MODES:
            raise PostprocError(f"postproc.median_edge: {self.median_edge!r} is not one of {EDGE_MODES}")
        if self.order not in ORDERS:
            raise PostprocError(f"postproc.order: {self.order!r} is not one of {ORDERS}")
        for name in ("min_duration", "join_gap"):
            if float(getattr(self, name)) < 0:
                raise PostprocError(f"postproc.{name} must be >= 0, got {getattr(self, name)}")
        for c, t in th.items():
            if not 0.0 <= t <= 1.0:
                raise PostprocError(f"postproc.frame_thresholds.{c}: {t} is not in [0, 1]")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg: Any) -> PostprocParams:
        """Build from a ``postproc`` config node (OmegaConf or a plain mapping); unknown keys are an error."""
        if cfg is None:
            return cls()
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        if isinstance(cfg, PostprocParams):
            return cfg
        if not isinstance(cfg, Mapping):
            raise PostprocError(f"postproc: expected a mapping, got {type(cfg).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(cfg) - known - {"name"}
        if unknown:
            raise PostprocError(f"postproc: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        kw = {k: v for k, v in cfg.items() if k in known}
        for k in ("min_duration", "join_gap"):  # null: the step is off
            if k in kw and kw[k] is None:
                kw[k] = 0.0
        for k in ("frame_thresholds", "median_windows", "even_window", "median_edge", "order",
                  "generic_threshold", "generic_windows"):
            if k in kw and kw[k] is None:
                raise PostprocError(f"postproc.{k} cannot be null")
        for k in ("frame_thresholds", "median_windows"):
            if k in kw and not isinstance(kw[k], Mapping):
                raise PostprocError(f"postproc.{k}: expected a mapping class -> value, got {kw[k]!r}")
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the config's format (what ``conf/postproc/<name>.yaml`` holds)."""
        return {
            "tagging_threshold": (
                dict(self.tagging_threshold)
                if isinstance(self.tagging_threshold, Mapping)
                else self.tagging_threshold
            ),
            "frame_thresholds": dict(self.frame_thresholds),
            "median_windows": {c: list(w) for c, w in self.median_windows.items()},
            "even_window": self.even_window,
            "median_edge": self.median_edge,
            "hysteresis_low": self.hysteresis_low,
            "min_duration": self.min_duration,
            "join_gap": self.join_gap,
            "order": self.order,
            "tuned_on": self.tuned_on,
            "tuned_data": self.tuned_data,
            "generic_threshold": self.generic_threshold,
            "generic_windows": list(self.generic_windows),
        }

    def generic_classes(self, classes: Sequence[str]) -> list[str]:
        """The classes of ``classes`` that a class-keyed table lacks (they get the generic values)."""
        tag = self.tagging_threshold
        return [c for c in classes if c not in self.frame_thresholds or c not in self.median_windows
                or (isinstance(tag, Mapping) and c not in tag)]

    def for_classes(self, classes: Sequence[str], source: str = "the run") -> PostprocParams:
        """The same settings for exactly ``classes``: every class-keyed table (frame thresholds, median
        windows and a per-class tagging table) keeps those classes, and a class it lacks gets the generic
        values (said once on the console, naming ``source``); entries of other classes are dropped."""
        generic = self.generic_classes(classes)
        if generic:
            _note_generic(tuple(generic), self, source)
        tag = self.tagging_threshold
        return replace(
            self,
            frame_thresholds=dict(zip(classes, self.thresholds_for(classes).tolist())),
            median_windows={c: self.median_windows.get(c, self.generic_windows) for c in classes},
            tagging_threshold=(dict(zip(classes, [tag.get(c, GENERIC_TAGGING) for c in classes]))
                               if isinstance(tag, Mapping) else tag),
        )

    def with_threshold(self, threshold: float) -> PostprocParams:
        """The same settings with one frame threshold for every class (a PSDS operating point)."""
        return replace(self, frame_thresholds={c: float(threshold) for c in self.frame_thresholds})

    # ------------------------------------------------------------------ per-class arrays
    def thresholds_for(self, classes: Sequence[str]) -> np.ndarray:
        """Frame thresholds as a ``(C,)`` array in ``classes`` order (``generic_threshold`` where the
        table lacks a class)."""
        return np.array([self.frame_thresholds.get(c, self.generic_threshold) for c in classes],
                        dtype=np.float64)

    def tagging_for(self, classes: Sequence[str]) -> np.ndarray:
        """Tagging thresholds as a ``(C,)`` array in ``classes`` order; ``-inf`` where tagging is off
        (``clip_probs > tagging_for(...)`` is then the tagging mask of step 1); :data:`GENERIC_TAGGING`
        where a per-class table lacks a class."""
        t = self.tagging_threshold
        if not isinstance(t, Mapping):
            return np.full(len(classes), -np.inf if t is None else float(t), dtype=np.float64)
        values = [t.get(c, GENERIC_TAGGING) for c in classes]
        return np.array([-np.inf if v is None else v for v in values], dtype=np.float64)

    def raw_windows(self, cls: str) -> tuple[int, ...]:
        """The configured median windows of ``cls`` (``generic_windows`` where the table lacks it)."""
        return self.median_windows.get(cls, self.generic_windows)

    def tagging_key(self) -> float | None | tuple:
        """The tagging setting in a hashable form (a sorted tuple of pairs for the per-class form)."""
        t = self.tagging_threshold
        return tuple(sorted(t.items())) if isinstance(t, Mapping) else t

    def windows_for(self, classes: Sequence[str]) -> list[tuple[int, ...]]:
        """Effective (odd, after the ``even_window`` rule) median windows per class, in ``classes`` order."""
        return [tuple(effective_window(w, self.even_window) for w in self.raw_windows(c)) for c in classes]


_noted: set[tuple] = set()


def _note_generic(classes: tuple[str, ...], params: PostprocParams, source: str) -> None:
    """One console line per process and class set: these classes get the generic post-processing."""
    key = (classes, params.generic_threshold, params.generic_windows)
    if key not in _noted:
        _noted.add(key)
        log.warning("postproc: no tuned or Table 1 values for %d class(es) of %s (%s): generic frame "
                    "threshold %g and median windows %s until `sed.tune` fits them", len(classes), source,
                    ", ".join(classes), params.generic_threshold, list(params.generic_windows))


def effective_window(w: int, rule: str = "round_up") -> int:
    """Median window actually used for a configured length ``w`` (see module docstring)."""
    w = int(w)
    if w < 1:
        raise PostprocError(f"median window must be >= 1, got {w}")
    if w % 2 == 1 or rule == "as_is":
        return w
    if rule == "round_up":
        return w + 1
    if rule == "round_down":
        return w - 1
    raise PostprocError(f"even_window rule {rule!r} is not one of {EVEN_WINDOW_RULES}")

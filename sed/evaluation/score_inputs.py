"""Inputs of ``sedx score``: ground truth, clip durations, detections, operating points and score TSVs.

Detections and operating points are read in the layouts the field publishes (:func:`read_detections`):
tab- or comma-separated, the columns named by a header in any order (DCASE names and aliases, extra
columns such as an index ignored) or, with no header, ``filename onset offset event_label``. An
operating point's threshold comes from its file name or a given list (:func:`operating_point_thresholds`).

Every reader checks its file and raises :class:`~sed.core.errors.DataError` with one line
``<file>:<line>: <what is wrong>``. Tables are checked vectorised (pandas); the first bad row is named.
"""

from __future__ import annotations

import csv
import glob
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from sed.core.errors import DataError
from sed.datamodules.tsv import _parse_time, _rows, read_lines
from sed.evaluation.common import audio_id

DETECTION_COLUMNS = ("filename", "onset", "offset", "event_label")
DEFAULT_DURATION = 10.0


@dataclass
class Truth:
    """Strong ground truth: ``events`` ``{filename: [(onset, offset, label)]}`` (every clip, with or without
    events) and the class list (``--classes``, else the labels the ground truth holds, sorted)."""

    path: str
    events: dict[str, list[tuple[float, float, str]]]
    classes: tuple[str, ...]

    @property
    def clips(self) -> list[str]:
        return list(self.events)

    @property
    def n_events(self) -> int:
        return sum(len(v) for v in self.events.values())


@dataclass
class Detections:
    """One detection table (DCASE columns) and what reading it changed (``notes``)."""

    path: str
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    threshold: float | None = None
    n_read: int = 0  # rows in the file
    layout: str = ""  # how the file was read (:class:`Layout`), "" for DESED's own layout


# ---------------------------------------------------------------------------- ground truth, durations
def read_truth(path: str | Path, classes: Sequence[str] | None = None) -> Truth:
    """``filename onset offset event_label`` (DESED's strong format; a row with only a filename lists a
    clip without event). With ``classes``, a label outside them is an error."""
    path = Path(path)
    known = set(classes) if classes else None
    events: dict[str, list[tuple[float, float, str]]] = {}
    for lineno, f in _rows(path, DETECTION_COLUMNS):
        if not f[0]:
            raise DataError(f"{path}:{lineno}: empty filename")
        if len(f) > 4 and any(f[4:]):
            raise DataError(
                f"{path}:{lineno}: {len(f)} columns, expected 4 (filename, onset, offset, event_label)"
            )
        rest = (f[1:] + ["", "", ""])[:3]
        evs = events.setdefault(f[0], [])
        if not any(rest):
            continue
        if not all(rest):
            missing = [c for c, v in zip(DETECTION_COLUMNS[1:], rest) if not v]
            raise DataError(f"{path}:{lineno}: missing {', '.join(missing)}")
        on, off = _parse_time(path, lineno, "onset", rest[0]), _parse_time(path, lineno, "offset", rest[1])
        if not on < off:
            raise DataError(f"{path}:{lineno}: onset {on:g} >= offset {off:g}")
        if known is not None and rest[2] not in known:
            raise DataError(f"{path}:{lineno}: unknown class {rest[2]!r} (not in --classes)")
        evs.append((on, off, rest[2]))
    if not events:
        raise DataError(f"{path}: the ground truth lists no clip")
    if not any(events.values()):
        raise DataError(f"{path}: the ground truth has no event (no figure is defined)")
    labels = tuple(classes) if classes else tuple(sorted({e[2] for v in events.values() for e in v}))
    return Truth(str(path), events, labels)


def read_durations(path: str | Path, clips: Sequence[str]) -> dict[str, float]:
    """``filename duration`` (DESED's ``validation_durations.tsv``) -> ``{clip: seconds}`` for ``clips``."""
    path = Path(path)
    out: dict[str, float] = {}
    for lineno, f in _rows(path, ("filename", "duration")):
        if len(f) < 2 or not f[1]:
            raise DataError(f"{path}:{lineno}: missing duration")
        d = _parse_time(path, lineno, "duration", f[1])
        if d <= 0:
            raise DataError(f"{path}:{lineno}: duration {d:g} is not positive")
        out[f[0]] = d
    missing = [c for c in clips if c not in out]
    if missing:
        raise DataError(f"{path}: no duration for {len(missing)} ground-truth clip(s), e.g. {missing[0]!r}")
    return {c: out[c] for c in clips}


def durations_from_audio(folder: str | Path, clips: Sequence[str]) -> dict[str, float]:
    """Each clip's length read from its audio file's header in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: audio folder not found")
    out = {}
    for c in clips:
        p = folder / c
        if not p.is_file():
            raise DataError(f"{p}: audio of ground-truth clip {c!r} not found (give --durations instead)")
        try:
            info = sf.info(str(p))
        except Exception as e:  # noqa: BLE001 - any unreadable header is a bad file
            raise DataError(f"{p}: cannot read the audio header ({e})") from None
        out[c] = float(info.frames) / float(info.samplerate)
    return out


def check_event_ends(truth: Truth, durations: Mapping[str, float]) -> int:
    """How many ground-truth events end after their clip's duration (psds_eval counts them anyway)."""
    return sum(1 for f, evs in truth.events.items() for e in evs if e[1] > durations[f] + 1e-6)


# ---------------------------------------------------------------------------- detections
#: each DCASE column and the header names read as it (case-insensitive)
COLUMN_ALIASES = {
    "filename": ("filename", "file"),
    "onset": ("onset", "start"),
    "offset": ("offset", "end"),
    "event_label": ("event_label", "label"),
}
_ALIAS = {a: c for c, names in COLUMN_ALIASES.items() for a in names}
ACCEPTED = (
    "header names: "
    + ", ".join("/".join(v) for v in COLUMN_ALIASES.values())
    + " in any order, extra columns ignored; with no header: filename, onset, offset, event_label"
)


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _split(lines: Sequence[str]) -> tuple[list[list[str]], list[int], str]:
    """The non-blank lines split into stripped fields, their line numbers and the separator: a tab when the
    first such line holds one, else a comma when it holds one (read as CSV, quotes allowed)."""
    lines = [lines[0].lstrip("\ufeff"), *lines[1:]] if lines else []  # a byte-order mark some editors write
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        return [], [], "\t"
    first = numbered[0][1]
    sep = "," if "\t" not in first and "," in first else "\t"
    texts = [line for _, line in numbered]
    raw = csv.reader(texts) if sep == "," else (t.split("\t") for t in texts)
    return [[x.strip() for x in r] for r in raw], [i for i, _ in numbered], sep


def _header_columns(path: Path, header: Sequence[str], sep: str) -> list[int]:
    """Where each DCASE column is in a header row (by name or alias); one error naming what is missing."""
    where: dict[str, int] = {}
    for j, name in enumerate(header):
        col = _ALIAS.get(name.lower())
        if col is None:
            continue
        if col in where:
            raise DataError(f"{path}:1: columns {header[where[col]]!r} and {name!r} both name {col}")
        where[col] = j
    missing = [c for c in DETECTION_COLUMNS if c not in where]
    if missing:
        shown = ("<TAB>" if sep == "\t" else ",").join(header)
        raise DataError(f"{path}:1: header {shown!r} names no {', '.join(missing)} column ({ACCEPTED})")
    return [where[c] for c in DETECTION_COLUMNS]


@dataclass
class Layout:
    """How a detections file was read: separator, header (or none), the columns taken and those ignored."""

    sep: str
    header: bool
    columns: list[int]
    n_fields: int
    ignored: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the header row

    def describe(self) -> str:
        sep = "tab" if self.sep == "\t" else "comma"
        if not self.header:
            return f"{sep}-separated, no header (filename, onset, offset, event_label)"
        ign = (
            f"; ignored: {', '.join(repr(x) if x else '(unnamed)' for x in self.ignored)}"
            if self.ignored
            else ""
        )
        return f"{sep}-separated, columns by header name{ign}"

    @property
    def plain(self) -> bool:
        """DESED's own layout (tab, the four columns in their order), which needs no note."""
        return self.sep == "\t" and self.header and self.names == list(DETECTION_COLUMNS)


def _layout(path: Path, rows: list[list[str]], sep: str) -> Layout:
    """A first row without any number is a header naming the columns; else the DCASE order."""
    if rows and not any(_is_number(x) for x in rows[0]):
        cols = _header_columns(path, rows[0], sep)
        ignored = [x for j, x in enumerate(rows[0]) if j not in cols]
        return Layout(sep, True, cols, len(rows[0]), ignored, list(rows[0]))
    return Layout(sep, False, [0, 1, 2, 3], 4)


def _table(path: Path, lines: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, Layout]:
    """The detection rows as a string table (DCASE columns), their line numbers and the layout read."""
    rows, linenos, sep = _split(lines)
    lay = _layout(path, rows, sep)
    if lay.header:
        rows, linenos = rows[1:], linenos[1:]
    n = lay.n_fields
    rows = [r[:n] if len(r) > n and not any(r[n:]) else r for r in rows]  # trailing empty fields
    ncols = np.array([len(r) for r in rows], dtype=int)
    if (ncols != n).any():
        j = _first(ncols != n)
        why = (
            "as the header"
            if lay.header
            else "filename, onset, offset, event_label; other layouts need a header"
        )
        raise DataError(f"{path}:{linenos[j]}: {ncols[j]} columns, expected {n} ({why})")
    data = [[r[j] for j in lay.columns] for r in rows]
    return (
        pd.DataFrame(data, columns=list(DETECTION_COLUMNS), dtype=object),
        np.asarray(linenos, dtype=int),
        lay,
    )


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c in ("onset", "offset") else object) for c in DETECTION_COLUMNS}
    )


def read_detections(
    path: str | Path,
    truth: Truth,
    *,
    on_missing: str = "error",
    merge_overlaps: bool = False,
) -> Detections:
    """A detections file checked against ``truth``, in any of the field's layouts: tab- or comma-separated;
    with a header, the columns by name (:data:`COLUMN_ALIASES`, any order, extra columns ignored), else
    ``filename onset offset event_label``.

    Errors name ``file:line``: a malformed row, an unknown class, onset >= offset, a clip absent from the
    ground truth (``on_missing='drop'``: dropped, with a count), overlapping same-class detections
    (psds_eval refuses them; ``merge_overlaps``: merged into their union, with a count). An empty file
    gives an empty table (``n_read`` 0; :func:`sed.evaluation.score.load_system` refuses it). ``layout``: how
    the file was read when it is not DESED's own layout (tab, ``filename onset offset event_label``), else "".
    """
    path = Path(path)
    df, line, lay = _table(path, read_lines(path, "detections file"))
    layout = "" if lay.plain or df.empty else lay.describe()
    notes: list[str] = []
    if df.empty:
        return Detections(str(path), _empty_table(), notes)
    n_read = len(df)
    df = _check_values(path, df, line, truth)
    bad = ~df["filename"].isin(truth.events).to_numpy()
    if bad.any():
        j = _first(bad)
        if on_missing == "error":
            raise DataError(
                f"{path}:{line[j]}: clip {df['filename'].iloc[j]!r} is not in the ground truth "
                f"({int(bad.sum())} such row(s); --on-missing drop scores without them)"
            )
        if on_missing != "drop":
            raise DataError(f"on_missing must be 'error' or 'drop', got {on_missing!r}")
        n_clips = df.loc[bad, "filename"].nunique()
        notes.append(
            f"{path.name}: {int(bad.sum())} detection(s) of {n_clips} clip(s) absent from the ground truth "
            "dropped"
        )
        df, line = df[~bad].reset_index(drop=True), line[~bad]
    df, n_merged = _overlaps(df, line, path, merge_overlaps)
    if n_merged:
        notes.append(f"{path.name}: {n_merged} overlapping same-class detection(s) merged into their union")
    return Detections(str(path), df, notes, n_read=n_read, layout=layout)


def _check_values(path: Path, df: pd.DataFrame, line: np.ndarray, truth: Truth) -> pd.DataFrame:
    """Times as non-negative numbers with onset < offset, a filename, a class of ``truth``; vectorised."""
    for col in ("onset", "offset"):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            j = _first(bad)
            raise DataError(f"{path}:{line[j]}: {col} {df[col].iloc[j]!r} is not a non-negative number")
        df[col] = v
    bad = (df["filename"] == "").to_numpy()
    if bad.any():
        raise DataError(f"{path}:{line[_first(bad)]}: empty filename")
    bad = ~(df["onset"] < df["offset"]).to_numpy()
    if bad.any():
        j = _first(bad)
        raise DataError(f"{path}:{line[j]}: onset {df['onset'].iloc[j]:g} >= offset {df['offset'].iloc[j]:g}")
    bad = ~df["event_label"].isin(truth.classes).to_numpy()
    if bad.any():
        j = _first(bad)
        raise DataError(
            f"{path}:{line[j]}: unknown class {df['event_label'].iloc[j]!r} "
            f"(classes: {', '.join(truth.classes)})"
        )
    return df


def _overlaps(df: pd.DataFrame, line: np.ndarray, path: Path, merge: bool) -> tuple[pd.DataFrame, int]:
    """Refuse (psds_eval does) or merge same-clip same-class detections that overlap; vectorised."""
    if len(df) < 2:
        return df, 0
    order = np.lexsort((df["onset"].to_numpy(), df["event_label"].to_numpy(), df["filename"].to_numpy()))
    t = df.iloc[order].reset_index(drop=True)
    ln = line[order]
    key_same = np.r_[
        False,
        (t["filename"].to_numpy()[1:] == t["filename"].to_numpy()[:-1])
        & (t["event_label"].to_numpy()[1:] == t["event_label"].to_numpy()[:-1]),
    ]
    grp = np.cumsum(~key_same)
    prev_end = pd.Series(t["offset"].to_numpy()).groupby(grp).cummax().shift(1).to_numpy()
    overlap = key_same & (t["onset"].to_numpy() < np.where(key_same, prev_end, np.inf))
    if not overlap.any():
        return df, 0
    if not merge:
        j = _first(overlap)
        earlier = ln[j - 1]
        raise DataError(
            f"{path}:{ln[j]}: {t['event_label'].iloc[j]} detection overlaps the one at line {earlier} "
            f"in clip {t['filename'].iloc[j]!r} ({int(overlap.sum())} such row(s)); "
            "psds_eval refuses overlapping same-class detections (--merge-overlaps merges them)"
        )
    run = np.cumsum(~overlap)
    merged = (
        t.assign(_run=run)
        .groupby("_run", sort=True)
        .agg(
            filename=("filename", "first"),
            onset=("onset", "min"),
            offset=("offset", "max"),
            event_label=("event_label", "first"),
        )
        .reset_index(drop=True)
    )
    return merged[list(DETECTION_COLUMNS)], int(overlap.sum())


# ---------------------------------------------------------------------------- operating points
_NUM = re.compile(r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def threshold_from_name(path: str | Path) -> float | None:
    """The operating point's threshold from its file name (the last number:
    ``predictions_th_0.50.tsv`` -> 0.5)."""
    nums = _NUM.findall(Path(path).stem)
    return float(nums[-1]) if nums else None


TABLE_SUFFIXES = (".tsv", ".csv")


def list_tsvs(spec: str | Path, suffixes: Sequence[str] = (".tsv",)) -> list[Path]:
    """Files of a folder whose names end in ``suffixes`` (sorted), or a glob pattern's files."""
    s = str(spec)
    if any(ch in s for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(s) if Path(p).is_file())
        if not files:
            raise DataError(f"{s}: no file matches the pattern")
        return files
    p = Path(s)
    if not p.is_dir():
        raise DataError(f"{p}: not found")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"{p}: no {' or '.join(suffixes)} file in the folder")
    return files


def _names(paths: Sequence[Path], n: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def operating_point_thresholds(
    spec: str | Path, files: Sequence[Path], thresholds: Sequence[float] | None
) -> list[float]:
    """Each file's threshold: ``thresholds`` in the files' (sorted) order, else the last number of its name.
    Files without one and files sharing one are a single error naming them."""
    if thresholds is not None:
        ths = [float(t) for t in thresholds]
        if len(ths) != len(files):
            raise DataError(
                f"{spec}: {len(ths)} threshold(s) given for {len(files)} file(s) ({_names(files)})"
            )
    else:
        ths = [threshold_from_name(f) for f in files]
    faults = []
    missing = [f for f, t in zip(files, ths) if t is None]
    if missing:
        faults.append(f"{len(missing)} file(s) without a threshold in the name ({_names(missing)})")
    by_value: dict[float, list[Path]] = {}
    for f, t in zip(files, ths):
        if t is not None:
            by_value.setdefault(t, []).append(f)
    faults += [
        f"threshold {t:g} in {len(fs)} files ({_names(fs)})" for t, fs in by_value.items() if len(fs) > 1
    ]
    if faults:
        raise DataError(
            f"{spec}: {'; '.join(faults)}: each operating point needs its own threshold, from its file name "
            "(e.g. predictions_th_0.50.tsv) or --thresholds (one per file, in name order); "
            "move other files out"
        )
    return ths  # type: ignore[return-value]


def read_operating_points(
    spec: str | Path,
    truth: Truth,
    *,
    thresholds: Sequence[float] | None = None,
    on_missing: str = "error",
    merge_overlaps: bool = False,
) -> list[Detections]:
    """One detections file per operating point (.tsv or .csv, any layout :func:`read_detections` reads), in
    threshold order; the thresholds from the names or ``thresholds`` (:func:`operating_point_thresholds`)."""
    files = list_tsvs(spec, TABLE_SUFFIXES)
    ths = operating_point_thresholds(spec, files, thresholds)
    ops = []
    for f, th in zip(files, ths):
        d = read_detections(f, truth, on_missing=on_missing, merge_overlaps=merge_overlaps)
        d.threshold = th
        ops.append(d)
    ops.sort(key=lambda d: (d.threshold, d.path))
    return ops


# ---------------------------------------------------------------------------- score TSVs
def read_score_tsv(path: Path, classes: Sequence[str]) -> pd.DataFrame:
    """One clip's sed_scores_eval score table (``onset offset <class>...``, one row per frame), checked."""
    # Lazy: sed_scores_eval costs ~0.85 s to import, kept off `sedx --help`.
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    try:
        df = pd.read_csv(path, sep="\t")
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: cannot read as a TSV ({str(e).splitlines()[0]})") from None
    cols = [str(c).strip() for c in df.columns]
    if cols[:2] != ["onset", "offset"] or len(cols) < 3:
        raise DataError(f"{path}:1: header {'<TAB>'.join(cols)!r}, expected onset<TAB>offset<TAB><class>...")
    unknown = [c for c in cols[2:] if c not in classes]
    if unknown:
        raise DataError(f"{path}:1: unknown class {unknown[0]!r} (classes: {', '.join(classes)})")
    if len(df) == 0:
        raise DataError(f"{path}:2: no frame")
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    nan = np.isnan(values)
    if nan.any():
        r, c = np.argwhere(nan)[0]
        raise DataError(f"{path}:{r + 2}: {cols[c]} value {df.iloc[r, c]!r} is not a number (NaN)")
    neg = values[:, 2:] < 0
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise DataError(f"{path}:{r + 2}: negative score {values[r, c + 2]:g} for {cols[c + 2]}")
    on, off = values[:, 0], values[:, 1]
    bad = ~(off > on)
    if bad.any():
        r = _first(bad)
        raise DataError(
            f"{path}:{r + 2}: frame offset {off[r]:g} <= onset {on[r]:g} (the time axis must increase)"
        )
    bad = np.r_[False, ~np.isclose(on[1:], off[:-1], rtol=0, atol=1e-6)]
    if bad.any():
        r = _first(bad)
        raise DataError(
            f"{path}:{r + 2}: frame onset {on[r]:g} differs from the previous frame's offset {off[r - 1]:g} "
            "(the time axis must increase frame after frame)"
        )
    timestamps = np.r_[on, off[-1:]]
    return create_score_dataframe(values[:, 2:], timestamps, cols[2:])


def read_score_folder(
    spec: str | Path, truth: Truth, *, on_missing: str = "error"
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A folder of score TSVs, one per clip (``<clip stem>.tsv``), keyed by audio id; every ground-truth
    clip needs one (``on_missing='drop'``: clips without scores are an error still, extra files dropped)."""
    files = list_tsvs(spec)
    gt_ids = {audio_id(f) for f in truth.events}
    notes = []
    extra = [f for f in files if f.stem not in gt_ids]
    if extra:
        if on_missing == "error":
            raise DataError(
                f"{extra[0]}: clip {extra[0].stem!r} is not in the ground truth ({len(extra)} such file(s); "
                "--on-missing drop scores without them)"
            )
        notes.append(f"{len(extra)} score file(s) of clips absent from the ground truth dropped")
    scores = {f.stem: read_score_tsv(f, truth.classes) for f in files if f.stem in gt_ids}
    missing = sorted(gt_ids - set(scores))
    if missing:
        raise DataError(
            f"{spec}: no score file for {len(missing)} ground-truth clip(s), e.g. {missing[0]}.tsv"
        )
    return scores, notes


def looks_like_score_folder(spec: str | Path) -> bool:
    """True when the first TSV of the folder/glob starts with ``onset<TAB>offset`` (score TSVs)."""
    f = list_tsvs(spec, TABLE_SUFFIXES)[0]
    with open(f, encoding="utf-8", errors="replace") as fh:
        head = fh.readline().split("\t")
    return [h.strip() for h in head[:2]] == ["onset", "offset"]

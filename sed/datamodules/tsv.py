"""DESED metadata TSVs (SPEC section 1): weak, unlabelled and strong formats.

Every malformed row raises :class:`~sed.core.errors.DataError` naming ``file:line`` and the fault.
Strong rows with an empty onset, offset and label mean "this clip has no event": the clip
is kept with an empty event list. Suspicious but usable strong rows (an event ending past the
clip's 10 s, a zero-length event with onset == offset) are kept and warned about, once per file and
kind, naming the first such ``file:line`` and how many more there are.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from sed.core.classes import describe
from sed.core.constants import DEFAULT_FEATURES
from sed.core.errors import DataError

log = logging.getLogger(__name__)
#: An event may end this much past the clip's length before it is warned about (rounding in TSVs).
END_TOLERANCE = 0.01


class Event(NamedTuple):
    onset: float
    offset: float
    label: str


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file, or one DataError naming the file (missing, not UTF-8)."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason})") from None


def _rows(path: Path, expected_header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` after checking the header; blank lines are skipped."""
    path = Path(path)
    lines = read_lines(path, "metadata file")
    if not lines or not lines[0].strip():
        raise DataError(f"{path}:1: empty file, expected a header {'<TAB>'.join(expected_header)}")
    header = [h.strip() for h in lines[0].split("\t")]
    if tuple(header[: len(expected_header)]) != expected_header:
        raise DataError(
            f"{path}:1: header is {'<TAB>'.join(header)!r}, expected {'<TAB>'.join(expected_header)!r}"
        )
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        yield lineno, [f.strip() for f in line.split("\t")]


def _check_filename(path: Path, lineno: int, name: str) -> str:
    if not name:
        raise DataError(f"{path}:{lineno}: empty filename")
    return name


def _check_label(path: Path, lineno: int, label: str, classes: Sequence[str] | None) -> str:
    """``label``, or one DataError when a class list is given and does not hold it (None: any label)."""
    if classes is not None and label not in classes:
        raise DataError(f"{path}:{lineno}: unknown class {label!r} (data.classes has {describe(classes)})")
    return label


def read_weak_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``filename<TAB>event_labels`` (comma-separated) -> ``{filename: [labels]}`` in file order; a label
    outside ``classes`` (when given) is an error."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for lineno, f in _rows(path, ("filename", "event_labels")):
        if len(f) < 2 or not f[1]:
            raise DataError(
                f"{path}:{lineno}: missing event_labels column (weak rows are filename<TAB>labels)"
            )
        name = _check_filename(path, lineno, f[0])
        labels = [_check_label(path, lineno, x.strip(), classes) for x in f[1].split(",") if x.strip()]
        if not labels:
            raise DataError(f"{path}:{lineno}: no label in {f[1]!r}")
        if name in out:
            raise DataError(f"{path}:{lineno}: {name} is listed twice")
        out[name] = list(dict.fromkeys(labels))
    return out


def read_unlabel_tsv(path: str | Path, classes: Sequence[str] | None = None) -> list[str]:
    """``filename`` per row -> list of filenames in file order."""
    path = Path(path)
    return [_check_filename(path, lineno, f[0]) for lineno, f in _rows(path, ("filename",))]


def _parse_time(path: Path, lineno: int, what: str, value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {what} {value!r} is not a number") from None
    if not math.isfinite(t):
        raise DataError(f"{path}:{lineno}: {what} {value!r} is not finite")
    if t < 0:
        raise DataError(f"{path}:{lineno}: negative {what} {t}")
    return t


def read_strong_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[Event]]:
    """``filename<TAB>onset<TAB>offset<TAB>event_label`` -> ``{filename: [Event]}`` (file order); a label
    outside ``classes`` (when given) is an error.

    A row whose onset, offset and label are all empty lists the clip with no event.
    """
    path = Path(path)
    out: dict[str, list[Event]] = {}
    odd: dict[str, list[str]] = {}
    clip_seconds = DEFAULT_FEATURES.clip_seconds
    for lineno, f in _rows(path, ("filename", "onset", "offset", "event_label")):
        name = _check_filename(path, lineno, f[0])
        rest = (f[1:] + ["", "", ""])[:3]
        if len(f) > 4 and any(f[4:]):
            raise DataError(f"{path}:{lineno}: {len(f)} columns, expected 4")
        events = out.setdefault(name, [])
        if not any(rest):
            continue  # a clip with no event
        if not all(rest):
            missing = [c for c, v in zip(("onset", "offset", "event_label"), rest) if not v]
            raise DataError(f"{path}:{lineno}: missing {', '.join(missing)}")
        onset = _parse_time(path, lineno, "onset", rest[0])
        offset = _parse_time(path, lineno, "offset", rest[1])
        if onset > offset:
            raise DataError(f"{path}:{lineno}: onset {onset} is after offset {offset}")
        if onset == offset:
            odd.setdefault("zero", []).append(
                f"{path}:{lineno}: onset equals offset ({onset} s): a zero-length event"
            )
        elif offset > clip_seconds + END_TOLERANCE:
            odd.setdefault("end", []).append(
                f"{path}:{lineno}: event ends at {offset} s, past the clip's end ({clip_seconds:g} s)"
            )
        events.append(Event(onset, offset, _check_label(path, lineno, rest[2], classes)))
    for found in odd.values():
        log.warning("%s%s", found[0], f" ({len(found) - 1} more rows like it)" if len(found) > 1 else "")
    return out


def write_strong_tsv(
    path: str | Path, clips: dict[str, list[Event]] | Iterable[tuple[str, float, float, str]]
) -> Path:
    """Write a strong TSV (soundscapes.tsv format); clips with no event get an empty row.

    Written to a temporary file then renamed, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: parallel writers never share it
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["filename", "onset", "offset", "event_label"])
        if isinstance(clips, dict):
            for name, events in clips.items():
                if not events:
                    w.writerow([name, "", "", ""])
                for ev in events:
                    w.writerow([name, f"{ev[0]:.3f}", f"{ev[1]:.3f}", ev[2]])
        else:
            for name, on, off, label in clips:
                w.writerow([name, f"{on:.3f}", f"{off:.3f}", label])
    tmp.replace(path)
    return path

"""Detections written as each recording finishes, to a file or stdout; resumable.

Two formats:

- ``tsv``: header ``filename onset offset event_label`` (seconds, from the start of each file),
  one row per event. A recording with no event gets one row with empty onset, offset and label
  (the DESED convention for clips with no event), so that every processed file is listed and
  ``--resume`` knows it was done.
- ``json``: JSON Lines, one object per recording:
  ``{"filename", "duration", "events": [{"onset", "offset", "event_label"}], "clip_probs": {class: p}}``.
  One line per file keeps the output valid and appendable after an interruption (a single JSON
  array would not be).

Each file's block goes out in one write followed by a flush. On ``--resume`` a torn last line
(an interruption mid-write) is removed together with every other line of that file, and the
files listed in the output are skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

FORMATS = ("tsv", "json")
TSV_HEADER = "filename\tonset\toffset\tevent_label"


class OutputError(ValueError):
    """An output file that cannot be resumed or written."""


def _tsv_name(line: str) -> str:
    return line.split("\t", 1)[0]


def _json_name(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj.get("filename") if isinstance(obj, dict) else None


def _repair_and_list(path: Path, fmt: str) -> set[str]:
    """Names already in ``path``; rewrites the file without a torn last line (and its file's rows)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OutputError(f"{path}: cannot resume, not a text file ({e})") from e
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    head: list[str] = []
    if fmt == "tsv":
        if not lines:  # nothing complete, not even the header
            if torn and not TSV_HEADER.startswith(torn):
                raise OutputError(f"{path}: cannot resume, not a detection TSV")
            path.write_text("", encoding="utf-8")
            return set()
        if lines[0] != TSV_HEADER:
            raise OutputError(f"{path}: cannot resume, not a detection TSV (header {lines[0]!r})")
        head, body = lines[:1], lines[1:]
        names = [_tsv_name(ln) for ln in body]
    else:
        body = lines
        names = [_json_name(ln) for ln in body]
        for i, (ln, n) in enumerate(zip(body, names)):
            if n is None and ln.strip():
                raise OutputError(f"{path}:{i + 1}: cannot resume, not a detection JSON line")
    drop: set[str] = set()
    if torn and fmt == "tsv" and names:
        # a file's rows go out in one write: a torn row means its file is incomplete
        frag = _tsv_name(torn)
        if names[-1].startswith(frag):
            drop.add(names[-1])
    kept = [(ln, n) for ln, n in zip(body, names) if ln.strip() and n not in drop]
    new = "".join(ln + "\n" for ln in head + [ln for ln, _ in kept])
    if new != text:
        path.write_text(new, encoding="utf-8")
    return {n for _, n in kept if n}


class EventWriter:
    """Writes one block per recording; ``done`` lists the recordings already in the output."""

    def __init__(self, out: str | Path | None, fmt: str = "tsv", *, resume: bool = False, stream: TextIO | None = None):
        if fmt not in FORMATS:
            raise OutputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        if resume and out is None:
            raise OutputError("--resume needs --out FILE (stdout cannot be resumed)")
        self.fmt = fmt
        self.done: set[str] = set()
        self.path = Path(out) if out is not None else None
        if self.path is None:
            self._fh = stream if stream is not None else sys.stdout
            self._owns = False
            need_header = True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume and self.path.exists():
                self.done = _repair_and_list(self.path, fmt)
                need_header = self.path.stat().st_size == 0
                self._fh = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
            else:
                self._fh = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
                need_header = True
            self._owns = True
        if fmt == "tsv" and need_header:
            self._emit(TSV_HEADER + "\n")

    def _emit(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()

    def write(self, filename: str, events: pd.DataFrame, duration: float, clip_probs: dict[str, float] | None = None) -> None:
        """Write one recording's events (columns onset, offset, event_label; any order)."""
        ev = events.sort_values(["onset", "offset", "event_label"]) if len(events) else events
        if self.fmt == "tsv":
            if len(ev) == 0:
                text = f"{filename}\t\t\t\n"
            else:
                text = "".join(
                    f"{filename}\t{on:.3f}\t{off:.3f}\t{lab}\n"
                    for on, off, lab in zip(ev["onset"], ev["offset"], ev["event_label"])
                )
        else:
            obj = {
                "filename": filename,
                "duration": round(float(duration), 3),
                "events": [
                    {"onset": round(float(on), 3), "offset": round(float(off), 3), "event_label": str(lab)}
                    for on, off, lab in zip(ev["onset"], ev["offset"], ev["event_label"])
                ] if len(ev) else [],
                "clip_probs": {k: round(float(v), 4) for k, v in (clip_probs or {}).items()},
            }
            text = json.dumps(obj) + "\n"
        self._emit(text)
        self.done.add(filename)

    def close(self) -> None:
        if self._owns:
            self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_detections(path: str | Path) -> pd.DataFrame:
    """Read a detection TSV or JSON Lines file back as (filename, onset, offset, event_label);
    files with no event have NaN onset/offset and an empty label in TSV, no row in JSON."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.startswith(TSV_HEADER):
        rows = [ln.split("\t") for ln in text.splitlines()[1:] if ln]
        df = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
        for col in ("onset", "offset"):  # empty fields (a file with no event) -> NaN
            df[col] = pd.to_numeric(df[col], errors="coerce")
        return df
    rows = []
    for ln in text.splitlines():
        if ln.strip():
            obj = json.loads(ln)
            rows += [(obj["filename"], e["onset"], e["offset"], e["event_label"]) for e in obj["events"]]
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])

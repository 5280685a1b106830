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

Each file's block goes out in one write followed by a flush; then one line
``{"path": <resolved input path>, "name": ..., "rows": n}`` is appended to the progress file
``<out>.progress`` (the per-recording completeness marker). On ``--resume`` a recording counts as
done only when the progress file lists it AND the output holds exactly its ``rows`` rows; rows of
any other recording (a torn last line, a block cut at a line boundary) are removed and the
recording is redone. Done recordings are keyed by resolved input path, so a resume from another
working directory (relative vs absolute names) skips the same files. An output without progress
file (older versions) falls back to the names it lists.

While a run writes an output, its progress file is locked (``flock``): a second run naming the same
``--out`` stops with one line instead of interleaving or truncating the first one's rows.

An existing ``--out`` that is not a detections file (no TSV header, no detection JSON line) is never
overwritten unless ``force=True``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

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


def progress_path(out: str | Path) -> Path:
    """The per-recording completeness marker file of an output file."""
    return Path(f"{out}.progress")


def _resolved(name: str) -> str:
    return os.path.realpath(name)


def _read_progress(path: Path) -> list[dict] | None:
    """Complete entries of a progress file (a torn last line is ignored); None when there is none."""
    if not path.is_file():
        return None
    out = []
    for ln in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and {"path", "name", "rows"} <= set(obj):
            out.append(obj)
    return out


def is_detections_file(path: Path) -> bool:
    """Whether ``path`` is empty or starts like a detection TSV or JSON Lines file (what we may overwrite)."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        return True
    first = head.split(b"\n", 1)[0]
    if first.rstrip(b"\r") == TSV_HEADER.encode():
        return True
    try:
        obj = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(obj, dict) and "filename" in obj and "events" in obj


def _repair_and_list(path: Path, fmt: str) -> set[str]:
    """Names of the recordings complete in ``path`` (see :func:`_repair`)."""
    return _repair(path, fmt)[0]


def _repair(path: Path, fmt: str) -> tuple[set[str], set[str]]:
    """(names, resolved paths) of the recordings complete in ``path``; rewrites the output and its
    progress file without the rows of any incomplete recording (see the module docstring)."""
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
            progress_path(path).write_text("", encoding="utf-8")
            return set(), set()
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
    counts: dict[str, int] = {}
    for ln, n in zip(body, names):
        if ln.strip() and n:
            counts[n] = counts.get(n, 0) + 1
    entries = _read_progress(progress_path(path))
    if entries is None:  # an output of an older version: the names it lists
        done = set(counts)
        if torn and fmt == "tsv" and names:  # a torn row: its file is incomplete
            frag = _tsv_name(torn)
            if names[-1].startswith(frag):
                done.discard(names[-1])
        entries = [{"path": _resolved(n), "name": n, "rows": counts[n]} for n in counts if n in done]
    else:
        entries = [e for e in entries if counts.get(e["name"]) == int(e["rows"])]
        entries = list({e["name"]: e for e in entries}.values())
        done = {e["name"] for e in entries}
    kept = [ln for ln, n in zip(body, names) if ln.strip() and n in done]
    new = "".join(ln + "\n" for ln in head + kept)
    if new != text:
        path.write_text(new, encoding="utf-8")
    progress_path(path).write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return done, {str(e["path"]) for e in entries}


def _locked_progress(out: Path) -> TextIO:
    """The progress file of ``out``, opened for appending and locked for this process alone: a second
    run writing the same output (whose rows would interleave with or truncate this one's) is refused
    in one line. The lock goes with the file handle (closed or the process ended)."""
    fh = open(progress_path(out), "a", encoding="utf-8", newline="\n")  # noqa: SIM115
    if fcntl is None:  # pragma: no cover - not POSIX: no lock
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise OutputError(f"--out {out} is being written by another run right now "
                          f"(its {progress_path(out).name} is locked); "
                          "wait for it to finish or name another --out") from None
    return fh


class EventWriter:
    """Writes one block per recording; ``done`` lists the recordings already in the output (their
    names), ``done_paths`` their resolved input paths."""

    def __init__(self, out: str | Path | None, fmt: str = "tsv", *, resume: bool = False,
                 stream: TextIO | None = None, force: bool = False):
        if fmt not in FORMATS:
            raise OutputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        if resume and out is None:
            raise OutputError("--resume needs --out FILE (stdout cannot be resumed)")
        self.fmt = fmt
        self.done: set[str] = set()
        self.done_paths: set[str] = set()
        self.path = Path(out) if out is not None else None
        self._progress = None
        if self.path is None:
            self._fh = stream if stream is not None else sys.stdout
            self._owns = False
            need_header = True
        else:
            if self.path.is_dir():
                raise OutputError(f"--out {self.path} is a folder; name a file")
            if self.path.exists() and not force and not is_detections_file(self.path):
                raise OutputError(f"--out {self.path} exists and is not a detections file; "
                                  "refusing to overwrite it (pass --force to replace it)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._progress = _locked_progress(self.path)  # before anything is read or truncated
            if resume and self.path.exists():
                self.done, self.done_paths = _repair(self.path, fmt)
                need_header = self.path.stat().st_size == 0
                self._fh = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
            else:
                self._progress.truncate(0)
                self._fh = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
                need_header = True
            self._owns = True
        if fmt == "tsv" and need_header:
            self._emit(TSV_HEADER + "\n")

    def is_done(self, name: str, path: str | Path) -> bool:
        """Whether the recording at ``path`` (called ``name``) is complete in the resumed output."""
        return os.path.realpath(path) in self.done_paths

    def _emit(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()

    def write(self, filename: str, events: pd.DataFrame, duration: float,
              clip_probs: dict[str, float] | None = None, path: str | Path | None = None) -> None:
        """Write one recording's events (columns onset, offset, event_label; any order); ``path`` (default
        ``filename``) is the input it came from, recorded in the progress file once the rows are out."""
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
        # after the rows: the marker never names a recording not fully written
        if self._progress is not None:
            real = os.path.realpath(path if path is not None else filename)
            marker = {"path": real, "name": filename, "rows": text.count("\n")}
            self._progress.write(json.dumps(marker) + "\n")
            self._progress.flush()
            self.done_paths.add(real)

    def close(self) -> None:
        if self._owns:
            self._fh.close()
        if self._progress is not None:
            self._progress.close()

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

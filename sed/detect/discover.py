"""Which files ``sed detect`` runs on: files named on the command line, and folders searched recursively."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: Extensions picked up when a folder is searched (case-insensitive). A file named explicitly is
#: always tried, whatever its extension: soundfile decides whether it can read it.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
#: Audio formats soundfile cannot read: found in a folder, they are reported (never silently ignored).
UNSUPPORTED_AUDIO: tuple[str, ...] = (
    ".m4a", ".aac", ".mp4", ".wma", ".opus", ".amr", ".webm", ".mka", ".ape", ".ac3"
)


@dataclass(frozen=True)
class Source:
    """One input: ``name`` is what the outputs call it (the path as found, relative to the working
    directory when the user gave a relative path), ``path`` where to read it."""

    name: str
    path: Path


@dataclass
class Discovery:
    sources: list[Source]
    missing: list[str]  # command-line paths that do not exist
    unsupported: list[str] = field(default_factory=list)  # files in folders in a format we cannot read
    empty: list[str] = field(default_factory=list)  # command-line folders with no supported audio file


def discover(paths: Iterable[str | Path], extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> Discovery:
    """Expand ``paths`` into audio files, in a stable order, without duplicates.

    A folder contributes every file below it (recursively, sorted) whose extension is in
    ``extensions``; hidden files and folders (names starting with ``.``) are skipped. A file is
    kept as given. A path that does not exist goes to ``missing``; files in a folder whose
    extension is a known audio format we cannot read (``UNSUPPORTED_AUDIO``) go to ``unsupported``;
    a folder with no file to read goes to ``empty``.
    """
    exts = {e.lower() for e in extensions}
    seen: set[Path] = set()
    sources: list[Source] = []
    missing: list[str] = []
    unsupported: list[str] = []
    empty: list[str] = []
    bad_exts = {e.lower() for e in UNSUPPORTED_AUDIO}

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            sources.append(Source(name=p.as_posix(), path=p))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            visible = [f for f in p.rglob("*")
                       if not any(part.startswith(".") for part in f.relative_to(p).parts) and f.is_file()]
            found = [f for f in visible if f.suffix.lower() in exts]
            unsupported += sorted(f.as_posix() for f in visible if f.suffix.lower() in bad_exts)
            if not found:
                empty.append(str(raw))
            for f in sorted(found, key=lambda f: f.as_posix()):
                add(f)
        elif p.exists():
            add(p)
        else:
            missing.append(str(raw))
    return Discovery(sources, missing, unsupported, empty)

"""Which files ``sed detect`` runs on: files named on the command line, and folders searched recursively."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Extensions picked up when a folder is searched (case-insensitive). A file named explicitly is
#: always tried, whatever its extension: soundfile decides whether it can read it.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")


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


def discover(paths: Iterable[str | Path], extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> Discovery:
    """Expand ``paths`` into audio files, in a stable order, without duplicates.

    A folder contributes every file below it (recursively, sorted) whose extension is in
    ``extensions``; hidden files and folders (names starting with ``.``) are skipped. A file is
    kept as given. A path that does not exist goes to ``missing``.
    """
    exts = {e.lower() for e in extensions}
    seen: set[Path] = set()
    sources: list[Source] = []
    missing: list[str] = []

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            sources.append(Source(name=p.as_posix(), path=p))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [
                f
                for f in p.rglob("*")
                if f.suffix.lower() in exts
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
                and f.is_file()
            ]
            for f in sorted(found, key=lambda f: f.as_posix()):
                add(f)
        elif p.exists():
            add(p)
        else:
            missing.append(str(raw))
    return Discovery(sources, missing)

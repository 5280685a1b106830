"""Constant-memory audio decoding for ``sed detect``.

A recording is read in soundfile blocks, mixed down to mono (mean over channels), checked for
NaN / infinite samples and resampled to the feature rate (22 050 Hz, SPEC section 2) with soxr's
streaming resampler, so that memory does not grow with the recording's length. The samples are
the same as a one-shot ``soxr.resample`` of the whole file (soxr's streaming and one-shot outputs
agree exactly), so a clip of 10 s or less gives the same features as the training data layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

try:  # the data layer's error class, so that callers can catch one family of errors
    from sed.core.errors import DataError as _Base
except Exception:  # noqa: BLE001 - the data layer is optional here
    _Base = ValueError


class AudioInputError(_Base):
    """A recording that cannot be used; the message is one line: ``<file>: <what is wrong>``."""


#: soxr quality used everywhere in the project (soxr's default, "HQ").
RESAMPLE_QUALITY = "HQ"


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    channels: int
    frames: int  # as declared by the header (may be approximate for ogg / mp3)
    format: str
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate if self.samplerate > 0 else 0.0


def _reason(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    msg = msg[-1] if msg else type(e).__name__
    # soundfile prefixes messages with "Error opening '<path>': ", which repeats the file name
    if msg.startswith("Error opening") and "': " in msg:
        msg = msg.split("': ", 1)[1]
    return msg


def probe(path: str | Path, name: str | None = None) -> AudioInfo:
    """Header information, or :class:`AudioInputError` when soundfile cannot open the file."""
    name = name or str(path)
    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"{name}: not a file")
    if p.stat().st_size == 0:
        raise AudioInputError(f"{name}: empty file (0 bytes)")
    try:
        i = sf.info(str(p))
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        raise AudioInputError(f"{name}: not readable as audio ({_reason(e)})") from e
    return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames), str(i.format), str(i.subtype))


def stream_mono(
    path: str | Path,
    sample_rate: int = 22050,
    *,
    block_frames: int = 1 << 16,
    name: str | None = None,
    quality: str = RESAMPLE_QUALITY,
) -> Iterator[np.ndarray]:
    """Yield the recording as consecutive mono float32 chunks at ``sample_rate``.

    Peak memory is a few blocks (``block_frames`` input frames x channels), whatever the length.
    Raises :class:`AudioInputError` (one line naming the file) for an unreadable, empty or
    zero-length file, and for NaN / infinite samples (at the time they occur: chunks before it
    may already have been yielded, so callers drop the whole file).
    """
    name = name or str(path)
    info = probe(path, name)
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioInputError(
            f"{name}: invalid header (sample rate {info.samplerate}, {info.channels} channels)"
        )
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # noqa: BLE001
        raise AudioInputError(f"{name}: not readable as audio ({_reason(e)})") from e
    with f:
        rs = None
        if info.samplerate != sample_rate:
            rs = soxr.ResampleStream(info.samplerate, sample_rate, 1, dtype="float32", quality=quality)
        n_in = 0
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except Exception as e:  # noqa: BLE001 - a corrupt stream fails mid-way
                raise AudioInputError(
                    f"{name}: decoding failed at {n_in / info.samplerate:.2f} s ({_reason(e)})"
                ) from e
            if len(block) == 0:
                break
            bad = ~np.isfinite(block)
            if bad.any():
                first = n_in + int(np.argmax(bad.any(axis=1)))
                raise AudioInputError(
                    f"{name}: NaN or infinite sample values (first at {first / info.samplerate:.3f} s)"
                )
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
            n_in += len(block)
            out = rs.resample_chunk(np.ascontiguousarray(mono)) if rs is not None else mono
            if len(out):
                yield out
        if n_in == 0:
            raise AudioInputError(f"{name}: zero-length audio (no samples)")
        if rs is not None:
            tail = rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if len(tail):
                yield tail

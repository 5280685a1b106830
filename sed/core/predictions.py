"""Model outputs on disk: the frame and clip probabilities of every clip of a split.

One ``.npz`` file per run, so that post-processing, sweeps, ensembles and plots run again
without the model (issue: post-processing and evaluation, point 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sed.core.constants import FRAME_SECONDS


class PredictionsError(ValueError):
    """A predictions file or set of predictions that cannot be used as asked."""


@dataclass
class Predictions:
    """Probabilities for ``N`` clips, ``T`` frames and ``C`` classes.

    ``durations`` holds each clip's audio length in seconds (events are clipped to it);
    when absent it is ``min(T * frame_seconds, 10 s)``.
    """

    filenames: list[str]
    frame_probs: np.ndarray  # (N, T, C) float32
    clip_probs: np.ndarray  # (N, C) float32
    classes: tuple[str, ...]  # the column names (the run's data.classes)
    frame_seconds: float = FRAME_SECONDS
    durations: np.ndarray | None = None  # (N,) seconds

    def __post_init__(self) -> None:
        self.filenames = [str(f) for f in self.filenames]
        self.classes = tuple(str(c) for c in self.classes)
        self.frame_probs = np.asarray(self.frame_probs, dtype=np.float32)
        self.clip_probs = np.asarray(self.clip_probs, dtype=np.float32)
        n, c = len(self.filenames), len(self.classes)
        if self.frame_probs.ndim != 3 or self.frame_probs.shape[0] != n or self.frame_probs.shape[2] != c:
            raise PredictionsError(
                f"frame_probs has shape {self.frame_probs.shape}, expected ({n}, frames, {c})"
            )
        if self.clip_probs.shape != (n, c):
            raise PredictionsError(f"clip_probs has shape {self.clip_probs.shape}, expected ({n}, {c})")
        if self.durations is None:
            t = self.frame_probs.shape[1] * self.frame_seconds
            self.durations = np.full(n, min(t, 10.0), dtype=np.float64)
        else:
            self.durations = np.asarray(self.durations, dtype=np.float64)
            if self.durations.shape != (n,):
                raise PredictionsError(f"durations has shape {self.durations.shape}, expected ({n},)")
            self.check_coverage(self.durations)

    @property
    def covered_seconds(self) -> float:
        """The audio length the frame probabilities cover (frames x frame length)."""
        return float(self.frame_probs.shape[1] * self.frame_seconds)

    def check_coverage(self, durations: Sequence[float] | np.ndarray, source: str = "predictions",
                       names: Sequence[str] | None = None) -> None:
        """Raise when a clip lasts longer than the frames cover (beyond two frames or 1 %): its end would be
        scored as silence (e.g. predictions of 100 frames, 1.56 s, for 10 s clips)."""
        dur = np.asarray(durations, dtype=np.float64)
        if not len(dur):
            return
        cover = self.covered_seconds
        slack = max(2 * self.frame_seconds, 0.01 * cover)
        worst = int(np.argmax(dur))
        if dur[worst] > cover + slack:
            short = int(np.sum(dur > cover + slack))
            raise PredictionsError(
                f"{source}: the frame probabilities cover {cover:.2f} s ({self.frame_probs.shape[1]} "
                f"frames of {self.frame_seconds:.4f} s) but {short} of {len(dur)} clips last longer (e.g. "
                f"{(names if names is not None else self.filenames)[worst]}: {dur[worst]:.2f} s); "
                "these predictions are not of these clips' length"
            )

    def __len__(self) -> int:
        return len(self.filenames)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``), atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            filenames=np.asarray(self.filenames),
            classes=np.asarray(self.classes),
            frame_seconds=np.float64(self.frame_seconds),
            frame_probs=self.frame_probs,
            clip_probs=self.clip_probs,
            durations=self.durations,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        path = Path(path)
        if path.is_dir():
            raise PredictionsError(
                f"{path}: a folder, not a predictions .npz; to score operating-point or score TSVs use "
                f"`sedx score {path} --truth <ground truth.tsv>`"
            )
        if not path.is_file():
            raise PredictionsError(f"{path}: predictions file not found")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04" and magic != b"PK\x05\x06":  # an .npz is a zip archive (empty: PK 5 6)
            raise PredictionsError(
                f"{path}: not a predictions .npz written by sed.eval (an .npz is a zip archive; this file "
                f"{'is empty' if not magic else 'starts with ' + repr(magic)}); "
                "to score a detections TSV use "
                f"`sedx score {path} --truth <ground truth.tsv>`"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                required = {"filenames", "classes", "frame_seconds", "frame_probs", "clip_probs"}
                missing = required - set(z.files)
                if missing:
                    raise PredictionsError(f"{path}: not a predictions file (missing {sorted(missing)})")
                return cls(
                    filenames=z["filenames"].tolist(),
                    classes=tuple(z["classes"].tolist()),
                    frame_seconds=float(z["frame_seconds"]),
                    frame_probs=z["frame_probs"],
                    clip_probs=z["clip_probs"],
                    durations=z["durations"] if "durations" in z.files else None,
                )
        except PredictionsError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad file
            raise PredictionsError(f"{path}: cannot read predictions ({e})") from e

    def check_compatible(
        self, classes: Sequence[str], frame_seconds: float, source: str = "predictions"
    ) -> None:
        """Raise unless the class list and frame length match what the caller expects."""
        if tuple(classes) != self.classes:
            raise PredictionsError(
                f"{source}: class list {list(self.classes)} does not match {list(classes)}"
            )
        if abs(frame_seconds - self.frame_seconds) > 1e-9:
            raise PredictionsError(
                f"{source}: frame length {self.frame_seconds:.6f} s does not match {frame_seconds:.6f} s"
            )


def average(preds: Sequence[Predictions]) -> Predictions:
    """Ensemble (SPEC section 6): mean of frame and clip probabilities over models, clip by clip."""
    if not preds:
        raise PredictionsError("nothing to average")
    first = preds[0]
    for i, p in enumerate(preds[1:], start=1):
        p.check_compatible(first.classes, first.frame_seconds, source=f"ensemble member {i}")
        if p.frame_probs.shape[1] != first.frame_probs.shape[1]:
            raise PredictionsError(
                f"ensemble member {i}: {p.frame_probs.shape[1]} frames, expected {first.frame_probs.shape[1]}"
            )
        if set(p.filenames) != set(first.filenames):
            raise PredictionsError(f"ensemble member {i}: its clips differ from member 0's")
    order = [{f: j for j, f in enumerate(p.filenames)} for p in preds]
    idx = [np.array([o[f] for f in first.filenames]) for o in order]
    frame = np.mean([p.frame_probs[i] for p, i in zip(preds, idx)], axis=0)
    clip = np.mean([p.clip_probs[i] for p, i in zip(preds, idx)], axis=0)
    return Predictions(first.filenames, frame, clip, first.classes, first.frame_seconds, first.durations)

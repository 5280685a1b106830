"""Orchestration of ``sed detect``: files -> streamed windows -> batched model -> stitched frame
probabilities -> post-processing -> detections (and plots), one recording at a time on output.

Windows from consecutive files share batches (a batch may hold the end of one file and the start
of the next), the model runs on the predictor's device (the GPU when present with ``device="auto"``),
and each file's results are written as soon as its last window is through. A bad file is reported
on stderr in one line (its name and the reason) and skipped; it never stops the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch

from sed.audio.features import LogMel
from sed.audio.io import wav_truncation
from sed.core.constants import DEFAULT_FEATURES
from sed.core.errors import SedError
from sed.core.memory import keep_freed_memory
from sed.core.predictions import Predictions
from sed.core.runs import newest_best_checkpoint
from sed.core.threads import set_torch_threads
from sed.detect.discover import AUDIO_EXTENSIONS, Source, discover
from sed.detect.overlap import FrameReuse, MelReuse, frame_forward, logmel_windows
from sed.detect.plot import MelSummary, safe_name
from sed.detect.stream import AudioInputError, probe, stream_mono
from sed.detect.windows import DEFAULT_OVERLAP, Stitcher, Windower, WindowSpec
from sed.detect.writer import EventWriter, OutputError
from sed.inference.predictor import load_system
from sed.postproc import decode
from sed.postproc.files import choose_postproc, tuned_postproc_file
from sed.reporting.plots import plot_timeline

TAGGING_MODES = ("local", "file")
NAME = "sedx detect"  # the prefix of every message (the console script is ``sedx``)


class DetectError(RuntimeError):
    """A problem with the run itself (model, configuration), not with one recording."""


@dataclass
class DetectOptions:
    """Everything ``sed detect`` can be told; see :func:`sed.cli.build_parser` for the meaning."""

    out: str | Path | None = None
    fmt: str = "tsv"
    postproc: str | None = None
    plot_dir: str | Path | None = None
    resume: bool = False
    quiet: bool = False
    batch_size: int = 16
    overlap: float = DEFAULT_OVERLAP
    tagging: str = "local"
    force: bool = False  # overwrite an existing --out that is not a detections file


@dataclass
class DetectSummary:
    processed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the one-line reasons
    skipped: list[str] = field(default_factory=list)  # already in the output (--resume)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# ----------------------------------------------------------------------------- configuration

def _postproc_for(predictor: Any, opts: DetectOptions, classes: Sequence[str], note: TextIO | None) -> Any:
    """The post-processing (``sed.postproc.files.choose_postproc``: ``--postproc``, else the run's tuned
    file, else the checkpoint's own), said on ``note``; a bad one is a DetectError."""
    ckpt = getattr(predictor, "path", None)
    tuned = tuned_postproc_file([ckpt], []) if opts.postproc is None and ckpt is not None else None
    try:
        choice = choose_postproc(file=opts.postproc, tuned=tuned,
                                 recorded=getattr(predictor, "postproc_cfg", None), recorded_from=str(ckpt))
        params = choice.params.for_classes(classes, "the model")
    except SedError as e:
        raise DetectError(f"bad post-processing config: {e}") from None
    if note is not None:
        print(f"{NAME}: {choice.line()}", file=note)
    return params


def load_predictor(ckpt: str | Path, device: str = "auto") -> Any:
    """The trained system (``sed.inference.predictor.load_system``); a seam for tests."""

    if not Path(ckpt).exists():
        raise DetectError(f"checkpoint not found: {ckpt}")
    return load_system(ckpt, device=device).speed_up()  # issue 15: BatchNorm folded, channels_last


def default_frontend() -> torch.nn.Module:

    return LogMel(DEFAULT_FEATURES)


# ----------------------------------------------------------------------------- post-processing

def decode_by_class(
    decode_fn: Callable,
    name: str,
    frame_probs: np.ndarray,
    clip_probs: np.ndarray,
    classes: tuple[str, ...],
    params: Any,
    frame_seconds: float,
    duration: float,
) -> pd.DataFrame:
    """Events (onset, offset, event_label) of one recording, post-processed one class at a time.

    Every step of SPEC section 6 works on one class's column alone, so this equals one call on all
    classes, with a tenth of the temporaries (a whole-array decode of an hour of 10 classes needs
    ~100 MB). A class whose column is all zero (untagged in every window) has no event and is skipped.
    """

    parts = []
    for i, c in enumerate(classes):
        col = frame_probs[:, i : i + 1]
        if not col.any():
            continue
        pc = params.for_classes((c,), "the model")
        preds = Predictions([name], col[None], clip_probs[None, i : i + 1], (c,), frame_seconds,
                            durations=np.array([duration]))
        ev = decode_fn(preds, pc)
        if len(ev):
            parts.append(ev[["onset", "offset", "event_label"]])
    if not parts:
        return pd.DataFrame({"onset": pd.Series(dtype=float), "offset": pd.Series(dtype=float),
                             "event_label": pd.Series(dtype=object)})
    events = pd.concat(parts, ignore_index=True)
    return events.sort_values(["onset", "offset", "event_label"], ignore_index=True)


# ----------------------------------------------------------------------------- per-file state

@dataclass(eq=False)
class _File:
    src: Source
    expected_windows: int = 1
    stitcher: Stitcher | None = None
    mel: MelSummary | None = None
    n_done: int = 0
    n_windows: int | None = None  # known at the end of the stream
    n_samples: int = 0
    failed: bool = False
    prev_frames: np.ndarray | None = None  # the last window's (F, C) estimates, for FrameReuse
    prev_mel: torch.Tensor | None = None  # the last window's log-mel, for MelReuse


class _Bars:
    """Two tqdm bars (files, windows) on stderr when it is a terminal; nothing with ``quiet``.

    Off when stderr is not a terminal (a log file, a pipe) so that logs hold only the messages."""

    def __init__(self, n_files: int, n_windows: int, quiet: bool, err: TextIO):
        self.err = err
        self.quiet = quiet
        self.files = self.windows = None
        tty = bool(getattr(err, "isatty", lambda: False)())
        if not quiet and tty:
            from tqdm.auto import tqdm  # lazy: only a terminal shows bars (tqdm.auto probes for Jupyter)

            self.files = tqdm(total=n_files, desc="files", unit="file", file=err, position=0,
                              dynamic_ncols=True)
            self.windows = tqdm(total=n_windows, desc="windows", unit="win", file=err, position=1,
                                dynamic_ncols=True, leave=False)

    def line(self, msg: str) -> None:
        if self.files is not None:
            self.files.write(msg, file=self.err)
        else:
            print(msg, file=self.err, flush=True)

    def file_done(self) -> None:
        if self.files is not None:
            self.files.update(1)

    def windows_done(self, n: int) -> None:
        if self.windows is not None:
            self.windows.update(n)

    def close(self) -> None:
        for b in (self.windows, self.files):
            if b is not None:
                b.close()


# ----------------------------------------------------------------------------- the run

def _produce(files: list[_File], spec: WindowSpec, sr: int) -> Iterator[tuple]:
    """("win", file, k, samples) ... ("end", file) per recording, or ("fail", file, reason)."""
    for f in files:
        try:
            wd = Windower(spec)
            for k, w in wd.iter(stream_mono(f.src.path, sr, name=f.src.name)):
                yield ("win", f, k, w)
            f.n_samples = wd.n_samples
            f.n_windows = spec.n_windows(wd.n_samples)
            yield ("end", f)
        except AudioInputError as e:
            yield ("fail", f, str(e))
        except Exception as e:  # noqa: BLE001 - whatever a decoder throws, the batch goes on
            yield ("fail", f, f"{f.src.name}: cannot decode ({type(e).__name__}: {e})")


def _check_options(opts: DetectOptions, predictor: Any) -> WindowSpec:
    """The window layout; a bad option or a model of another frame rate is a DetectError."""
    if opts.tagging not in TAGGING_MODES:
        raise DetectError(f"unknown tagging mode {opts.tagging!r} (one of {', '.join(TAGGING_MODES)})")
    if opts.batch_size < 1:
        raise DetectError("--batch-size must be at least 1")
    if abs(float(predictor.frame_seconds) - DEFAULT_FEATURES.frame_seconds) > 1e-9:
        raise DetectError(f"the model's frame length {predictor.frame_seconds} s is not the feature hop "
                          f"{DEFAULT_FEATURES.frame_seconds} s")
    try:
        return WindowSpec.from_overlap(opts.overlap)
    except ValueError as e:
        raise DetectError(str(e)) from e


class _Run:
    """One ``sedx detect`` run: its settings, output, files and progress; :func:`run_detect` drives it."""

    def __init__(self, predictor: Any, opts: DetectOptions, frontend: torch.nn.Module | None, err: TextIO,
                 decode_fn: Callable | None) -> None:
        self.predictor, self.opts, self.err = predictor, opts, err
        self.spec = _check_options(opts, predictor)
        self.sr = DEFAULT_FEATURES.sample_rate
        self.classes = tuple(predictor.classes)
        self.params = _postproc_for(predictor, opts, self.classes, None if opts.quiet else err)
        self.decode_fn = decode_fn if decode_fn is not None else decode
        local = opts.tagging == "local" and self.params.tagging_threshold is not None
        self.tag_thr = self.params.tagging_for(self.classes) if local else None  # (C,), -inf: off
        self.device = torch.device(str(predictor.device))
        self.frontend = (frontend if frontend is not None else default_frontend()).to(self.device).eval()
        n_fft = self.frontend.spec.n_fft if isinstance(self.frontend, LogMel) else None  # custom: no reuse
        context = getattr(predictor, "frame_context", None)
        self.reuse = FrameReuse.plan(self.spec, n_fft, context) if n_fft else None
        self.mel_reuse = MelReuse.plan(self.spec, n_fft) if n_fft else None
        self.plot_dir = Path(opts.plot_dir) if opts.plot_dir is not None else None
        self.summary = DetectSummary()
        self.checked = False
        self.batch: list[tuple[_File, int, np.ndarray]] = []

    # -- set-up ------------------------------------------------------------------------
    def open(self, paths: Sequence[str | Path], out_stream: TextIO | None) -> None:
        """Find the recordings, open the output, plan the files left to do and report the unusable ones."""
        found = discover(paths)
        if self.opts.out is not None:  # never write over a recording being read (by any name or link)
            clash = [s.name for s in found.sources if _same_file(s.path, Path(self.opts.out))]
            if clash:
                raise DetectError(f"--out {self.opts.out} is one of the input recordings ({clash[0]}); "
                                  "name another file")
        try:
            self.writer = EventWriter(self.opts.out, self.opts.fmt, resume=self.opts.resume,
                                      stream=out_stream, force=self.opts.force)
        except (OutputError, OSError) as e:
            raise DetectError(str(e)) from e
        self.todo, unnamable = self._plan(found.sources)
        n_bad = len(found.missing) + len(unnamable) + len(found.unsupported) + len(found.empty)
        self.bars = _Bars(len(self.todo) + n_bad, sum(f.expected_windows for f in self.todo), self.opts.quiet,
                          self.err)
        exts = ", ".join(AUDIO_EXTENSIONS)
        for reason in ([f"{m}: no such file or folder" for m in found.missing]
                       + [f"{u}: unsupported audio format (readable: {exts})" for u in found.unsupported]
                       + [f"{d}: no audio file in this folder (looked for {exts})" for d in found.empty]
                       + unnamable):
            self.fail(None, reason)
        if self.summary.skipped and not self.opts.quiet:
            self.bars.line(f"{NAME}: --resume: {len(self.summary.skipped)} file(s) already in "
                           f"{self.opts.out}, skipped")

    def _plan(self, sources: Sequence[Source]) -> tuple[list[_File], list[str]]:
        """The files to do (done ones skipped, names the output cannot hold refused), with their window
        counts from the headers; a WAV cut short is warned about (it is read as far as it goes)."""
        todo, unnamable = [], []
        for s in sources:
            if self.writer.is_done(s.name, s.path):
                self.summary.skipped.append(s.name)
            elif any(ch in s.name for ch in "\t\n\r"):
                unnamable.append(f"{s.name!r}: the file name holds a tab or line break, which the output "
                                 "cannot hold")
            else:
                todo.append(_File(s))
        for f in todo:
            if note := wav_truncation(f.src.path):
                print(f"{NAME}: warning: {note}", file=self.err, flush=True)
        for f in todo:  # header-only look, for the progress bar and buffer sizes
            try:
                seconds = probe(f.src.path, f.src.name).seconds
                f.expected_windows = self.spec.n_windows(int(round(seconds * self.sr)))
            except Exception:  # noqa: BLE001 - reported when the file is read
                f.expected_windows = 0
        return todo, unnamable

    # -- per file ----------------------------------------------------------------------
    def fail(self, f: _File | None, reason: str) -> None:
        """Report a file that cannot be done (one line) and drop its state."""
        if f is not None:
            f.failed = True
            f.stitcher = f.mel = f.prev_frames = f.prev_mel = None
            self.bars.windows_done(max(0, f.expected_windows - f.n_done))  # its unread windows
        self.summary.failed.append(reason)
        self.bars.line(f"{NAME}: skipped {reason}")
        self.bars.file_done()

    def finish(self, f: _File) -> tuple[np.ndarray, pd.DataFrame, int, float]:
        """Stitch, post-process and write one finished file; a failed write stops the run (DetectError)."""
        n_frames = self.spec.n_frames(f.n_samples)
        dur = f.n_samples / self.sr
        fp = f.stitcher.frame_probs(n_frames)
        clip = f.stitcher.clip_max.astype(np.float32)
        gate = f.stitcher.local_tags(n_frames)
        fp_dec = fp * gate if gate is not None else fp
        ev = decode_by_class(self.decode_fn, f.src.name, fp_dec, clip, self.classes, self.params,
                             self.predictor.frame_seconds, dur)
        try:
            self.writer.write(f.src.name, ev, dur, dict(zip(self.classes, clip.tolist())), path=f.src.path)
        except OSError as e:  # a full disk is the output's fault, not this file's: stop, keep what is written
            done = len(self.summary.processed) + len(self.summary.skipped)
            raise DetectError(f"cannot write {self.opts.out or 'the output'} ({e.strerror or e}) while "
                              f"writing {f.src.name}; the {done} file(s) finished before it are kept: "
                              "free space and rerun with --resume") from None
        self.summary.processed.append(f.src.name)
        return fp, ev, n_frames, dur

    def try_finish(self, f: _File) -> None:
        """Finish ``f`` once all its windows are through (a failure is that file's alone)."""
        if f.failed or f.n_windows is None or f.n_done < f.n_windows:
            return
        try:
            fp, ev, n_frames, dur = self.finish(f)
        except DetectError:
            raise
        except Exception as e:  # noqa: BLE001 - one file's failure never stops the run
            self.fail(f, f"{f.src.name}: post-processing failed ({type(e).__name__}: {e})")
            return
        if self.plot_dir is not None:
            self._plot(f, fp, ev, n_frames, dur)
        f.stitcher = f.mel = f.prev_frames = f.prev_mel = None  # free
        self.bars.file_done()

    def _plot(self, f: _File, fp: np.ndarray, ev: pd.DataFrame, n_frames: int, dur: float) -> None:
        try:
            cols, pool = f.mel.result(n_frames)
            events = list(zip(ev["onset"], ev["offset"], ev["event_label"])) if len(ev) else []
            plot_timeline(self.plot_dir / f"{safe_name(f.src.name)}.png", f.src.name, fp, self.classes,
                          self.predictor.frame_seconds, events, logmel=cols, mel_pool=pool, duration=dur,
                          all_classes=True)
        except Exception as e:  # noqa: BLE001 - its events are written; the plot is reported
            self.summary.failed.append(f"{f.src.name}: plot failed ({type(e).__name__}: {e})")
            self.bars.line(f"{NAME}: {self.summary.failed[-1]} (its events are in the output)")

    # -- batches -----------------------------------------------------------------------
    def _forward(self, items: list) -> tuple[np.ndarray, np.ndarray, dict | None, torch.Tensor]:
        """Log-mel and the model on a batch of windows (SM once per frame with overlap reuse)."""
        x = torch.from_numpy(np.stack([w for _, _, w in items])).to(self.device)
        ks = [k for _, k, _ in items]
        with torch.inference_mode():
            mel = logmel_windows(self.frontend, self.mel_reuse, x, ks, [f for f, _, _ in items])
            if self.reuse is None:
                frame, clip = self.predictor.predict_logmel(mel)
                return np.asarray(frame, dtype=np.float32), np.asarray(clip, dtype=np.float32), None, mel
            clip = np.asarray(self.predictor.predict_clips_logmel(mel), dtype=np.float32)  # DM: whole windows
            frame, parts = frame_forward(self.reuse, self.predictor.predict_frames_logmel, mel, ks)
        return frame, clip, parts, mel

    def _check_shapes(self, frame: np.ndarray, clip: np.ndarray, n: int) -> None:
        if self.checked:
            return
        spec, c = self.spec, len(self.classes)
        if frame.shape[1:] != (spec.win_frames, c) or clip.shape[1:] != (c,):
            raise DetectError(f"the model returned frame probabilities {frame.shape} and clip probabilities "
                              f"{clip.shape} for {n} windows of {spec.win_frames} frames, {c} classes")
        self.checked = True

    def run_batch(self) -> None:
        """The model on the batch; each window's output into its file's stitcher; finished files written."""
        items = [b for b in self.batch if not b[0].failed]
        self.batch = []
        if not items:
            return
        frame, clip, parts, mel = self._forward(items)
        self._check_shapes(frame, clip, len(items))
        mel_np = mel.float().cpu().numpy() if self.plot_dir is not None else None
        for j, (f, k, _) in enumerate(items):
            if f.failed:
                continue
            if f.stitcher is None:
                f.stitcher = Stitcher(self.spec, len(self.classes), self.tag_thr, max(1, f.expected_windows))
                if self.plot_dir is not None:
                    f.mel = MelSummary(self.spec.hop_frames, self.spec.total_frames(f.expected_windows))
            if parts is not None and j in parts:  # windows of a file come in order: k - 1 is done
                frame[j] = self.reuse.assemble(*parts[j], f.prev_frames)
            if self.reuse is not None:
                f.prev_frames = frame[j].copy()
            f.stitcher.add(k, frame[j], clip[j])
            if f.mel is not None:
                f.mel.add(k, mel_np[j])
            f.n_done += 1
        self.bars.windows_done(len(items))
        for f in dict.fromkeys(f for f, _, _ in items):
            self.try_finish(f)

    def loop(self) -> None:
        """Stream every file's windows through the model in batches; the output is closed in any case."""
        try:
            for item in _produce(self.todo, self.spec, self.sr):
                kind, f = item[0], item[1]
                if kind == "win":
                    self.batch.append((f, item[2], item[3]))
                    if len(self.batch) >= self.opts.batch_size:
                        self.run_batch()
                elif kind == "end":
                    self.try_finish(f)
                else:
                    self.fail(f, item[2])
            self.run_batch()
        finally:
            self.bars.close()
            self.writer.close()


def run_detect(
    paths: Sequence[str | Path],
    predictor: Any,
    opts: DetectOptions | None = None,
    *,
    frontend: torch.nn.Module | None = None,
    err: TextIO | None = None,
    out_stream: TextIO | None = None,
    decode_fn: Callable | None = None,
) -> DetectSummary:
    """Detect events in every recording under ``paths``; see the module docstring."""
    err = err if err is not None else sys.stderr
    run = _Run(predictor, opts or DetectOptions(), frontend, err, decode_fn)
    run.open(paths, out_stream)
    run.loop()
    return run.summary


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file (equal resolved paths, or one inode: a hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return False


def cli_detect(args: Any) -> int:
    """``sedx detect`` (arguments parsed by :mod:`sed.cli`)."""
    err = sys.stderr
    opts = DetectOptions(
        out=args.out, fmt=args.format, postproc=args.postproc, plot_dir=args.plot, resume=args.resume,
        quiet=args.quiet, batch_size=args.batch_size, overlap=args.overlap, tagging=args.tagging,
        force=bool(getattr(args, "force", False)),
    )
    dev = str(args.device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print(f"{NAME}: --device {dev}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
              "use --device cpu or auto", file=err)
        return 2
    ckpt = args.ckpt
    if ckpt is None:
        try:
            ckpt = newest_best_checkpoint()
        except SedError as e:
            print(f"{NAME}: {e}", file=err)
            return 2
        print(f"{NAME}: no --ckpt given: using {ckpt} (the newest training run)", file=err)

    try:
        set_torch_threads(getattr(args, "threads", None), key="--threads")
    except SedError as e:
        print(f"{NAME}: {e}", file=err)
        return 2

    keep_freed_memory()  # batches reuse the heap instead of page-faulting it in again (about 1.3x on CPU)
    try:
        predictor = load_predictor(ckpt, args.device)
    except (DetectError, SedError) as e:  # one-line messages naming the file
        print(f"{NAME}: {e}", file=err)
        return 2
    except Exception as e:  # noqa: BLE001
        print(f"{NAME}: cannot load {ckpt} ({type(e).__name__}: {e})", file=err)
        return 2
    try:
        summary = run_detect(args.paths, predictor, opts, err=err)
    except DetectError as e:
        print(f"{NAME}: {e}", file=err)
        return 2
    except KeyboardInterrupt:
        print(f"{NAME}: interrupted; finished files are in the output (rerun with --resume)", file=err)
        return 130
    if not args.quiet or summary.failed:
        print(f"{NAME}: {len(summary.processed)} file(s) processed, {len(summary.failed)} failed"
              + (f", {len(summary.skipped)} already done" if summary.skipped else ""), file=err)
    return summary.exit_code

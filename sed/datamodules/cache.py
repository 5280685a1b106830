"""Per-split feature cache: log-mel computed once, stored as a memory-mapped array, reused across runs.

Layout of ``<cache_dir>/features/<split>/``:

- ``logmel.npy``: ``(N, 640, 64)`` float32, opened as a memmap (``np.load(mmap_mode="r")``);
- ``index.json``: the feature spec, the filenames (row order) and each audio file's fingerprint
  (size and modification time);
- ``done.npy``: which rows are computed. Building saves it after every batch, so an interrupted
  build resumes where it stopped; a row whose audio file changed is recomputed, and a change of
  feature spec, of the file list or of the (resolved) audio folder rebuilds the split.

A rebuild never rewrites the array in place: the new ``logmel.npy`` is created under a temporary
name and renamed over the old one, so a process that has the old one memory-mapped (a training
while an evaluation rebuilds) keeps reading its own copy instead of dying with SIGBUS. Every
metadata file (``index.json``, ``done.npy``) is also replaced atomically (per-process temporary names).

Listed files that are missing are skipped with one warning per split (their list is written to
``missing_<split>.txt`` in the run folder); ``strict=True`` makes that an error. A file that exists
but cannot be decoded is an error naming it under ``strict``, else it is skipped and listed in
``bad_<split>.txt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sed.audio.features import LogMel
from sed.audio.io import load_audio
from sed.core.classes import classes_of
from sed.core.constants import DEFAULT_FEATURES, FeatureSpec
from sed.core.devices import resolve_device
from sed.core.errors import DataError
from sed.datamodules.layout import DesedLayout
from sed.datamodules.tsv import Event, read_strong_tsv, read_unlabel_tsv, read_weak_tsv

log = logging.getLogger(__name__)
CACHE_VERSION = 1


class _Rows:
    """Read-only view of the cache restricted to good rows (only used when some rows failed)."""

    def __init__(self, base: np.ndarray, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows
        self.shape = (len(rows),) + base.shape[1:]
        self.dtype = base.dtype
        self.ndim = base.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx):
        if isinstance(idx, tuple):
            return self.base[(self.rows[idx[0]],) + idx[1:]]
        return self.base[self.rows[idx]]

    def __array__(self, dtype=None, copy=None):
        out = self.base[self.rows]
        return out.astype(dtype) if dtype is not None else out


class _RowWriter:
    """Rows of an existing ``.npy`` file written in place with ``os.pwrite``: unlike a writable memmap,
    the written pages never enter this process's resident set, so building a large split's cache
    takes memory in proportion to a batch, not to the split."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR)
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            self.offset = f.tell()
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        for r, v in zip(rows, values):
            os.pwrite(self.fd, v.tobytes(), self.offset + int(r) * self.row_bytes)

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class RowReader:
    """Read-only rows of a ``.npy`` cache read with ``os.pread``, indexed like the array (an int, a slice, an
    index array, or a tuple of these). Unlike a memmap, the rows read never stay mapped in this process, so
    its resident set does not grow with the rows a long training touches (at DESED's size the unlabelled
    split alone is 2.4 GB); the kernel's page cache still serves repeated reads. A file replaced by a new
    one (a rebuilt cache) keeps being read from the old one, as a memmap would."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if fortran:
            raise DataError(f"{self.path}: a Fortran-ordered array, not a feature cache")
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)

    def __reduce__(self):  # DataLoader workers started with spawn reopen the file
        return (RowReader, (self.path,))

    def __del__(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __len__(self) -> int:
        return self.shape[0]

    def _read_into(self, out: np.ndarray, start: int) -> np.ndarray:
        """Fill ``out`` (contiguous, ``(count, *row_shape)``) with rows ``start..start+count-1``, in one
        read."""
        if out.nbytes and os.preadv(self.fd, [memoryview(out).cast("B")],
                                    self.offset + start * self.row_bytes) != out.nbytes:
            raise DataError(f"{self.path}: truncated feature cache (rows {start}..{start + len(out) - 1} "
                            "unreadable); delete it to rebuild")
        return out

    def _read(self, start: int, count: int) -> np.ndarray:
        return self._read_into(np.empty((count, *self.row_shape), self.dtype), start)

    def __getitem__(self, idx):
        rest = ()
        if isinstance(idx, tuple):
            idx, rest = idx[0], idx[1:]
        n = self.shape[0]
        if isinstance(idx, (int, np.integer)):
            i = int(idx) + n if int(idx) < 0 else int(idx)
            if not 0 <= i < n:
                raise IndexError(f"row {int(idx)} out of range for {n} rows")
            out = self._read(i, 1)[0]
        elif isinstance(idx, slice):
            start, stop, step = idx.indices(n)
            if step == 1:
                out = self._read(start, max(0, stop - start))
            else:
                out = self[np.arange(start, stop, step)]
        else:
            rows = np.asarray(idx)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            rows = np.where(rows < 0, rows + n, rows).astype(np.int64).reshape(-1)
            if len(rows) and (rows.min() < 0 or rows.max() >= n):
                raise IndexError(f"row index out of range for {n} rows")
            out = np.empty((len(rows), *self.row_shape), self.dtype)
            for j, r in enumerate(rows):
                self._read_into(out[j : j + 1], int(r))
            out = out.reshape((*np.shape(idx), *self.row_shape)) if np.ndim(idx) != 1 else out
        return out[(slice(None),) * (out.ndim - len(self.row_shape)) + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self._read(0, self.shape[0])
        return out.astype(dtype) if dtype is not None else out


@dataclass
class SplitFeatures:
    """The cached log-mel of one split: ``logmel[i]`` is clip ``filenames[i]`` (640 x 64)."""

    name: str
    filenames: list[str]
    logmel: np.ndarray
    spec: FeatureSpec = DEFAULT_FEATURES
    missing: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {f: i for i, f in enumerate(self.filenames)}

    def __len__(self) -> int:
        return len(self.filenames)

    def index_of(self, filename: str) -> int:
        try:
            return self._index[filename]
        except KeyError:
            raise KeyError(f"{filename} is not in the {self.name} feature cache") from None


def _fingerprint(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _report_dir(report_dir: str | Path | None, fallback: Path) -> Path:
    if report_dir is not None:
        return Path(report_dir)
    try:  # inside a Hydra app: the run folder
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # noqa: BLE001 - not in a Hydra app
        return fallback


_WARNED: set[tuple] = set()


def _warn_once(key: tuple, msg: str, *args) -> None:
    """One warning per split and run (the datamodule loads a split in prepare_data and again in setup)."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(msg, *args)


@contextlib.contextmanager
def _build_lock(folder: Path):
    """An exclusive advisory lock on ``<folder>/build.lock`` (released on exit, even on error)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(folder / "build.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _save_done(path: Path, done: np.ndarray) -> None:
    """``done.npy`` replaced atomically (a per-process temporary name)."""
    tmp = path.with_name(f"done.{os.getpid()}.tmp.npy")
    np.save(tmp, done)
    tmp.replace(path)


def build_cache(
    name: str,
    audio_dir: str | Path,
    filenames: Sequence[str],
    cache_dir: str | Path,
    *,
    spec: FeatureSpec = DEFAULT_FEATURES,
    strict: bool = False,
    progress: bool = True,
    batch_size: int = 32,
    device: str = "cpu",
    report_dir: str | Path | None = None,
    workers: int | None = None,
) -> SplitFeatures:
    """Compute (or reuse, or resume) the log-mel cache of the clips ``filenames`` under ``audio_dir``."""
    audio_dir, folder = Path(audio_dir), Path(cache_dir) / "features" / name
    present, missing = _present_clips(name, audio_dir, filenames, folder, strict=strict,
                                      report_dir=report_dir)
    prints = [_fingerprint(audio_dir / f) for f in present]
    data_path = folder / "logmel.npy"
    shape = (len(present), spec.n_frames, spec.n_mels)
    index = {"version": CACHE_VERSION, "spec": spec.key(), "filenames": present, "fingerprints": prints,
             "audio_dir": os.path.realpath(audio_dir)}

    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):  # one builder at a time per cache (parallel runs of one dataset)
        done = _prepare_folder(folder, index, shape)
        _compute_rows(name, audio_dir, present, done, folder, spec=spec, strict=strict, progress=progress,
                      batch_size=batch_size, device=device, workers=workers)

    good_rows = np.flatnonzero(done == 1)
    bad_files = [present[i] for i in np.flatnonzero(done == -1)]
    if bad_files:
        out = _report_dir(report_dir, folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"bad_{name}.txt").write_text("\n".join(bad_files) + "\n")
        _warn_once(("bad", name, str(audio_dir), len(bad_files), str(out)),
                   "%s: %d undecodable clips skipped (list: %s)", name, len(bad_files),
                   out / f"bad_{name}.txt")
    arr = RowReader(data_path) if len(present) else np.zeros(shape, np.float32)
    view = arr if len(good_rows) == len(present) else _Rows(arr, good_rows)
    return SplitFeatures(name, [present[i] for i in good_rows], view, spec, missing, bad_files)


def _present_clips(
    name: str, audio_dir: Path, filenames: Sequence[str], folder: Path, *, strict: bool,
    report_dir: str | Path | None,
) -> tuple[list[str], list[str]]:
    """``(present, missing)``: the listed clips (once each, in order) whose audio exists and the others;
    missing clips raise with ``strict``, else are listed in ``missing_<name>.txt`` with one warning."""
    listed = list(dict.fromkeys(filenames))
    present = [f for f in listed if (audio_dir / f).is_file()]
    missing = [f for f in listed if f not in set(present)]
    if missing:
        if strict:
            raise DataError(f"{audio_dir / missing[0]}: listed in the {name} metadata but missing "
                            f"({len(missing)} of {len(listed)} {name} clips missing; strict=true)")
        out = _report_dir(report_dir, folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"missing_{name}.txt").write_text("\n".join(missing) + "\n")
        _warn_once(("missing", name, str(audio_dir), len(missing), str(out)),
                   "%s: %d of %d listed clips missing from %s, skipped (list: %s)",
                   name, len(missing), len(listed), audio_dir, out / f"missing_{name}.txt")
    return present, missing


def _reusable_done(folder: Path, index: Mapping) -> np.ndarray | None:
    """The previous build's row flags when its index matches ``index`` (version, features, clips and
    audio folder), rows whose audio changed since reset to 0; None when nothing can be reused."""
    index_path, data_path, done_path = folder / "index.json", folder / "logmel.npy", folder / "done.npy"
    if not (index_path.is_file() and data_path.is_file() and done_path.is_file()):
        return None
    try:
        old = json.loads(index_path.read_text())
        same = (old.get("version"), old.get("spec"), old.get("filenames"),
                old.get("audio_dir", index["audio_dir"]))
        if same == (CACHE_VERSION, index["spec"], index["filenames"], index["audio_dir"]):
            done = np.load(done_path)
            stale = np.array([a != b for a, b in zip(old["fingerprints"], index["fingerprints"])], dtype=bool)
            return np.where(stale, 0, done).astype(np.int8)  # 1 done, 0 to do, -1 undecodable
    except (OSError, ValueError):
        return None
    return None


def _prepare_folder(folder: Path, index: Mapping, shape: tuple[int, int, int]) -> np.ndarray:
    """Under the build lock: the row flags to resume from (a new zeroed ``logmel.npy`` when none can be
    reused), with ``index.json`` brought up to date."""
    index_path, data_path, done_path = folder / "index.json", folder / "logmel.npy", folder / "done.npy"
    done = _reusable_done(folder, index)
    folder.mkdir(parents=True, exist_ok=True)
    if done is None or done.shape != (shape[0],):
        done = np.zeros(shape[0], dtype=np.int8)
        _save_done(done_path, done)
        # a new file renamed over the old one: a reader's memmap of the old one stays valid
        tmp = data_path.with_name(f"logmel.{os.getpid()}.tmp.npy")
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape).flush()
        tmp.replace(data_path)
    text = json.dumps(index)
    if not index_path.is_file() or index_path.read_text() != text:
        # atomic, and only when changed: a concurrent reader (DDP ranks, parallel runs) never sees half a file
        tmp = index_path.with_name(f"index.json.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(index_path)
    return done


def _compute_rows(
    name: str, audio_dir: Path, present: Sequence[str], done: np.ndarray, folder: Path, *, spec: FeatureSpec,
    strict: bool, progress: bool, batch_size: int, device: str, workers: int | None,
) -> None:
    """The log-mel of the rows ``done`` marks 0, in batches decoded by a thread pool; each row marked 1
    (written) or -1 (undecodable) in ``done`` and ``done.npy`` after its data is flushed."""
    todo = np.flatnonzero(done == 0)
    if not len(todo):
        return
    done_path = folder / "done.npy"
    frontend = LogMel(spec).to(resolve_device(device))
    data = _RowWriter(folder / "logmel.npy")  # pwrite: written pages stay out of this process's RSS
    bar = tqdm(total=len(present), initial=len(present) - len(todo), desc=f"features {name}",
               unit="clip", disable=not progress, dynamic_ncols=True)

    def decode(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, load_audio(audio_dir / present[i], spec), None
        except DataError as e:
            return i, None, str(e)

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            results = list(pool.map(decode, chunk))
            errors = [(i, e) for i, _, e in results if e is not None]
            if errors and strict:
                data.close()
                _save_done(done_path, done)
                raise DataError(errors[0][1])
            _write_features(results, frontend, data, done)
            for i, e in errors:
                done[i] = -1
                log.warning("%s", e)
            data.flush()
            _save_done(done_path, done)  # after the data: a crash never marks an unwritten row done
            bar.update(len(chunk))
    bar.close()
    data.close()


def _write_features(results: Sequence[tuple], frontend: LogMel, data: _RowWriter, done: np.ndarray) -> None:
    """The log-mel of a batch's decoded clips (``(row, wave, error)`` with no error) into their rows,
    marked 1."""
    good = [(i, w) for i, w, e in results if e is None]
    if good:
        wave = torch.from_numpy(np.stack([w for _, w in good])).to(frontend.window.device)
        with torch.no_grad():
            feats = frontend(wave).cpu().numpy()
        rows = np.array([i for i, _ in good])
        data.write(rows, feats)
        done[rows] = 1


def split_filenames(data_cfg: Mapping, split: str) -> list[str]:
    """The clips a split's metadata lists, in TSV order."""
    return list(labels_for(data_cfg, split))  # dict keys or the list itself


def labels_for(data_cfg: Mapping, split: str) -> dict[str, list[Event]] | dict[str, list[str]] | list[str]:
    """The split's TSV parsed by its kind: strong -> events, weak -> tags, unlabel -> filenames."""
    s = DesedLayout.from_cfg(data_cfg).split(split)
    if s.optional and not s.tsv.is_file():
        _warn_absent(s)
        return [] if s.kind == "unlabel" else {}
    reader = {"strong": read_strong_tsv, "weak": read_weak_tsv, "unlabel": read_unlabel_tsv}[s.kind]
    return reader(s.tsv, classes_of(data_cfg))


_warned: set[tuple[str, str]] = set()


def _warn_absent(s) -> None:
    """One warning per optional split (and path) that the dataset lacks."""
    key = (s.name, str(s.tsv))
    if key not in _warned:
        _warned.add(key)
        log.warning("%s: optional split %r not in this dataset (its TSV or audio folder %s is missing): "
                    "treated as empty", s.tsv, s.name, s.audio_dir)


def load_split(
    data_cfg: Mapping,
    split: str,
    *,
    progress: bool = True,
    device: str = "cpu",
    report_dir: str | Path | None = None,
) -> SplitFeatures:
    """Features of ``split`` of the dataset that ``data_cfg`` (the ``data`` config node) describes."""
    s = DesedLayout.from_cfg(data_cfg).split(split)
    if s.absent():
        _warn_absent(s)
        empty = np.zeros((0, DEFAULT_FEATURES.n_frames, DEFAULT_FEATURES.n_mels), np.float32)
        return SplitFeatures(split, [], empty)
    return build_cache(
        split,
        s.audio_dir,
        split_filenames(data_cfg, split),
        data_cfg["cache_dir"],
        strict=bool(data_cfg.get("strict", False)),
        progress=progress,
        device=device,
        report_dir=report_dir,
    )

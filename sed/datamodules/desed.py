"""The curriculum datamodule of SPEC section 5 (paper 2.3), served from the feature cache.

Sources: ``synthetic`` (strong labels: frame and clip targets), ``weak`` (clip tags; frame targets
from the NMF labels TSV, see below) and ``unlabel`` (no targets).  Each training batch holds a fixed
number of clips of each source (``mix`` proportions x ``batch_size``, largest remainder rounding).

Curriculum: epochs ``0 .. switch_epoch - 1`` (the paper's epochs 1-5) use ``pre_switch`` (default
synthetic only), later epochs ``post_switch``: PS1 ``{weak: 0.5, unlabel: 0.5}``, PS2 ``{synthetic:
0.25, weak: 0.25, unlabel: 0.5}`` -- the DCASE 2020 baseline's mix; PS1 keeps its labelled/unlabelled
balance of 1:1 without synthetic (paper silent: our defaults, config options).

Weak clips and the NMF labels (paper silent, our rule): a weak clip listed in ``data.nmf_labels_tsv``
with at least one event gets frame targets from those events (``has_frame``).  A weak clip absent
from it, or listed with no event (NMF found no active frame), gets NO frame loss -- all-zero frame
targets would teach "no event anywhere" in a clip whose tags say otherwise -- but keeps its clip loss.
``weak_frame_labels: none`` (the baseline) never uses NMF labels.

Epoch length (paper silent): one fixed number of iterations ``L`` for every epoch and every
experiment, so that T_i in epochs is a fixed number of iterations and PS1, PS2 and the baseline get
the same compute per epoch.  The default states L (``iters_per_epoch: 100``, conf/datamodule/desed.yaml),
so T_i, the curriculum switch and the whole step budget mean the same on any dataset: a small
synthetic split no longer shrinks the training (issue 11).  ``iters_per_epoch: null`` takes one pass
over the synthetic training clips at the full batch size, ``ceil(n_synthetic / (batch_size *
world_size))`` -- an epoch of the paper's first, synthetic-only phase (when no phase uses synthetic
clips: one pass over the smallest labelled source of the first phase).

Sampling and DDP: each source is read as an endless stream of seeded permutations
(``seed``, source, permutation number), consumed continuously across the epochs that use it, so a
large unlabelled set is covered over epochs and every epoch's batches are a pure function of
(seed, epoch) -- a resumed run sees the batches it would have seen.  Under DDP every rank takes a
disjoint stride of each epoch's stretch of the stream (rank r: positions r, r + W, ...): no stream
position is served twice, so ranks share no clip within an epoch unless that stretch wraps from one
permutation into the next (then a clip may come once from each).  Lightning's distributed
sampler must be off (``use_distributed_sampler: false``, set by sed.train).  Validation is NOT
sharded: every rank scores the whole (small) validation split, so every rank logs the same metrics.

Held-out synthetic clips (``holdout: {share, seed}``, :mod:`sed.datamodules.holdout`): that share of
the synthetic clips is removed from the synthetic training source (the sampler never sees it) and
served as ``holdout_features``/``holdout_rows``/``holdout_targets`` for the checkpoint criterion
(:class:`sed.training.selection.HoldoutScorer`); ``iters_per_epoch: null`` counts the clips left.

GPU feeding (conf/datamodule/desed.yaml): ``pin_memory`` page-locks host batches when training on
CUDA (Lightning then copies them with ``non_blocking=True``); ``features_on_device`` copies the used
training splits' log-mel and targets to the device once at setup (if they take at most half its free
memory) and gathers every batch there -- same batches, no per-batch host work or copy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sed.core.classes import classes_of
from sed.core.constants import N_FRAMES
from sed.core.errors import ConfigError, DataError
from sed.datamodules.cache import SplitFeatures, labels_for, load_split
from sed.datamodules.holdout import holdout_settings, split_rows
from sed.datamodules.targets import events_to_frame_targets, tags_to_clip_targets
from sed.datamodules.tsv import read_strong_tsv

log = logging.getLogger(__name__)
SOURCES = ("synthetic", "weak", "unlabel")
LABELLED = ("synthetic", "weak")


def batch_counts(mix: Mapping[str, float], batch_size: int) -> dict[str, int]:
    """Clips per batch of each source: ``mix`` proportions x ``batch_size``, largest-remainder rounding."""
    mix = {k: float(v) for k, v in mix.items() if float(v) > 0}
    bad = set(mix) - set(SOURCES)
    if bad:
        raise ConfigError(f"batch mix: unknown source(s) {sorted(bad)}; expected some of {SOURCES}")
    if not mix:
        raise ConfigError("batch mix: no source with a positive proportion")
    total = sum(mix.values())
    raw = {k: v / total * batch_size for k, v in mix.items()}
    counts = {k: int(math.floor(r)) for k, r in raw.items()}  # remainders: largest first, ties by name
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: batch_size - sum(counts.values())]:
        counts[k] += 1
    if any(c == 0 for c in counts.values()):
        raise ConfigError(f"batch mix {mix} with batch_size {batch_size} gives a source 0 clips per batch")
    return counts



def phase_counts(phases, epoch: int) -> dict[str, int]:
    """Clips per source in a batch at ``epoch``: the counts of the last phase started by then."""
    counts = phases[0][1]
    for first, c in phases:
        if epoch >= first:
            counts = c
    return counts

class SourceData:
    """One training source in memory-friendly form: log-mel memmap + targets + masks."""

    def __init__(
        self, name: str, feats: SplitFeatures, frame: dict[int, np.ndarray], clip: np.ndarray | None,
        n_classes: int,
    ) -> None:
        self.name, self.feats, self.n_classes = name, feats, int(n_classes)
        self.frame = frame  # row -> (T, C) uint8 frame targets (only rows with strong targets)
        self.clip = clip  # (N, C) float32 or None (unlabel)
        self.rows = np.arange(len(feats))  # the feature rows training may use (sampler position -> row)
        self.on_device: dict[str, torch.Tensor] | None = None  # see to_device

    def __len__(self) -> int:
        return len(self.rows)

    def nbytes(self) -> int:
        n, t, f = self.feats.logmel.shape
        return n * t * f * 4 + (n * t * self.n_classes if self.frame else 0)

    def to_device(self, device: torch.device, chunk: int = 256) -> None:
        """Copy the log-mel and targets to ``device`` (chunk by chunk from the memmap): batches are then
        gathered there, with no host copy per batch (``datamodule.features_on_device``)."""
        n, t, f = self.feats.logmel.shape
        x = torch.empty((n, t, f), dtype=torch.float32, device=device)
        for lo in range(0, n, chunk):
            part = np.array(self.feats.logmel[lo:lo + chunk], dtype=np.float32)
            x[lo:lo + chunk] = torch.from_numpy(part).to(device)
        d = {"x": x, "has_frame": torch.zeros(n, dtype=torch.bool)}
        if self.frame:
            y_f = torch.zeros((n, t, self.n_classes), dtype=torch.uint8)
            for r, tgt in self.frame.items():
                y_f[r], d["has_frame"][r] = torch.from_numpy(tgt), True
            d["y_f"] = y_f.to(device)
        d["has_frame"] = d["has_frame"].to(device)
        if self.clip is not None:
            d["y_c"] = torch.from_numpy(np.ascontiguousarray(self.clip, dtype=np.float32)).to(device)
        self.on_device = d

    def _device_batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        d = self.on_device
        dev = d["x"].device
        r = torch.from_numpy(rows.astype(np.int64)).to(dev)
        n = len(rows)
        return {
            "x": d["x"][r],
            "y_f": (d["y_f"][r].float() if "y_f" in d
                    else torch.zeros((n, d["x"].shape[1], self.n_classes), device=dev)),
            "y_c": d["y_c"][r] if "y_c" in d else torch.zeros((n, self.n_classes), device=dev),
            "has_frame": d["has_frame"][r],
            "has_clip": torch.full((n,), self.clip is not None, device=dev),
            "is_unlabel": torch.full((n,), self.clip is None, device=dev),
            "source": torch.full((n,), SOURCES.index(self.name), device=dev),
            "index": r,
        }

    def batch(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        rows = self.rows[np.asarray(positions, dtype=np.int64)]  # "index" below: the feature row
        if self.on_device is not None:
            return self._device_batch(rows)
        order = np.argsort(rows, kind="stable")  # memmap reads in file order, then put back
        x = np.empty((len(rows), N_FRAMES, self.feats.logmel.shape[2]), np.float32)
        x[order] = np.asarray(self.feats.logmel[rows[order]])
        y_f = np.zeros((len(rows), N_FRAMES, self.n_classes), np.float32)
        has_frame = np.zeros(len(rows), bool)
        for j, r in enumerate(rows):
            t = self.frame.get(int(r))
            if t is not None:
                y_f[j], has_frame[j] = t, True
        y_c = (self.clip[rows] if self.clip is not None
               else np.zeros((len(rows), self.n_classes), np.float32))
        n = len(rows)
        return {
            "x": torch.from_numpy(x),
            "y_f": torch.from_numpy(y_f),
            "y_c": torch.from_numpy(np.ascontiguousarray(y_c, dtype=np.float32)),
            "has_frame": torch.from_numpy(has_frame),
            "has_clip": torch.full((n,), self.clip is not None),
            "is_unlabel": torch.full((n,), self.clip is None),
            "source": torch.full((n,), SOURCES.index(self.name)),
            "index": torch.from_numpy(rows.astype(np.int64)),
        }


def _load_sources(
    data_cfg: Mapping, names: Sequence[str], weak_frame_labels: str, progress: bool
) -> dict[str, SourceData]:
    out: dict[str, SourceData] = {}
    classes = classes_of(data_cfg)
    for name in names:
        feats = load_split(data_cfg, name, progress=progress)
        if len(feats) == 0:
            raise DataError(f"{data_cfg['root']}: the {name} split has no usable clip")
        labels = labels_for(data_cfg, name)
        frame: dict[int, np.ndarray] = {}
        if name == "unlabel":
            clip = None
        elif name == "synthetic":
            clip = np.zeros((len(feats), len(classes)), np.float32)
            for i, f in enumerate(feats.filenames):
                evs = labels.get(f, [])
                frame[i] = events_to_frame_targets(evs, classes).astype(np.uint8)
                clip[i] = tags_to_clip_targets((e.label for e in evs), classes)
        else:  # weak
            clip = np.stack([tags_to_clip_targets(labels.get(f, []), classes) for f in feats.filenames])
            if weak_frame_labels == "nmf":
                path = Path(str(data_cfg["nmf_labels_tsv"]))
                if not path.is_file():
                    raise DataError(f"{path}: NMF labels for the weak clips not found (run `make nmf-labels` "
                                    "or `python -m sed.nmf_labels` first; "
                                    "or set datamodule.weak_frame_labels=none)")
                nmf = read_strong_tsv(path, classes)
                for i, f in enumerate(feats.filenames):
                    evs = nmf.get(f)
                    if evs:
                        frame[i] = events_to_frame_targets(evs, classes).astype(np.uint8)
                log.info("weak: %d of %d clips have NMF frame labels (%s)", len(frame), len(feats), path)
            elif weak_frame_labels != "none":
                raise ConfigError(f"weak_frame_labels {weak_frame_labels!r}: expected 'nmf' or 'none'")
        out[name] = SourceData(name, feats, frame, clip, len(classes))
    return out


class CurriculumBatchSampler(Sampler):
    """Yields, for each iteration of an epoch, ``[(source, rows), ...]`` for this rank.

    ``phases``: ``[(first_epoch, counts), ...]`` sorted by first epoch (counts: clips per batch
    per source).  Call :meth:`set_epoch` before iterating (Lightning does, for every epoch).
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        phases: Sequence[tuple[int, Mapping[str, int]]],
        iters_per_epoch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sizes, self.phases = dict(sizes), [(int(e), dict(c)) for e, c in phases]
        self.iters, self.seed = int(iters_per_epoch), int(seed)
        self.rank, self.world = int(rank), int(world_size)
        self.epoch = 0
        for _, counts in self.phases:
            for s in counts:
                if self.sizes.get(s, 0) <= 0:
                    raise DataError(f"the batch mix uses the {s} split but it has no clip")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def counts_at(self, epoch: int) -> dict[str, int]:
        return phase_counts(self.phases, epoch)

    def __len__(self) -> int:
        return self.iters

    def _stream(self, source: str, start: int, length: int) -> np.ndarray:
        """Positions ``start .. start+length`` of the source's endless stream of seeded permutations."""
        n = self.sizes[source]
        first, last = start // n, (start + length - 1) // n
        tag = SOURCES.index(source)
        perms = [np.random.default_rng([self.seed, tag, j]).permutation(n) for j in range(first, last + 1)]
        s = np.concatenate(perms)
        off = start - first * n
        return s[off : off + length]

    def _epoch_rows(self, epoch: int) -> dict[str, np.ndarray]:
        """This rank's rows of each source for ``epoch``: (iters, k_s) arrays."""
        counts = self.counts_at(epoch)
        out = {}
        for s, k in counts.items():
            need = self.iters * k * self.world
            start = sum(self.iters * self.counts_at(e).get(s, 0) * self.world for e in range(epoch))
            rows = self._stream(s, start, need)[self.rank :: self.world]
            out[s] = rows.reshape(self.iters, k)
        return out

    def __iter__(self):
        rows = self._epoch_rows(self.epoch)
        for i in range(self.iters):
            yield [(s, r[i]) for s, r in rows.items()]


class _BatchDataset(Dataset):
    """Map-style dataset whose items are whole batches (a list of (source, rows))."""

    def __init__(self, sources: Mapping[str, SourceData]) -> None:
        self.sources = sources

    def __len__(self) -> int:  # pragma: no cover - never sampled by index
        return 0

    def __getitem__(self, spec) -> dict[str, torch.Tensor]:
        parts = [self.sources[s].batch(np.asarray(rows)) for s, rows in spec]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class _ValDataset(Dataset):
    def __init__(self, feats: SplitFeatures) -> None:
        self.feats = feats

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.array(self.feats.logmel[i], dtype=np.float32))
        return {"x": x, "index": torch.tensor(i)}


@runtime_checkable
class ValidationData(Protocol):
    """What the callbacks read from ``trainer.datamodule`` (``sed.training.callbacks``, ``selection``,
    ``diagnostics``): the validation features and strong labels, the data config, and the held-out
    synthetic clips (empty when ``holdout.share`` is 0). :class:`DesedDataModule` provides it; another
    DataModule must too."""

    data_cfg: Mapping
    classes: tuple[str, ...]  # data.classes: the column order of every target and output
    val_features: SplitFeatures | None  # set by setup("fit" | "validate")
    val_truth: dict[str, list]
    holdout_features: SplitFeatures | None
    holdout_rows: np.ndarray  # (n,) feature rows of the held-out clips
    holdout_targets: np.ndarray  # (n, frames, classes) uint8
    sources: Mapping[str, Any]  # the training splits' data (the diagnostics sample weak clips)


def validation_data(trainer: Any) -> ValidationData:
    """``trainer.datamodule`` as a :class:`ValidationData`, or a ConfigError naming what it lacks."""
    dm = getattr(trainer, "datamodule", None)
    if not isinstance(dm, ValidationData):
        missing = [a for a in ValidationData.__annotations__ if not hasattr(dm, a)]
        raise ConfigError(f"the datamodule {type(dm).__name__} lacks {missing}, which the validation "
                          "callbacks read (sed.datamodules.desed.ValidationData)")
    return dm


def _check_sizes(**values: int | None) -> None:
    """One line per bad size setting (``datamodule.<name>``): whole numbers, positive except
    ``switch_epoch`` and ``num_workers`` (>= 0) and ``iters_per_epoch`` (positive or null)."""
    floor = {"switch_epoch": 0, "num_workers": 0}
    for name, v in values.items():
        if v is None and name == "iters_per_epoch":
            continue
        low = floor.get(name, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            what = ("null (one pass over the clips) or a whole number >= 1" if name == "iters_per_epoch"
                    else f"a whole number >= {low}")
            raise ConfigError(f"datamodule.{name}: {v!r} must be {what}")


class DesedDataModule(pl.LightningDataModule):
    """Curriculum batches from the feature cache (see the module docstring).

    ``data``: the ``data`` config node (conf/data/*.yaml); every other argument (no default here):
    conf/datamodule/desed.yaml.
    """

    def __init__(
        self,
        data: Mapping,
        *,
        batch_size: int,
        switch_epoch: int,
        pre_switch: Mapping[str, float],
        post_switch: Mapping[str, float],
        weak_frame_labels: str,
        iters_per_epoch: int | None,
        val_batch_size: int,
        num_workers: int,
        seed: int,
        progress: bool,
        pin_memory: bool,
        features_on_device: bool,
        holdout: Mapping | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(batch_size=batch_size, switch_epoch=switch_epoch, iters_per_epoch=iters_per_epoch,
                     val_batch_size=val_batch_size, num_workers=num_workers)
        self.data_cfg = data
        self.classes = classes_of(data)
        self.batch_size, self.switch_epoch = int(batch_size), int(switch_epoch)
        self.pre_switch, self.post_switch = dict(pre_switch), dict(post_switch)
        self.weak_frame_labels = weak_frame_labels
        self._iters_cfg = iters_per_epoch
        self.val_batch_size, self.num_workers = int(val_batch_size), int(num_workers)
        self.seed, self.progress = int(seed), progress
        self.holdout_share, self.holdout_seed = holdout_settings(holdout)
        self.holdout_features: SplitFeatures | None = None
        self.holdout_rows = np.zeros(0, np.int64)  # feature rows of the held-out synthetic clips
        self.holdout_targets = np.zeros((0, N_FRAMES, len(self.classes)), np.uint8)
        self.pin_memory, self.features_on_device = bool(pin_memory), bool(features_on_device)
        self.phases: list[tuple[int, dict[str, int]]] = []
        if self.switch_epoch > 0:
            self.phases.append((0, batch_counts(self.pre_switch, self.batch_size)))
        self.phases.append((self.switch_epoch, batch_counts(self.post_switch, self.batch_size)))
        self.sources: dict[str, SourceData] = {}
        self.val_features: SplitFeatures | None = None
        self.val_truth: dict[str, list] = {}  # setup("fit" | "validate") reads it
        self.iters_per_epoch: int | None = None

    # -- setup -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the feature caches once (rank 0) before setup reads them on every rank."""
        for s in self._used_sources() + ["validation"] + (["synthetic"] if self.holdout_share > 0 else []):
            load_split(self.data_cfg, s, progress=self.progress)

    def _used_sources(self) -> list[str]:
        return [s for s in SOURCES if any(s in c for _, c in self.phases)]

    def _world(self) -> tuple[int, int]:
        t = getattr(self, "trainer", None)
        if t is None:
            return 0, 1
        return int(t.global_rank), int(t.world_size)

    def setup(self, stage: str | None = None) -> None:
        t = getattr(self, "trainer", None)
        if t is None or t.world_size == 1:
            self._setup(stage)
        elif t.global_rank == 0:  # rank 0 first: the cache is checked/written by one process at a time
            self._setup(stage)
            t.strategy.barrier("sed-datamodule-setup")
        else:
            t.strategy.barrier("sed-datamodule-setup")
            self._setup(stage)

    def _setup(self, stage: str | None) -> None:
        if stage in (None, "fit") and not self.sources:
            self.sources = _load_sources(self.data_cfg, self._used_sources(), self.weak_frame_labels,
                                         self.progress)
            self._setup_holdout()
            self.iters_per_epoch = self._epoch_length(self._world()[1])
            if self.features_on_device:
                self._move_to_device()
        if stage in (None, "fit", "validate") and self.val_features is None:
            self.val_features = load_split(self.data_cfg, "validation", progress=self.progress)
            self.val_truth = labels_for(self.data_cfg, "validation")

    def _setup_holdout(self) -> None:
        """Split the synthetic clips; the held-out ones leave the synthetic training source."""
        if self.holdout_share <= 0:
            return
        feats = load_split(self.data_cfg, "synthetic", progress=self.progress)
        train, held = split_rows(feats.filenames, self.holdout_share, self.holdout_seed)
        if "synthetic" in self.sources:
            self.sources["synthetic"].rows = train
        labels = labels_for(self.data_cfg, "synthetic")
        self.holdout_features, self.holdout_rows = feats, held
        self.holdout_targets = np.stack(
            [events_to_frame_targets(labels.get(feats.filenames[r], []), self.classes).astype(np.uint8)
             for r in held]
        ) if len(held) else self.holdout_targets
        log.info("holdout: %d of %d synthetic clips held out of training for checkpoint selection (seed %d)",
                 len(held), len(feats), self.holdout_seed)

    def _device(self) -> torch.device:
        t = getattr(self, "trainer", None)
        return t.strategy.root_device if t is not None else torch.device("cpu")

    def _move_to_device(self) -> None:
        """``features_on_device``: the training sources' features to the trainer's device, if they fit
        (at most half the free device memory; else one warning and host batches as usual)."""
        device = self._device()
        need = sum(d.nbytes() for d in self.sources.values())
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
            if need > 0.5 * free:
                log.warning("features_on_device: the training features need %.1f GB, more than half the "
                            "%.1f GB free on %s: batches are built on the host",
                            need / 1e9, free / 1e9, device)
                return
        if self.num_workers:
            log.warning("features_on_device: batches are built in the main process (num_workers %d ignored)",
                        self.num_workers)
            self.num_workers = 0
        for d in self.sources.values():
            d.to_device(device)
        log.info("features_on_device: %.2f GB of training features on %s", need / 1e9, device)

    def _epoch_length(self, world: int) -> int:
        if self._iters_cfg:
            return int(self._iters_cfg)
        if "synthetic" in self.sources:
            return max(1, math.ceil(len(self.sources["synthetic"]) / (self.batch_size * world)))
        counts = self.phases[0][1]
        lab = [s for s in counts if s in LABELLED] or list(counts)
        return max(1, min(math.ceil(len(self.sources[s]) / (counts[s] * world)) for s in lab))

    def make_sampler(self, rank: int = 0, world_size: int = 1) -> CurriculumBatchSampler:
        sizes = {s: len(d) for s, d in self.sources.items()}
        return CurriculumBatchSampler(sizes, self.phases, self.iters_per_epoch, self.seed, rank, world_size)

    def counts_at(self, epoch: int) -> dict[str, int]:
        return phase_counts(self.phases, epoch)

    # -- loaders -------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        sampler = self.make_sampler(rank, world)
        on_device = any(d.on_device is not None for d in self.sources.values())
        return DataLoader(_BatchDataset(self.sources), sampler=sampler, batch_size=None,
                          num_workers=self.num_workers, persistent_workers=False,
                          pin_memory=self._pin() and not on_device)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_ValDataset(self.val_features), batch_size=self.val_batch_size, shuffle=False,
                          num_workers=self.num_workers, pin_memory=self._pin())

    def _pin(self) -> bool:
        """Page-locked host batches, so that Lightning's host-to-GPU copy (``non_blocking=True`` for CUDA
        targets) overlaps compute; only when training on CUDA."""
        return self.pin_memory and self._device().type == "cuda"

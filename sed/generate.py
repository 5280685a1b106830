"""The bundled mini-DESED: a small dataset in exactly the DESED layout (SPEC section 1).

``python -m sed.generate [--out data/mini-desed]`` (``make data``) writes all five splits with
their audio and TSVs (``public_eval``: DESED's public evaluation set, ``audio/eval/public`` and
``metadata/eval/public.tsv``, rendered like validation and by default as large), the weak clips' true
strong labels in ``truth/weak_strong.tsv`` (outside what training reads, for scoring the NMF labels),
and ``examples.png``.

Clips are 1-4 procedural events (``sed.generator.synth``) over varied backgrounds at random SNR, some
clips with none, overlaps allowed. Each clip has its own random stream
``default_rng([seed, split, index])``, so the set is deterministic for a seed whatever the
number of worker processes. ``--preset desed`` writes DESED's sizes (:data:`PRESETS`; ``--scale`` and
``--limit`` shrink them for a quick run).

A synthetic-to-real gap, as DESED's (clean synthetic soundscapes for training, real recordings for the
weak, unlabelled, validation and evaluation sets): the synthetic split (:data:`SYNTHETIC`) is clean
22.05 kHz mono; the "real" splits (:data:`REAL`) use other variants of each class family
(``sed.generator.synth.SOURCES_REAL``: other pitches, rates, sizes, formants, densities), up to 5 events at
0-18 dB SNR, more reverberation, unannotated babble in some clips, a recording chain
(``sed.generator.chain``: band limits, EQ, compression, clipping, low-bit or lossy-like steps), files at
16/44.1/48 kHz as well as 22.05 kHz, some stereo, and a few clips shorter than 10 s. The synthetic
split's bytes are those of generated.json version 2 for the same seed.

``--classes Chime=Alarm_bell_ringing,Woof=Dog,Hum=Vacuum_cleaner`` writes a dataset with a label set of
its own: each name is rendered by the named DESED family's generator (a bare family name keeps its name).
Train on it with ``data.classes=[Chime,Woof,Hum]`` (the command prints the override).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm.auto import tqdm

from sed.core.constants import DESED_CLASSES
from sed.datamodules.layout import DEFAULT_SPLITS
from sed.datamodules.tsv import Event, write_strong_tsv
from sed.generator.chain import ChainRecipe, recording_chain
from sed.generator.synth import SOURCES, SOURCES_REAL, babble, background, room_response

SPLIT_IDS = {"synthetic": 0, "weak": 1, "unlabel": 2, "validation": 3, "public_eval": 4}
#: Default sizes: big enough to learn, small enough that `make train` takes about ten minutes
#: (public_eval: None = as many as validation).
DEFAULT_SIZES: dict[str, int | None] = {"synthetic": 600, "weak": 300, "unlabel": 600, "validation": 200,
                                        "public_eval": None}
#: ``--preset`` sizes: ``desed`` is DCASE 2020 Task 4's DESED (synthetic20 soundscapes, weak, unlabelled
#: in-domain, validation, public evaluation set).
PRESETS: dict[str, dict[str, int]] = {
    "mini": {"synthetic": 600, "weak": 300, "unlabel": 600, "validation": 200, "public_eval": 200},
    "desed": {"synthetic": 2584, "weak": 1578, "unlabel": 14412, "validation": 1168, "public_eval": 692},
}


#: ``(label, sound family)`` pairs of the default label set: DESED's ten, each its own family.
DESED_FAMILIES: tuple[tuple[str, str], ...] = tuple((c, c) for c in DESED_CLASSES)


def parse_classes(spec: str) -> tuple[tuple[str, str], ...]:
    """``"Chime=Alarm_bell_ringing,Dog"`` -> ``(("Chime", "Alarm_bell_ringing"), ("Dog", "Dog"))``; one
    ValueError naming a family that is not one of DESED's ten, or a repeated name."""
    pairs = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, _, family = item.partition("=")
        name, family = name.strip(), (family or name).strip()
        if family not in SOURCES:
            raise ValueError(f"--classes: {family!r} is not a sound family (one of {', '.join(SOURCES)})")
        pairs.append((name, family))
    names = [n for n, _ in pairs]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"--classes {spec!r}: expected distinct names, e.g. "
                         "Chime=Alarm_bell_ringing,Woof=Dog")
    return tuple(pairs)


def preset_sizes(preset: str, scale: float = 1.0, limit: int | None = None) -> dict[str, int]:
    """Clips per split of ``preset``, times ``scale`` (rounded up, at least 1), capped at ``limit``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    if not scale > 0:
        raise ValueError(f"scale {scale}: expected > 0")
    out = {k: max(1, math.ceil(n * scale - 1e-9)) for k, n in PRESETS[preset].items()}
    return {k: min(n, limit) for k, n in out.items()} if limit else out


@dataclass(frozen=True)
class ClipRecipe:
    """Mixing parameters of one split's clips."""

    snr_db: tuple[float, float]
    reverb_prob: float
    short_prob: float  # chance of a clip shorter than 10 s
    empty_prob: float = 0.06
    max_events: int = 4
    variant: str = "synthetic"  # source table: "synthetic" (SOURCES) or "real" (SOURCES_REAL)
    babble_prob: float = 0.0  # chance of unannotated background talkers
    # babble RMS re the background's (events are at snr_db re it)
    babble_db: tuple[float, float] = (-10.0, -3.0)
    chain: ChainRecipe | None = None  # recording chain (sed.generator.chain), None: none
    other_sr_prob: float = 0.0  # chance of a file at one of other_srs instead of the dataset's rate
    other_srs: tuple[int, ...] = ()
    stereo_prob: float = 0.0  # chance of a two-channel file (second channel: small gain and delay difference)
    stereo_delay_ms: tuple[float, float] = (0.0, 0.6)
    stereo_gain: tuple[float, float] = (0.6, 1.0)


#: Clean 22.05 kHz mono soundscapes (DESED's synthetic20).
SYNTHETIC = ClipRecipe(snr_db=(6.0, 24.0), reverb_prob=0.3, short_prob=0.0)
#: "Recorded" clips (DESED's weak, unlabelled, validation and public eval: real recordings): other variants
#: of each class, more events, lower SNR, babble, a recording chain, other sample rates, some stereo.
REAL = ClipRecipe(snr_db=(0.0, 18.0), reverb_prob=0.6, short_prob=0.08, max_events=5, variant="real",
                  babble_prob=0.3, chain=ChainRecipe(), other_sr_prob=0.35, other_srs=(16000, 44100, 48000),
                  stereo_prob=0.2)


def _trim(x: np.ndarray, sr: int, floor_db: float = -35.0) -> np.ndarray:
    """Drop leading/trailing near-silence (10 ms RMS below ``floor_db`` of the peak): annotations are
    audible extents."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    on = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    return x[on[0] * hop: (on[-1] + 1) * hop]


def make_clip(rng: np.random.Generator, sr: int, recipe: ClipRecipe,
              classes: tuple[tuple[str, str], ...] = DESED_FAMILIES) -> tuple[np.ndarray, list[Event]]:
    """One soundscape: background + 0..max_events events at random SNR; returns audio and sorted events.
    ``classes``: the ``(label, sound family)`` pairs events are drawn from."""
    length = rng.uniform(4.0, 9.9) if rng.random() < recipe.short_prob else 10.0
    n = int(round(length * sr))
    bg = background(n, sr, rng)
    fg = np.zeros(n)
    events: list[Event] = []
    n_events = 0 if rng.random() < recipe.empty_prob else int(rng.integers(1, recipe.max_events + 1))
    sources = SOURCES_REAL if recipe.variant == "real" else SOURCES
    for _ in range(n_events):
        label, family = classes[rng.integers(len(classes))]
        x = _trim(sources[family](rng, sr), sr)
        x = x[: n - sr // 20]
        start = int(rng.integers(0, max(1, n - len(x))))
        snr = rng.uniform(*recipe.snr_db)
        x = x * (10 ** (snr / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12))  # background RMS is 1
        fg[start:start + len(x)] += x
        events.append(Event(round(start / sr, 3), round((start + len(x)) / sr, 3), label))
    if n_events and rng.random() < recipe.reverb_prob:
        fg = signal.fftconvolve(fg, room_response(sr, rng))[:n]
    if recipe.babble_prob > 0 and rng.random() < recipe.babble_prob:
        bg = bg + 10 ** (rng.uniform(*recipe.babble_db) / 20) * babble(n, sr, rng)
    mix = fg + bg
    mix *= rng.uniform(0.3, 0.9) / (np.abs(mix).max() + 1e-12)
    return mix.astype(np.float32), merge_overlaps(events)


def stereo(x: np.ndarray, delay: int, gain: float, second_left: bool) -> np.ndarray:
    """``(n, 2)``: ``x`` and a copy ``delay`` samples later at ``gain`` (on the left when ``second_left``)."""
    y = np.concatenate([np.zeros(delay), x[: len(x) - delay]]) * gain
    return np.stack([y, x] if second_left else [x, y], axis=1)


def render_clip(rng: np.random.Generator, sr: int, recipe: ClipRecipe,
                classes: tuple[tuple[str, str], ...] = DESED_FAMILIES) -> tuple[np.ndarray, int, list[Event]]:
    """:func:`make_clip`, then the file's format: sample rate, recording chain, channels.

    ``(audio (n,) or (n, 2), file sample rate, events)``; a recipe without chain, other rates or stereo
    draws nothing more (the synthetic split's streams are those of :func:`make_clip`)."""
    audio, events = make_clip(rng, sr, recipe, classes)
    out_sr = sr
    if recipe.other_sr_prob > 0 and rng.random() < recipe.other_sr_prob:
        out_sr = int(recipe.other_srs[rng.integers(len(recipe.other_srs))])
        g = math.gcd(out_sr, sr)
        audio = signal.resample_poly(audio.astype(np.float64), out_sr // g, sr // g)
    if recipe.chain is not None:
        audio = recording_chain(audio, out_sr, rng, recipe.chain) * rng.uniform(0.35, 1.0)
    if recipe.stereo_prob > 0 and rng.random() < recipe.stereo_prob:
        delay = int(round(rng.uniform(*recipe.stereo_delay_ms) * out_sr / 1000))
        audio = stereo(audio, delay, rng.uniform(*recipe.stereo_gain), bool(rng.random() < 0.5))
    return np.clip(audio, -1.0, 1.0).astype(np.float32), out_sr, events


def merge_overlaps(events: list[Event]) -> list[Event]:
    """Annotate overlapping events of one class as their union (what a listener hears; psds_eval and
    sed_scores_eval refuse overlapping same-class ground truth)."""
    out: list[Event] = []
    for ev in sorted(events, key=lambda e: (e.label, e.onset, e.offset)):
        if out and out[-1].label == ev.label and ev.onset <= out[-1].offset:
            out[-1] = Event(out[-1].onset, max(out[-1].offset, ev.offset), ev.label)
        else:
            out.append(ev)
    return sorted(out)


def clip_name(split: str, i: int) -> str:
    if split == "synthetic":
        return f"{i}.wav"
    return f"Y{split[:2]}{i:06d}_0.000_10.000.wav"


def _make_one(args: tuple) -> tuple[str, list[Event]]:
    split, i, seed, sr, audio_dir, classes = args
    rng = np.random.default_rng([seed, SPLIT_IDS[split], i])
    audio, out_sr, events = render_clip(rng, sr, SYNTHETIC if split == "synthetic" else REAL, classes)
    name = clip_name(split, i)
    sf.write(Path(audio_dir) / name, audio, out_sr, subtype="PCM_16")
    return name, events


def _write_tsvs(root: Path, split: str, clips: dict[str, list[Event]]) -> None:
    tsv = root / DEFAULT_SPLITS[split]["tsv"]
    tsv.parent.mkdir(parents=True, exist_ok=True)
    if split in ("synthetic", "validation", "public_eval"):
        write_strong_tsv(tsv, clips)
    elif split == "weak":
        # A weak clip must hold at least one event (DESED's weak clips all have tags).
        lines = [f"{f}\t{','.join(sorted({e.label for e in ev}))}" for f, ev in clips.items()]
        tsv.write_text("filename\tevent_labels\n" + "\n".join(lines) + "\n")
        write_strong_tsv(root / "truth" / "weak_strong.tsv", clips)
    else:
        tsv.write_text("filename\n" + "\n".join(clips) + "\n")


def generate_dataset(
    root: str | Path = "data/mini-desed",
    n_synthetic: int = DEFAULT_SIZES["synthetic"],
    n_weak: int = DEFAULT_SIZES["weak"],
    n_unlabel: int = DEFAULT_SIZES["unlabel"],
    n_validation: int = DEFAULT_SIZES["validation"],
    n_public_eval: int | None = None,
    seed: int = 0,
    sample_rate: int = 22050,
    progress: bool = False,
    workers: int | None = None,
    plot: bool = True,
    classes: tuple[tuple[str, str], ...] = DESED_FAMILIES,
) -> Path:
    """Write the dataset under ``root`` and return it; an identical existing set is kept as it is.

    ``n_public_eval`` None: as many public-eval clips as validation clips; ``classes``: ``(label, sound
    family)`` pairs (:func:`parse_classes`)."""
    root = Path(root)
    n_public_eval = n_validation if n_public_eval is None else n_public_eval
    classes = tuple((str(n), str(f)) for n, f in classes)
    params = {"n_synthetic": n_synthetic, "n_weak": n_weak, "n_unlabel": n_unlabel,
              "n_validation": n_validation,
              "n_public_eval": n_public_eval, "seed": seed, "sample_rate": sample_rate, "version": 3,
              "recipes": {"synthetic": asdict(SYNTHETIC), "real": asdict(REAL)}}
    if classes != DESED_FAMILIES:  # the default set's stamp stays as it was: no regeneration
        params["classes"] = [list(p) for p in classes]
    params = json.loads(json.dumps(params))  # tuples -> lists, as read back
    stamp = root / "generated.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return root
    sizes = {"synthetic": n_synthetic, "weak": n_weak, "unlabel": n_unlabel, "validation": n_validation,
             "public_eval": n_public_eval}
    results = _render_splits(root, sizes, seed, sample_rate, workers=workers, progress=progress,
                             classes=classes)
    _redraw_eventless_weak(root, results["weak"], seed, sample_rate, classes)
    for split, clips in results.items():
        _write_tsvs(root, split, clips)
    (root / "README.md").write_text(
        "# mini-DESED (generated by `python -m sed.generate`)\n\n"
        "Procedural sound events over varied backgrounds, in the DESED layout. "
        "`truth/weak_strong.tsv` holds the weak clips' true strong labels (never read by training).\n"
    )
    if plot:
        _plot_examples(root, results, tuple(n for n, _ in classes))
    stamp.write_text(json.dumps(params, indent=1))
    return root


def _render_splits(
    root: Path, sizes: dict[str, int], seed: int, sample_rate: int, *, workers: int | None, progress: bool,
    classes: tuple[tuple[str, str], ...] = DESED_FAMILIES,
) -> dict[str, dict[str, list[Event]]]:
    """Render and write every clip of every split (in ``workers`` processes for large sets); returns the
    events of each clip, per split."""
    jobs = []
    for split, count in sizes.items():
        audio_dir = root / DEFAULT_SPLITS[split]["audio"]
        audio_dir.mkdir(parents=True, exist_ok=True)
        # Weak clips need tags: draw indices until `count` clips have events (deterministic per index).
        jobs += [(split, i, seed, sample_rate, str(audio_dir), classes) for i in range(count)]
    workers = workers or min(2, os.cpu_count() or 1)
    results: dict[str, dict[str, list[Event]]] = {s: {} for s in sizes}
    bar = tqdm(total=len(jobs), desc="mini-DESED", unit="clip", disable=not progress, dynamic_ncols=True)
    if workers > 1 and len(jobs) > 32:
        with ProcessPoolExecutor(workers) as pool:
            for job, (name, events) in zip(jobs, pool.map(_make_one, jobs, chunksize=16)):
                results[job[0]][name] = events
                bar.update()
    else:
        for job in jobs:
            name, events = _make_one(job)
            results[job[0]][name] = events
            bar.update()
    bar.close()
    return results


def _redraw_eventless_weak(root: Path, weak: dict[str, list[Event]], seed: int, sample_rate: int,
                           classes: tuple[tuple[str, str], ...] = DESED_FAMILIES) -> None:
    """DESED's weak clips always have tags: an event-less weak clip is redrawn (deterministically) until it
    has one, its audio rewritten and its events replaced in ``weak``."""
    for name in [f for f, ev in weak.items() if not ev]:
        i = int(name[3:9])  # "Ywe000123_0.000_10.000.wav" -> 123
        k = 1
        while True:
            rng = np.random.default_rng([seed, SPLIT_IDS["weak"], i, k])
            audio, out_sr, events = render_clip(rng, sample_rate, REAL, classes)
            if events:
                break
            k += 1
        sf.write(root / DEFAULT_SPLITS["weak"]["audio"] / name, audio, out_sr, subtype="PCM_16")
        weak[name] = events


def _plot_examples(root: Path, results: dict[str, dict[str, list[Event]]], classes: tuple[str, ...]) -> None:
    """``examples.png`` (one synthetic clip per class) and, when the validation split has events,
    ``examples_real.png``."""
    # lazy: matplotlib (sed.reporting.plots) costs ~0.3 s; only the examples plot needs it
    from sed.reporting.plots import plot_examples

    plot_examples(root, root / "examples.png", classes=classes)
    if any(results["validation"].values()):  # the same classes as the real splits render them
        plot_examples(root, root / "examples_real.png", split="validation", classes=classes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sed.generate", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/mini-desed", help="dataset root to write (default: %(default)s)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="split sizes: mini (the defaults) or desed "
                   "(DCASE 2020 DESED: 2584/1578/14412/1168/692)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the preset's sizes (e.g. 0.1 for a quick run)")
    p.add_argument("--limit", type=int, default=None, help="at most this many clips per split")
    for split, n in DEFAULT_SIZES.items():
        p.add_argument(f"--n-{split.replace('_', '-')}", type=int, default=None,
                       help=f"{split} clips (default: the preset's, "
                       f"else {n if n is not None else 'as validation'})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--workers", type=int, default=None, help="processes (default: min(2, cores))")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--classes", default=None, metavar="NAME=FAMILY,...",
                   help="a label set of your own, each name rendered by a DESED family's generator "
                   "(e.g. Chime=Alarm_bell_ringing,Woof=Dog); default: DESED's ten")
    a = p.parse_args(argv)
    try:
        classes = parse_classes(a.classes) if a.classes else DESED_FAMILIES
    except ValueError as e:
        p.error(str(e))
    if a.preset is None and (a.scale != 1.0 or a.limit):
        a.preset = "mini"
    try:
        sizes = preset_sizes(a.preset, a.scale, a.limit) if a.preset else dict(DEFAULT_SIZES)
    except ValueError as e:
        p.error(str(e))
    for split in sizes:  # explicit --n-<split> wins over the preset
        if getattr(a, f"n_{split}") is not None:
            sizes[split] = getattr(a, f"n_{split}")
    root = generate_dataset(a.out, sizes["synthetic"], sizes["weak"], sizes["unlabel"], sizes["validation"],
                            sizes["public_eval"], seed=a.seed, sample_rate=a.sample_rate, progress=True,
                            workers=a.workers, plot=not a.no_plot, classes=classes)
    print(f"mini-DESED written to {root}", file=sys.stderr)
    if classes != DESED_FAMILIES:
        print(f"its classes: train with data.root={root} data.classes=[{','.join(n for n, _ in classes)}]",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

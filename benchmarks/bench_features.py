"""Feature extraction and cached data loading (foundation issue).

1. Log-mel of 10 s clips: our batched torch frontend against ``librosa.feature.melspectrogram``
   (same settings, same clips, same machine, same run): clips per second and the ratio.
2. An epoch's data loading from the feature cache: random batches of log-mel read from the
   memmap and turned into tensors, with frame targets: clips per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from benchmarks.common import best_of, write_result
from sed.core.constants import DEFAULT_FEATURES as SPEC


def bench_frontend(n_clips: int, batch: int) -> dict:
    from sed.audio.features import LogMel

    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((n_clips, SPEC.n_samples)) * 0.1).astype(np.float32)
    front = LogMel()

    def ours():
        with torch.no_grad():
            for i in range(0, n_clips, batch):
                front(torch.from_numpy(clips[i:i + batch]))

    def ref():
        for x in clips:
            np.log(librosa.feature.melspectrogram(y=x, sr=SPEC.sample_rate, n_fft=SPEC.n_fft,
                                                  hop_length=SPEC.hop_length, n_mels=SPEC.n_mels)
                   + SPEC.log_floor)

    ours()  # warm-up (allocations, filterbank)
    t_ours, t_ref = best_of(ours), best_of(ref)
    return {
        "logmel_torch_clips_per_s": {"value": n_clips / t_ours, "unit": "clips/s", "ratio": t_ref / t_ours,
                                     "reference": "librosa.feature.melspectrogram"},
        "logmel_librosa_clips_per_s": {"value": n_clips / t_ref, "unit": "clips/s"},
    }


def bench_cache_epoch(data_root: Path, batch: int) -> dict:
    from omegaconf import OmegaConf

    from sed.datamodules.cache import labels_for, load_split
    from sed.datamodules.targets import events_to_frame_targets

    cfg = OmegaConf.create({"data": OmegaConf.load(Path(__file__).parents[1] / "conf/data/mini_desed.yaml")})
    cfg.data.root = str(data_root)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.cache_dir = tmp
        t0 = time.perf_counter()
        feats = load_split(cfg.data, "synthetic", progress=False)
        t_build = time.perf_counter() - t0
        labels = labels_for(cfg.data, "synthetic")
        classes = tuple(cfg.data.classes)
        n = len(feats)
        rng = np.random.default_rng(0)

        def epoch():
            order = rng.permutation(n)
            for i in range(0, n, batch):
                idx = np.sort(order[i:i + batch])
                x = torch.from_numpy(np.asarray(feats.logmel[idx]))
                y = torch.from_numpy(
                    np.stack([events_to_frame_targets(labels[feats.filenames[j]], classes) for j in idx])
                )
                assert x.shape[0] == y.shape[0]

        epoch()
        t_epoch = best_of(epoch)
    return {
        "cache_build_clips_per_s": {"value": n / t_build, "unit": "clips/s"},
        "cache_epoch_clips_per_s": {"value": n / t_epoch, "unit": "clips/s"},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data", default="data/mini-desed")
    a = p.parse_args(argv)
    figures = bench_frontend(n_clips=16 if a.quick else 128, batch=16)
    root = Path(a.data)
    if not (root / "generated.json").is_file() and not (root / "metadata").is_dir():
        from sed.generate import generate_dataset

        tmp = Path(tempfile.mkdtemp())
        root = generate_dataset(tmp / "mini", n_synthetic=32 if a.quick else 200, n_weak=2, n_unlabel=2,
                                n_validation=2, plot=False)
    figures.update(bench_cache_epoch(root, batch=24))
    write_result("features", figures, quick=a.quick,
                 notes=f"torch threads {torch.get_num_threads()}; 10 s clips at 22050 Hz, 640 x 64 log-mel")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

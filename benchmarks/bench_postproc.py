"""Benchmark: post-processing and scoring a DESED-validation-sized set (issue 4).

1168 clips x 640 frames x 10 classes of structured synthetic probabilities with matching ground truth,
50 PSDS operating points. Ours (``sed.postproc.Decoder`` + ``sed.evaluation.metrics``) against a
straightforward reference as the DCASE 2020 baseline did it: per threshold, per clip, per class
``scipy.signal.medfilt`` and event decoding in Python loops, then ``psds_eval`` one operating point at a
time. Both feed the same psds_eval; the benchmark checks that both give the same detections and the same
PSDS figures. Each stage is timed in wall seconds and in CPU seconds of this process (the machine may be
shared: CPU time is the figure that compares).

Also times a 100-point threshold sweep (post-processing + event-based F1 per point, the figure a sweep
ranks by), in-process and as the real ``python -m sed.eval -m ... global_threshold=...`` Hydra multirun.

    python -m benchmarks.bench_postproc            # full size
    python -m benchmarks.bench_postproc --quick    # small, for CI sanity
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
import pandas as pd
from scipy.signal import medfilt

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS, N_FRAMES
from sed.core.predictions import Predictions
from sed.postproc import Decoder, PostprocParams, effective_window, psds_thresholds

# typical event lengths (s) per class: short (dog, dishes, speech...) and long (blender, frying...)
_MEAN_LEN = {
    "Alarm_bell_ringing": 1.5,
    "Blender": 4.0,
    "Cat": 1.0,
    "Dishes": 0.5,
    "Dog": 0.8,
    "Electric_shaver_toothbrush": 5.0,
    "Frying": 7.0,
    "Running_water": 5.0,
    "Speech": 1.2,
    "Vacuum_cleaner": 6.0,
}


def synthetic_set(n_clips: int = 1168, n_frames: int = N_FRAMES, seed: int = 0):
    """Structured probabilities and a ground truth to match.

    Each clip holds 1-4 events (class lengths as in DESED); frame probabilities rise on the
    events (with misses, jitter at the edges and noise) and hold a few false bumps; clip
    probabilities are high for present classes and low otherwise, with mistakes.
    Returns ``(Predictions, {filename: [(onset, offset, label)]})``.
    """
    rng = np.random.default_rng(seed)
    c = len(CLASSES)
    dt = FRAME_SECONDS
    dur = min(n_frames * dt, 10.0)
    filenames = [f"clip_{i:05d}.wav" for i in range(n_clips)]
    target = np.zeros((n_clips, n_frames, c), dtype=np.float32)
    gt: dict[str, list] = {}
    for i, f in enumerate(filenames):
        evs = []
        for _ in range(rng.integers(1, 5)):
            k = int(rng.integers(c))
            length = float(np.clip(rng.exponential(_MEAN_LEN[CLASSES[k]]), 0.25, dur))
            on = float(rng.uniform(0, max(dur - length, 0.0)))
            off = min(on + length, dur)
            evs.append([on, off, k])
        # merge same-class overlaps so the ground truth is valid
        merged = []
        for on, off, k in sorted(evs, key=lambda e: (e[2], e[0])):
            if merged and merged[-1][2] == k and on <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], off)
            else:
                merged.append([on, off, k])
        gt[f] = [(round(on, 3), round(off, 3), CLASSES[k]) for on, off, k in merged]
        for on, off, k in merged:
            target[i, int(on / dt) : int(np.ceil(off / dt)), k] = 1.0
    # frame probabilities: per-event level, noise, smoothed a little, false bumps
    level = rng.uniform(0.35, 0.95, size=(n_clips, 1, c)).astype(np.float32)
    noise = rng.normal(0, 0.12, size=target.shape).astype(np.float32)
    kernel = np.ones(5, dtype=np.float32) / 5
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 1, noise)
    bumps = np.zeros_like(target)
    nb = n_clips * 2
    bi, bk = rng.integers(n_clips, size=nb), rng.integers(c, size=nb)
    bs = rng.integers(0, n_frames - 40, size=nb)
    bl = rng.integers(3, 40, size=nb)
    for j in range(nb):
        bumps[bi[j], bs[j] : bs[j] + bl[j], bk[j]] = rng.uniform(0.2, 0.7)
    frame = np.clip(target * level + 0.5 * bumps + 0.05 + noise, 0, 1).astype(np.float32)
    present = target.max(axis=1)
    clip = np.clip(
        present * rng.uniform(0.45, 1.0, size=present.shape)
        + (1 - present) * rng.uniform(0, 0.6, size=present.shape),
        0,
        1,
    )
    preds = Predictions(filenames, frame, clip.astype(np.float32), CLASSES, dt, np.full(n_clips, dur))
    return preds, gt


# ---------------------------------------------------------------------------- the reference
def reference_decode(
    preds: Predictions, params: PostprocParams, threshold: float | None = None
) -> pd.DataFrame:
    """Straightforward per-clip, per-class decoding with Python loops (the DCASE 2020 baseline's way).

    Same rules as ours: tagging, scipy.signal.medfilt (zero padding, hence ``median_edge: constant``
    for a like-for-like comparison), hysteresis by walking left and right, removal then joining.
    """
    dt = preds.frame_seconds
    rows = []
    for n, f in enumerate(preds.filenames):
        for k, cls in enumerate(preds.classes):
            if params.tagging_threshold is not None and not preds.clip_probs[n, k] > params.tagging_threshold:
                continue
            x = preds.frame_probs[n, :, k].astype(np.float64)
            for w in params.median_windows[cls]:
                w = effective_window(w, params.even_window)
                if w > 1:
                    x = medfilt(x, w)
            x = x.astype(np.float32)
            th = params.frame_thresholds[cls] if threshold is None else threshold
            active = [v > th for v in x]
            low = params.hysteresis_low
            if low is not None:
                t = len(x)
                grown = list(active)
                for i in range(t):
                    if active[i]:
                        j = i - 1
                        while j >= 0 and not grown[j] and x[j] > low:
                            grown[j] = True
                            j -= 1
                        j = i + 1
                        while j < t and not active[j] and x[j] > low:
                            grown[j] = True
                            j += 1
                active = grown
            events = []
            start = None
            for i, a in enumerate(list(active) + [False]):
                if a and start is None:
                    start = i
                elif not a and start is not None:
                    on, off = start * dt, min(i * dt, preds.durations[n])
                    if off > on + 1e-9:
                        events.append([on, off])
                    start = None
            if params.order == "remove_then_join":
                events = [e for e in events if e[1] - e[0] >= params.min_duration - 1e-9]
            joined = []
            for e in events:
                if joined and e[0] - joined[-1][1] < params.join_gap - 1e-9:
                    joined[-1][1] = max(joined[-1][1], e[1])
                else:
                    joined.append(list(e))
            if params.order == "join_then_remove":
                joined = [e for e in joined if e[1] - e[0] >= params.min_duration - 1e-9]
            for on, off in joined:
                rows.append((f, round(on, 6), round(off, 6), cls))
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def reference_psds(ops: list[pd.DataFrame], reference: pd.DataFrame, durations: dict) -> dict[str, float]:
    """psds_eval's public API, one operating point after the other (the DCASE 2020 baseline's way)."""
    import warnings

    from psds_eval import PSDSEval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
        ev = PSDSEval(0.5, 0.5, 0.3, ground_truth=reference, metadata=meta)
        for op in ops:
            ev.add_operating_point(op)
        return {
            "psds": ev.psds(0.0, 0.0, 100).value,
            "psds_cross_trigger": ev.psds(1.0, 0.0, 100).value,
            "psds_macro": ev.psds(0.0, 1.0, 100).value,
        }


def hydra_sweep(preds: Predictions, gt: dict, n_points: int) -> float:
    """Wall time of ``python -m sed.eval -m predictions=... global_threshold=<n points>`` on saved
    predictions."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        preds.save(tmp / "p.npz")
        with open(tmp / "gt.tsv", "w") as f:
            f.write("filename\tonset\toffset\tevent_label\n")
            for k, evs in gt.items():
                for on, off, lab in evs:
                    f.write(f"{k}\t{on}\t{off}\t{lab}\n")
        points = ",".join(f"{t:.4f}" for t in np.linspace(0.05, 0.95, n_points))
        cmd = [
            sys.executable,
            "-m",
            "sed.eval",
            "-m",
            f"predictions={tmp / 'p.npz'}",
            f"ground_truth={tmp / 'gt.tsv'}",
            f"global_threshold={points}",
            f"hydra.sweep.dir={tmp / 'sweep'}",
        ]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0 or not (tmp / "sweep" / "summary.md").is_file():
            raise RuntimeError(f"hydra sweep failed: {out.stderr[-2000:]}")
        return wall


class _Clock:
    """Wall and CPU (this process) seconds of named stages."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall[name] = time.perf_counter() - w
        self.cpu[name] = time.process_time() - c
        print(f"  {name}: {self.wall[name]:.2f} s wall, {self.cpu[name]:.2f} s CPU", flush=True)


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["filename", "event_label", "onset"]).reset_index(drop=True)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small set (CI sanity)")
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--thresholds", type=int, default=50)
    ap.add_argument("--sweep-points", type=int, default=100)
    ap.add_argument(
        "--no-cli", action="store_true", help="skip timing the Hydra multirun sweep (a subprocess)"
    )
    args = ap.parse_args(argv)
    from sed.evaluation import metrics as M

    n_clips = args.clips or (48 if args.quick else 1168)
    n_th = 10 if args.quick else args.thresholds
    n_sweep = 10 if args.quick else args.sweep_points
    preds, gt = synthetic_set(n_clips)
    # like-for-like: the reference's medfilt pads with zeros
    params = PostprocParams(median_edge="constant")
    ths = psds_thresholds(n_th)
    reference = M.ground_truth_table(gt)
    durations = {f: float(d) for f, d in zip(preds.filenames, preds.durations)}
    print(
        f"{n_clips} clips x {preds.frame_probs.shape[1]} frames x {len(preds.classes)} classes, "
        f"{n_th} thresholds"
    )

    clock = _Clock()
    reference_psds([reference.iloc[:5]], reference, durations)  # warm-up: first-call costs out of the timings
    # ---- ours (one process: the stages' CPU time is comparable on a busy machine)
    with clock("ours_smooth"):
        dec = Decoder.prepare(preds, params)
    with clock("ours_decode"):
        ours_ops = [dec.events(float(t)) for t in ths]
    with clock("ours_psds_eval"):
        ours_figs, _ = M.psds_eval_scores(ours_ops, reference, durations, thresholds=ths, workers=1)
    workers = max(2, M.default_workers())
    with clock(f"ours_psds_eval_{workers}_processes"):
        par_figs, _ = M.psds_eval_scores(ours_ops, reference, durations, thresholds=ths, workers=workers)
    assert par_figs == ours_figs

    # ---- reference
    with clock("ref_decode"):
        ref_ops = [reference_decode(preds, params, float(t)) for t in ths]
    with clock("ref_psds_eval"):
        ref_figs = reference_psds(ref_ops, reference, durations)

    # same detections, same figures
    n_diff = 0
    for a, b in zip(ours_ops, ref_ops):
        a, b = _canon(a), _canon(b)
        if len(a) != len(b) or not (
            a["filename"].equals(b["filename"])
            and a["event_label"].equals(b["event_label"])
            and np.allclose(a["onset"], b["onset"])
            and np.allclose(a["offset"], b["offset"])
        ):
            n_diff += 1
    for k in ref_figs:
        assert abs(ours_figs[k] - ref_figs[k]) < 1e-12 or n_diff, (k, ours_figs[k], ref_figs[k])

    # ---- threshold sweep from saved predictions: decode + event-based F1 (the figure a sweep ranks by)
    # per point
    p0 = PostprocParams()
    best = (-1.0, None)
    with clock(f"sweep_{n_sweep}_points"):
        dec2 = Decoder.prepare(preds, p0)
        for t in np.linspace(0.05, 0.95, n_sweep):
            m = M.evaluate(
                preds,
                gt,
                p0.with_threshold(float(t)),
                psds=False,
                f1_engine="fast",
                segment=False,
                decoder=dec2,
            ).metrics
            best = max(best, (m["event_f1_macro"], float(t)))
    sweep_cli = hydra_sweep(preds, gt, n_sweep) if not args.no_cli else float("nan")

    w, c = clock.wall, clock.cpu
    ours_w = w["ours_smooth"] + w["ours_decode"] + w["ours_psds_eval"]
    ours_c = c["ours_smooth"] + c["ours_decode"] + c["ours_psds_eval"]
    ref_w, ref_c = w["ref_decode"] + w["ref_psds_eval"], c["ref_decode"] + c["ref_psds_eval"]
    figures: dict[str, dict] = {}
    for k in w:
        figures[f"{k}_wall_s"] = {"value": w[k], "unit": "s"}
        if not k.startswith("ours_psds_eval_") or k == "ours_psds_eval":
            figures[f"{k}_cpu_s"] = {"value": c[k], "unit": "s (CPU)"}
    figures["ours_decode_cpu_s"].update(
        ratio=c["ref_decode"] / (c["ours_smooth"] + c["ours_decode"]),
        reference="reference decode vs ours smooth+decode (CPU)",
    )
    figures["ours_end_to_end_cpu_s"] = {
        "value": ours_c,
        "unit": "s (CPU)",
        "ratio": ref_c / ours_c,
        "reference": "reference end to end (CPU)",
    }
    figures["ours_end_to_end_wall_s"] = {
        "value": ours_w,
        "unit": "s",
        "ratio": ref_w / ours_w,
        "reference": "reference end to end (wall)",
    }
    figures["ref_end_to_end_cpu_s"] = {"value": ref_c, "unit": "s (CPU)"}
    figures["ref_end_to_end_wall_s"] = {"value": ref_w, "unit": "s"}
    figures[f"sweep_{n_sweep}_points_hydra_cli_wall_s"] = {"value": sweep_cli, "unit": "s"}
    figures["operating_points_differing"] = {"value": float(n_diff), "unit": "of " + str(n_th)}
    figures["psds"] = {"value": ours_figs["psds"], "unit": ""}
    figures["psds_reference"] = {"value": ref_figs["psds"], "unit": ""}
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    figures["load_average_1min"] = {"value": load, "unit": f"on {os.cpu_count()} CPUs"}
    try:
        from benchmarks.common import write_result

        write_result(
            "postproc",
            figures,
            quick=args.quick,
            notes=f"{n_clips} clips, {n_th} thresholds; sweep best F1 {best[0]:.3f} at th {best[1]}",
        )
    except ImportError:  # pragma: no cover - common.py is the lead's
        print(figures)
    return figures


if __name__ == "__main__":
    main()

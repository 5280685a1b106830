"""Benchmark: fitting the post-processing per class (issue 10 part 3, ``sed.tune``).

1168 clips x 640 frames x 10 classes of synthetic probabilities correlated with a generated truth
(``bench_postproc.synthetic_set``, made harder: each class's frame and clip probabilities are scaled by
its own factor, as a model that is under-confident on some classes, and noisier), and the default grid of
``conf/tune.yaml``: 20 frame thresholds x 8 first windows x 8 second windows x 5 tagging thresholds
(6400 settings per class). Compared:

- **exact per-class search** (:func:`sed.evaluation.tuning.tune`, classes in parallel processes): wall and
  CPU seconds, the tune-split macro event F1 it reaches (checked by decoding with the fitted parameters);
- **the same grid as a joint Hydra multirun** (``python -m sed.eval -m predictions=... global_threshold=...
  postproc.tagging_threshold=... <windows>``: one setting shared by every class, 6400 points): a sample
  of points is run for real and timed (two sweep sizes give the start-up and the per-point cost), the
  6400-point time is extrapolated; the best F1 of the full grid is read from the per-class search's tables
  (every point of the shared grid is a point of each class's grid), and the sampled points' metrics.json
  must equal those tables;
- **hydra-optuna-sweeper** (TPE, seed 0) over the per-class space (4 x 10 categorical parameters, the same
  values) with as many trials as the grid has settings per class (6400): a sample of trials is run for real
  through the sweeper and timed (evaluation cost per trial); the same sampler runs in-process on the search's
  tables (identical objective values) for ``--optuna-trials`` (1000) trials: the F1 it reaches, and its own
  time, which grows as trials**2 and is extrapolated to 6400. Optuna's space is the product of the per-class
  grids, so the exact search's F1 is its maximum: no number of trials passes it.

The machine may be shared: wall times depend on the load (reported); CPU seconds compare.

    python -m benchmarks.bench_tune            # full size (several minutes, mostly the sampled sweeps)
    python -m benchmarks.bench_tune --quick    # small, for CI sanity
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmarks.bench_postproc import synthetic_set
from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.predictions import Predictions
from sed.evaluation.tuning import TuneGrid, tune
from sed.postproc import PostprocParams

ROOT = Path(__file__).resolve().parent.parent


def hard_set(n_clips: int, seed: int = 0, model_seed: int = 0):
    """``synthetic_set`` with per-class confidence factors (0.3-1.0, fixed by ``model_seed``: one "model"
    whatever the clips) and extra noise: F1 well below 1 at Table 1 settings."""
    preds, gt = synthetic_set(n_clips, seed=seed)
    c = len(preds.classes)
    model = np.random.default_rng(model_seed + 100)
    scale = model.uniform(0.3, 1.0, size=c).astype(np.float32)
    clip_scale = model.uniform(0.4, 1.0, size=c).astype(np.float32)
    rng = np.random.default_rng(seed + 200)
    noise = rng.normal(0, 0.1, size=preds.frame_probs.shape).astype(np.float32)
    frame = np.clip(preds.frame_probs * scale + noise * scale, 0, 1)
    clip = np.clip(preds.clip_probs * clip_scale, 0, 1)
    return Predictions(preds.filenames, frame, clip, preds.classes, preds.frame_seconds, preds.durations), gt


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def write_inputs(tmp: Path, preds: Predictions, gt: dict) -> tuple[Path, Path, Path]:
    """predictions.npz, the truth TSV and a config folder with two post-processing files for the sweeps."""
    p = preds.save(tmp / "predictions.npz")
    g = tmp / "gt.tsv"
    with open(g, "w") as f:
        f.write("filename\tonset\toffset\tevent_label\n")
        for k, evs in gt.items():
            for on, off, lab in evs:
                f.write(f"{k}\t{on}\t{off}\t{lab}\n")
    conf = tmp / "conf" / "postproc"
    conf.mkdir(parents=True)
    base = OmegaConf.load(ROOT / "conf" / "postproc" / "paper.yaml")
    shared = OmegaConf.to_container(base)
    # one pair for all classes
    shared["median_windows"] = {c: ["${bench.w1}", "${bench.w2}"] for c in CLASSES}
    (conf / "bench_shared.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(shared)))
    per = OmegaConf.to_container(base)
    per["tagging_threshold"] = dict.fromkeys(CLASSES, 0.5)  # per class, for the Optuna search space
    (conf / "bench_perclass.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(per)))
    return p, g, tmp / "conf"


def _fmt_choice(vals) -> str:
    return ",".join("null" if v is None else str(v) for v in vals)


def run_cli(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sed.eval", "-m", *args], cwd=cwd, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"})
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"sed.eval multirun failed: {out.stderr[-3000:]}")
    return wall


def grid_multirun(
    tmp, pfile, gfile, conf, grid: TuneGrid, thresholds, w1s, w2s, tags, tag: str
) -> tuple[float, list]:
    """Wall seconds of a real ``sed.eval`` multirun over the cartesian product given; its points' F1."""
    sweep = tmp / f"sweep_{tag}"
    wall = run_cli(
        [
            f"--config-dir={conf}",
            f"predictions={pfile}",
            f"ground_truth={gfile}",
            "postproc=bench_shared",
            f"global_threshold={_fmt_choice(thresholds)}",
            f"+bench.w1={_fmt_choice(w1s)}",
            f"+bench.w2={_fmt_choice(w2s)}",
            f"postproc.tagging_threshold={_fmt_choice(tags)}",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp,
    )
    points = []
    for d in sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file()):
        m = json.loads((d / "metrics.json").read_text())
        pp = m["run"]["postproc"]
        th = next(iter(pp["frame_thresholds"].values()))
        w = next(iter(pp["median_windows"].values()))
        points.append(((th, w[0], w[1], pp["tagging_threshold"]), m["event_f1_macro"]))
    return wall, points


def optuna_multirun(tmp, pfile, gfile, conf, grid: TuneGrid, n_trials: int) -> tuple[float, float]:
    """Wall seconds of a real hydra-optuna-sweeper run of ``n_trials`` over the per-class space; best F1."""
    sweep = tmp / f"optuna_{n_trials}"
    space = []
    for c in CLASSES:
        space += [
            f"postproc.frame_thresholds.{c}=choice({_fmt_choice(grid.thresholds)})",
            f"postproc.median_windows.{c}.0=choice({_fmt_choice(grid.first_windows)})",
            f"postproc.median_windows.{c}.1=choice({_fmt_choice(grid.second_windows)})",
            # Hydra's choice() refuses null: tagging off is 0.0 here (the same on this set: no clip
            # probability is 0)
            f"postproc.tagging_threshold.{c}="
            f"choice({_fmt_choice([0.0 if v is None else v for v in grid.tagging_thresholds])})",
        ]
    wall = run_cli(
        [
            f"--config-dir={conf}",
            f"predictions={pfile}",
            f"ground_truth={gfile}",
            "postproc=bench_perclass",
            "hydra/sweeper=optuna",
            f"hydra.sweeper.n_trials={n_trials}",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.direction=maximize",
            "hydra.sweeper.sampler.seed=0",
            f"hydra.sweep.dir={sweep}",
            *space,
        ],
        tmp,
    )
    best = -1.0
    for d in sweep.iterdir():
        if (d / "metrics.json").is_file():
            best = max(best, json.loads((d / "metrics.json").read_text())["event_f1_macro"] or 0.0)
    return wall, best


def optuna_in_process(res, grid: TuneGrid, n_trials: int, seed: int = 0) -> tuple[float, float, list]:
    """The same TPE sampler on the exact per-class tables: best macro F1 after ``n_trials``, the sampler's
    seconds, and the curve ``[(trials, best F1, seconds)]``. TPE's cost per trial grows with the trials
    done (its Parzen estimators hold every past trial): the time is about ``c * trials**2``."""
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    tabs = {c: res.searches[c].f1[0] for c in CLASSES}
    ths, w1s, w2s, tags = grid.thresholds, grid.first_windows, grid.second_windows, grid.tagging_thresholds

    def objective(trial):
        fs = []
        for c in CLASSES:
            it = ths.index(trial.suggest_categorical(f"th_{c}", list(ths)))
            i1 = w1s.index(trial.suggest_categorical(f"w1_{c}", list(w1s)))
            i2 = w2s.index(trial.suggest_categorical(f"w2_{c}", list(w2s)))
            ik = tags.index(trial.suggest_categorical(f"tag_{c}", list(tags)))
            fs.append(tabs[c][i1, i2, it, ik])
        return float(np.nanmean(fs))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    curve = []
    step = max(1, n_trials // 8)
    for k in range(0, n_trials, step):
        study.optimize(objective, n_trials=min(step, n_trials - k))
        curve.append((k + min(step, n_trials - k), round(study.best_value, 4),
                      round(time.perf_counter() - t0, 1)))
        print(f"    optuna in-process: {curve[-1]}", flush=True)
    return study.best_value, time.perf_counter() - t0, curve


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes of the per-class search (default: CPUs)")
    ap.add_argument("--multirun-sample", type=int, nargs=2, default=[4, 32],
                    help="points of the two real grid multiruns (start-up + per-point cost)")
    ap.add_argument("--optuna-sample", type=int, nargs=2, default=[2, 12],
                    help="trials of the two real Optuna sweeps")
    ap.add_argument("--optuna-trials", type=int, default=1000,
                    help="trials of the in-process TPE run "
                         "(its time grows as trials**2: 6400 would take about an hour)")
    args = ap.parse_args(argv)
    n_clips = args.clips or (60 if args.quick else 1168)
    cfg = OmegaConf.load(ROOT / "conf" / "tune.yaml")
    grid = TuneGrid.from_cfg(cfg.grid)
    if args.quick:
        grid = TuneGrid((0.2, 0.4, 0.6), (1, 5), (1, 9), (None, 0.3))
        args.multirun_sample, args.optuna_sample = [1, 3], [1, 3]
    n_set = grid.settings_per_class()
    preds, gt = hard_set(n_clips)
    assert (preds.clip_probs > 0).all()  # tagging threshold 0.0 == tagging off (the Optuna sweep's encoding)
    base = PostprocParams.from_cfg(OmegaConf.load(ROOT / "conf" / "postproc" / "paper.yaml"))
    from sed.evaluation import metrics as M

    table1 = M.evaluate(preds, gt, base, psds=False, f1_engine="fast",
                        segment=False).metrics["event_f1_macro"]
    print(f"{n_clips} clips x {preds.frame_probs.shape[1]} frames x {len(CLASSES)} classes; "
          f"{n_set} settings per class; Table 1 macro event F1 {table1:.4f}", flush=True)
    figures: dict[str, dict] = {}

    # ---- exact per-class search
    c0, k0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
    res = tune(preds, gt, grid, base, workers=args.workers)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + _children_cpu() - k0
    check = M.evaluate(preds, gt, res.params, psds=False, f1_engine="fast",
                       segment=False).metrics["event_f1_macro"]
    assert abs(check - res.macro) < 1e-9, (check, res.macro)
    print(f"  per-class search: {wall:.1f} s wall, {cpu:.1f} s CPU, macro F1 {res.macro:.4f}", flush=True)
    # other clips (seed 1) of the same "model" (class factors): the split nobody tuned on (public-eval
    # stand-in)
    p_eval, g_eval = hard_set(n_clips, seed=1)
    eval_table1 = M.evaluate(p_eval, g_eval, base, psds=False, f1_engine="fast",
                             segment=False).metrics["event_f1_macro"]
    eval_fitted = M.evaluate(p_eval, g_eval, res.params, psds=False, f1_engine="fast",
                             segment=False).metrics["event_f1_macro"]
    print(f"  held-out set (seed 1): Table 1 {eval_table1:.4f}, fitted {eval_fitted:.4f}", flush=True)
    # shared setting, (W1, W2, TH, TAG)
    mean = np.nanmean(np.stack([res.searches[c].f1[0] for c in CLASSES]), axis=0)
    shared_best = float(np.nanmax(mean))

    # ---- the shared grid as a Hydra multirun (sampled) and Optuna (sampled + in-process)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pfile, gfile, conf = write_inputs(tmp, preds, gt)
        rng = np.random.default_rng(0)
        walls, n_pts, mismatch = [], [], 0
        for n in args.multirun_sample:
            # a sub-grid of about n points: 1-2 values of each axis, drawn from the grid
            n_w1, n_w2 = (2, 2) if n >= 4 else (1, min(n, 2))
            th = tuple(rng.choice(grid.thresholds, size=max(1, n // (n_w1 * n_w2)), replace=False).tolist())
            w1 = tuple(int(v) for v in rng.choice(grid.first_windows, size=n_w1, replace=False))
            w2 = tuple(int(v) for v in rng.choice(grid.second_windows, size=n_w2, replace=False))
            tg = (grid.tagging_thresholds[int(rng.integers(len(grid.tagging_thresholds)))],)
            wall_m, points = grid_multirun(tmp, pfile, gfile, conf, grid, th, w1, w2, tg, f"{n}")
            for (t, a, b, g), f in points:
                ref = mean[grid.first_windows.index(a), grid.second_windows.index(b),
                           grid.thresholds.index(t), grid.tagging_thresholds.index(g)]
                mismatch += int(abs(ref - f) > 1e-9)
            walls.append(wall_m)
            n_pts.append(len(points))
            print(f"  grid multirun of {len(points)} points: {wall_m:.1f} s wall", flush=True)
        per_point = (walls[1] - walls[0]) / max(1, n_pts[1] - n_pts[0])
        if per_point <= 0:  # load noise on a tiny sample: the larger run's mean
            per_point = walls[1] / max(1, n_pts[1])
        startup = max(0.0, walls[0] - per_point * n_pts[0])
        multirun_est = startup + per_point * n_set
        o_walls = []
        for n in args.optuna_sample:
            w, ob = optuna_multirun(tmp, pfile, gfile, conf, grid, n)
            o_walls.append(w)
            print(f"  optuna sweep of {n} trials: {w:.1f} s wall (best {ob:.4f})", flush=True)
        o_per = (o_walls[1] - o_walls[0]) / max(1, args.optuna_sample[1] - args.optuna_sample[0])
        if o_per <= 0:
            o_per = o_walls[1] / max(1, args.optuna_sample[1])
        n_trials = min(args.optuna_trials, n_set)
        o_best, o_sampler, curve = optuna_in_process(res, grid, n_trials)
        print(f"  optuna TPE in-process, {n_trials} trials: best {o_best:.4f}, sampler {o_sampler:.1f} s",
              flush=True)
        # as many trials as settings per class: start-up + evaluation per trial + TPE's own time (~ c n^2)
        c_tpe = o_sampler / n_trials**2
        optuna_est = max(0.0, o_walls[0] - o_per * args.optuna_sample[0]) + o_per * n_set + c_tpe * n_set**2
    load1 = os.getloadavg()[0]

    figures["per_class_search_wall_s"] = {"value": wall, "unit": "s", "ratio": multirun_est / wall,
                                          "reference": "faster than the grid multirun (extrapolated)"}
    figures["per_class_search_cpu_s"] = {"value": cpu, "unit": "s (CPU, all processes)"}
    figures["per_class_search_f1"] = {"value": res.macro, "unit": "macro event F1 (tune split)"}
    figures["table1_f1"] = {"value": table1, "unit": "macro event F1 (tune split)"}
    figures["heldout_fitted_f1"] = {"value": eval_fitted, "unit": "macro event F1 (held-out set, seed 1)"}
    figures["heldout_table1_f1"] = {"value": eval_table1, "unit": "macro event F1 (held-out set, seed 1)"}
    figures["grid_multirun_wall_s_extrapolated"] = {"value": multirun_est, "unit": f"s for {n_set} points"}
    figures["grid_multirun_per_point_s"] = {"value": per_point, "unit": "s (measured)"}
    figures["grid_multirun_startup_s"] = {"value": startup, "unit": "s (measured)"}
    figures["grid_multirun_best_f1"] = {"value": shared_best, "unit": "macro event F1 (full shared grid)"}
    figures["grid_multirun_points_mismatching"] = {"value": float(mismatch),
                                                   "unit": f"of {sum(n_pts)} sampled"}
    figures["optuna_wall_s_extrapolated"] = {"value": optuna_est, "unit": f"s for {n_set} trials",
                                             "ratio": optuna_est / wall,
                                             "reference": "x the per-class search"}
    figures["optuna_per_trial_s"] = {"value": o_per, "unit": "s (measured, evaluation)"}
    figures["optuna_tpe_sampler_s"] = {"value": o_sampler,
                                       "unit": f"s for {n_trials} trials (in-process, measured)"}
    figures["optuna_best_f1"] = {"value": o_best, "unit": f"macro event F1 after {n_trials} trials"}
    figures["load_average_1min"] = {"value": (load0 + load1) / 2,
                                    "unit": f"on {os.cpu_count()} CPUs (shared)"}
    notes = (
        f"{n_clips} clips, grid {grid.to_dict()}; multirun sampled {n_pts} points, optuna sampled "
        f"{args.optuna_sample} trials, both extrapolated to {n_set}; "
        f"optuna in-process TPE ran {n_trials} trials "
        f"(curve: trials, best F1, s: {curve}); "
        "Optuna's space is the product of the per-class grids, so the exact "
        "search's F1 is its maximum: no number of trials can pass it; "
        "machine shared with 4 other engineers (2 CPUs)"
    )
    try:
        from benchmarks.common import write_result

        write_result("tune", figures, quick=args.quick, notes=notes)
    except ImportError:  # pragma: no cover
        print(figures)
    return figures


if __name__ == "__main__":
    main()

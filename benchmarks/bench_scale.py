"""A DESED-sized run on CPU, stage by stage (issue 15): wall time, peak RSS and disk of each stage.

Stages, each in its own subprocess (so that its peak memory is its own):

1. ``generate``: ``python -m sed.generate --preset desed --scale S`` (2,584 synthetic, 1,578 weak, 14,412
   unlabelled, 1,168 validation, 692 public-eval clips at scale 1; ``--workers`` processes);
2. ``features_<split>``: the log-mel cache of each split (sed.datamodules.cache.load_split);
3. ``nmf``: ``python -m sed.nmf_labels`` (templates over the synthetic events, activations over the weak
   clips);
4. ``train``: ``python -m sed.train trainer=cpu trainer.max_epochs=1 datamodule.iters_per_epoch=null``: one
   DESED epoch (PS1's first: one pass over the synthetic clips) and its validation pass (F1, PSDS, plots),
   with Lightning's simple profiler (time per hook and callback, at the end of ``train.log``);
   ``train_mixed``: the same for PS2 from its curriculum switch on (``datamodule.switch_epoch=0``): every
   batch mixes synthetic, weak and unlabelled clips and l_unlabel is on, so every training split is read;
5. ``eval`` / ``eval_public``: ``python -m sed.eval`` of that checkpoint on the validation and public-eval
   splits.

Peak RSS: the largest VmHWM of the stage's processes (each process's own peak) and the peak of the whole
tree's summed RSS (``/proc``, sampled every 0.2 s; generation uses worker processes); ``ru_maxrss`` from
``os.wait4`` is kept as an upper bound.
Disk: the data, cache and run folders after the stage. Results: ``benchmarks/results/scale.json``
(``scale_<S>.json`` for a fraction). Not in ``make bench``'s default set (tens of minutes at scale 1):

    python -m benchmarks.bench_scale --scale 0.1 [--work /work/scale-data] [--workers 2] [--keep] [--fresh]

Resumable: each finished stage is recorded in ``<work>/stages.json`` and skipped when the command is run
again (``--fresh`` starts over); an interrupted stage is redone (the feature cache and NMF parts resume
inside it). The data is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import write_result

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("synthetic", "weak", "unlabel", "validation", "public_eval")
PEAK_LIMIT_MB = 4096


def _tree_mem_mb(root: int) -> tuple[float, float]:
    """(summed VmRSS, largest VmHWM) in MB of ``root`` and all its descendants, from /proc. VmHWM is each
    process's peak since its exec (``ru_maxrss`` of a child also counts the forking parent's pages)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    rss_kb, hwm_kb, todo = 0, 0, [root]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm_kb = max(hwm_kb, int(line.split()[1]))
        except (OSError, ValueError):
            continue
    return rss_kb / 1024, hwm_kb / 1024


def run_stage(cmd: list[str], log_path: Path, env: dict[str, str]) -> dict:
    """Run ``cmd``; returns wall seconds, peak RSS of its largest process (VmHWM, sampled every 0.2 s), peak
    summed RSS of its process tree, CPU seconds (user + system, waited-for children included; wall time
    on a shared machine depends on the load, CPU time much less), ``ru_maxrss`` from ``os.wait4`` (an upper
    bound: it includes the forking parent's resident pages) and the exit code."""
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        peak = [0.0, 0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                tree, hwm = _tree_mem_mb(proc.pid)
                peak[0], peak[1] = max(peak[0], tree), max(peak[1], hwm)
                stop.wait(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        th.join()
        wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "peak_rss_mb": round(peak[1], 1), "peak_tree_rss_mb": round(peak[0], 1),
            "ru_maxrss_mb": round(ru.ru_maxrss / 1024, 1), "rc": proc.returncode}


def _du_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def features_stage(data_root: str, cache_dir: str, split: str) -> None:
    """One split's feature cache (the ``features_<split>`` stage's subprocess)."""
    from omegaconf import OmegaConf

    from sed.datamodules.cache import load_split

    cfg = OmegaConf.load(REPO / "conf" / "data" / "mini_desed.yaml")
    cfg.root, cfg.cache_dir = data_root, cache_dir
    cfg = OmegaConf.create({"data": cfg}).data  # resolves ${data.*}
    feats = load_split(cfg, split, progress=False, report_dir=Path(cache_dir) / "reports")
    print(f"{split}: {len(feats)} clips cached")


def stages(a, data: Path, cache: Path, runs: Path) -> dict[str, list[str]]:
    py = sys.executable
    d = [f"data.root={data}", f"data.cache_dir={cache}"]
    out = {"generate": [py, "-m", "sed.generate", "--preset", "desed", "--scale", str(a.scale),
                        "--out", str(data), "--workers", str(a.workers), "--no-plot"]}
    for s in SPLITS:
        out[f"features_{s}"] = [py, "-m", "benchmarks.bench_scale", "--features-stage", s,
                                "--work", str(a.base), "--scale", str(a.scale)]
    out["nmf"] = [py, "-m", "sed.nmf_labels", *d, f"hydra.run.dir={runs / 'nmf'}", "plot_clips=0",
                  "progress=false"]
    tail = [f"hydra.run.dir={runs / 'train'}", "datamodule.progress=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false"] + (["torch_threads=" + str(a.threads)] if a.threads else [])
    out["train"] = [py, "-m", "sed.train", *d, "trainer=cpu", "trainer.max_epochs=1", "logger=csv",
                    "datamodule.iters_per_epoch=null", "+trainer.profiler=simple", *tail]
    # PS2 from its switch on: synthetic, weak and unlabelled clips in every batch, l_unlabel on (the heaviest
    # epoch for memory: every training split is read); one pass over the synthetic clips, as above
    out["train_mixed"] = [*out["train"][:-len(tail)], "experiment=ps2", "datamodule.switch_epoch=0",
                          f"hydra.run.dir={runs / 'train_mixed'}", *tail[1:]]
    for name, split in (("eval", "validation"), ("eval_public", "public_eval")):
        out[name] = [py, "-m", "sed.eval", *d, f"ckpt={runs / 'train'}", f"split={split}", "device=cpu",
                     f"hydra.run.dir={runs / name}"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale", description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="fraction of DESED's sizes (0.1: a ~5-minute run)")
    p.add_argument("--work", type=Path, default=Path("/work/scale-data"), help="data, cache and runs go here")
    p.add_argument("--workers", type=int, default=2, help="generator processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training stage")
    p.add_argument("--keep", action="store_true", help="keep the data, cache and runs at the end")
    p.add_argument("--fresh", action="store_true", help="forget finished stages (and delete the work folder)")
    p.add_argument("--quick", action="store_true", help="same as --scale 0.02 (make bench --quick)")
    p.add_argument("--features-stage", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.scale = 0.02
    a.base, a.work = a.work, a.work / f"scale_{a.scale:g}"
    data, cache, runs = a.work / "data", a.work / "cache", a.work / "runs"
    if a.features_stage:
        features_stage(str(data), str(cache), a.features_stage)
        return 0
    if a.fresh and a.work.exists():
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True, exist_ok=True)
    state_path = a.work / "stages.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline", WANDB_SILENT="true",
               HYDRA_FULL_ERROR="1")
    load0 = os.getloadavg()
    for name, cmd in stages(a, data, cache, runs).items():
        if name in state and state[name].get("rc") == 0:
            print(f"{name}: done before ({state[name]['wall_s']} s), skipped", flush=True)
            continue
        print(f"{name}: {' '.join(cmd[1:])}", flush=True)
        r = run_stage(cmd, a.work / f"{name}.log", env)
        r.update(disk_data_mb=_du_mb(data), disk_cache_mb=_du_mb(cache), disk_runs_mb=_du_mb(runs),
                 load_avg_1min=round(os.getloadavg()[0], 2))
        state[name] = r
        state_path.write_text(json.dumps(state, indent=1))
        print(f"  {r}", flush=True)
        if r["rc"] != 0:
            print(f"error: stage {name} failed (exit {r['rc']}); log: {a.work / f'{name}.log'}",
                  file=sys.stderr)
            return 1
    figures = {}
    for name, r in state.items():
        figures[f"{name}_wall_s"] = {"value": r["wall_s"], "unit": "s"}
        if "cpu_s" in r:
            figures[f"{name}_cpu_s"] = {"value": r["cpu_s"], "unit": "s (user + system)"}
        figures[f"{name}_peak_rss_mb"] = {"value": r["peak_rss_mb"], "unit": "MB (largest process)"}
        figures[f"{name}_peak_tree_rss_mb"] = {"value": r["peak_tree_rss_mb"], "unit": "MB (process tree)"}
    figures["total_wall_s"] = {"value": round(sum(r["wall_s"] for r in state.values()), 1), "unit": "s"}
    worst = max(max(r["peak_rss_mb"], r["peak_tree_rss_mb"]) for r in state.values())
    figures["worst_peak_rss_mb"] = {"value": worst, "unit": "MB", "ratio": worst / PEAK_LIMIT_MB,
                                    "reference": "of the 4 GB limit"}
    last = state[list(state)[-1]]
    for k in ("disk_data_mb", "disk_cache_mb", "disk_runs_mb"):
        figures[k] = {"value": last[k], "unit": "MB"}
    sizes = json.loads((data / "generated.json").read_text())
    notes = (f"scale {a.scale:g} of DESED: " + ", ".join(f"{s} {sizes[f'n_{s}']}" for s in SPLITS)
             + f"; CPU only, {os.cpu_count()} cores; load average at start {load0[0]:.1f} (shared machine)"
             + f"; generator workers {a.workers}; per stage: {json.dumps(state)}")
    name = "scale" if a.scale == 1.0 else f"scale_{a.scale:g}"
    write_result(name, figures, notes=notes)
    if worst > PEAK_LIMIT_MB:
        print(f"error: peak RSS {worst:.0f} MB is over the {PEAK_LIMIT_MB} MB limit", file=sys.stderr)
    if not a.keep:
        shutil.rmtree(a.work)
    return 0 if worst <= PEAK_LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())

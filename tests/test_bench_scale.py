"""benchmarks/bench_scale.py's measuring: a stage's peak RSS (largest process and whole tree) and exit
code."""

from __future__ import annotations

import os
import sys

from benchmarks.bench_scale import run_stage, stages


def test_run_stage_reads_peak_rss_of_the_tree(tmp_path):
    grow = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(0.6)"
    # a parent that starts one child holding 200 MB: largest process ~200 MB, tree >= that
    cmd = [sys.executable, "-c",
           f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grow!r}], check=True)"]
    r = run_stage(cmd, tmp_path / "a.log", dict(os.environ))
    assert r["rc"] == 0 and r["wall_s"] > 0.5
    assert 200 <= r["peak_rss_mb"] < 400 and r["peak_tree_rss_mb"] >= 200  # VmHWM: each process's own peak
    assert r["ru_maxrss_mb"] >= r["peak_rss_mb"] - 5  # wait4 also counts the forking parent (this big pytest)
    bad = run_stage([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "b.log", dict(os.environ))
    assert bad["rc"] == 3


def test_stage_list(tmp_path):
    class A:
        scale, workers, threads, base, work = 0.1, 2, None, tmp_path, tmp_path / "scale_0.1"

    names = list(stages(A, tmp_path / "d", tmp_path / "c", tmp_path / "r"))
    assert names == ["generate", "features_synthetic", "features_weak", "features_unlabel",
                     "features_validation", "features_public_eval", "nmf", "train", "train_mixed", "eval",
                     "eval_public"]
    cmds = stages(A, tmp_path / "d", tmp_path / "c", tmp_path / "r")
    assert "datamodule.iters_per_epoch=null" in cmds["train"] and "+trainer.profiler=simple" in cmds["train"]
    mixed = cmds["train_mixed"]
    assert {"experiment=ps2", "datamodule.switch_epoch=0",
            f"hydra.run.dir={tmp_path / 'r' / 'train_mixed'}"} <= set(mixed)
    assert not any(c.endswith("/train") for c in mixed if c.startswith("hydra.run.dir="))

"""Past one process: DDP simulated on 2 CPU processes (gloo) shards the curriculum; a Hydra multirun
over the tiny dataset writes its summary table (each test spawns processes: ~30 s each)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests._train_utils import COMMON, REPO, TINY_SMDM, fit, nmf_data_cfg


@pytest.fixture(scope="module")
def data_cfg(tiny_data_cfg, tmp_path_factory):
    return nmf_data_cfg(tiny_data_cfg, tmp_path_factory)


def test_ddp_sim_shards_curriculum(tmp_path, data_cfg):
    from sed.training.callbacks import BatchRecorder

    # 4 clips per rank and iteration, 1 iteration per epoch: no epoch's demand wraps a source's permutation
    fit(tmp_path, data_cfg, ["trainer=ddp_sim", "trainer.max_epochs=2", "datamodule.switch_epoch=1",
                             "experiment=ps2", "callbacks.report.plots=false", "datamodule.batch_size=4",
                             "datamodule.iters_per_epoch=1"],
        extra_callbacks=[BatchRecorder(tmp_path / "rec")])
    r0 = json.loads((tmp_path / "rec" / "batches_rank0.json").read_text())
    r1 = json.loads((tmp_path / "rec" / "batches_rank1.json").read_text())
    for ep in ("0", "1"):
        a, b = {tuple(x) for x in r0[ep]}, {tuple(x) for x in r1[ep]}
        assert len(r0[ep]) == len(r1[ep]) == 4 and not a & b, ep  # same iterations, disjoint clips
        srcs = {s for s, _ in a | b}
        assert srcs == ({"synthetic"} if ep == "0" else {"synthetic", "weak", "unlabel"})
    assert (tmp_path / "metrics.json").is_file()


def test_multirun_writes_summary(tmp_path, tiny_desed, data_cfg):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "sed.train", "-m", "logger=csv", "trainer=cpu", *COMMON, *TINY_SMDM,
           f"data.root={tiny_desed}", f"data.cache_dir={data_cfg.cache_dir}",
           f"data.nmf_labels_tsv={data_cfg.nmf_labels_tsv}", "trainer.max_epochs=1",
           "datamodule.switch_epoch=0", "model.tau=0.5,0.9", f"hydra.sweep.dir={sweep}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    table = (sweep / "summary.md").read_text()
    assert "model.tau=0.5" in table and "model.tau=0.9" in table and "holdout_frame_map" in table
    assert len(pd.read_csv(sweep / "summary.csv")) == 2

"""benchmarks/gpu_check.sh in its CPU dry mode: every step runs and the JSON says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_dry_mode(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"), TMPDIR=str(tmp_path),
               OMP_NUM_THREADS="1")
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
    res = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert r.returncode == 0 and res["ok"], r.stdout[-3000:] + r.stderr[-3000:]
    assert res["mode"] == "cpu"
    assert list(res["steps"]) == ["pytest_gpu", "throughput", "equality", "ddp_data", "ddp", "claims_epochs",
                                  "detect_input", "detect"]
    ce = res["steps"]["claims_epochs"]
    assert ce["epochs"] == 1 and ce["s_per_epoch_incl_start"] == round(ce["wall_s"], 2) > 0
    tp = res["steps"]["throughput"]["result"]
    assert tp["sm_dm_large"]["params"] == 1_446_420 and tp["crnn_dcase2020"]["params"] == 1_112_548
    assert tp["sm_dm_large"]["train_clips_per_s"] > 0 and tp["sm_dm_large"]["s_per_desed_epoch"] > 0
    assert res["steps"]["equality"]["result"]["ok"]
    assert ("skipped" in res["steps"]["pytest_gpu"]["summary"]
            or "passed" in res["steps"]["pytest_gpu"]["summary"])
    assert not list(tmp_path.glob("gpu_check.*"))  # the work folder is removed

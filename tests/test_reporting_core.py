"""The shared reporting layer (Markdown/CSV tables, sweep folders) and the core resolvers (devices, run
folders and checkpoints): hand-written expectations."""

import os

import pandas as pd
import pytest
import torch

from sed.core.devices import resolve_device
from sed.core.errors import ConfigError
from sed.core.runs import CheckpointError, latest_run, resolve_checkpoint
from sed.reporting.sweeps import sweep_points
from sed.reporting.tables import markdown_table, per_class_rows, write_csv


def test_markdown_table_cells_columns_and_notes():
    rows = [{"job": "0", "f1": 0.12345, "n": 3}, {"job": "1", "f1": None, "n": float("nan"), "extra": "x"}]
    assert markdown_table(rows) == (
        "| job | f1 | n | extra |\n| --- | --- | --- | --- |\n| 0 | 0.1235 | 3 |  |\n| 1 |  |  | x |")
    pct = markdown_table(rows, ["job", "f1"],
                         fmt=lambda c, v: "-" if v is None else (f"{100 * v:.1f}" if c == "f1" else v),
                         notes={0: " <- best"})
    assert pct.splitlines()[2:] == ["| 0 | 12.3 | <- best", "| 1 | - |"]


def test_write_csv_and_per_class_rows(tmp_path):
    m = {"per_class": {"Dog": {"event_f1": 0.5, "segment_f1": 0.25, "n_ref": 2, "n_sys": 4}}}
    rows = per_class_rows(m)
    assert rows == [{"class": "Dog", "event_f1": 0.5, "event_precision": None, "event_recall": None,
                     "segment_f1": 0.25, "psds_f": None, "n_ref": 2, "n_sys": 4}]
    df = pd.read_csv(write_csv(rows, tmp_path / "sub" / "t.csv"))
    assert list(df.columns) == list(rows[0]) and df.loc[0, "n_sys"] == 4


def test_sweep_points_in_job_order(tmp_path):
    for j in ("10", "2", "0", "notes"):
        (tmp_path / j).mkdir()
        (tmp_path / j / "metrics.json").write_text("{}")
    (tmp_path / "3").mkdir()  # no metrics.json: not a point
    assert [p.parent.name for p in sweep_points(tmp_path, "metrics.json")] == ["0", "2", "10", "notes"]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def _run(root, name, files, mtime):
    d = root / name / "checkpoints"
    d.mkdir(parents=True)
    for f in files:
        (d / f).write_bytes(b"x")
    os.utime(root / name, (mtime, mtime))
    return root / name


def test_checkpoint_and_run_folder_resolvers(tmp_path):
    old = _run(tmp_path, "a", ["best.ckpt", "last.ckpt"], 1_000)
    new = _run(tmp_path, "b", ["last.ckpt"], 2_000)
    assert resolve_checkpoint(old) == old / "checkpoints" / "best.ckpt"  # best first
    assert resolve_checkpoint(new) == new / "checkpoints" / "last.ckpt"  # else last
    assert resolve_checkpoint(old / "checkpoints" / "last.ckpt") == old / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoints/best.ckpt or last.ckpt"):
        resolve_checkpoint(tmp_path)
    assert latest_run(tmp_path) == new and latest_run(tmp_path, ("best.ckpt",)) == old
    assert latest_run(tmp_path / "empty", required=False) is None
    with pytest.raises(ConfigError, match="no training run"):
        latest_run(tmp_path / "empty")

"""Issue 21, point 1: a run is self-describing. sed.tune and sed.eval given a run read the data it was
trained on (``data.yaml`` in the run folder); data given on the command line wins and is said."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra import compose, initialize_config_dir

from tests._train_utils import fit, nmf_data_cfg

REPO = Path(__file__).resolve().parents[1]
GRID = ["grid.thresholds=[0.5]", "grid.first_windows=[1]", "grid.second_windows=[1]",
        "grid.tagging_thresholds=[0.5]", "workers=1", "device=cpu"]


def _cfg(name, *overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=True)


def test_tune_and_eval_of_a_run_use_the_data_it_was_trained_on(
    tiny_data_cfg, tmp_path_factory, tmp_path, caplog
):
    from sed.eval import run as eval_run
    from sed.tune import run as tune_run

    data = nmf_data_cfg(tiny_data_cfg, tmp_path_factory)
    run = tmp_path / "train" / "r1"
    fit(run, data, ["trainer.max_epochs=1", "torch_threads=1", "callbacks.report.plots=false"])
    root = os.path.realpath(str(data.root))
    assert (run / "data.yaml").is_file() and root != os.path.realpath("data/mini-desed")
    with caplog.at_level(logging.INFO):
        s = tune_run(_cfg("tune", f"ckpt={run}", *GRID), tmp_path / "t")  # no data override at all
    assert s["ground_truth"].startswith(root)
    assert f"data: {root} (recorded by the run {run} in data.yaml)" in caplog.text
    m = eval_run(_cfg("eval", f"ckpt={run}", "psds=false", "segment=false", "report.enabled=false",
                      "also_splits=[]", "device=cpu"), tmp_path / "e")
    assert m["run"]["postproc_source"] == str(run / "postproc.yaml")  # the fit on its own data
    assert m["run"]["ground_truth"].startswith(root)
    # data given on the command line wins, and the console says what the run used
    other = tmp_path / "other"
    other.symlink_to(root, target_is_directory=True)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        tune_run(_cfg("tune", f"ckpt={run}", f"data.root={other}", f"data.cache_dir={data.cache_dir}", *GRID),
                 tmp_path / "t2")
    assert "given on the command line" not in caplog.text  # the same data by another path: nothing to say
    assert "recorded by the run" not in caplog.text


def test_data_given_for_a_run_trained_elsewhere_is_said_in_one_line(tmp_path):
    from omegaconf import OmegaConf

    from sed.core.run_data import use_run_data, write_run_data

    run = tmp_path / "run"
    write_run_data(OmegaConf.create({"name": "a", "root": str(tmp_path / "A")}), run)
    cfg = _cfg("eval", f"data.root={tmp_path / 'B'}")
    line = use_run_data(cfg, [run / "checkpoints" / "best.ckpt"])
    assert line == (f"data: {tmp_path / 'B'} (given on the command line; the run {run} trained on "
                    f"{tmp_path / 'A'}: the command line wins)")
    assert cfg.data.root == str(tmp_path / "B")
    cfg = _cfg("eval")
    assert use_run_data(cfg, [run]) == f"data: {tmp_path / 'A'} (recorded by the run {run} in data.yaml)"
    assert cfg.data.root == str(tmp_path / "A") and cfg.data.name == "a"
    assert use_run_data(_cfg("eval"), [run, run]) is None  # an ensemble of runs: the data given

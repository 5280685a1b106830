"""Helpers shared by tests/test_train.py and tests/test_train_dist.py: tiny configs and a fit wrapper."""

from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.datamodules.tsv import read_strong_tsv, write_strong_tsv

REPO = Path(__file__).resolve().parents[1]
# tiny networks so that a CPU epoch takes a second
TINY_SMDM = [
    "model.sm.channels=[4,8]", "model.sm.freq_pools=[8,8]", "model.sm.head_units=8", "model.sm.head_kernel=3",
    "model.dm.channels=[4,8,8]", "model.dm.pools=[[4,4],[4,4],[2,2]]", "model.dm.hidden=8",
]
COMMON = [
    "datamodule.batch_size=8", "datamodule.iters_per_epoch=null", "datamodule.progress=false",
    "callbacks.scorer.psds_thresholds=3", "callbacks.report.plots=true",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]
TINY_CRNN = ["model.crnn.channels=[4,4,8,8,8,8,8]", "model.crnn.rnn_cells=8", "model.crnn.rnn_layers=1"]


def nmf_data_cfg(tiny_data_cfg, tmp_path_factory):
    """The tiny dataset, with NMF labels = the true events of 6 of the 8 weak clips."""
    truth = read_strong_tsv(tiny_data_cfg.weak_truth_tsv)
    path = tmp_path_factory.mktemp("nmf") / "weak_nmf.tsv"
    write_strong_tsv(path, dict(list(sorted(truth.items()))[:6]))
    return OmegaConf.merge(tiny_data_cfg, {"nmf_labels_tsv": str(path)})


def make_cfg(run_dir: Path, data_cfg, overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        tiny = TINY_CRNN if "experiment=baseline" in overrides else TINY_SMDM
        cfg = compose("train", overrides=["logger=csv", "trainer=cpu", *COMMON, *tiny, *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.data = data_cfg
    return cfg


def fit(tmp: Path, data_cfg, overrides: list[str], **kw) -> tuple[dict, pd.DataFrame]:
    from sed.train import run

    best = run(make_cfg(tmp, data_cfg, overrides), tmp, overrides=overrides, **kw)
    from sed.training.resume import final_run_dir

    # a resumed run logs into the run folder it continues (a new csv/version_<n>)
    logs = sorted(final_run_dir(tmp).glob("csv/version_*/metrics.csv"),
                  key=lambda p: int(p.parent.name.split("_")[1]))
    log = pd.read_csv(logs[-1])
    return best, log



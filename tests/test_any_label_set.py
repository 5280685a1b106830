"""Issue 21, point 4: any label set. Classes come from the data config (``data.classes``); a generated
dataset with three non-DESED names goes through NMF labels, training, tuning, evaluation, scoring and
detection without a code change, and every output names its three classes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.core.classes import check_classes, classes_of
from sed.core.constants import DESED_CLASSES
from sed.core.errors import ConfigError, DataError
from sed.postproc import PostprocParams
from tests._train_utils import fit
from tests.conftest import make_data_cfg

REPO = Path(__file__).resolve().parents[1]
NAMES = ("Chime", "Woof", "Hum")
SPEC = "Chime=Alarm_bell_ringing,Woof=Dog,Hum=Vacuum_cleaner"
GRID = ["grid.thresholds=[0.3,0.5]", "grid.first_windows=[1]", "grid.second_windows=[1]",
        "grid.tagging_thresholds=[0.5]", "workers=1", "device=cpu"]


def _cfg(name, *overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=True)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A tiny generated dataset whose classes are Chime, Woof and Hum, and its data config."""
    from sed.generate import generate_dataset, parse_classes

    tmp = tmp_path_factory.mktemp("three")
    root = generate_dataset(tmp / "data", n_synthetic=16, n_weak=8, n_unlabel=8, n_validation=8, seed=0,
                            workers=1, plot=False, classes=parse_classes(SPEC))
    data = make_data_cfg(root, tmp / "cache")
    data.classes = list(NAMES)
    return root, data


def test_the_label_set_is_checked_where_it_is_read():
    assert classes_of({}) == DESED_CLASSES  # a run recorded before data.classes: DESED's ten
    assert classes_of({"classes": ["a", "b"]}) == ("a", "b")
    for bad, msg in ((["a", "a"], "listed twice"), ([], "empty"), (["a,b"], "comma"), ("ab", "one name")):
        with pytest.raises(ConfigError, match=msg):
            check_classes(bad)


def test_a_label_outside_the_data_classes_is_one_line_naming_file_and_line(three):
    from sed.datamodules.tsv import read_strong_tsv

    root, _ = three
    tsv = root / "metadata" / "validation" / "validation.tsv"
    msg = r"validation\.tsv:\d+: unknown class '(Chime|Woof|Hum)' \(data\.classes has 10 classes: Alarm_bell"
    with pytest.raises(DataError, match=msg):
        read_strong_tsv(tsv, DESED_CLASSES)
    assert {e.label for evs in read_strong_tsv(tsv, NAMES).values() for e in evs} <= set(NAMES)


def test_a_class_without_an_entry_gets_the_stated_generic_default(caplog):
    p = PostprocParams()  # Table 1: DESED's ten
    with caplog.at_level(logging.WARNING):
        q = p.for_classes(("Dog", "Woof"), "the test")
    assert q.frame_thresholds == {"Dog": 0.3, "Woof": 0.5}  # Table 1's Dog; the generic 0.5
    assert q.median_windows == {"Dog": (7, 15), "Woof": (7, 15)}
    assert ("1 class(es) of the test (Woof): generic frame threshold 0.5 and median windows [7, 15]"
            in caplog.text)
    per = PostprocParams(tagging_threshold={"Dog": 0.2})
    assert per.tagging_for(("Dog", "Woof")).tolist() == [0.2, 0.5]
    assert PostprocParams.from_cfg({"generic_threshold": 0.7}).thresholds_for(("Woof",)).tolist() == [0.7]


def test_three_classes_end_to_end(three, tmp_path):
    """NMF labels -> train -> tune -> eval -> sedx score -> sedx detect on the 3-class set."""
    from sed import cli
    from sed.eval import run as eval_run
    from sed.nmf import job
    from sed.tune import run as tune_run

    root, data = three
    ncfg = OmegaConf.load(REPO / "conf" / "nmf" / "default.yaml")
    ncfg.device = "cpu"
    res = job.run_job(data, ncfg, output_tsv=data.nmf_labels_tsv, progress=False)
    assert res.dictionary.order == NAMES and set(res.info["n_templates"]) == set(NAMES)
    assert {c for evs in res.labels.values() for _, _, c in evs} <= set(NAMES)

    run = tmp_path / "train" / "r3"
    _, log = fit(run, data, ["trainer.max_epochs=2", "torch_threads=1", "callbacks.report.plots=false"])
    ck = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ck["hyper_parameters"]["classes"] == list(NAMES)
    assert ck["state_dict"]["sm.out.weight"].shape[0] == 3
    assert ck["state_dict"]["dm.fc.3.weight"].shape[0] == 3
    assert list(OmegaConf.load(run / "data.yaml").classes) == list(NAMES)
    assert {c.split("/")[-1] for c in log.columns if c.startswith("val/holdout_ap/")} <= set(NAMES)

    s = tune_run(_cfg("tune", f"ckpt={run}", *GRID), tmp_path / "t")  # no data override: the run's own
    tuned = OmegaConf.load(run / "postproc.yaml")
    assert set(tuned.frame_thresholds) == set(NAMES) and set(s["per_class"]) == set(NAMES)

    m = eval_run(_cfg("eval", f"ckpt={run}", "psds=false", "segment=false", "report.enabled=false",
                      "also_splits=[]", "device=cpu"), tmp_path / "e")
    assert m["run"]["postproc_source"] == str(run / "postproc.yaml")
    assert set(m["per_class"]) == set(NAMES)

    assert cli.main(["score", str(tmp_path / "t" / "predictions.npz"), "--truth",
                     str(root / "metadata" / "validation" / "validation.tsv"), "--audio",
                     str(root / "audio" / "validation"), "--format", "json",
                     "--out", str(tmp_path / "s")]) == 0
    scored = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert set(scored["systems"][0]["per_class"]) == set(NAMES)

    wavs = sorted((root / "audio" / "validation").glob("*.wav"))[:2]
    events = tmp_path / "events.tsv"
    assert cli.main(["detect", *map(str, wavs), "--ckpt", str(run), "--out", str(events), "--quiet"]) == 0
    rows = [line.split("\t") for line in events.read_text().splitlines()[1:] if line.strip()]
    assert {r[3] for r in rows} <= set(NAMES)


def test_a_checkpoint_from_before_data_classes_loads_with_desed_classes():
    """Hyper-parameters without ``classes`` (and networks without ``n_classes``): DESED's ten outputs."""
    from sed.train import build_model
    from sed.training.systems import system_from_hparams

    hp = dict(build_model().hparams)
    assert hp["classes"] == list(DESED_CLASSES) and hp["sm"]["n_classes"] == 10
    hp.pop("classes")
    hp["sm"] = {k: v for k, v in hp["sm"].items() if k != "n_classes"}
    old = system_from_hparams(hp)
    assert old.classes == DESED_CLASSES and old.sm.out.out_features == 10
    three = system_from_hparams({**hp, "classes": list(NAMES)})
    assert three.sm.out.out_features == 3 and three.dm(torch.zeros(1, 640, 64)).shape == (1, 3)

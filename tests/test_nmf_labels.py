"""The NMF labelling job end to end on the tiny generated dataset: TSV, resume, bad input, Hydra app and
sweep."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.datamodules.tsv import read_strong_tsv, read_weak_tsv
from sed.nmf import job
from sed.nmf.labels import NMFLabelError

REPO = Path(__file__).resolve().parents[1]


def _cfg(data_cfg, tmp: Path, *overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("nmf_labels", overrides=[f"data.root={data_cfg.root}",
                                               f"data.cache_dir={tmp / 'cache'}", "progress=false",
                                               "plot_clips=2", "nmf.batch_size=4", *overrides])
    return cfg


def _copy_cache(src: Path, dst: Path) -> None:
    """The features and the templates (not the activations, which the tests recompute)."""
    shutil.copytree(src / "features", dst / "features")
    shutil.copytree(src / "nmf" / "templates", dst / "nmf" / "templates")


@pytest.fixture(scope="module")
def first_run(tiny_data_cfg, tmp_path_factory):
    from sed.nmf_labels import run

    tmp = tmp_path_factory.mktemp("nmf-run")
    cfg = _cfg(tiny_data_cfg, tmp)
    out = tmp / "run"
    out.mkdir()
    scores = run(cfg, out)
    return cfg, out, scores


def test_job_writes_strong_tsv_of_tagged_classes(first_run, tiny_data_cfg):
    cfg, out, _ = first_run
    tsv = Path(cfg.output_tsv)
    assert tsv.is_file() and tsv.parent.name == "nmf"
    labels = read_strong_tsv(tsv)
    tags = read_weak_tsv(Path(tiny_data_cfg.root) / tiny_data_cfg.splits.weak.tsv)
    assert set(labels) == set(tags)  # every weak clip listed (an empty row when no event)
    n = 0
    for f, events in labels.items():
        for ev in events:
            assert ev.label in tags[f] and 0.0 <= ev.onset < ev.offset <= 10.0
            n += 1
    assert n > 0
    assert (out / "weak_nmf.tsv").read_text() == tsv.read_text()
    assert (out / "dictionary.npz").is_file()


def test_quality_report_and_plot(first_run):
    _, out, scores = first_run
    assert set(scores) == {"nmf", "trivial"}
    for s in scores.values():
        assert 0.0 <= s["event"]["f1_macro"] <= 1.0 and 0.0 <= s["segment"]["f1_macro"] <= 1.0
    md = (out / "quality.md").read_text()
    assert "Event-based F1" in md and "Segment-based F1" in md and "| **macro** |" in md
    assert (out / "quality.json").is_file()
    png = out / "nmf_examples.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_resume_recomputes_only_missing_parts(first_run, monkeypatch):
    cfg, out, _ = first_run
    before = Path(cfg.output_tsv).read_text()
    parts = sorted((Path(cfg.data.cache_dir) / "nmf" / "activations").glob("*/part_*.npz"))
    assert len(parts) == 2  # 8 weak clips, batches of 4
    parts[-1].unlink()  # as if the run had stopped after the first batch
    calls = []
    real = job.solve_activations

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(job, "solve_activations", counting)
    monkeypatch.setattr(job, "extract_templates",
                        lambda *a, **k: pytest.fail("templates should come from the parts"))
    job.run_job(cfg.data, cfg.nmf, output_tsv=cfg.output_tsv, progress=False)
    assert len(calls) == 1
    assert Path(cfg.output_tsv).read_text() == before


def test_interrupted_run_resumes(first_run, tmp_path, monkeypatch):
    cfg, _, _ = first_run
    cfg = OmegaConf.merge(cfg, {"nmf": {"threshold": 0.4, "activation": {"tol": 2e-4}}})  # new activation key
    real = job.solve_activations
    calls = []

    def dies_second_time(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(job, "solve_activations", dies_second_time)
    with pytest.raises(KeyboardInterrupt):
        job.run_job(cfg.data, cfg.nmf, output_tsv=tmp_path / "a.tsv", progress=False)
    assert not (tmp_path / "a.tsv").exists()
    calls.clear()
    monkeypatch.setattr(job, "solve_activations", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    job.run_job(cfg.data, cfg.nmf, output_tsv=tmp_path / "a.tsv", progress=False)
    assert len(calls) == 1  # only the batch that had not been saved
    monkeypatch.setattr(job, "solve_activations", real)
    fresh = cfg.copy()
    fresh.data.cache_dir = str(tmp_path / "fresh-cache")
    _copy_cache(Path(cfg.data.cache_dir), tmp_path / "fresh-cache")
    job.run_job(fresh.data, fresh.nmf, output_tsv=tmp_path / "b.tsv", progress=False)
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()


def test_nan_in_cached_features_is_a_clear_error(first_run, tmp_path):
    cfg, _, _ = first_run
    bad = cfg.copy()
    bad.data.cache_dir = str(tmp_path / "cache")
    _copy_cache(Path(cfg.data.cache_dir), tmp_path / "cache")
    arr = np.load(tmp_path / "cache" / "features" / "weak" / "logmel.npy", mmap_mode="r+")
    arr[5, 100, 3] = np.nan
    arr.flush()
    names = job.load_split(bad.data, "weak", progress=False).filenames
    with pytest.raises(NMFLabelError, match=rf"^{names[5]}: the weak clip's cached mel spectrogram"):
        job.run_job(bad.data, bad.nmf, output_tsv=None, progress=False)


def test_missing_template_error_mode_names_the_clip(first_run, monkeypatch):
    cfg, _, _ = first_run
    real = job.build_dictionary

    def without_first_tag(*a, **k):
        d = real(*a, **k)
        d.W.pop(tags[0][1][0], None)
        return d

    tags = list(read_weak_tsv(Path(cfg.data.root) / cfg.data.splits.weak.tsv).items())
    monkeypatch.setattr(job, "build_dictionary", without_first_tag)
    bad = OmegaConf.merge(cfg, {"nmf": {"missing_template": "error"}})
    with pytest.raises(NMFLabelError, match=rf"{tags[0][0]}: tag {tags[0][1][0]} has no NMF template"):
        job.run_job(bad.data, bad.nmf, output_tsv=None, progress=False)
    whole = OmegaConf.merge(cfg, {"nmf": {"missing_template": "whole_clip"}})
    res = job.run_job(whole.data, whole.nmf, output_tsv=None, progress=False)
    assert (0.0, 10.0, tags[0][1][0]) in res.labels[tags[0][0]]


def test_hydra_multirun_sweep_prints_summary(tiny_data_cfg, first_run, tmp_path):
    cfg, _, _ = first_run
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "sed.nmf_labels", "-m", "nmf.threshold=0.3,0.6",
           f"data.root={tiny_data_cfg.root}", f"data.cache_dir={cfg.data.cache_dir}", "nmf.batch_size=4",
           "progress=false", "plot_clips=0", f"hydra.sweep.dir={sweep}"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "NMF label sweep" in p.stdout
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| mean |") == 2 and "<- best event F1" in summary
    assert (sweep / "0" / "weak_nmf.tsv").is_file() and (sweep / "1" / "quality.json").is_file()

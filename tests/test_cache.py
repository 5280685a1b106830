"""Feature cache: built once, reused, rebuilt on changes, resumable, missing/bad clips handled."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sed.audio.features import LogMel
from sed.audio.io import load_audio
from sed.core.errors import DataError
from sed.datamodules import cache as cache_mod
from sed.datamodules.cache import build_cache, load_split
from tests.conftest import make_data_cfg


@pytest.fixture()
def data_cfg(tiny_desed, tmp_path):
    """A private copy of the tiny dataset (tests here modify files) with its own cache."""
    root = tmp_path / "desed"
    shutil.copytree(tiny_desed, root)
    return make_data_cfg(root, tmp_path / "cache")


def _count_decodes(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = load_audio  # the real decoder, whatever a test patched before

    def counting(path, spec=cache_mod.DEFAULT_FEATURES):
        seen.append(os.path.basename(path))
        return real(path, spec)

    monkeypatch.setattr(cache_mod, "load_audio", counting)
    return seen


def test_build_matches_frontend_and_is_reused(data_cfg, monkeypatch):
    seen = _count_decodes(monkeypatch)
    feats = load_split(data_cfg, "validation", progress=False)
    assert len(feats) == 8 and feats.logmel.shape == (8, 640, 64) and len(seen) == 8
    name = feats.filenames[3]
    with torch.no_grad():
        ref = LogMel()(
            torch.from_numpy(load_audio(os.path.join(data_cfg.root, "audio/validation", name)))[None]
        )[0]
    assert np.allclose(feats.logmel[feats.index_of(name)], ref.numpy(), atol=1e-5)
    again = load_split(data_cfg, "validation", progress=False)
    assert len(seen) == 8  # nothing decoded the second time
    assert np.array_equal(np.asarray(again.logmel), np.asarray(feats.logmel))


def test_changed_audio_file_is_recomputed(data_cfg, monkeypatch):
    feats = load_split(data_cfg, "validation", progress=False)
    name = feats.filenames[2]
    before = np.array(feats.logmel[2])
    path = os.path.join(data_cfg.root, "audio/validation", name)
    sf.write(path, np.zeros(22050, np.float32), 22050)  # now silence
    seen = _count_decodes(monkeypatch)
    after = load_split(data_cfg, "validation", progress=False)
    assert seen == [name]
    assert not np.allclose(after.logmel[2], before)
    assert np.allclose(after.logmel[2], np.log(1e-8), atol=1e-3)


def test_changed_feature_spec_rebuilds(data_cfg, monkeypatch):
    from sed.core.constants import FeatureSpec
    from sed.datamodules.layout import DesedLayout

    load_split(data_cfg, "validation", progress=False)
    s = DesedLayout.from_cfg(data_cfg).split("validation")
    names = cache_mod.split_filenames(data_cfg, "validation")
    seen = _count_decodes(monkeypatch)
    feats = build_cache("validation", s.audio_dir, names, data_cfg.cache_dir, spec=FeatureSpec(n_mels=32),
                        progress=False)
    assert len(seen) == 8 and feats.logmel.shape == (8, 640, 32)


def test_interrupted_build_resumes(data_cfg, monkeypatch):
    real = cache_mod.load_audio
    calls = {"n": 0}

    def dies_after_four(path, spec=cache_mod.DEFAULT_FEATURES):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return real(path, spec)

    monkeypatch.setattr(cache_mod, "load_audio", dies_after_four)
    monkeypatch.setattr(cache_mod, "ThreadPoolExecutor", _SerialPool)
    s = cache_mod.DesedLayout.from_cfg(data_cfg).split("synthetic")
    names = cache_mod.split_filenames(data_cfg, "synthetic")
    with pytest.raises(KeyboardInterrupt):
        build_cache("synthetic", s.audio_dir, names, data_cfg.cache_dir, progress=False, batch_size=2)
    done = np.load(os.path.join(data_cfg.cache_dir, "features", "synthetic", "done.npy"))
    assert done.sum() == 4  # two whole batches were kept
    seen = _count_decodes(monkeypatch)
    feats = build_cache("synthetic", s.audio_dir, names, data_cfg.cache_dir, progress=False, batch_size=2)
    assert len(seen) == 12 - 4 and len(feats) == 12
    fresh = build_cache("synthetic", s.audio_dir, names, os.path.join(data_cfg.cache_dir, "fresh"),
                        progress=False)
    assert np.allclose(np.asarray(feats.logmel), np.asarray(fresh.logmel), atol=1e-6)


class _SerialPool:
    """ThreadPoolExecutor stand-in that runs in the caller (so an interrupt propagates deterministically)."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def map(self, fn, items):
        return [fn(i) for i in items]


def test_missing_clips_skipped_with_one_warning_and_list(data_cfg, tmp_path, caplog):
    gone = sorted(os.listdir(os.path.join(data_cfg.root, "audio/train/weak")))[:3]
    for g in gone:
        os.remove(os.path.join(data_cfg.root, "audio/train/weak", g))
    with caplog.at_level(logging.WARNING):
        feats = load_split(data_cfg, "weak", progress=False, report_dir=tmp_path / "run")
    assert len(feats) == 5 and sorted(feats.missing) == gone
    warnings = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "3 of 8" in warnings[0].getMessage()
    assert (tmp_path / "run" / "missing_weak.txt").read_text().split() == gone
    data_cfg.strict = True
    with pytest.raises(DataError, match="listed in the weak metadata but missing"):
        load_split(data_cfg, "weak", progress=False, report_dir=tmp_path / "run")


def test_undecodable_clip(data_cfg, tmp_path):
    name = sorted(os.listdir(os.path.join(data_cfg.root, "audio/validation")))[1]
    with open(os.path.join(data_cfg.root, "audio/validation", name), "wb") as fh:
        fh.write(b"RIFF....not a wav at all")
    feats = load_split(data_cfg, "validation", progress=False, report_dir=tmp_path / "run")
    assert name not in feats.filenames and feats.bad == [name] and len(feats) == 7
    assert feats.logmel.shape == (7, 640, 64)
    assert np.asarray(feats.logmel).shape == (7, 640, 64)
    assert (tmp_path / "run" / "bad_validation.txt").read_text().strip() == name
    data_cfg.strict = True
    shutil.rmtree(data_cfg.cache_dir)
    with pytest.raises(DataError, match=f"{name}: cannot decode audio"):
        load_split(data_cfg, "validation", progress=False)


def test_row_reader_indexes_like_the_array(tmp_path):
    from sed.datamodules.cache import RowReader

    a = np.random.default_rng(0).standard_normal((7, 5, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", a)
    r = RowReader(tmp_path / "x.npy")
    assert (r.shape, r.dtype, len(r)) == (a.shape, a.dtype, 7)
    for idx in (0, -1, 6, slice(None), slice(2, 5), slice(1, 7, 2), slice(5, 2), [4, 0, 4], np.array([3, 1]),
                np.array([[0, 1], [2, 3]]), np.arange(7) % 2 == 0, (slice(1, 3), 2), (4, slice(0, 2), 1)):
        np.testing.assert_array_equal(r[idx], a[idx], err_msg=str(idx))
    np.testing.assert_array_equal(np.asarray(r), a)
    r[0][0, 0] = 99.0  # rows are copies
    assert r[0][0, 0] == a[0, 0, 0]
    with pytest.raises(IndexError):
        r[7]
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(r))[2], a[2])


def test_row_reader_keeps_rows_out_of_the_resident_set(tmp_path):
    """Reading every row of a 48 MB cache leaves this process's file-backed RSS where it was; the memmap it
    replaced keeps them all mapped (the control, so that the test can fail)."""
    import subprocess
    import sys

    np.save(tmp_path / "x.npy", np.ones((300, 640, 64), np.float32))
    x_npy = str(tmp_path / "x.npy")
    code = f"""
import numpy as np, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from sed.datamodules.cache import RowReader
def rss_file():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
arr = RowReader({x_npy!r}) if sys.argv[1] == "reader" else np.load({x_npy!r}, mmap_mode="r")
before = rss_file()
total = sum(float(np.asarray(arr[i])[0, 0]) for i in range(len(arr)))
print(rss_file() - before, total)
"""
    grow = {}
    for kind in ("reader", "memmap"):
        out = subprocess.run([sys.executable, "-c", code, kind], capture_output=True, text=True,
                             check=True).stdout.split()
        grow[kind] = float(out[0])
        assert float(out[1]) == 300.0
    assert grow["reader"] < 5 and grow["memmap"] > 40, grow

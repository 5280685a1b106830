"""Issue 14, section 6: the smaller faults, each answered by one clear line (each test fails on the code
before the fix)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _truncated_wav(path: Path, seconds: float = 10.0, keep: float = 3.3, sr: int = 22050) -> Path:
    sf.write(str(path), 0.1 * np.ones(int(seconds * sr), np.float32), sr, subtype="PCM_16")
    raw = path.read_bytes()
    path.write_bytes(raw[: 44 + 2 * int(keep * sr)])
    return path


def test_truncated_wav_is_read_with_a_warning(tmp_path, caplog):
    from sed.audio.io import read_audio, wav_truncation

    p = _truncated_wav(tmp_path / "cut.wav")
    with caplog.at_level(logging.WARNING):
        x, sr = read_audio(p)
    assert len(x) == int(3.3 * 22050)
    assert f"{p}: truncated file: its header announces 10.00 s of audio, the file holds 3.30 s" in caplog.text
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), np.zeros(1000, np.float32), 22050)
    assert wav_truncation(whole) is None and wav_truncation(tmp_path / "nope.wav") is None


def test_detect_warns_about_a_truncated_wav(tmp_path, capsys):
    from tests.test_reliability_detect import detect_cli

    p = _truncated_wav(tmp_path / "cut.wav")
    assert detect_cli([str(p), "--out", str(tmp_path / "o.tsv"), "--quiet"]) == 0
    assert "sedx detect: warning: " + str(p) + ": truncated file" in capsys.readouterr().err


def test_strong_tsv_odd_events_are_warned_with_file_and_line(tmp_path, caplog):
    from sed.datamodules.tsv import read_strong_tsv

    p = tmp_path / "s.tsv"
    p.write_text("filename\tonset\toffset\tevent_label\n"
                 "a.wav\t1.0\t2.0\tDog\n"
                 "a.wav\t9.5\t10.8\tCat\n"
                 "b.wav\t3.0\t3.0\tDog\n"
                 "b.wav\t9.0\t11.0\tDog\n")
    with caplog.at_level(logging.WARNING):
        got = read_strong_tsv(p)
    assert sum(len(v) for v in got.values()) == 4  # kept
    assert f"{p}:3: event ends at 10.8 s, past the clip's end (10 s) (1 more rows like it)" in caplog.text
    assert f"{p}:4: onset equals offset (3.0 s): a zero-length event" in caplog.text


def test_non_zip_npz_says_so(tmp_path):
    from sed.core.predictions import Predictions, PredictionsError

    p = tmp_path / "p.npz"
    p.write_text("hello")
    with pytest.raises(PredictionsError,
                       match=r"p.npz: not a predictions .npz written by sed.eval "
                             r"\(an .npz is a zip archive"):
        Predictions.load(p)


def test_global_threshold_abc_and_cuda_without_gpu_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sed.eval", "global_threshold=abc",
                        f"hydra.run.dir={tmp_path / 'o'}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and "error: global_threshold='abc': expected a number in [0, 1]" in r.stderr
    assert "Traceback" not in r.stderr


def test_eval_device_cuda_on_a_cpu_build(tmp_path, monkeypatch):
    import torch
    from hydra import compose, initialize_config_dir

    from sed.core.errors import ConfigError
    from sed.eval import run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["device=cuda", "global_threshold=2"])
    with pytest.raises(ConfigError, match=r"global_threshold=2: expected a number in \[0, 1\]"):
        run(cfg, tmp_path / "o")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["device=cuda"])
    with pytest.raises(ConfigError, match="device=cuda: this torch build sees no CUDA GPU"):
        run(cfg, tmp_path / "o")


def test_missing_clips_warned_once_per_split(tiny_desed, tmp_path, caplog):
    from sed.datamodules.cache import build_cache

    names = sorted(p.name for p in (tiny_desed / "audio" / "validation").glob("*.wav"))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # prepare_data, then setup
            build_cache("validation", tiny_desed / "audio" / "validation", [*names, "gone.wav"],
                        tmp_path / "cache", progress=False, report_dir=tmp_path / "run", workers=1)
    assert caplog.text.count("listed clips missing") == 1


def test_eval_names_the_checkpoint_it_runs(tmp_path, monkeypatch, caplog):
    import sed.inference.inputs as inference
    from sed.inference.inputs import get_predictions
    from tests.test_eval import cfg_for, make_set

    preds, _ = make_set()
    monkeypatch.setattr(inference, "predict_split", lambda *a, **k: preds)
    run_dir = tmp_path / "train" / "ps2" / "2026-01-02_00-00-00_1"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"")
    with caplog.at_level(logging.INFO):
        get_predictions(cfg_for(f"train_runs={tmp_path / 'train'}"), "validation", None)
    assert f"evaluating {run_dir / 'checkpoints' / 'best.ckpt'} (the newest training run under" in caplog.text


def test_third_party_noise_filtered_at_entry_points_only():
    code = ("import warnings, sed, sed.eval, sed.train, sed.cli\n"
            "assert not any('pkg_resources' in str(f[1]) for f in warnings.filters), 'filtered on import'\n"
            "from sed.core.warnings import quiet_third_party\n"
            "quiet_third_party()\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('default')\n"
            "    quiet_third_party()\n"
            "    warnings.warn('pkg_resources is deprecated as an API', UserWarning)\n"
            "    warnings.warn('LeafSpec is deprecated', FutureWarning)\n"
            "    warnings.warn('ours', UserWarning)\n"
            "print([str(x.message) for x in w])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.strip() == "['ours']"


def test_pyproject_license_is_an_spdx_string():
    tomllib = pytest.importorskip("tomllib")

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    req = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools"))
    assert ">=77" in req  # the string form needs setuptools 77

"""The loader on the real DESED metadata (../shared/desed-real, a development check: absent on users'
machines)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sed.datamodules.cache import labels_for, load_split
from tests.conftest import REPO, make_data_cfg

REAL = REPO.parent / "shared" / "desed-real"
pytestmark = pytest.mark.skipif(not (REAL / "metadata").is_dir(),
                                reason="../shared/desed-real is not on this machine")


@pytest.fixture()
def real_cfg(tmp_path):
    root = tmp_path / "DESED"
    shutil.copytree(REAL / "metadata", root / "metadata")
    # DESED 2020 keeps the synthetic soundscapes' TSV here; reuse a real soundscape TSV for it.
    synth = root / "metadata/train/synthetic20/soundscapes.tsv"
    synth.parent.mkdir(parents=True)
    synth.write_text((REAL / "soundscapes/desed_synth_5_cat_speech.tsv").read_text()
                     + "".join((REAL / "soundscapes/desed_synth_7_dishes_frying.tsv").read_text()
                               .splitlines(True)[1:]))
    return make_data_cfg(root, tmp_path / "cache")


def test_every_row_parses(real_cfg):
    assert len(labels_for(real_cfg, "weak")) == 1578
    assert len(labels_for(real_cfg, "unlabel")) == 14412
    valid = labels_for(real_cfg, "validation")
    assert len(valid) == 1168
    assert sum(1 for ev in valid.values() if not ev) == 15
    assert sum(len(ev) for ev in valid.values()) == 4224  # 4239 rows, 15 of them empty


def test_all_missing_then_a_few_present(real_cfg, tmp_path):
    feats = load_split(real_cfg, "validation", progress=False, report_dir=tmp_path / "run")
    assert len(feats) == 0 and len(feats.missing) == 1168
    assert len((tmp_path / "run" / "missing_validation.txt").read_text().split()) == 1168
    # Put two real soundscapes' audio in place of two listed validation clips: those load.
    names = list(labels_for(real_cfg, "validation"))[:2]
    audio = Path(real_cfg.root) / "audio/validation"
    audio.mkdir(parents=True)
    shutil.copy(REAL / "soundscapes/desed_synth_5_cat_speech.wav", audio / names[0])
    shutil.copy(REAL / "soundscapes/desed_synth_7_dishes_frying.wav", audio / names[1])
    feats = load_split(real_cfg, "validation", progress=False, report_dir=tmp_path / "run")
    assert feats.filenames == names and feats.logmel.shape == (2, 640, 64)
    assert len(feats.missing) == 1166
    audio_s = Path(real_cfg.root) / "audio/train/synthetic20/soundscapes"
    audio_s.mkdir(parents=True)
    for f in ("desed_synth_5_cat_speech.wav", "desed_synth_7_dishes_frying.wav"):
        shutil.copy(REAL / "soundscapes" / f, audio_s / f)
    assert len(load_split(real_cfg, "synthetic", progress=False)) == 2

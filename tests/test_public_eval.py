"""The optional public_eval split: served when present, one warning (not an error) when a DESED copy lacks
it."""

from __future__ import annotations

import logging
import shutil

import pytest
from omegaconf import OmegaConf

from sed.core.errors import DataError
from sed.datamodules.cache import labels_for, load_split
from sed.datamodules.layout import DesedLayout
from tests.conftest import make_data_cfg


def test_public_eval_present_is_loaded(tiny_data_cfg):
    assert DesedLayout.from_cfg(tiny_data_cfg).split("public_eval").optional
    truth = labels_for(tiny_data_cfg, "public_eval")
    feats = load_split(tiny_data_cfg, "public_eval", progress=False)
    assert len(truth) == 8 and feats.filenames == list(truth) and feats.logmel.shape == (8, 640, 64)


def test_public_eval_missing_only_warns(tiny_desed, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(tiny_desed, root)
    shutil.rmtree(root / "audio" / "eval")
    cfg = make_data_cfg(root, tmp_path / "cache")
    cfg.strict = True  # even a strict copy may lack an optional split
    with caplog.at_level(logging.WARNING):
        feats = load_split(cfg, "public_eval", progress=False)
    assert len(feats) == 0 and feats.logmel.shape == (0, 640, 64)
    assert any("optional split 'public_eval'" in r.getMessage() for r in caplog.records)
    (root / "metadata" / "eval" / "public.tsv").unlink()
    assert labels_for(cfg, "public_eval") == {}
    # a required split stays required
    cfg2 = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg2.splits.public_eval.optional = False
    with pytest.raises(DataError, match="public.tsv"):
        labels_for(cfg2, "public_eval")


def test_cache_build_writes_rows_without_mapping_them(tiny_desed, tmp_path):
    """The cache is written with pwrite (RSS does not grow with the split); the values are LogMel's."""
    import numpy as np
    import torch

    from sed.audio.features import LogMel
    from sed.audio.io import load_audio
    from sed.datamodules import cache as cache_mod

    cfg = make_data_cfg(tiny_desed, tmp_path / "cache")
    feats = load_split(cfg, "weak", progress=False)
    spec = DesedLayout.from_cfg(cfg).split("weak")
    want = LogMel()(torch.from_numpy(load_audio(spec.audio_dir / feats.filenames[3])[None]))[0].numpy()
    np.testing.assert_allclose(np.asarray(feats.logmel[3]), want, rtol=1e-5, atol=1e-5)
    path = tmp_path / "a.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(5, 3, 2)).flush()
    w = cache_mod._RowWriter(path)
    w.write(np.array([4, 1]), np.arange(12, dtype=np.float64).reshape(2, 3, 2))
    w.flush()
    w.close()
    got = np.load(path)
    assert got[4].tolist() == [[0, 1], [2, 3], [4, 5]] and got[1].sum() == 6 + 7 + 8 + 9 + 10 + 11
    assert got[[0, 2, 3]].sum() == 0

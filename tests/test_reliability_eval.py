"""Issue 14, section 3: evaluating a dataset copy that lacks clips (as every real DESED copy does), with
real clip durations (each test fails on the code before the fix)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.errors import ConfigError
from sed.core.predictions import Predictions
from sed.datamodules.tsv import read_strong_tsv
from sed.eval import run
from tests.score_helpers import truth_probs

ROOT = Path(__file__).resolve().parent.parent


def cfg_for(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("eval", overrides=list(overrides))


@pytest.fixture()
def copy_missing_two(tiny_desed, tmp_path):
    """The tiny set's validation split with the audio of its first two clips gone."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_desed / "metadata", root / "metadata")
    shutil.copytree(tiny_desed / "audio" / "validation", root / "audio" / "validation")
    gt = read_strong_tsv(root / "metadata/validation/validation.tsv")
    names = list(gt)
    for f in names[:2]:
        (root / "audio" / "validation" / f).unlink()
    return root, gt, names


def perfect(names, gt, path):
    frame, clip = truth_probs(names, gt)
    frame[:, 550:, :] = 0.9  # a burst in every class at the end of each clip (from 8.53 s)
    clip[:] = np.maximum(clip, 0.9)
    Predictions(names, frame, clip, CLASSES).save(path)
    return path


def test_clips_without_audio_are_left_out_and_reported(copy_missing_two, tmp_path):
    root, gt, names = copy_missing_two
    short = names[2]
    (root / "metadata/validation/validation_durations.tsv").write_text(
        "filename\tduration\n" + "".join(f"{f}\t{9.0 if f == short else 10.0}\n" for f in names))
    p = perfect(names[2:], gt, tmp_path / "p.npz")
    cfg = cfg_for(f"predictions={p}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                  "n_thresholds=3", "report.n_timelines=1", "report.logmel=false")
    out = tmp_path / "run"
    m = run(cfg, out)
    lo = m["run"]["left_out"]
    n_ev = sum(len(gt[f]) for f in names[:2])
    assert (lo["n_clips"], lo["of_clips"], lo["n_events"]) == (2, len(names), n_ev)
    listed = pd.read_csv(out / "left_out_validation.tsv", sep="\t")
    assert list(listed["filename"]) == names[:2] and set(listed["reason"]) == {"audio missing"}
    assert m["n_clips"] == len(names) - 2
    report = (out / "report.md").read_text()
    assert f"left out**: 2 of {len(names)} ground-truth clips ({n_ev} of" in report
    # real durations: the 9 s clip's events end by 9 s, the others' run to 10 s
    assert m["run"]["durations"]["n_clips"] == len(names) - 2
    det = pd.read_csv(out / "detections.tsv", sep="\t")
    assert abs(det[det["filename"] == short]["offset"].max() - 9.0) < 1e-6
    assert det[det["filename"] == names[3]]["offset"].max() > 9.9


def test_predictions_missing_a_clip_whose_audio_exists_stay_an_error(copy_missing_two, tmp_path):
    root, gt, names = copy_missing_two
    p = perfect(names[3:], gt, tmp_path / "p.npz")  # names[2] has audio but no prediction
    cfg = cfg_for(f"predictions={p}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                  "psds=false", "report.enabled=false")
    with pytest.raises(ConfigError, match=rf"{p}: no prediction for 1 ground-truth clip\(s\) "
                                          rf"whose audio exists.*"
                                          rf"{names[2]}.*on_missing=drop"):
        run(cfg, tmp_path / "run")
    m = run(cfg_for(f"predictions={p}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                    "psds=false", "report.enabled=false", "on_missing=drop"), tmp_path / "run2")
    assert m["n_clips"] == len(names) - 3


def test_bad_durations_tsv_names_file_and_line(copy_missing_two, tmp_path):
    from sed.core.errors import DataError

    root, gt, names = copy_missing_two
    (root / "metadata/validation/validation_durations.tsv").write_text(
        f"filename\tduration\n{names[2]}\tabc\n"
    )
    p = perfect(names[2:], gt, tmp_path / "p.npz")
    cfg = cfg_for(f"predictions={p}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                  "psds=false", "report.enabled=false")
    with pytest.raises(DataError, match=r"validation_durations.tsv:2: expected a filename and a duration"):
        run(cfg, tmp_path / "run")


def test_header_only_ground_truth_names_the_tsv(copy_missing_two, tmp_path):
    from sed.core.errors import DataError

    root, gt, names = copy_missing_two
    (root / "metadata/validation/validation.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    p = perfect(names[2:], gt, tmp_path / "p.npz")
    cfg = cfg_for(f"predictions={p}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                  "psds=false", "report.enabled=false")
    with pytest.raises(DataError, match=r"validation/validation.tsv: the ground truth lists no clip"):
        run(cfg, tmp_path / "run")

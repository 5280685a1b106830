"""Issue 23: the remaining faults found by a new user's fault cases, each answered by one clear line
(each test fails on the code before the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sed.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, message", [
    ("datamodule.iters_per_epoch=-3", "datamodule.iters_per_epoch: -3 must be null (one pass over the clips) "
                                      "or a whole number >= 1"),
    ("datamodule.batch_size=0", "datamodule.batch_size: 0 must be a whole number >= 1"),
    ("datamodule.switch_epoch=-1", "datamodule.switch_epoch: -1 must be a whole number >= 0"),
])
def test_bad_datamodule_sizes_are_one_line_before_training(tmp_path, tiny_data_cfg, override, message):
    from tests._train_utils import fit

    with pytest.raises(ConfigError) as e:
        fit(tmp_path / "run", tiny_data_cfg, [override])
    assert str(e.value) == message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sed_cause_finds_the_projects_error_behind_hydras_wrapper():
    from hydra.utils import instantiate

    from sed.core.errors import unwrapped_sed_errors

    with pytest.raises(ConfigError, match=r"^datamodule.num_workers: -1 must be a whole number >= 0$"):
        with unwrapped_sed_errors():
            instantiate({"_target_": "sed.datamodules.desed._check_sizes", "num_workers": -1})
    with pytest.raises(ZeroDivisionError):  # anything else passes through unchanged
        with unwrapped_sed_errors():
            _ = 1 / 0


def test_predictions_shorter_than_their_clips_are_refused(tmp_path):
    """Issue 23 (7): 100 frames (1.56 s) of probabilities for 10 s clips were scored silently."""
    import numpy as np

    from sed.core.constants import CLASSES, FRAME_SECONDS
    from sed.evaluation.coverage import apply_real_durations
    from sed.evaluation.metrics import MetricsError, align
    from sed.evaluation.predictions import Predictions, PredictionsError

    names = ["a.wav", "b.wav"]
    frame, clip = np.zeros((2, 100, 10), np.float32), np.zeros((2, 10), np.float32)
    with pytest.raises(PredictionsError, match=r"^predictions: the frame probabilities cover 1.56 s \(100 frames of "
                                               r"0.0156 s\) but 1 of 2 clips last longer \(e.g. b.wav: 10.00 s\)"):
        Predictions(names, frame, clip, durations=np.array([1.5, 10.0]))
    short = Predictions(names, frame, clip)  # no durations stored: the frames' 1.56 s
    with pytest.raises(MetricsError, match=r"1 of 2 clips hold ground-truth events ending later \(e.g. a.wav: 9.00 s\)"):
        align(short, {"a.wav": [(8.0, 9.0, CLASSES[0])], "b.wav": []})
    dur = tmp_path / "durations.tsv"
    dur.write_text("filename\tduration\na.wav\t10.0\nb.wav\t1.5\n")
    with pytest.raises(PredictionsError, match=rf"^predictions of validation \(clip durations from {dur}\): .* "
                                               r"1 of 2 clips last longer \(e.g. a.wav: 10.00 s\)"):
        apply_real_durations(short, {"root": str(tmp_path), "splits": {"validation": {"durations": str(dur)}}},
                             "validation")
    # within two frames (or 1 %) of the end is the same length (DESED's 10 s clips, 640 frames of 15.6 ms)
    full = Predictions(names, np.zeros((2, 640, 10), np.float32), clip, durations=np.array([10.02, 9.99]))
    assert full.covered_seconds == pytest.approx(640 * FRAME_SECONDS)
    align(full, {"a.wav": [(8.0, 10.05, CLASSES[0])], "b.wav": []})


def test_tune_leaves_out_clips_whose_audio_is_missing_and_says_so(tiny_desed, tmp_path, caplog):
    """Weak case: `sedx tune` on a DESED copy with missing clips stopped with no hint; it now does what
    sed.eval does (left out, said, listed)."""
    import json
    import logging
    import shutil

    from hydra import compose, initialize_config_dir

    from sed.tune import run as tune_run
    from tests.detect_helpers import make_untrained_checkpoint

    root = tmp_path / "data"
    shutil.copytree(tiny_desed, root)
    gone = sorted((root / "audio" / "validation").rglob("*.wav"))[0]
    gone.unlink()
    run = tmp_path / "train" / "run1"
    make_untrained_checkpoint(run / "checkpoints" / "best.ckpt")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("tune", overrides=[f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "device=cpu",
                                         f"ckpt={run}", "grid.thresholds=[0.5]", "grid.first_windows=[1]",
                                         "grid.second_windows=[1]", "grid.tagging_thresholds=[0.5]", "workers=1"],
                      return_hydra_config=True)
    with caplog.at_level(logging.WARNING):
        s = tune_run(cfg, tmp_path / "t")
    assert s["left_out"]["n_clips"] == 1 and (tmp_path / "t" / "left_out_validation.tsv").is_file()
    assert gone.name in (tmp_path / "t" / "left_out_validation.tsv").read_text()
    assert "1 of" in caplog.text and "left out: their audio is missing" in caplog.text
    assert json.loads((tmp_path / "t" / "tune.json").read_text())["left_out"]["n_clips"] == 1

"""The SM frame-probability diagnosis (sed/training/diagnostics.py): hand-computed statistics and the
callback's files in a tiny training run."""

import json
import math

import numpy as np

from sed.training.diagnostics import frame_probability_stats, read_history


def test_frame_probability_stats_by_hand():
    # 1 clip, 4 frames, 2 classes; class 0 on frames 0-1, class 1 never
    p = np.array([[[0.8, 0.1], [0.4, 0.2], [0.2, 0.3], [0.0, 0.4]]])
    y = np.array([[[1, 0], [1, 0], [0, 0], [0, 0]]])
    s = frame_probability_stats(p, y, threshold=0.5)
    assert np.isclose(s["p_event"][0], 0.6) and math.isnan(s["p_event"][1])
    assert np.isclose(s["p_background"][0], 0.1) and np.isclose(s["p_background"][1], 0.25)
    assert s["hit"][0] == 0.5 and s["n_event"] == [2, 0]


def test_diagnostics_written_every_epoch(tmp_path, tiny_data_cfg, tmp_path_factory):
    from tests._train_utils import fit, nmf_data_cfg

    fit(tmp_path, nmf_data_cfg(tiny_data_cfg, tmp_path_factory),
        ["trainer.max_epochs=2", "schedule.n_cycles=1", "callbacks.diagnostics.max_clips=4"])
    rows = read_history(tmp_path / "reports" / "frame_probs.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert {"synthetic", "weak_nmf", "weak_true", "validation"} <= set(rows[0])
    for r in rows:
        for src in ("synthetic", "weak_nmf", "weak_true", "validation"):
            assert len(r[src]["p_event"]) == 10 and all(0 <= v <= 1 for v in r[src]["p_background"])
    assert (tmp_path / "reports" / "frame_probs.png").stat().st_size > 1000
    json.dumps(rows)


def test_frame_ap_in_stats_and_validation_frame_map():
    """AP by hand: class 0 scores rank frame 0 (event), frame 2 (background), frame 1 (event):
    precision at the two events 1/1 and 2/3 -> AP (1 + 2/3) / 2."""
    from sed.training.callbacks import validation_frame_map

    p = np.array([[[0.9], [0.2], [0.5], [0.1]]])
    y = np.array([[[1], [1], [0], [0]]])
    assert np.isclose(frame_probability_stats(p, y)["ap"][0], (1 + 2 / 3) / 2)
    frame = np.zeros((1, 640, 10))
    frame[0, 100:200, 3] = 0.8  # exactly the frames of a Dishes event: AP 1 for that class only
    from sed.core.constants import FRAME_SECONDS

    ev = [(100 * FRAME_SECONDS, 200 * FRAME_SECONDS, "Dishes")]
    from sed.core.constants import DESED_CLASSES

    assert validation_frame_map(frame, [ev], DESED_CLASSES) == 1.0

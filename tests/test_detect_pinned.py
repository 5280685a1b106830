"""Detection output pinned (issue 15): the speed work on ``sed detect`` must leave the events unchanged.

A real SM+DM (conf/model/sm_dm.yaml, seed 0) made sharp -- SM's output layer scaled 300x and centred
on this recording, so that its frame probabilities swing across the thresholds -- runs through the
whole path (streaming decode + resampling, 10 s windows with the default 50 % overlap, LogMel, the
networks, stitching, post-processing with conf/postproc/default.yaml without tagging and hysteresis, the TSV
writer) on a 65 s, 16 kHz recording. The events and clip probabilities were recorded with the code
before the speed work (commit 2b22530).
"""

from __future__ import annotations

import pytest
import torch

from sed.detect.run import DetectOptions, load_predictor, run_detect
from sed.detect.writer import read_detections
from tests.detect_helpers import make_untrained_checkpoint, synth, write

EVENTS_65 = [("Speech", 8.0, 13.0), ("Dog", 28.5, 31.5), ("Cat", 40.0, 41.0), ("Speech", 58.0, 62.0)]
#: -median over this recording's frames of SM's scaled logits, per class (recorded once).
CENTRE = [20.2, -9.61, 5.53, -4.32, 24.87, -16.62, -1.42, -13.82, -7.28, -10.47]


def sharp_predictor(tmp_path, device="cpu"):
    # the SM the events were recorded with (the default before issue 20)
    ckpt = make_untrained_checkpoint(tmp_path / "seed0.ckpt", overrides=["model/sm=gated_head"])
    pred = load_predictor(ckpt, device)
    sm = pred.system.sm
    with torch.no_grad():
        sm.out.weight.mul_(300.0)
        sm.out.bias.add_(torch.tensor(CENTRE, device=sm.out.bias.device))
    pred.postproc_cfg = dict(pred.postproc_cfg, tagging_threshold=None, hysteresis_low=None)
    return pred


def detect_pinned(tmp_path, **kw):
    rec = write(tmp_path / "rec.wav", synth(EVENTS_65, 65.0, sr=16000), 16000)
    opts = DetectOptions(out=tmp_path / "out.tsv", quiet=True, **kw)
    summary = run_detect([str(rec)], sharp_predictor(tmp_path), opts)
    assert not summary.failed
    df = read_detections(opts.out)
    return [(r.event_label, round(float(r.onset), 3), round(float(r.offset), 3)) for r in df.itertuples()]


PINNED = [
    ('Dog', 0.0, 8.058),
    ('Electric_shaver_toothbrush', 0.0, 28.429),
    ('Vacuum_cleaner', 0.0, 28.445),
    ('Alarm_bell_ringing', 0.0, 40.117),
    ('Cat', 0.0, 65.0),
    ('Dishes', 0.078, 8.058),
    ('Speech', 0.078, 28.601),
    ('Blender', 7.995, 12.986),
    ('Dog', 9.888, 10.139),
    ('Dog', 12.877, 58.048),
    ('Dishes', 13.112, 58.063),
    ('Blender', 28.476, 31.621),
    ('Vacuum_cleaner', 31.559, 65.0),
    ('Speech', 31.621, 39.898),
    ('Electric_shaver_toothbrush', 31.637, 39.945),
    ('Running_water', 39.992, 41.071),
    ('Speech', 40.962, 65.0),
    ('Electric_shaver_toothbrush', 41.04, 65.0),
    ('Alarm_bell_ringing', 41.087, 65.0),
    ('Blender', 58.016, 61.99),
    ('Dog', 59.941, 60.082),
    ('Dog', 61.834, 65.0),
    ('Dishes', 62.1, 64.979),
]


@pytest.mark.parametrize("batch_size", [16, 5])
def test_detection_events_unchanged(tmp_path, batch_size):
    events = detect_pinned(tmp_path, batch_size=batch_size)
    assert events == PINNED

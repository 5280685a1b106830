"""Frame targets at event boundaries and frame/second conversions (SPEC section 2: dt = 345/22050 s)."""

from __future__ import annotations

import numpy as np
import pytest

from sed.core.constants import (
    DESED_CLASSES,
    FRAME_SECONDS,
    N_FRAMES,
    frame_to_seconds,
    seconds_to_frame,
    seconds_to_frame_end,
)
from sed.datamodules.targets import events_to_frame_targets, tags_to_clip_targets

CLASS_INDEX = {c: i for i, c in enumerate(DESED_CLASSES)}

DT = 345 / 22050  # 0.0156462585... s


def test_frame_constants():
    assert N_FRAMES == 640  # 1 + 220500 // 345
    assert FRAME_SECONDS == pytest.approx(0.015646258503401362)


def test_conversions_by_hand():
    # 1.0 s / dt = 63.913 -> frame 63 holds 1.0 s; an event ending at 1.0 s covers frames up to 63 (end 64).
    assert seconds_to_frame(1.0) == 63
    assert seconds_to_frame_end(1.0) == 64
    # exactly on a frame boundary: t = 10 dt starts frame 10, and an event ending there ends before frame 10
    assert seconds_to_frame(10 * DT) == 10
    assert seconds_to_frame_end(10 * DT) == 10
    assert frame_to_seconds(64) == pytest.approx(64 * DT)
    assert frame_to_seconds(640) == pytest.approx(10.0136, abs=1e-4)  # 640 * 345 / 22050


def test_event_covers_every_frame_it_overlaps():
    y = events_to_frame_targets([(1.0, 2.0, "Dog")], DESED_CLASSES)
    dog = np.flatnonzero(y[:, CLASS_INDEX["Dog"]])
    # floor(1.0/dt) = 63, ceil(2.0/dt) = ceil(127.83) = 128 -> frames 63..127
    assert dog[0] == 63 and dog[-1] == 127 and len(dog) == 65
    assert y.sum() == 65  # nothing else set


def test_boundaries_on_frame_edges_and_clip_end():
    evs = [(10 * DT, 20 * DT, "Cat"), (9.99, 10.0, "Speech"), (0.0, 0.0, "Dishes")]
    y = events_to_frame_targets(evs, DESED_CLASSES)
    cat = np.flatnonzero(y[:, CLASS_INDEX["Cat"]])
    assert cat.tolist() == list(range(10, 20))
    sp = np.flatnonzero(y[:, CLASS_INDEX["Speech"]])
    assert sp.tolist() == [638, 639]  # 9.99/dt = 638.5 -> 638; 10/dt = 639.13 -> end 640
    assert np.flatnonzero(y[:, CLASS_INDEX["Dishes"]]).tolist() == [0]  # zero length still marks its frame


def test_event_past_clip_end_is_clipped():
    y = events_to_frame_targets([(9.5, 12.0, "Frying")], DESED_CLASSES)
    assert y.shape == (640, 10)
    assert np.flatnonzero(y[:, CLASS_INDEX["Frying"]])[-1] == 639


def test_overlapping_same_class_events_stay_binary():
    y = events_to_frame_targets([(0.0, 1.0, "Dog"), (0.5, 1.5, "Dog")], DESED_CLASSES)
    assert y.max() == 1.0


def test_clip_targets():
    y = tags_to_clip_targets(["Dog", "Speech", "Dog"], DESED_CLASSES)
    assert y.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]

"""Pieces of `sed detect` against hand-computed values: windows, stitching, clip rule, writer repair,
plot summary, constant-memory streaming, discovery, progress bars."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from sed.detect.discover import discover
from sed.detect.plot import MelSummary, safe_name
from sed.detect.run import _Bars
from sed.detect.stream import AudioInputError, stream_mono
from sed.detect.windows import Stitcher, Windower, WindowSpec, stitch
from sed.detect.writer import TSV_HEADER, EventWriter, OutputError, _repair_and_list
from sed.reporting.plots import pool_max as _pool_max
from tests.detect_helpers import write

# ----------------------------------------------------------------------------- geometry


def test_window_spec_defaults_and_overlap_rounding():
    s = WindowSpec.from_overlap(0.5)
    assert (s.win_samples, s.win_frames, s.frame_hop, s.hop_frames) == (220500, 640, 345, 320)
    assert s.hop_samples == 110400 and abs(s.overlap - (1 - 110400 / 220500)) < 1e-12
    assert WindowSpec.from_overlap(0.0).hop_frames == 639  # 639 * 345 = 220455 <= 220500: no gap
    assert WindowSpec.from_overlap(0.75).hop_frames == 160
    with pytest.raises(ValueError):
        WindowSpec.from_overlap(1.0)
    with pytest.raises(ValueError):
        WindowSpec(hop_frames=640)  # 640 * 345 > 220500 would skip samples


def test_window_and_frame_counts_by_hand():
    s = WindowSpec()
    assert s.n_windows(1) == 1 and s.n_windows(220500) == 1
    assert s.n_windows(220501) == 2  # 1 + ceil(1 / 110400)
    assert s.n_windows(220500 + 110400) == 2 and s.n_windows(220500 + 110401) == 3
    assert s.n_windows(65 * 22050) == 1 + int(np.ceil((65 * 22050 - 220500) / 110400)) == 12
    assert s.n_frames(220500) == 640 and s.n_frames(345) == 1 and s.n_frames(346) == 2
    assert s.total_frames(12) == 11 * 320 + 640


@pytest.mark.parametrize("n", [1, 1000, 220500, 220501, 330900, 500_000])
@pytest.mark.parametrize("chunk", [777, 65536, 300_000])
def test_windower_equals_slicing_the_padded_signal(n, chunk):
    spec = WindowSpec(hop_frames=100)  # hop 34 500 samples: many windows
    x = np.arange(1, n + 1, dtype=np.float32)
    wd = Windower(spec)
    got = list(wd.iter(x[i : i + chunk] for i in range(0, n, chunk)))
    w = spec.n_windows(n)
    padded = np.zeros((w - 1) * spec.hop_samples + spec.win_samples, dtype=np.float32)
    padded[:n] = x
    assert [k for k, _ in got] == list(range(w)) and wd.n_samples == n
    for k, win in got:
        np.testing.assert_array_equal(
            win, padded[k * spec.hop_samples : k * spec.hop_samples + spec.win_samples]
        )


def test_stitch_hand_computed():
    # W=3 windows of F=4 frames, hop 2: global frames 0..7
    wp = np.array([[[0.0], [1.0], [2.0], [3.0]], [[10.0], [20.0], [30.0], [40.0]],
                   [[5.0], [5.0], [7.0], [9.0]]], dtype=np.float32)
    # frame: 0 <- 0 ; 1 <- 1 ; 2 <- (2+10)/2 ; 3 <- (3+20)/2 ; 4 <- (30+5)/2 ; 5 <- (40+5)/2 ; 6 <- 7 ; 7 <- 9
    expected = np.array([0, 1, 6, 11.5, 17.5, 22.5, 7, 9], dtype=np.float32)[:, None]
    np.testing.assert_allclose(stitch(wp, 2), expected)
    spec = WindowSpec(win_samples=4 * 345, win_frames=4, frame_hop=345, hop_frames=2)
    st = Stitcher(spec, 1, tag_threshold=None)
    for k in range(3):
        st.add(k, wp[k], wp[k].max(axis=0))
    np.testing.assert_allclose(st.frame_probs(8), expected)
    np.testing.assert_allclose(st.frame_probs(7), expected[:7])  # frames past the audio dropped
    assert st.clip_max.tolist() == [40.0] and st.local_tags(8) is None


def test_clip_rule_max_over_windows_and_local_tagging():
    spec = WindowSpec(win_samples=4 * 345, win_frames=4, frame_hop=345, hop_frames=2)
    st = Stitcher(spec, 2, tag_threshold=0.5, expected_windows=1)  # grows as windows arrive
    clips = np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.7]], dtype=np.float32)
    for k in range(3):
        st.add(k, np.full((4, 2), 0.5, np.float32), clips[k])
    np.testing.assert_allclose(st.clip_max, [0.9, 0.7])
    tags = st.local_tags(8)
    # class 0 tagged by window 0 only: frames 0-3; class 1 by window 2 only: frames 4-7
    assert tags[:, 0].tolist() == [True] * 4 + [False] * 4
    assert tags[:, 1].tolist() == [False] * 4 + [True] * 4


# ----------------------------------------------------------------------------- streaming


def test_stream_resamples_mixes_down_and_keeps_length(tmp_path):
    sr = 16000
    t = np.arange(sr * 3) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    x = np.stack([left, -left + 0.2], axis=1).astype(np.float32)  # mean: 0.1 everywhere
    p = write(tmp_path / "a.wav", x, sr, subtype="FLOAT")
    y = np.concatenate(list(stream_mono(p, 22050, block_frames=1000)))
    assert len(y) == 3 * 22050
    np.testing.assert_allclose(y[2000:-2000], 0.1, atol=1e-3)


def _peak_stream_bytes(path) -> int:
    tracemalloc.start()
    n = 0
    for _, w in Windower(WindowSpec()).iter(stream_mono(path, block_frames=1 << 15)):
        n += len(w)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_streaming_memory_does_not_grow_with_length(tmp_path):
    rng = np.random.default_rng(0)
    short = write(tmp_path / "short.wav", (0.1 * rng.standard_normal(16000 * 40)).astype(np.float32), 16000)
    long = write(tmp_path / "long.wav", (0.1 * rng.standard_normal(16000 * 320)).astype(np.float32), 16000)
    p_short, p_long = _peak_stream_bytes(short), _peak_stream_bytes(long)
    assert p_long < 1.25 * p_short + 200_000, (p_short, p_long)
    assert p_long < 8 * 220500 * 4  # a few windows' worth, not the file (320 s = 28 MB at 22 kHz)


def test_stream_errors_name_the_file(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match=r"e\.wav: empty file"):
        list(stream_mono(tmp_path / "e.wav"))
    (tmp_path / "t.flac").write_text("hello")
    with pytest.raises(AudioInputError, match=r"t\.flac: not readable as audio"):
        list(stream_mono(tmp_path / "t.flac"))
    x = np.zeros(50000, np.float32)
    x[40000] = np.nan
    write(tmp_path / "n.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"n\.wav: NaN or infinite sample values \(first at 5\.000 s\)"):
        list(stream_mono(tmp_path / "n.wav", block_frames=4096))


# ----------------------------------------------------------------------------- discovery


def test_discover_recursive_sorted_dedup_and_missing(tmp_path):
    for rel in ["b.WAV", "a/x.flac", "a/y.ogg", "a/z.mp3", "a/skip.txt", ".hidden/h.wav", "c/.d.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    d = discover([tmp_path, tmp_path / "a" / "x.flac", tmp_path / "nope.wav"])
    names = [s.name for s in d.sources]
    assert names == [(tmp_path / r).as_posix() for r in ["a/x.flac", "a/y.ogg", "a/z.mp3", "b.WAV"]]
    assert d.missing == [str(tmp_path / "nope.wav")]
    # named files are tried
    assert discover([tmp_path / "a" / "skip.txt"]).sources[0].name.endswith("skip.txt")


# ----------------------------------------------------------------------------- writer


def _ev(*rows):
    return pd.DataFrame(rows, columns=["onset", "offset", "event_label"])


def test_tsv_writer_rows_and_empty_file_row(tmp_path):
    out = tmp_path / "o.tsv"
    with EventWriter(out, "tsv") as w:
        w.write("a.wav", _ev((2.0, 3.5, "Dog"), (0.5, 1.0, "Cat")), 10.0)
        w.write("b.wav", _ev(), 4.0)
    assert out.read_text() == (
        f"{TSV_HEADER}\na.wav\t0.500\t1.000\tCat\na.wav\t2.000\t3.500\tDog\nb.wav\t\t\t\n"
    )


def test_resume_repairs_a_torn_tsv_and_drops_the_incomplete_file(tmp_path):
    out = tmp_path / "o.tsv"
    out.write_text(f"{TSV_HEADER}\na.wav\t0.500\t1.000\tCat\nb.wav\t1.000\t2.000\tDog\nb.wav\t3.0")
    assert _repair_and_list(out, "tsv") == {"a.wav"}  # b.wav's rows went out in one write: b is incomplete
    assert out.read_text() == f"{TSV_HEADER}\na.wav\t0.500\t1.000\tCat\n"
    out.write_text(f"{TSV_HEADER}\na.wav\t0.500\t1.000\tCat\nb.w")  # torn at the start of a new file
    assert _repair_and_list(out, "tsv") == {"a.wav"}
    out.write_text("filen")  # torn header
    assert _repair_and_list(out, "tsv") == set() and out.read_text() == ""
    out.write_text("something else\n")
    with pytest.raises(OutputError, match="not a detection TSV"):
        _repair_and_list(out, "tsv")


def test_resume_json_lines(tmp_path):
    out = tmp_path / "o.json"
    with EventWriter(out, "json") as w:
        w.write("a.wav", _ev((2.0, 3.5, "Dog")), 10.0, {"Dog": 0.9})
    with open(out, "a") as f:
        f.write('{"filename": "b.wav", "dur')
    w = EventWriter(out, "json", resume=True)
    assert w.done == {"a.wav"}
    w.write("b.wav", _ev(), 3.0)
    w.close()
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [o["filename"] for o in lines] == ["a.wav", "b.wav"]
    assert (lines[0]["events"] == [{"onset": 2.0, "offset": 3.5, "event_label": "Dog"}]
            and lines[1]["events"] == [])
    with pytest.raises(OutputError, match="needs --out"):
        EventWriter(None, "json", resume=True)


# ----------------------------------------------------------------------------- plot helpers and bars


def test_mel_summary_pools_and_stays_bounded():
    hop = 320
    rng = np.random.default_rng(0)
    total = 20 * hop + 640  # 21 windows
    full = rng.standard_normal((total, 4)).astype(np.float32)
    ms = MelSummary(hop, expected_frames=total, max_cols=100)
    assert ms.pool == int(np.ceil(total / 100))
    for k in range(21):
        ms.add(k, full[k * hop : k * hop + 640])
    cols, pool = ms.result(total)
    n_full = total // pool
    np.testing.assert_allclose(cols[:n_full], full[: n_full * pool].reshape(n_full, pool, 4).mean(axis=1),
                               atol=1e-5)
    # unknown length: starts at pool 1, coarsens by 2 and never holds more than 2 * max_cols columns
    ms = MelSummary(hop, expected_frames=0, max_cols=50)
    for k in range(21):
        ms.add(k, full[k * hop : k * hop + 640])
        assert len(ms._cols) <= 100
    cols, pool = ms.result(total)
    assert pool > 1 and abs(len(cols) * pool - total) <= 2 * pool
    np.testing.assert_allclose(cols.mean(axis=0), full.mean(axis=0), atol=0.05)


def test_pool_max_keeps_peaks_and_safe_name():
    x = np.zeros((1000, 2), np.float32)
    x[537, 1] = 1.0
    p, pool = _pool_max(x, 100)
    assert pool == 10 and p.shape == (100, 2) and p[53, 1] == 1.0 and p[:, 1].sum() == 1.0
    assert safe_name("recs/a b/c.wav") == "recs__a_b__c.wav"
    assert safe_name("./x.wav") == "x.wav" and "/" not in safe_name("/abs/../y.wav")


def test_progress_bars_on_a_terminal_only():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    bars = _Bars(3, 10, quiet=False, err=err)
    bars.windows_done(4)
    bars.file_done()
    bars.close()
    assert "files" in err.getvalue() and "windows" in err.getvalue()
    for quiet, stream in ((True, Tty()), (False, io.StringIO())):
        b = _Bars(3, 10, quiet=quiet, err=stream)
        b.file_done()
        b.line("msg")
        b.close()
        assert stream.getvalue() == "msg\n"


@pytest.mark.parametrize("tagging", ["one", "per_class"])
def test_decode_by_class_equals_one_decode_of_all_classes(tagging):
    """Also with the per-class tagging table that ``sed.tune`` writes (issue 23: every file failed)."""
    import dataclasses

    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.constants import FRAME_SECONDS
    from sed.core.predictions import Predictions
    from sed.detect.run import decode_by_class
    from sed.postproc import decode
    from sed.postproc.files import read_postproc_file
    from tests.conftest import REPO

    params = read_postproc_file(REPO / "conf" / "postproc" / "default.yaml")
    if tagging == "per_class":  # one class untagged (None), the others spread around the clip probabilities
        table = {c: (None if i == 2 else 0.1 * (i % 10)) for i, c in enumerate(CLASSES)}
        params = dataclasses.replace(params, tagging_threshold=table)
    rng = np.random.default_rng(0)
    t = 3000
    # smooth random curves with events of many lengths; two classes untagged, one all zero
    fp = np.clip(np.cumsum(rng.normal(0, 0.08, (t, 10)), axis=0) % 2 - 0.5, 0, 1).astype(np.float32)
    fp[:, 3] = 0.0
    clip = np.where(np.arange(10) % 4 == 1, 0.2, 0.9).astype(np.float32)
    dur = t * FRAME_SECONDS - 0.3
    whole = decode(Predictions(["x"], fp[None], clip[None], CLASSES, FRAME_SECONDS, np.array([dur])), params)
    by_class = decode_by_class(decode, "x", fp, clip, CLASSES, params, FRAME_SECONDS, dur)
    assert len(whole) > 20
    key = ["onset", "offset", "event_label"]
    pd.testing.assert_frame_equal(whole[key].sort_values(key, ignore_index=True), by_class, check_dtype=False)

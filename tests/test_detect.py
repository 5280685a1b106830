"""`sed detect` end to end on generated recordings (issue 6), with a fake trained system."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sed import cli
from sed.detect.run import DetectOptions, run_detect
from sed.detect.windows import WindowSpec
from sed.detect.writer import TSV_HEADER, read_detections
from tests.detect_helpers import FakePredictor, assert_events, detect_cli, events_of, synth, write

SR = 22050


def detect(paths, tmp_path, predictor=None, **kw):
    opts = DetectOptions(**{"out": tmp_path / "out.tsv", "quiet": True, **kw})
    summary = run_detect([str(p) for p in paths], predictor or FakePredictor(), opts)
    return summary, read_detections(opts.out)


# ----------------------------------------------------------------------------- stitching (any length)

EVENTS_65 = [  # (label, onset, offset); window k covers [5.0068 k, 5.0068 k + 10) s
    ("Speech", 8.0, 13.0),  # across window 0's end (10.0 s) and window 2's start (10.01 s)
    ("Dog", 28.5, 31.5),  # across window 4's end (30.03 s) and window 6's start (30.04 s)
    ("Cat", 40.0, 41.0),  # inside
    ("Speech", 58.0, 62.0),  # across window 10's end (60.07 s)
]


def test_65s_recording_stitched_events_cross_window_edges(tmp_path):
    # joined from generated 5 s clips (seeds differ), events placed across the joins too
    x = synth(EVENTS_65, 65.0)
    clips = [x[i : i + 5 * SR] for i in range(0, len(x), 5 * SR)]
    rec = write(tmp_path / "long.wav", np.concatenate(clips))
    fake = FakePredictor(edge_frames=16)
    summary, df = detect([rec], tmp_path, fake, batch_size=5)
    assert summary.exit_code == 0 and summary.processed == [rec.as_posix()]
    assert_events(events_of(df), EVENTS_65, tol=0.15)
    assert sum(fake.calls) == 12 and max(fake.calls) == 5  # 12 windows of 10 s, hop 5.007 s, batched by 5
    assert (df["offset"] <= 65.0 + 1e-6).all()


def test_stitching_is_what_joins_the_events(tmp_path):
    """The same recording without overlap (hop 639 frames): the fake model's blind window edges cut
    the events that cross them, so the test above would fail without stitching."""
    rec = write(tmp_path / "long.wav", synth(EVENTS_65, 65.0))
    _, df = detect([rec], tmp_path, FakePredictor(edge_frames=16), overlap=0.0)
    speech = [e for e in events_of(df) if e[0] == "Speech"]
    assert len(speech) > 2  # 8-13 s split at the 9.99 s window edge


def test_short_recording_is_padded_and_events_clipped_to_its_length(tmp_path):
    rec = write(tmp_path / "short.wav", synth([("Dog", 1.0, 2.0), ("Speech", 2.6, 3.2)], 3.2))
    summary, df = detect([rec], tmp_path, FakePredictor(edge_frames=0))
    assert summary.exit_code == 0
    found = events_of(df)
    assert_events(found, [("Dog", 1.0, 2.0), ("Speech", 2.6, 3.2)], tol=0.12)
    assert max(e[2] for e in found) <= 3.2 + 1e-6


def test_recording_without_events_is_listed(tmp_path):
    rec = write(tmp_path / "quiet.wav", synth([], 12.0))
    _, df = detect([rec], tmp_path)
    assert list(df["filename"]) == [rec.as_posix()] and df["onset"].isna().all()


# ----------------------------------------------------------------------------- formats

FORMATS = [
    ("pcm16_8k.wav", 8000, 1, {"subtype": "PCM_16"}),
    ("pcm24_16k_stereo.wav", 16000, 2, {"subtype": "PCM_24"}),
    ("pcm32_44k.wav", 44100, 1, {"subtype": "PCM_32"}),
    ("float_48k_stereo.wav", 48000, 2, {"subtype": "FLOAT"}),
    ("double_22k.wav", 22050, 1, {"subtype": "DOUBLE"}),
    ("lossless_32k.flac", 32000, 2, {}),
    ("vorbis_44k.ogg", 44100, 1, {"subtype": "VORBIS"}),
    ("mpeg_44k.mp3", 44100, 1, {}),
]


def test_formats_rates_channels_and_bit_depths(tmp_path):
    expected = [("Speech", 2.0, 5.0), ("Dog", 7.0, 11.5)]
    for name, sr, ch, kw in FORMATS:
        x = synth(expected, 13.0, sr=sr, seed=len(name))
        if ch == 2:  # the tone in one channel only, noise in both: the mono mix-down keeps it
            x = np.stack([x, 0.003 * np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)],
                         axis=1)
        write(tmp_path / "in" / name, x, sr, **kw)
    summary, df = detect([tmp_path / "in"], tmp_path)
    assert not summary.failed, summary.failed
    assert len(summary.processed) == len(FORMATS)
    for name, *_ in FORMATS:
        assert_events(events_of(df, (tmp_path / "in" / name).as_posix()), expected, tol=0.2)


def test_stream_matches_the_training_data_layer(tmp_path):
    """A clip of at most 10 s gives the samples that sed.audio.io.load_audio gives (same features as
    training)."""
    from sed.audio.io import load_audio
    from sed.detect.stream import stream_mono
    from sed.detect.windows import Windower, WindowSpec

    x = np.random.default_rng(0).standard_normal((44100 * 7, 2)).astype(np.float32) * 0.1
    p = write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    windows = list(Windower(WindowSpec()).iter(stream_mono(p, block_frames=10000)))
    assert len(windows) == 1
    np.testing.assert_allclose(windows[0][1], load_audio(p), atol=1e-6)


# ----------------------------------------------------------------------------- bad input

def make_bad_folder(root):
    good = write(root / "good.wav", synth([("Speech", 2.0, 4.0)], 10.0))
    good2 = write(root / "sub" / "good2.flac", synth([("Dog", 12.0, 14.0)], 20.0))
    (root / "empty.wav").write_bytes(b"")
    write(root / "zero.wav", np.zeros(0, dtype=np.float32))
    (root / "text.wav").write_text("this is not audio\n" * 50)
    (root / "garbage.ogg").write_bytes(
        np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    )
    x = synth([("Speech", 1.0, 2.0)], 8.0)
    x[SR * 3] = np.nan
    write(root / "nan.wav", x, subtype="FLOAT")
    y = synth([("Speech", 1.0, 3.0), ("Dog", 20.0, 22.0)], 40.0)
    y[SR * 33 : SR * 33 + 5] = np.inf  # found after several windows were queued
    write(root / "sub" / "late_inf.wav", y, subtype="FLOAT")
    (root / "notes.txt").write_text("ignored: not an audio extension")
    return good, good2


def test_bad_inputs_are_reported_and_skipped(tmp_path, capsys):
    good, good2 = make_bad_folder(tmp_path / "in")
    out = tmp_path / "out.tsv"
    code = detect_cli([str(tmp_path / "in"), str(tmp_path / "missing.wav"), "--out", str(out),
                       "--batch-size", "3"])
    assert code == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("sedx detect: skipped")]
    reasons = {
        "empty.wav": "empty file", "zero.wav": "zero-length", "text.wav": "not readable as audio",
        "garbage.ogg": "not readable as audio", "nan.wav": "NaN", "late_inf.wav": "NaN or infinite",
        "missing.wav": "no such file",
    }
    assert len(lines) == len(reasons), err
    for name, why in reasons.items():
        assert sum(name in ln and why in ln for ln in lines) == 1, (name, err)
    df = read_detections(out)
    assert set(df["filename"]) == {good.as_posix(), good2.as_posix()}
    assert_events(events_of(df, good.as_posix()), [("Speech", 2.0, 4.0)])
    assert_events(events_of(df, good2.as_posix()), [("Dog", 12.0, 14.0)])


def test_all_good_exit_code_0_and_usage_errors_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no outputs/train here: no --ckpt has no default checkpoint
    rec = write(tmp_path / "a.wav", synth([], 3.0))
    assert detect_cli([str(rec), "--quiet"]) == 0
    assert cli.main([]) == 2
    assert cli.main(["detect", str(rec)]) == 2  # no --ckpt
    assert detect_cli([str(rec), "--resume"]) == 2  # resume needs --out
    assert detect_cli([str(rec), "--postproc", "no_such_postproc"]) == 2
    assert detect_cli([str(rec), "--overlap", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--resume needs --out" in err and "no_such_postproc" in err


def test_missing_checkpoint_is_a_usage_error(tmp_path, capsys):
    rec = write(tmp_path / "a.wav", synth([], 3.0))
    assert cli.main(["detect", str(rec), "--ckpt", str(tmp_path / "nope.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs and resume

def make_folder(root, n=4):
    specs = [[("Speech", 1.0 + i, 3.0 + i)] + ([("Dog", 12.0, 15.0)] if i % 2 else []) for i in range(n)]
    paths = [write(root / f"rec{i}.wav", synth(ev, 10.0 + 8 * i, seed=i)) for i, ev in enumerate(specs)]
    return paths, specs


def test_tsv_to_stdout_and_json_lines(tmp_path, capsys):
    paths, specs = make_folder(tmp_path / "in", 3)
    assert detect_cli([str(tmp_path / "in"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == TSV_HEADER
    rows = [ln.split("\t") for ln in out.splitlines()[1:]]
    assert all(len(r) == 4 for r in rows)
    df = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]).astype(
        {"onset": float, "offset": float}
    )
    for p, ev in zip(paths, specs):
        assert_events(events_of(df, p.as_posix()), ev)

    jpath = tmp_path / "out.json"
    assert detect_cli([str(tmp_path / "in"), "--quiet", "--format", "json", "--out", str(jpath)]) == 0
    objs = [json.loads(ln) for ln in jpath.read_text().splitlines()]
    assert [o["filename"] for o in objs] == [p.as_posix() for p in paths]
    for o, ev, i in zip(objs, specs, range(3)):
        assert abs(o["duration"] - (10.0 + 8 * i)) < 1e-3
        assert set(o["clip_probs"]) == set(FakePredictor.classes)
        assert o["clip_probs"]["Speech"] > 0.9 and o["clip_probs"]["Alarm_bell_ringing"] < 0.1
        assert_events([(e["event_label"], e["onset"], e["offset"]) for e in o["events"]], ev)


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_resume_after_interruption(tmp_path, fmt):
    paths, specs = make_folder(tmp_path / "in", 4)
    out = tmp_path / f"out.{fmt}"
    from sed.postproc import decode

    files = []

    def decode_then_interrupt(preds, params):  # called once per class of each file
        files.extend(f for f in preds.filenames if f not in files)
        if len(files) == 3:
            raise KeyboardInterrupt
        return decode(preds, params)

    opts = DetectOptions(out=out, fmt=fmt, quiet=True)
    with pytest.raises(KeyboardInterrupt):
        run_detect([str(tmp_path / "in")], FakePredictor(), opts, decode_fn=decode_then_interrupt)
    first = read_detections(out)
    assert set(first["filename"]) == {p.as_posix() for p in paths[:2]}  # written as each file finished
    with open(out, "a") as f:  # a torn last line, as if killed mid-write
        f.write(f"{paths[2].as_posix()}\t1.0" if fmt == "tsv" else '{"filename": "x.wav", "ev')

    opts = DetectOptions(out=out, fmt=fmt, quiet=True, resume=True)
    fake = FakePredictor()
    summary = run_detect([str(tmp_path / "in")], fake, opts)
    assert summary.skipped == [p.as_posix() for p in paths[:2]]
    assert summary.processed == [p.as_posix() for p in paths[2:]]
    spec = WindowSpec()
    # only the last two files
    assert sum(fake.calls) == spec.n_windows(26 * SR) + spec.n_windows(34 * SR) == 5 + 6
    df = read_detections(out)
    if fmt == "tsv":
        lines = out.read_text().splitlines()
        assert lines.count(TSV_HEADER) == 1 and all(len(ln.split("\t")) == 4 for ln in lines)
    else:
        names = [json.loads(ln)["filename"] for ln in out.read_text().splitlines()]
        assert names == [p.as_posix() for p in paths]  # each file once
    for p, ev in zip(paths, specs):
        assert_events(events_of(df, p.as_posix()), ev)
    # a second resume finds nothing to do
    summary = run_detect([str(tmp_path / "in")], FakePredictor(), opts)
    assert summary.processed == [] and len(summary.skipped) == 4


# ----------------------------------------------------------------------------- plot

def test_plot_written_for_short_and_long_recordings(tmp_path):
    short = write(tmp_path / "in" / "short.wav", synth([("Speech", 1.0, 2.0)], 4.0))
    long = write(tmp_path / "in" / "deep" / "long.wav",
                 synth([("Dog", 100.0, 100.3), ("Speech", 200.0, 230.0)], 240.0, sr=8000), 8000)
    summary, df = detect([tmp_path / "in"], tmp_path, plot_dir=tmp_path / "plots")
    assert summary.exit_code == 0
    assert_events(events_of(df, long.as_posix()), [("Dog", 100.0, 100.3), ("Speech", 200.0, 230.0)])
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 2 and any("deep__long" in p for p in pngs)
    for p in (tmp_path / "plots").glob("*.png"):
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 20_000
    _ = short


def test_real_checkpoint_through_the_console_entry_point(tmp_path, capsys):
    """No fake: sed.inference.predictor.load_system on an (untrained) SM+DM checkpoint, the LogMel frontend,
    conf/postproc/default.yaml by name, a plot, JSON output."""
    from tests.detect_helpers import make_untrained_checkpoint

    ckpt = make_untrained_checkpoint(tmp_path / "untrained.ckpt")
    rec = write(tmp_path / "in" / "a.flac", synth([("Speech", 1.0, 3.0)], 14.0, sr=16000), 16000)
    out = tmp_path / "out.json"
    code = cli.main(["detect", str(tmp_path / "in"), "--ckpt", str(ckpt), "--device", "cpu",
                     "--postproc", "default", "--format", "json", "--out", str(out),
                     "--plot", str(tmp_path / "plots"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    obj = json.loads(out.read_text())
    assert obj["filename"] == rec.as_posix() and abs(obj["duration"] - 14.0) < 1e-3
    assert all(0.0 <= p <= 1.0 for p in obj["clip_probs"].values())
    assert all(0.0 <= e["onset"] < e["offset"] <= 14.0 for e in obj["events"])
    assert len(list((tmp_path / "plots").glob("*.png"))) == 1


def test_windows_of_several_files_share_batches_without_changing_results(tmp_path):
    specs = [[("Speech", 0.5 + i, 2.0 + i)] for i in range(5)]
    paths = [write(tmp_path / "in" / f"r{i}.wav", synth(ev, 6.0 + i, seed=i)) for i, ev in enumerate(specs)]
    fake = FakePredictor()
    _, together = detect([tmp_path / "in"], tmp_path, fake, batch_size=4)
    assert fake.calls == [4, 1]  # five 1-window files in two model calls
    for i, p in enumerate(paths):
        _, alone = detect([p], tmp_path / f"alone{i}", batch_size=1)
        assert events_of(alone) == events_of(together, p.as_posix())
        assert_events(events_of(alone), specs[i])


def test_file_name_that_tsv_cannot_hold_is_reported(tmp_path):
    write(tmp_path / "in" / "ok.wav", synth([], 2.0))
    write(tmp_path / "in" / "tab\there.wav", synth([], 2.0))
    err = __import__("io").StringIO()
    summary = run_detect([str(tmp_path / "in")], FakePredictor(),
                         DetectOptions(out=tmp_path / "o.tsv", quiet=True), err=err)
    assert len(summary.processed) == 1 and len(summary.failed) == 1 and "tab or line break" in err.getvalue()


def test_postproc_by_path_and_failures_after_reading(tmp_path, capsys):
    """--postproc as a YAML path (min_duration 5 s removes the 2 s event); a post-processing failure in
    one file is reported and the others go on; a config without the model's classes gives them the
    generic default; a bad value is a usage error."""
    import yaml

    rec = write(tmp_path / "in" / "a.wav", synth([("Speech", 2.0, 4.0)], 8.0, amp=0.3))
    cfg = dict(FakePredictor().postproc_cfg, min_duration=5.0)  # every event is shorter: all removed
    (tmp_path / "long_only.yaml").write_text(yaml.safe_dump(cfg))
    _, df = detect([rec], tmp_path, postproc=str(tmp_path / "long_only.yaml"))
    assert events_of(df) == [] and list(df["filename"]) == [rec.as_posix()]

    # a config without the model's other classes: they get the generic default (issue 21: any label set)
    only = dict(cfg, frame_thresholds={"Speech": 0.3}, median_windows={"Speech": [3, 3]})
    (tmp_path / "only.yaml").write_text(yaml.safe_dump(only))
    assert detect_cli([str(rec), "--postproc", str(tmp_path / "only.yaml"), "--quiet"]) == 0
    bad = dict(cfg, frame_thresholds={"Speech": 1.3})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert detect_cli([str(rec), "--postproc", str(tmp_path / "bad.yaml"), "--quiet"]) == 2
    assert "bad post-processing config" in capsys.readouterr().err

    write(tmp_path / "in" / "b.wav", synth([("Dog", 1.0, 2.0)], 5.0))
    from sed.postproc import decode

    def decode_fails_on_a(preds, params):
        if preds.filenames[0].endswith("a.wav"):
            raise ValueError("boom")
        return decode(preds, params)

    err = __import__("io").StringIO()
    summary = run_detect([str(tmp_path / "in")], FakePredictor(),
                         DetectOptions(out=tmp_path / "o2.tsv", quiet=True),
                         err=err, decode_fn=decode_fails_on_a)
    assert summary.exit_code == 1 and len(summary.processed) == 1
    assert "a.wav: post-processing failed (ValueError: boom)" in err.getvalue()

"""Issue 14, sections 2 and 5: the ``sedx`` command, and detect output that never destroys input nor
duplicates rows (each test fails on the code before the fix)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sed import cli
from sed.detect import run as detect_run
from sed.detect.run import DetectOptions, run_detect
from sed.detect.writer import TSV_HEADER, progress_path, read_detections
from tests.detect_helpers import FakePredictor, assert_events, detect_cli, events_of, synth, write

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- section 2: the command


def test_console_script_is_sedx_and_python_m_sed_works():
    text = (REPO / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    names = [ln.split("=")[0].strip() for ln in scripts.splitlines() if "=" in ln and not ln.startswith("#")]
    assert names == ["sedx"]  # never `sed`: it would shadow GNU sed in an activated venv
    r = subprocess.run([sys.executable, "-m", "sed", "detect", "--help"], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert r.returncode == 0 and "usage: python -m sed detect" in r.stdout and "--force" in r.stdout


def test_detect_without_ckpt_uses_the_newest_runs_best_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "outputs/train/ps1/2020-01-01_00-00-00/checkpoints/best.ckpt"
    new = tmp_path / "outputs/train/ps2/2020-01-02_00-00-00/checkpoints/best.ckpt"
    for i, p in enumerate((old, new)):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        os.utime(p.parent.parent, (1000 + i, 1000 + i))
    seen = []
    orig = detect_run.load_predictor
    monkeypatch.setattr(detect_run, "load_predictor",
                        lambda ckpt, device="auto": seen.append(ckpt) or FakePredictor())
    rec = write(tmp_path / "a.wav", synth([], 3.0))
    assert cli.main(["detect", str(rec), "--quiet", "--out", str(tmp_path / "o.tsv")]) == 0
    assert [Path(p).resolve() for p in seen] == [new.resolve()]
    assert (f"using {Path('outputs/train/ps2/2020-01-02_00-00-00/checkpoints/best.ckpt')}"
            in capsys.readouterr().err)
    monkeypatch.setattr(detect_run, "load_predictor", orig)


def test_device_cuda_on_a_cpu_build_names_the_device_not_the_checkpoint(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rec = write(tmp_path / "a.wav", synth([], 3.0))
    assert cli.main(["detect", str(rec), "--ckpt", str(tmp_path / "x.ckpt"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA GPU" in err and "x.ckpt" not in err


# ----------------------------------------------------------------------------- section 5: output safety


def test_out_naming_an_input_recording_is_refused_and_the_recording_kept(tmp_path, capsys):
    rec = write(tmp_path / "in" / "a.wav", synth([("Speech", 1.0, 2.0)], 4.0))
    before = rec.read_bytes()
    assert detect_cli([str(tmp_path / "in"), "--out", str(rec), "--quiet"]) == 2
    assert detect_cli([str(tmp_path / "in"), "--out", str(rec), "--quiet", "--force"]) == 2
    assert rec.read_bytes() == before
    assert "is one of the input recordings" in capsys.readouterr().err


def test_out_as_a_hard_link_of_an_input_is_refused_even_with_force(tmp_path, capsys):
    """Issue 23 (8): the same recording under another name is still the recording."""
    rec = write(tmp_path / "in" / "a.wav", synth([("Speech", 1.0, 2.0)], 4.0))
    before = rec.read_bytes()
    link = tmp_path / "events.tsv"
    os.link(rec, link)
    assert detect_cli([str(rec), "--out", str(link), "--quiet", "--force"]) == 2
    assert rec.read_bytes() == before
    assert "is one of the input recordings (a.wav)" in capsys.readouterr().err.replace(str(rec), "a.wav")


def test_a_second_run_on_the_same_out_is_refused_while_the_first_writes(tmp_path, capsys):
    """Issue 23 (3): two runs writing one --out at once lost one run's rows and both exited 0."""
    from sed.detect.writer import EventWriter

    rec = write(tmp_path / "a.wav", synth([("Speech", 1.0, 2.0)], 4.0))
    out = tmp_path / "out.tsv"
    with EventWriter(out) as first:  # another run holding the output
        assert detect_cli([str(rec), "--out", str(out), "--quiet"]) == 2
        assert detect_cli([str(rec), "--out", str(out), "--quiet", "--resume"]) == 2
        import pandas as pd

        first.write("x.wav", pd.DataFrame(columns=["onset", "offset", "event_label"]), 1.0)
    err = capsys.readouterr().err
    assert err.count("is being written by another run right now") == 2 and len(err.strip().splitlines()) == 2
    assert read_detections(out)["filename"].tolist() == ["x.wav"]  # the first run's rows kept
    assert detect_cli([str(rec), "--out", str(out), "--quiet", "--resume"]) == 0  # free again once it ends
    assert sorted(read_detections(out)["filename"].unique()) == sorted(["x.wav", str(rec)])


def test_out_naming_an_existing_other_file_needs_force(tmp_path, capsys):
    rec = write(tmp_path / "a.wav", synth([("Speech", 1.0, 2.0)], 4.0))
    other = tmp_path / "notes.txt"
    other.write_text("precious\n")
    assert detect_cli([str(rec), "--out", str(other), "--quiet"]) == 2
    assert other.read_text() == "precious\n"
    assert "not a detections file" in capsys.readouterr().err
    assert detect_cli([str(rec), "--out", str(other), "--quiet", "--force"]) == 0
    assert other.read_text().startswith(TSV_HEADER)
    # an earlier detections file is ours to overwrite
    assert detect_cli([str(rec), "--out", str(other), "--quiet"]) == 0


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_resume_from_another_working_directory_duplicates_nothing(tmp_path, monkeypatch, fmt):
    paths = [write(tmp_path / "in" / f"r{i}.wav", synth([("Speech", 1.0, 2.0 + i)], 6.0, seed=i))
             for i in range(3)]
    out = tmp_path / f"out.{fmt}"
    monkeypatch.chdir(tmp_path)
    run_detect(["in/r0.wav", "in/r1.wav"], FakePredictor(),
               DetectOptions(out=f"out.{fmt}", fmt=fmt, quiet=True))
    monkeypatch.chdir(tmp_path / "in")  # the same folder, now named by absolute paths
    fake = FakePredictor()
    s = run_detect([str(tmp_path / "in")], fake, DetectOptions(out=out, fmt=fmt, quiet=True, resume=True))
    assert s.skipped == [p.as_posix() for p in paths[:2]] and s.processed == [paths[2].as_posix()]
    df = read_detections(out)
    assert len(df) == 3 and sorted(df["filename"]) == sorted(["in/r0.wav", "in/r1.wav", paths[2].as_posix()])


def test_resume_after_a_cut_at_a_line_boundary_redoes_that_recording(tmp_path):
    events = [("Speech", 1.0 + 2 * k, 1.8 + 2 * k) for k in range(8)]
    a = write(tmp_path / "in" / "a.wav", synth(events, 18.0))
    b = write(tmp_path / "in" / "b.wav", synth([("Dog", 1.0, 2.0)], 4.0, seed=1))
    clean = tmp_path / "clean.tsv"
    run_detect([str(a), str(b)], FakePredictor(), DetectOptions(out=clean, quiet=True))
    out = tmp_path / "out.tsv"
    out.write_text(clean.read_text())
    progress_path(out).write_text(progress_path(clean).read_text())
    lines = clean.read_text().splitlines(keepends=True)
    assert sum(ln.startswith(a.as_posix()) for ln in lines) == 8
    out.write_text("".join(lines[:4]))  # header + 3 of a.wav's 8 rows, cut at a line boundary
    s = run_detect([str(a), str(b)], FakePredictor(), DetectOptions(out=out, quiet=True, resume=True))
    assert s.processed == [a.as_posix(), b.as_posix()]
    assert sorted(out.read_text().splitlines()) == sorted(clean.read_text().splitlines())
    assert_events(events_of(read_detections(out), a.as_posix()), events)
    entries = [json.loads(ln) for ln in progress_path(out).read_text().splitlines()]
    assert [(e["name"], e["rows"]) for e in entries] == [(a.as_posix(), 8), (b.as_posix(), 1)]


def test_folder_without_supported_audio_and_unsupported_formats_exit_nonzero(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    mixed = tmp_path / "mixed"
    write(mixed / "a.wav", synth([], 3.0))
    (mixed / "b.m4a").write_bytes(b"\0" * 100)
    write(mixed / "c.aiff", synth([("Speech", 1.0, 2.0)], 3.0), format="AIFF")
    out = tmp_path / "o.tsv"
    assert detect_cli([str(tmp_path / "empty"), str(mixed), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "empty: no audio file in this folder" in err
    assert "b.m4a: unsupported audio format" in err
    df = read_detections(out)
    assert set(df["filename"]) == {(mixed / "a.wav").as_posix(), (mixed / "c.aiff").as_posix()}
    assert detect_cli([str(tmp_path / "empty"), "--out", str(out)]) == 1

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

    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.constants import FRAME_SECONDS
    from sed.core.predictions import Predictions, PredictionsError
    from sed.evaluation.coverage import apply_real_durations
    from sed.evaluation.metrics import MetricsError, align

    names = ["a.wav", "b.wav"]
    frame, clip = np.zeros((2, 100, 10), np.float32), np.zeros((2, 10), np.float32)
    with pytest.raises(PredictionsError,
                       match=r"^predictions: the frame probabilities cover 1.56 s \(100 frames of "
                             r"0.0156 s\) but 1 of 2 clips last longer \(e.g. b.wav: 10.00 s\)"):
        Predictions(names, frame, clip, CLASSES, durations=np.array([1.5, 10.0]))
    short = Predictions(names, frame, clip, CLASSES)  # no durations stored: the frames' 1.56 s
    with pytest.raises(MetricsError,
                       match=r"1 of 2 clips hold ground-truth events ending later "
                             r"\(e.g. a.wav: 9.00 s\)"):
        align(short, {"a.wav": [(8.0, 9.0, CLASSES[0])], "b.wav": []})
    dur = tmp_path / "durations.tsv"
    dur.write_text("filename\tduration\na.wav\t10.0\nb.wav\t1.5\n")
    with pytest.raises(PredictionsError,
                       match=rf"^predictions of validation \(clip durations from {dur}\): .* "
                             r"1 of 2 clips last longer \(e.g. a.wav: 10.00 s\)"):
        apply_real_durations(short,
                             {"root": str(tmp_path), "splits": {"validation": {"durations": str(dur)}}},
                             "validation")
    # within two frames (or 1 %) of the end is the same length (DESED's 10 s clips, 640 frames of 15.6 ms)
    full = Predictions(names, np.zeros((2, 640, 10), np.float32), clip, CLASSES,
                       durations=np.array([10.02, 9.99]))
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
        cfg = compose("tune", overrides=[f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                                         "device=cpu", f"ckpt={run}", "grid.thresholds=[0.5]",
                                         "grid.first_windows=[1]", "grid.second_windows=[1]",
                                         "grid.tagging_thresholds=[0.5]", "workers=1"],
                      return_hydra_config=True)
    with caplog.at_level(logging.WARNING):
        s = tune_run(cfg, tmp_path / "t")
    assert s["left_out"]["n_clips"] == 1 and (tmp_path / "t" / "left_out_validation.tsv").is_file()
    assert gone.name in (tmp_path / "t" / "left_out_validation.tsv").read_text()
    assert "1 of" in caplog.text and "left out: their audio is missing" in caplog.text
    assert json.loads((tmp_path / "t" / "tune.json").read_text())["left_out"]["n_clips"] == 1
    # weak case: post-processing tuned on another dataset was applied silently; the file now says where
    from omegaconf import OmegaConf

    from sed.eval import tuned_elsewhere
    from sed.postproc import PostprocParams

    tuned = PostprocParams.from_cfg(OmegaConf.load(run / "postproc.yaml"))
    assert tuned.tuned_data == str(root.resolve())
    same = OmegaConf.create({"data": {"root": str(root)}, "ground_truth": None})
    other = OmegaConf.create({"data": {"root": str(tiny_desed)}, "ground_truth": None})
    assert tuned_elsewhere(tuned, same) is None and tuned_elsewhere(PostprocParams(), other) is None
    assert tuned_elsewhere(tuned, other) == (
        f"this post-processing was tuned on {root.resolve()}, not on the data evaluated now "
        f"({Path(tiny_desed).resolve()}); "
        f"tune it on this data (python -m sed.tune data.root={tiny_desed} ...) "
        "or pass postproc=paper for Table 1")


def test_checkpoint_write_is_whole_or_not_at_all(tmp_path, monkeypatch):
    """Weak case: a full disk during a save left a truncated last.ckpt that no resume could read."""
    import errno

    import torch
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    from sed.training.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    assert torch.load(path, weights_only=False)["epoch"] == 1

    def full_disk(self, checkpoint, p, storage_options=None):
        Path(p).write_bytes(b"PK\x03\x04 half a checkpoint")  # what a write stopped by ENOSPC leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*last.ckpt \(No space left on device\); the "
                                      r"previous one is kept"):
        io.save_checkpoint({"epoch": 2}, path)
    assert torch.load(path, weights_only=False)["epoch"] == 1  # the epoch-1 checkpoint, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_training_uses_the_atomic_writer_and_ctrl_c_says_how_to_resume(
    tmp_path, tiny_data_cfg, tmp_path_factory, capsys
):
    """Weak case: no resume hint after Ctrl-C."""
    import pytorch_lightning as pl

    from sed.train import run
    from tests._train_utils import make_cfg, nmf_data_cfg

    class CtrlC(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            from sed.training.checkpoint_io import AtomicCheckpointIO

            assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    ov = ["trainer.max_epochs=3", "torch_threads=1", "callbacks.report.plots=false"]
    with pytest.raises(SystemExit):
        run(make_cfg(tmp_path / "r", nmf_data_cfg(tiny_data_cfg, tmp_path_factory), ov), tmp_path / "r",
            overrides=ov, extra_callbacks=[CtrlC()])
    err = capsys.readouterr().err
    hint = [ln for ln in err.splitlines() if ln.startswith("sed.train: interrupted")]
    assert hint == [f"sed.train: interrupted: the last finished epoch is in "
                    f"{tmp_path / 'r'}/checkpoints/last.ckpt; "
                    f"continue with: python -m sed.train {' '.join(ov)} ckpt_path={tmp_path / 'r'}"]
    assert not list((tmp_path / "r" / "checkpoints").glob(".*partial"))


def test_detect_on_a_full_disk_blames_the_output_and_keeps_finished_files(tmp_path, capsys, monkeypatch):
    """Weak case: on a full disk detect blamed post-processing, file after file."""
    import errno

    from sed.detect.writer import EventWriter, read_detections
    from tests.detect_helpers import detect_cli, synth, write

    recs = [write(tmp_path / "in" / f"r{i}.wav", synth([("Speech", 1.0, 2.0)], 4.0, seed=i))
            for i in range(3)]
    real = EventWriter.write
    calls = []

    def full_after_one(self, *a, **k):
        calls.append(a[0])
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(EventWriter, "write", full_after_one)
    out = tmp_path / "out.tsv"
    assert detect_cli([str(tmp_path / "in"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "post-processing" not in err[0]
    assert err[0].startswith(f"sedx detect: cannot write {out} (No space left on device) while writing ")
    assert err[0].endswith("the 1 file(s) finished before it are kept: free space and rerun with --resume")
    assert read_detections(out)["filename"].tolist() == [str(recs[0])]
    monkeypatch.setattr(EventWriter, "write", real)
    assert detect_cli([str(tmp_path / "in"), "--out", str(out), "--quiet", "--resume"]) == 0
    assert sorted(read_detections(out)["filename"]) == sorted(map(str, recs))


def test_torch_threads_is_one_setting_of_every_entry_point(tmp_path, monkeypatch):
    """Weak case: torch_threads was read by training only."""
    import torch

    from sed.core.threads import set_torch_threads
    from tests.detect_helpers import detect_cli, synth, write

    for name in ("eval", "tune", "train"):
        assert "torch_threads: null" in (REPO / "conf" / f"{name}.yaml").read_text()
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(None) is None and torch.get_num_threads() == before
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, -2, "two", 1.5, True):
            with pytest.raises(ConfigError,
                               match=r"^torch_threads=.*: expected a whole number of threads >= 1"):
                set_torch_threads(bad)
        rec = write(tmp_path / "a.wav", synth([], 3.0))
        torch.set_num_threads(2)
        assert detect_cli([str(rec), "--quiet", "--threads", "1", "--out", str(tmp_path / "o.tsv")]) == 0
        assert torch.get_num_threads() == 1
        assert detect_cli([str(rec), "--quiet", "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


def test_timeline_titles_give_each_clips_own_length(tmp_path, monkeypatch):
    """Weak case: report plots were titled "(10.0 s)" for shorter clips."""
    import matplotlib.figure
    import numpy as np
    from hydra import compose, initialize_config_dir

    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.predictions import Predictions
    from sed.eval import run

    frame = np.zeros((2, 640, 10), np.float32)
    frame[:, 64:200, 0] = 0.9
    Predictions(["a.wav", "b.wav"], frame, np.full((2, 10), 0.9, np.float32), CLASSES,
                durations=np.array([7.25, 10.0])).save(tmp_path / "p.npz")
    (tmp_path / "gt.tsv").write_text(f"filename\tonset\toffset\tevent_label\na.wav\t1.0\t3.0\t{CLASSES[0]}\n"
                                     f"b.wav\t1.0\t3.0\t{CLASSES[0]}\n")
    titles = []
    real = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, t, **k: titles.append(t) or real(self, t, **k))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=[f"predictions={tmp_path / 'p.npz'}",
                                         f"ground_truth={tmp_path / 'gt.tsv'}",
                                         "psds=false", "segment=false", "report.n_timelines=2"])
    run(cfg, tmp_path / "out")
    assert sorted(t.split(":")[0] for t in titles if t.startswith(("a.wav", "b.wav"))) == ["a.wav (7.2 s)",
                                                                                           "b.wav (10.0 s)"]


def test_one_make_train_time_in_readme_makefile_and_config():
    """Weak case: README, Makefile and the trainer config gave three different `make train` times. README and
    the Makefile state it; any other file that names one (the trainer config used to) must agree."""
    import re

    pattern = r"(\d+) min on 2 (?:quiet )?CPU cores"
    minutes = set()
    for f in ("README.md", "Makefile", "conf/trainer/default.yaml"):
        lines = [ln for ln in (REPO / f).read_text().splitlines()
                 if "make train" in ln and re.search(pattern, ln)]
        assert lines or f.startswith("conf/"), f"{f}: no `make train` time"
        minutes |= {re.search(pattern, ln).group(1) for ln in lines}
    assert len(minutes) == 1, minutes


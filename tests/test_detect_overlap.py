"""SM and the log-mel once per frame across overlapping windows (sed/detect/overlap.py, issue 15): the
geometry by hand, and the log-mel and per-window estimates equal to running every window whole, through
``run_detect``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sed.audio.features import LogMel
from sed.core.constants import DEFAULT_FEATURES
from sed.detect import run as detect_run
from sed.detect.overlap import FrameReuse, MelReuse, clean_frames, logmel_windows
from sed.detect.run import DetectOptions, run_detect
from sed.detect.windows import WindowSpec
from sed.inference.predictor import load_system
from tests.detect_helpers import FakePredictor, write


def test_plan_at_the_default_overlap_by_hand():
    # n_fft 2048, hop 345: frames 0-2 and 637-639 read the window's zero padding (j*345 < 1024;
    # j*345 + 1024 > 220500); SM's context is 3 convs x 1 + 9 // 2 = 7 frames.
    p = FrameReuse.plan(WindowSpec.from_overlap(0.5), DEFAULT_FEATURES.n_fft, 7)
    assert (p.lo, p.hi, p.new) == (3 + 7, 637 - 7, 630 - 320)
    assert (p.left_slice, p.right_slice) == (slice(0, 17), slice(303, 640))
    assert p.frames_per_window == 17 + 337  # 354 of 640


def test_mel_plan_by_hand():
    spec = WindowSpec.from_overlap(0.5)
    assert clean_frames(spec, 2048) == (3, 637)
    p = MelReuse.plan(spec, 2048)
    assert p.new_index.tolist() == [0, 1, 2, *range(317, 640)]  # 326 frames computed, 314 copied
    assert MelReuse.plan(WindowSpec.from_overlap(0.0), 2048) is None
    new, prev = torch.arange(326.0)[:, None] + 1000, torch.arange(640.0)[:, None]
    out = p.assemble(new, prev)[:, 0]
    assert out[:3].tolist() == [1000, 1001, 1002] and out[3:317].tolist() == list(range(323, 637))
    assert out[317:].tolist() == [1000.0 + i for i in range(3, 326)]


@pytest.mark.parametrize("overlap", [0.5, 0.8, 0.1])
def test_logmel_windows_equal_whole_windows(overlap):
    from types import SimpleNamespace

    from sed.detect.windows import Windower

    spec, fe = WindowSpec.from_overlap(overlap), LogMel()
    x = np.random.default_rng(0).standard_normal(int(37.7 * 22050)).astype(np.float32)
    wins = [(k, torch.from_numpy(w)) for k, w in Windower(spec).iter([x[:100000], x[100000:]])]
    rec, reuse, got = SimpleNamespace(prev_mel=None), MelReuse.plan(spec, 2048), []
    for b in range(0, len(wins), 3):  # batches of 3: window k - 1 often in the batch before
        ks, xs = zip(*wins[b : b + 3])
        got.append(logmel_windows(fe, reuse, torch.stack(xs), ks, [rec] * len(ks)))
    ref = fe(torch.stack([w for _, w in wins]))
    np.testing.assert_allclose(torch.cat(got).numpy(), ref.numpy(), atol=1e-4, rtol=0)
    assert (ref[1, : reuse.lo] - ref[0, spec.hop_frames : spec.hop_frames + reuse.lo]).abs().max() > 0.1


def test_plan_none_when_nothing_to_reuse():
    n_fft = DEFAULT_FEATURES.n_fft
    assert FrameReuse.plan(WindowSpec.from_overlap(0.5), n_fft, None) is None  # CRNN: GRU over the window
    assert FrameReuse.plan(WindowSpec.from_overlap(0.0), n_fft, 7) is None  # hop 639 > hi - lo
    # hop h: SM sees 17 + (640 - (630 - h) + 7) = 34 + h frames per window, fewer than 640 while h < 606
    assert FrameReuse.plan(WindowSpec(hop_frames=605), n_fft, 7).frames_per_window == 639
    assert FrameReuse.plan(WindowSpec(hop_frames=606), n_fft, 7) is None


def test_assemble_by_hand():
    p = FrameReuse(win_frames=12, hop_frames=4, context=1, lo=2, hi=10)  # new = 6
    left = np.arange(3, dtype=np.float32)[:, None] + 100  # window frames [0, 3)
    right = np.arange(7, dtype=np.float32)[:, None] + 200  # window frames [5, 12)
    prev = np.arange(12, dtype=np.float32)[:, None]
    out = p.assemble(left, right, prev)[:, 0]
    assert out.tolist() == [100, 101, 6, 7, 8, 9, 201, 202, 203, 204, 205, 206]


def _system(tmp_path, overrides):
    from sed.train import build_model

    torch.manual_seed(0)
    system = build_model(overrides)
    with torch.no_grad():  # BatchNorm statistics away from 0 / 1, so padding effects are not hidden
        for m in system.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, path)
    return load_system(path, "cpu").speed_up()


class _Spy(detect_run.Stitcher):
    seen: list = []

    def add(self, k, frame_probs, clip_probs):
        _Spy.seen.append((k, frame_probs.copy(), clip_probs.copy()))
        super().add(k, frame_probs, clip_probs)


def _estimates(monkeypatch, tmp_path, pred, rec, overlap, batch, reuse):
    monkeypatch.setattr(detect_run, "Stitcher", _Spy)
    if not reuse:
        monkeypatch.setattr(detect_run.FrameReuse, "plan", classmethod(lambda cls, *a: None))
    _Spy.seen = []
    s = run_detect([str(rec)], pred, DetectOptions(out=tmp_path / f"o{reuse}.tsv", quiet=True,
                                                   overlap=overlap, batch_size=batch))
    assert not s.failed
    monkeypatch.undo()
    return sorted(_Spy.seen, key=lambda e: e[0])


@pytest.mark.parametrize("overrides,overlap,batch", [
    ([], 0.5, 16),
    ([], 0.5, 3),  # windows k - 1 and k in different batches
    (["model.sm.head_kernel=31", "model.sm.kernel=5"], 0.75, 4),
    (["model/sm=gated_head"], 0.2, 5),  # context 7 frames: 20 % overlap still leaves frames to reuse
    (["model/sm=tcn"], 0.5, 4),  # issue 20's SM choices (tcn, the default): context 58 and 59 frames
    (["model/sm=dilated_head"], 0.6, 3),
])
def test_estimates_equal_whole_windows(monkeypatch, tmp_path, overrides, overlap, batch):
    pred = _system(tmp_path, overrides)
    rng = np.random.default_rng(1)
    rec = write(tmp_path / "r.wav", (0.1 * rng.standard_normal(int(41.3 * 22050))).astype(np.float32))
    calls = []
    orig = pred.predict_frames_logmel
    monkeypatch.setattr(pred, "predict_frames_logmel", lambda x: calls.append(x.shape[1]) or orig(x))
    fast = _estimates(monkeypatch, tmp_path, pred, rec, overlap, batch, reuse=True)
    slow = _estimates(monkeypatch, tmp_path, pred, rec, overlap, batch, reuse=False)
    assert [k for k, _, _ in fast] == [k for k, _, _ in slow] == list(range(len(slow)))
    assert len(slow) > 4
    plan = FrameReuse.plan(WindowSpec.from_overlap(overlap), DEFAULT_FEATURES.n_fft, pred.frame_context)
    assert plan is not None and set(calls) >= {plan.left_slice.stop, 640 - plan.right_slice.start}
    for (_, fa, ca), (_, fb, cb) in zip(fast, slow):
        np.testing.assert_allclose(fa, fb, atol=2e-5, rtol=0)
        np.testing.assert_allclose(ca, cb, atol=2e-5, rtol=0)
    hop = WindowSpec.from_overlap(overlap).hop_frames
    edge = np.abs(slow[1][1][: plan.lo] - slow[0][1][hop : hop + plan.lo])  # the same recording frames
    assert edge.max() > 1e-3  # the edge frames do differ between windows: the test can see a wrong assembly


def test_no_reuse_without_a_local_frame_model(tmp_path):
    """The fake predictor (and the CRNN) has no ``frame_context``: every window runs whole."""
    fake = FakePredictor()
    rec = write(tmp_path / "r.wav", np.zeros(int(30 * 22050), np.float32))
    run_detect([str(rec)], fake, DetectOptions(out=tmp_path / "o.tsv", quiet=True))
    assert sum(fake.calls) == WindowSpec.from_overlap(0.5).n_windows(30 * 22050)

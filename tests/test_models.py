"""SM / DM / CRNN: shapes, parameter counts (as stated in the docstrings), SM's frame locality."""

import pytest
import torch

from sed.models import CRNN, DM, SM, ModelConfigError, clip_from_frames, count_parameters
from sed.train import build_model

# the sizes of conf/model/*.yaml (their one home): SM(**SM_KW) is the configured SM
_SMDM, _CRNN = build_model().hparams, build_model(["experiment=baseline"]).hparams
SM_KW, DM_KW, CRNN_KW = _SMDM["sm"], _SMDM["dm"], _CRNN["crnn"]
CRNN_FULL_KW = build_model(["experiment=baseline_dcase2020"]).hparams["crnn"]


def SM_(**kw):
    return SM(**{**SM_KW, **kw})


def DM_(**kw):
    return DM(**{**DM_KW, **kw})


def CRNN_(**kw):
    return CRNN(**{**CRNN_KW, **kw})


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 640, 64)


def test_shapes_and_ranges(x):
    sm, dm, crnn = SM_().eval(), DM_().eval(), CRNN_().eval()
    with torch.no_grad():
        f, c = sm(x), dm(x)
        cf, cc = crnn(x)
    assert f.shape == (2, 640, 10) and c.shape == (2, 10)
    assert cf.shape == (2, 640, 10) and cc.shape == (2, 10)
    for t in (f, c, cf, cc):
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert torch.equal(clip_from_frames(f), f.max(dim=1).values)


def test_parameter_counts_match_docstrings():
    assert count_parameters(SM_()) == 18_162
    assert count_parameters(DM_()) == 66_618
    assert count_parameters(CRNN_()) == 74_044
    full = CRNN_(channels=(16, 32, 64, 128, 128, 128, 128), rnn_cells=128)
    assert count_parameters(full) == 1_112_548
    assert count_parameters(CRNN(**CRNN_FULL_KW)) == 1_112_548  # conf/model/crnn_dcase2020.yaml


def test_sm_keeps_time_resolution(x):
    """No pooling along time: a change at frame 600 cannot reach frame 10 (receptive field ~15 frames)."""
    sm = SM_().eval()
    y = x.clone()
    y[:, 600:] += 5.0
    with torch.no_grad():
        a, b = sm(x), sm(y)
    assert torch.allclose(a[:, :500], b[:, :500])
    assert not torch.allclose(a[:, 600:], b[:, 600:])


def test_configurable_and_errors(x):
    sm = SM_(channels=(8, 8), freq_pools=(8, 8), dropout=0.5, head_kernel=3, head_units=16)
    assert sm(x).shape == (2, 640, 10)
    dm = DM_(channels=(8, 8, 8), pools=[[4, 2], [4, 2], [2, 2]], clip_pool="max")
    assert dm(x).shape == (2, 10)
    with pytest.raises(ModelConfigError):
        SM_(channels=(8, 8), freq_pools=(4,))
    with pytest.raises(ModelConfigError):
        DM_(channels=(8,) * 7, pools=[[2, 2]] * 7)  # 64 bins / 128 < 1
    with pytest.raises(ModelConfigError):
        DM_(clip_pool="median")


def test_backward_reaches_all_parameters(x):
    sm, dm = SM_(), DM_()
    (sm(x).mean() + dm(x).mean()).backward()
    assert all(p.grad is not None for p in list(sm.parameters()) + list(dm.parameters()))
